package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLazyDeadline: the request's deadline context acts as WithDeadline's:
// it reports the deadline, expires at it, and ends when the request does,
// whether or not anything waited on it.
func TestLazyDeadline(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey(99), "v")
	c := &lazyDeadline{Context: parent, deadline: time.Now().Add(50 * time.Millisecond)}
	if d, ok := c.Deadline(); !ok || !d.Equal(c.deadline) || c.Value(ctxKey(99)) != "v" {
		t.Fatalf("Deadline = %v %v, Value = %v", d, ok, c.Value(ctxKey(99)))
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline never expired")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", c.Err())
	}
	c.stop()

	unused := &lazyDeadline{Context: parent, deadline: time.Now().Add(time.Hour)}
	unused.stop()
	if unused.Err() == nil {
		t.Fatal("a stopped context that was never waited on is not done")
	}
	<-unused.Done()

	waited := &lazyDeadline{Context: parent, deadline: time.Now().Add(time.Hour)}
	done := waited.Done()
	waited.stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not end a context that was waited on")
	}

	short, cancel := context.WithDeadline(parent, time.Now().Add(time.Minute))
	defer cancel()
	nested := &lazyDeadline{Context: short, deadline: time.Now().Add(time.Hour)}
	if d, _ := nested.Deadline(); d.After(time.Now().Add(2 * time.Minute)) {
		t.Errorf("Deadline = %v, later than the parent's", d)
	}
	nested.stop()
}
