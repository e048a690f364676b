package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// eventCacheSize bounds the events the recorder remembers to aggregate repeats.
const eventCacheSize = 1024

// boundedRecorder speaks the events.k8s.io recorder interface the reconciler
// uses, over a core/v1 recorder whose correlator remembers at most
// eventCacheSize events. The events.k8s.io broadcaster keeps every event it
// sent for six minutes to find series: with ten thousand instances created
// at once that was twenty thousand events, a third of the manager's heap.
// Both kinds of event are one resource in the API server: `kubectl describe`
// and the events.k8s.io API show them alike.
type boundedRecorder struct {
	record.EventRecorder
}

var _ events.EventRecorder = boundedRecorder{}

func (r boundedRecorder) Eventf(regarding runtime.Object, _ runtime.Object, eventtype, reason, _ string, note string, args ...interface{}) {
	r.EventRecorder.Eventf(regarding, eventtype, reason, note, args...)
}

// newBoundedRecorder starts a core/v1 event broadcaster for mgr, stopped
// with the manager, and returns its recorder.
func newBoundedRecorder(mgr ctrl.Manager, component string) (events.EventRecorder, error) {
	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("failed to create the events client: %w", err)
	}
	broadcaster := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clientset.CoreV1().Events("")})
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		broadcaster.Shutdown()
		return nil
	})); err != nil {
		broadcaster.Shutdown()
		return nil, fmt.Errorf("failed to stop the event broadcaster with the manager: %w", err)
	}
	return boundedRecorder{broadcaster.NewRecorder(mgr.GetScheme(), corev1.EventSource{Component: component})}, nil
}
