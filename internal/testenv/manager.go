package testenv

import (
	"context"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// RunManager starts mgr in the background until the test ends or stop is
// called (stop may be called more than once), and fails the test if the
// manager returns an error: a manager that dies mid-test would otherwise
// only show as a timeout somewhere else.
func RunManager(t testing.TB, mgr manager.Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("the manager stopped with an error: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
