package api

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
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

// namespaceFor finds the namespace serving region and project: "" when there
// is none. It reads the informer cache, and the API server when the cache
// knows none (a namespace labelled a moment ago).
func (s *Server) namespaceFor(ctx context.Context, region, project string) (string, error) {
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
