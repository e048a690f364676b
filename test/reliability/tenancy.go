package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// tenancyAttack is one way a principal holding one project's role
// (compute.deployer in the sample project, plus the right to create
// namespaces that CI systems and self-service tenants have) might reach
// another tenant or the whole service. try makes the attempt; it reports
// whether the attempt succeeded, that is was accepted or left an effect.
type tenancyAttack struct {
	name string
	try  func(ctx context.Context, n int) (succeeded bool, detail string, err error)
}

const (
	tenancyBadTokens = 1000
	projectPath      = "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances"
	tenancyType      = "/v1/regions/us-texas-1/zones/us1-a/instance-types/cpu1-small"
	victimProject    = "project-victim"
	attackerName     = "tenant-attacker"
)

// tenancyAttacks runs every attack kind RELIABILITY_TENANCY_N times (10 by
// default) against a stack of its own, then floods the API with random tokens
// from one client and counts kube-apiserver's TokenReviews.
func tenancyAttacks(ctx context.Context, e env, results *checks) error {
	rounds := load.EnvInt("RELIABILITY_TENANCY_N", 10)
	stack, admin, apiURL, err := e.startStack(ctx, "tenancy")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	token, err := devstack.ReadToken(stack.TokenFile)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(stack.Config)
	if err != nil {
		return err
	}
	httpClient := &http.Client{Timeout: 30 * time.Second}

	// A victim project next door, with an instance.
	if err := load.EnsureProjectNamespace(ctx, admin, victimProject); err != nil {
		return err
	}
	victim := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "victim-vm", Namespace: victimProject},
		Spec: computev1alpha1.InstanceSpec{Type: tenancyType}}
	if err := admin.Create(ctx, victim); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create the victim's instance: %w", err)
	}
	// The attacker's kubectl identity: the deployer's service account, which
	// may also create and label namespaces.
	saUser := "system:serviceaccount:" + devstack.SampleNamespace + ":" + devstack.DeployerServiceAccount
	for _, o := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "reliability:namespace-maker"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "update", "patch"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reliability:namespace-maker"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "reliability:namespace-maker"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: devstack.DeployerServiceAccount, Namespace: devstack.SampleNamespace}}},
	} {
		if err := admin.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to grant the attacker namespace rights: %w", err)
		}
	}
	cfg := rest.CopyConfig(stack.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: saUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + devstack.SampleNamespace, "system:authenticated"}}
	attacker, err := client.New(cfg, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		return err
	}

	// kube-apiserver's RBAC learns of the new binding by its informer: the
	// attacks start once the attacker may create a namespace.
	for deadline := time.Now().Add(time.Minute); ; {
		err := attacker.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, client.DryRunAll)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the attacker still may not create namespaces: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	callAPI := func(method, path string, body any) (int, []byte, error) {
		var data []byte
		if body != nil {
			data, _ = json.Marshal(body)
		}
		return do(httpClient, method, apiURL+path, "Bearer "+token, "application/json", data)
	}
	// refusedREST: the answer is a 4xx and the instance named id does not exist.
	refusedREST := func(ctx context.Context, code int, body []byte, err error, ns, id string) (bool, string, error) {
		if err != nil {
			return false, "", err
		}
		exists := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &computev1alpha1.Instance{}) == nil
		return code < 400 || exists, fmt.Sprintf("%d %s", code, truncate(body)), nil
	}
	refusedKube := func(ctx context.Context, err error, ns, id string) (bool, string, error) {
		if err == nil {
			return true, "accepted", nil
		}
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
			return false, "", err
		}
		exists := id != "" && admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &computev1alpha1.Instance{}) == nil
		return exists, err.Error(), nil
	}
	instance := func(name string, mutate func(*computev1alpha1.Instance)) *computev1alpha1.Instance {
		in := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: devstack.SampleNamespace},
			Spec: computev1alpha1.InstanceSpec{Type: tenancyType}}
		mutate(in)
		return in
	}
	otherNetwork := "/v1/regions/us-texas-1/projects/" + victimProject + "/compute/networks/net-1"
	ownVolume := "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/volumes/secret-data"

	attacks := []tenancyAttack{
		{"hijack a project with a second namespace", func(ctx context.Context, n int) (bool, string, error) {
			name := fmt.Sprintf("hijack-%d", n)
			err := attacker.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				computev1alpha1.RegionLabel: "us-texas-1", computev1alpha1.ProjectLabel: victimProject}}})
			if err == nil {
				return true, "accepted", nil
			}
			// No effect: one namespace still serves the victim's project.
			var list corev1.NamespaceList
			if lerr := admin.List(ctx, &list, client.MatchingLabels{computev1alpha1.ProjectLabel: victimProject}); lerr != nil {
				return false, "", lerr
			}
			return !apierrors.IsForbidden(err) || len(list.Items) != 1, fmt.Sprintf("%v; %d namespaces serve the project", err, len(list.Items)), nil
		}},
		{"claim a project by relabelling a namespace", func(ctx context.Context, n int) (bool, string, error) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("claim-%d", n)}}
			if err := attacker.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
				return false, "", err
			}
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"k0rdent.ai/region":"us-texas-1","k0rdent.ai/project":"project-unclaimed"}}}`))
			err := attacker.Patch(ctx, ns, patch)
			return err == nil, fmt.Sprint(err), nil
		}},
		{"REST create with another project's network", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("scope-rest-%d", n)
			code, body, err := callAPI(http.MethodPost, projectPath, map[string]any{"id": id, "type": tenancyType,
				"nics": []map[string]any{{"network": otherNetwork}}})
			return refusedREST(ctx, code, body, err, devstack.SampleNamespace, id)
		}},
		{"kubectl create with another project's network", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("scope-kube-%d", n)
			err := attacker.Create(ctx, instance(id, func(in *computev1alpha1.Instance) {
				in.Spec.NICs = []computev1alpha1.NIC{{Network: otherNetwork}}
			}))
			return refusedKube(ctx, err, devstack.SampleNamespace, id)
		}},
		{"REST clone of a volume the caller cannot read", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("clone-rest-%d", n)
			code, body, err := callAPI(http.MethodPost, projectPath, map[string]any{"id": id, "type": tenancyType,
				"disks": []map[string]any{{"boot": true, "source": ownVolume}}})
			return refusedREST(ctx, code, body, err, devstack.SampleNamespace, id)
		}},
		{"kubectl clone of a volume the caller cannot read", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("clone-kube-%d", n)
			err := attacker.Create(ctx, instance(id, func(in *computev1alpha1.Instance) {
				in.Spec.Disks = []computev1alpha1.Disk{{Boot: true, Source: ownVolume}}
			}))
			return refusedKube(ctx, err, devstack.SampleNamespace, id)
		}},
		{"kubectl deletionPolicy Orphan", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("orphan-%d", n)
			err := attacker.Create(ctx, instance(id, func(in *computev1alpha1.Instance) {
				in.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan
			}))
			return refusedKube(ctx, err, devstack.SampleNamespace, id)
		}},
		{"kubectl forged created-by", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("forged-%d", n)
			err := attacker.Create(ctx, instance(id, func(in *computev1alpha1.Instance) {
				in.Annotations = map[string]string{computev1alpha1.CreatedByAnnotation: "system:admin"}
			}))
			return refusedKube(ctx, err, devstack.SampleNamespace, id)
		}},
		{"REST read of another project", func(ctx context.Context, n int) (bool, string, error) {
			code, body, err := callAPI(http.MethodGet, "/v1/regions/us-texas-1/projects/"+victimProject+"/compute/instances/victim-vm", nil)
			if err != nil {
				return false, "", err
			}
			return code != http.StatusForbidden, fmt.Sprintf("%d %s", code, truncate(body)), nil
		}},
		{"REST create in another project", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("intrude-%d", n)
			code, body, err := callAPI(http.MethodPost, "/v1/regions/us-texas-1/projects/"+victimProject+"/compute/instances",
				map[string]any{"id": id, "type": tenancyType})
			return refusedREST(ctx, code, body, err, victimProject, id)
		}},
		{"REST instanceMetadata over 256 KiB", func(ctx context.Context, n int) (bool, string, error) {
			id := fmt.Sprintf("metadata-bomb-%d", n)
			big := strings.Repeat("a", 200<<10)
			code, body, err := callAPI(http.MethodPost, projectPath, map[string]any{"id": id, "type": tenancyType,
				"instanceMetadata": []map[string]string{{"key": "a", "value": big}, {"key": "b", "value": big}}})
			return refusedREST(ctx, code, body, err, devstack.SampleNamespace, id)
		}},
	}
	attacks = append(attacks, cloudTenancyAttacks(stack, admin, token)...)
	attacks = append(attacks, inputAttacks(inputKit{callAPI, refusedREST, refusedKube, instance, admin, attacker, clientset})...)

	attacks = append(attacks, policyAttacks(stack.Config, admin, attacker, apiURL, token)...)
	attacks = append(attacks, apiAttacks(ctx, e, stack, admin, clientset, apiURL)...)
	succeededTotal := 0
	for _, a := range attacks {
		succeeded, example := 0, ""
		for n := range rounds {
			ok, detail, err := a.try(ctx, n)
			if err != nil {
				return fmt.Errorf("attack %q: %w", a.name, err)
			}
			if ok {
				succeeded++
				example = detail
			} else if example == "" {
				example = detail
			}
		}
		succeededTotal += succeeded
		fmt.Printf("tenancy | %-48s %3d tried, %d succeeded; e.g. %s\n", a.name, rounds, succeeded, truncate([]byte(example)))
	}
	results.add("tenant_attacks_succeeded", succeededTotal, succeededTotal == 0)

	// The flood: random tokens from one client, counted in TokenReviews by
	// kube-apiserver itself. The deployer authenticated above, so its
	// request once the flood spent the budget must still be served.
	reviews := func() (float64, error) { return tokenReviewCount(ctx, clientset) }
	before, err := reviews()
	if err != nil {
		return err
	}
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < tenancyBadTokens; i += 20 {
				var b [24]byte
				_, _ = rand.Read(b[:])
				code, _, err := do(httpClient, http.MethodGet, apiURL+seedPath, "Bearer "+hex.EncodeToString(b[:]), "", nil)
				mu.Lock()
				if err != nil {
					code = -1
				}
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	// Once the flood spent the address's budget.
	goodCode, _, goodErr := do(httpClient, http.MethodGet, apiURL+seedPath, "Bearer "+token, "", nil)
	after, err := reviews()
	if err != nil {
		return err
	}
	// The defaults a user gets: --api-auth-failure-burst 20 at 1 per second.
	const burst, perSecond = 20, 1.0
	allowed := burst + int(elapsed.Seconds()*perSecond) + 1
	spent := int(after - before)
	fmt.Printf("tenancy | %d random tokens from one client in %s: answers %v; %d TokenReviews (burst %d, +%d refilled while it ran)\n",
		tenancyBadTokens, elapsed.Round(time.Millisecond), codes, spent, burst, allowed-burst)
	results.add("bad_token_tokenreviews", spent, spent <= allowed)
	results.add("bad_token_flood_good_caller", goodCode, goodErr == nil && goodCode == http.StatusOK)
	return nil
}

// tokenReviewCount is kube-apiserver's apiserver_request_total for tokenreviews.
func tokenReviewCount(ctx context.Context, cs kubernetes.Interface) (float64, error) {
	return apiserverRequests(ctx, cs, "tokenreviews", "")
}

// apiserverRequests is kube-apiserver's apiserver_request_total for resource
// and verb (any verb when verb is empty).
func apiserverRequests(ctx context.Context, cs kubernetes.Interface, resource, verb string) (float64, error) {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("failed to scrape kube-apiserver: %w", err)
	}
	var total float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="`+resource+`"`) ||
			(verb != "" && !strings.Contains(line, `verb="`+verb+`"`)) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("bad metric line %q: %w", line, err)
		}
		total += v
	}
	return total, nil
}
