package v1alpha1_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// env is the real kube-apiserver, with the Instance CRD installed, that every
// test of this package talks to.
var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "failed to stop the control plane:", err)
	}
	os.Exit(code)
}
