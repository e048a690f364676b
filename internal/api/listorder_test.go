package api

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

func orderInstance(ns, name string) *computev1alpha1.Instance {
	return &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, UID: types.UID(ns + "-" + name), ResourceVersion: "1"}}
}

func pageNames(t *testing.T, o *listOrder, ns, after string, limit int) []string {
	t.Helper()
	items, err := o.page(ns, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range items {
		if in.Namespace != ns {
			t.Fatalf("page of %s holds %s/%s", ns, in.Namespace, in.Name)
		}
		names = append(names, in.Name)
	}
	return names
}

// The informer's indexer, its store and its events, as the manager's cache
// wires them (the handler is called after the store changed).
func TestListOrderPagesInIDOrderAndFollowsAddsAndDeletes(t *testing.T) {
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc,
		toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	o := newListOrder(store)
	h := o.handler()
	add := func(in *computev1alpha1.Instance) {
		if err := store.Add(in); err != nil {
			t.Fatal(err)
		}
		h.OnAdd(in, false)
	}
	for _, name := range []string{"c", "a", "e", "b", "d"} {
		add(orderInstance("ns1", name))
	}
	add(orderInstance("ns2", "a0"))

	if got, want := pageNames(t, o, "ns1", "", 10), []string{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("first page = %v, want %v", got, want)
	}
	if got, want := pageNames(t, o, "ns1", "b", 2), []string{"c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("page after b of 2 = %v, want %v", got, want)
	}
	if got := pageNames(t, o, "ns1", "e", 2); len(got) != 0 {
		t.Fatalf("page after the last = %v, want none", got)
	}

	// An add after the order was built is in the next page.
	add(orderInstance("ns1", "bb"))
	if got, want := pageNames(t, o, "ns1", "b", 2), []string{"bb", "c"}; !slices.Equal(got, want) {
		t.Fatalf("page after an add = %v, want %v", got, want)
	}

	// Deleted from the store with its event not yet handled: skipped, and
	// the page is still full.
	gone := orderInstance("ns1", "c")
	if err := store.Delete(gone); err != nil {
		t.Fatal(err)
	}
	if got, want := pageNames(t, o, "ns1", "b", 2), []string{"bb", "d"}; !slices.Equal(got, want) {
		t.Fatalf("page with a deleted instance = %v, want %v", got, want)
	}
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns1/c", Obj: gone})
	if got, want := pageNames(t, o, "ns1", "", 10), []string{"a", "b", "bb", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("page after the delete = %v, want %v", got, want)
	}
	if got, want := pageNames(t, o, "ns2", "", 10), []string{"a0"}; !slices.Equal(got, want) {
		t.Fatalf("other namespace = %v, want %v", got, want)
	}
}

// racingStore is the informer's indexer with one add and its event slipped
// in just after a list order's build has read the namespace.
type racingStore struct {
	toolscache.Indexer
	during func()
}

func (s *racingStore) ByIndex(name, value string) ([]any, error) {
	objs, err := s.Indexer.ByIndex(name, value)
	if f := s.during; f != nil {
		s.during = nil
		f()
	}
	return objs, err
}

// An order built while an instance joined its namespace is not kept: that
// page may miss the newcomer (it was built from the store before it came),
// but the next page holds it, rather than every page until the next event.
func TestListOrderBuildRacingAnAddIsNotKept(t *testing.T) {
	store := &racingStore{Indexer: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc,
		toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})}
	o := newListOrder(store)
	if err := store.Add(orderInstance("ns", "a0")); err != nil {
		t.Fatal(err)
	}
	store.during = func() {
		in := orderInstance("ns", "a1")
		if err := store.Add(in); err != nil {
			t.Error(err)
		}
		o.changed(in)
	}
	if got := pageNames(t, o, "ns", "", 10); !slices.Equal(got, []string{"a0"}) {
		t.Fatalf("the racing page = %v, want [a0]", got)
	}
	if got, want := pageNames(t, o, "ns", "", 10), []string{"a0", "a1"}; !slices.Equal(got, want) {
		t.Fatalf("the page after the race = %v, want %v", got, want)
	}
}
