package api

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	toolscache "k8s.io/client-go/tools/cache"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// listOrder keeps each namespace's instance names in id order, so that a
// list page is a binary search and a page's worth of store reads instead of
// a sort of the whole namespace on every request. Names never change and an
// instance never moves, so only an instance joining or leaving a namespace
// (the informer's add and delete events) makes its order stale; it is then
// rebuilt from the store by the next list of that namespace, once.
//
// The events reach the handler a moment after the store changed, so a page
// may lag the store by that moment (it never lags the informer's handlers);
// a name whose instance is gone by then is skipped.
type listOrder struct {
	store toolscache.Indexer

	mu   sync.Mutex
	byNS map[string]*namespaceOrder
}

type namespaceOrder struct {
	// version counts the namespace's adds and deletes: a build that saw
	// another version than the one it started at is not kept.
	version uint64
	current bool
	names   []string // sorted; shared by readers, never changed in place
}

func newListOrder(store toolscache.Indexer) *listOrder {
	return &listOrder{store: store, byNS: map[string]*namespaceOrder{}}
}

// handler is the instance informer's event handler that marks orders stale.
func (o *listOrder) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    o.changed,
		DeleteFunc: o.changed,
	}
}

func (o *listOrder) changed(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	in, ok := obj.(*computev1alpha1.Instance)
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ord := o.byNS[in.Namespace]
	if ord == nil {
		ord = &namespaceOrder{}
		o.byNS[in.Namespace] = ord
	}
	ord.version++
	ord.current, ord.names = false, nil
}

// sorted returns the namespace's names in id order; the slice is shared:
// read it, never change it.
func (o *listOrder) sorted(namespace string) ([]string, error) {
	o.mu.Lock()
	ord := o.byNS[namespace]
	if ord == nil {
		ord = &namespaceOrder{}
		o.byNS[namespace] = ord
	}
	if ord.current {
		names := ord.names
		o.mu.Unlock()
		return names, nil
	}
	version := ord.version
	o.mu.Unlock()

	// Built outside the lock from the store as it is now, which is at least
	// as new as the events counted in version.
	objs, err := o.store.ByIndex(toolscache.NamespaceIndex, namespace)
	if err != nil {
		return nil, fmt.Errorf("failed to list instances: %w", err)
	}
	names := make([]string, 0, len(objs))
	for _, obj := range objs {
		if in, ok := obj.(*computev1alpha1.Instance); ok {
			names = append(names, in.Name)
		}
	}
	slices.Sort(names)

	o.mu.Lock()
	if ord.version == version {
		ord.names, ord.current = names, true
	}
	o.mu.Unlock()
	return names, nil
}

// page returns up to limit of the namespace's instances whose id sorts after
// after, in id order, read from the store (its own objects: never change them).
func (o *listOrder) page(namespace, after string, limit int) ([]*computev1alpha1.Instance, error) {
	names, err := o.sorted(namespace)
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(names), func(i int) bool { return strings.Compare(names[i], after) > 0 })
	items := make([]*computev1alpha1.Instance, 0, min(limit, len(names)-i))
	prefix := namespace + "/"
	for ; i < len(names) && len(items) < limit; i++ {
		obj, exists, err := o.store.GetByKey(prefix + names[i])
		if err != nil {
			return nil, fmt.Errorf("failed to read instance %s: %w", names[i], err)
		}
		if in, ok := obj.(*computev1alpha1.Instance); exists && ok {
			items = append(items, in)
		}
	}
	return items, nil
}
