package api

import (
	"context"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// namespaceScopeIndex indexes namespaces by "<region>/<project>" of their labels.
const namespaceScopeIndex = "compute.k0rdent.ai/region-project"

func scopeKey(region, project string) string { return region + "/" + project }

// indexNamespaceScope is the field-index function of namespaceScopeIndex.
func indexNamespaceScope(obj client.Object) []string {
	labels := obj.GetLabels()
	region, project := labels[computev1alpha1.RegionLabel], labels[computev1alpha1.ProjectLabel]
	if region == "" || project == "" {
		return nil
	}
	return []string{scopeKey(region, project)}
}

// errScopeConflict says that more than one namespace claims a region and project.
type errScopeConflict struct{ namespaces []string }

func (e *errScopeConflict) Error() string {
	return fmt.Sprintf("namespaces %v all claim the same region and project", e.namespaces)
}

// scopeCache remembers the namespace found for a region and project, so
// that a request does not list the cache's namespaces by index (a
// reflective copy of each). Any namespace added, deleted or relabelled
// clears it; a lookup that raced such a change does not store its answer.
type scopeCache struct {
	mu         sync.RWMutex
	generation uint64
	namespaces map[scope]string
}

type scope struct{ region, project string }

func newScopeCache() *scopeCache { return &scopeCache{namespaces: map[scope]string{}} }

func (c *scopeCache) get(sc scope) (ns string, generation uint64, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ns, ok = c.namespaces[sc]
	return ns, c.generation, ok
}

// put stores what a lookup begun at generation found.
func (c *scopeCache) put(sc scope, ns string, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation == generation {
		c.namespaces[sc] = ns
	}
}

func (c *scopeCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	clear(c.namespaces)
}

// handler is the namespace informer's: only changes that can move a
// region and project clear the cache.
func (c *scopeCache) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.clear() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(client.Object)
			n, ok2 := newObj.(client.Object)
			if !ok1 || !ok2 || scopeKeyOf(o) != scopeKeyOf(n) {
				c.clear()
			}
		},
		DeleteFunc: func(any) { c.clear() },
	}
}

func scopeKeyOf(obj client.Object) string {
	labels := obj.GetLabels()
	return scopeKey(labels[computev1alpha1.RegionLabel], labels[computev1alpha1.ProjectLabel])
}

// namespaceFor finds the namespace serving region and project: "" when there
// is none. It reads the informer cache, and the API server when the cache
// knows none (a namespace labelled a moment ago).
func (s *Server) namespaceFor(ctx context.Context, region, project string) (string, error) {
	if s.scopes == nil {
		return s.lookUpNamespace(ctx, region, project)
	}
	sc := scope{region, project}
	ns, generation, ok := s.scopes.get(sc)
	if ok {
		return ns, nil
	}
	ns, err := s.lookUpNamespace(ctx, region, project)
	if err == nil && ns != "" {
		s.scopes.put(sc, ns, generation)
	}
	return ns, err
}

func (s *Server) lookUpNamespace(ctx context.Context, region, project string) (string, error) {
	var list corev1.NamespaceList
	// Only the names are read: the cache's objects need no copy.
	if err := s.kubeClient.List(ctx, &list, client.MatchingFields{namespaceScopeIndex: scopeKey(region, project)}, client.UnsafeDisableDeepCopy); err != nil {
		return "", fmt.Errorf("failed to list namespaces from the cache: %w", err)
	}
	if len(list.Items) == 0 {
		if err := s.live.List(ctx, &list, client.MatchingLabels{
			computev1alpha1.RegionLabel:  region,
			computev1alpha1.ProjectLabel: project,
		}); err != nil {
			return "", fmt.Errorf("failed to list namespaces: %w", err)
		}
	}
	switch len(list.Items) {
	case 0:
		return "", nil
	case 1:
		return list.Items[0].Name, nil
	}
	names := make([]string, 0, len(list.Items))
	for _, ns := range list.Items {
		names = append(names, ns.Name)
	}
	sort.Strings(names)
	return "", &errScopeConflict{namespaces: names}
}
