package v1alpha1_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

func TestEffectiveHostnameIsSpecHostnameElseTheName(t *testing.T) {
	cases := []struct {
		specHostname, want string
	}{
		{"", "web-1"},
		{"db", "db"},
		{"db.example.com", "db.example.com"},
	}
	for _, c := range cases {
		inst := &computev1alpha1.Instance{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
			Spec:       computev1alpha1.InstanceSpec{Hostname: c.specHostname},
		}
		if got := inst.EffectiveHostname(); got != c.want {
			t.Errorf("spec.hostname %q: effective host name %q, want %q", c.specHostname, got, c.want)
		}
	}
}
