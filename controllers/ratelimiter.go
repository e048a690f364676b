package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// jitteredBackoff is per-instance exponential backoff with up to 20% jitter,
// capped, for retries after transient errors. Jitter keeps a thousand
// instances that failed together from retrying together. It has no overall
// rate limit: one failing instance must not slow the others.
type jitteredBackoff struct {
	exp workqueue.TypedRateLimiter[reconcile.Request]
	max time.Duration
}

func newJitteredBackoff(base, max time.Duration) *jitteredBackoff {
	return &jitteredBackoff{exp: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](base, max), max: max}
}

func (b *jitteredBackoff) When(item reconcile.Request) time.Duration {
	return min(wait.Jitter(b.exp.When(item), 0.2), b.max)
}

func (b *jitteredBackoff) Forget(item reconcile.Request) { b.exp.Forget(item) }

func (b *jitteredBackoff) NumRequeues(item reconcile.Request) int { return b.exp.NumRequeues(item) }
