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

// scopeCache remembers the namespace found for a region and project, or
// that none serves it, so that a request does not list the cache's
// namespaces by index (a reflective copy of each), and a project that
// exists and one that does not cost the same map lookup. Any namespace
// added, deleted or relabelled clears it; a lookup that raced such a
// change does not store its answer. It holds at most maxScopes answers
// (strangers choose the names they ask about), past which it starts over.
type scopeCache struct {
	mu         sync.RWMutex
	generation uint64
	namespaces map[scope]string
}

// maxScopes bounds the answers scopeCache holds.
const maxScopes = 4096

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
	if c.generation != generation {
		return
	}
	if _, ok := c.namespaces[sc]; !ok && len(c.namespaces) >= maxScopes {
		clear(c.namespaces)
	}
	c.namespaces[sc] = ns
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
// is none. It reads the informer cache only, never the API server: a caller
// with no role at all chooses the names it asks about, and must cost
// kube-apiserver nothing (the server is ready only once the cache synced; a
// namespace labelled a moment ago is served once its event arrives, within
// the watch's latency).
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
	if err == nil {
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

// unmappedNamespace is the namespace the authorization question names for a
// project that no namespace serves. It cannot be a namespace's name (it holds
// a '/'), so no RoleBinding can grant anything in it and only a caller with
// the verb in every namespace is allowed (and then learns that the project
// does not exist, 404); and it differs per project, so the question for an
// unknown project is as new to the decision cache as the question for a
// known one: a 403 takes the same path, the same SubjectAccessReviews,
// whether the project exists or not.
func unmappedNamespace(region, project string) string {
	return "unmapped.compute.k0rdent.ai/" + region + "/" + project
}
