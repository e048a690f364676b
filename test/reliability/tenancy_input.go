package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
)

// inputKit is what the input attacks use of tenancyAttacks' setting.
type inputKit struct {
	callAPI     func(method, path string, body any) (int, []byte, error)
	refusedREST func(ctx context.Context, code int, body []byte, err error, ns, id string) (bool, string, error)
	refusedKube func(ctx context.Context, err error, ns, id string) (bool, string, error)
	instance    func(name string, mutate func(*computev1alpha1.Instance)) *computev1alpha1.Instance
	admin       client.Client
	attacker    client.Client
	clientset   kubernetes.Interface
}

// inputAttacks are the attacks of issue 25 (bounds before work, refusing
// what is not understood) and issue 21's unbounded labels: what a tenant
// stores is bounded for REST and kubectl alike, a request's work is bounded
// before it starts, and no input is silently ignored.
func inputAttacks(k inputKit) []tenancyAttack {
	labels := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("l%d", i)] = "v"
		}
		return m
	}
	create := func(id string, extra map[string]any) map[string]any {
		body := map[string]any{"id": id, "type": tenancyType}
		for key, v := range extra {
			body[key] = v
		}
		return body
	}
	rest := func(id string, code int, body []byte, err error) (bool, string, error) {
		return k.refusedREST(context.Background(), code, body, err, devstack.SampleNamespace, id)
	}
	return []tenancyAttack{
		{"REST create with 65 labels", func(_ context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("labels-65-rest-%d", n)
			code, body, err := k.callAPI(http.MethodPost, projectPath, create(id, map[string]any{"labels": labels(computev1alpha1.MaxLabels + 1)}))
			return rest(id, code, body, err)
		}},
		{"REST create with 50,000 labels", func(_ context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("labels-50k-rest-%d", n)
			code, body, err := k.callAPI(http.MethodPost, projectPath, create(id, map[string]any{"labels": labels(50000)}))
			return rest(id, code, body, err)
		}},
		{"kubectl create with 65 labels", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("labels-65-kube-%d", n)
			err := k.attacker.Create(ctx, k.instance(id, func(in *computev1alpha1.Instance) { in.Labels = labels(computev1alpha1.MaxLabels + 1) }))
			return k.refusedKube(ctx, err, devstack.SampleNamespace, id)
		}},
		{"REST dryRun=All creates an instance", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("dry-run-%d", n)
			code, body, err := k.callAPI(http.MethodPost, projectPath+"?dryRun=All", create(id, nil))
			if err != nil {
				return false, "", err
			}
			exists := k.admin.Get(ctx, client.ObjectKey{Namespace: devstack.SampleNamespace, Name: id}, &computev1alpha1.Instance{}) == nil
			return exists || code >= 500, fmt.Sprintf("%d %s", code, truncate(body)), nil
		}},
		{"REST 2,000 clone disks fan out into reviews", func(ctx context.Context, _ int) (bool, string, error) {
			disks := make([]map[string]any, 2000)
			for i := range disks {
				disks[i] = map[string]any{"source": fmt.Sprintf("/v1/regions/us-texas-1/projects/project-x9y8z7/compute/volumes/v-%d", i)}
			}
			before, err := apiserverRequests(ctx, k.clientset, "subjectaccessreviews", "")
			if err != nil {
				return false, "", err
			}
			code, body, err := k.callAPI(http.MethodPost, projectPath, map[string]any{"type": tenancyType, "disks": disks})
			if err != nil {
				return false, "", err
			}
			after, err := apiserverRequests(ctx, k.clientset, "subjectaccessreviews", "")
			if err != nil {
				return false, "", err
			}
			// At most the route's own review of create, were it not cached.
			reviews := int(after - before)
			return code != http.StatusBadRequest || reviews > 1, fmt.Sprintf("%d after %d reviews: %s", code, reviews, truncate(body)), nil
		}},
		{"REST unknown or unparsable query answered", func(_ context.Context, n int) (bool, string, error) {
			q := []string{"?pageToken=%%%", "?filter=everything", "?pageSize=1;x=1"}[n%3]
			code, body, err := k.callAPI(http.MethodGet, projectPath+q, nil)
			if err != nil {
				return false, "", err
			}
			return code != http.StatusBadRequest, fmt.Sprintf("%s: %d %s", q, code, truncate(body)), nil
		}},
		{"REST NUL in a description", func(_ context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("nul-%d", n)
			code, body, err := k.callAPI(http.MethodPost, projectPath, create(id, map[string]any{"description": "a\x00b"}))
			return rest(id, code, body, err)
		}},
		{"REST duplicate JSON keys", func(_ context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("dup-%d", n)
			raw := json.RawMessage(fmt.Sprintf(`{"id":%q,"type":%q,"labels":{"a":"1","a":"2"}}`, id, tenancyType))
			code, body, err := k.callAPI(http.MethodPost, projectPath, raw)
			return rest(id, code, body, err)
		}},
	}
}
