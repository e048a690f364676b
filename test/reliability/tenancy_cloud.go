package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
	"github.com/k0rdent-ai/instance-operator/internal/simcloud"
)

// cloudSecret is an instanceMetadata value the cloud must never serve back.
const cloudSecret = "ssh-ed25519 AAAA-tenancy-cloud-secret"

// cloudTenancy is what the simulated cloud's attacks share: the stack's
// cloud, the victim's instance (its machine the target), and the
// credentials a tenant holds, set up once on first use.
type cloudTenancy struct {
	stack         *devstack.Stack
	admin         client.Client
	deployerToken string
	http          *http.Client

	once   sync.Once
	err    error
	victim *computev1alpha1.Instance
	// creds a tenant may present: none, its own kube-apiserver token, and
	// its own service account's token minted for the cloud's audience
	// (`kubectl create token` of a service account it made in its own
	// namespace gets the same).
	creds []struct{ name, auth string }
}

// cloudTenancyAttacks: a tenant (holding one project's compute.deployer)
// calls each of the simulated cloud's endpoints directly, which in a
// cluster only the NetworkPolicy's controllers may reach at all; each
// must be refused whatever credential the tenant brings, and the listing,
// even with the controllers' own token, must not hold instanceMetadata
// values.
func cloudTenancyAttacks(stack *devstack.Stack, admin client.Client, deployerToken string) []tenancyAttack {
	c := &cloudTenancy{stack: stack, admin: admin, deployerToken: deployerToken, http: &http.Client{Timeout: 30 * time.Second}}
	call := func(path string, body func(*computev1alpha1.Instance) any) func(context.Context, int) (bool, string, error) {
		return func(ctx context.Context, _ int) (bool, string, error) {
			return c.tryEach(ctx, http.MethodPost, path, body)
		}
	}
	put := func(path string, body any) func(context.Context, int) (bool, string, error) {
		return func(ctx context.Context, _ int) (bool, string, error) {
			return c.tryEach(ctx, http.MethodPut, path, func(*computev1alpha1.Instance) any { return body })
		}
	}
	victimCall := func(action string) func(*computev1alpha1.Instance) any {
		return func(v *computev1alpha1.Instance) any { return map[string]any{"instance": v, "action": action} }
	}
	return []tenancyAttack{
		{"cloud: list every tenant's machines", func(ctx context.Context, _ int) (bool, string, error) {
			return c.tryEach(ctx, http.MethodGet, simcloud.PathMachines, nil)
		}},
		// Power off before delete: a machine being deleted cannot stop.
		{"cloud: power off another tenant's machine", call("/v1/calls/set-power", victimCall("Stop"))},
		{"cloud: delete another tenant's machine", call("/v1/calls/delete", victimCall(""))},
		{"cloud: create a machine", call("/v1/calls/create", func(v *computev1alpha1.Instance) any {
			in := v.DeepCopy()
			in.Name, in.UID, in.Status = "cloud-intruder", "cloud-intruder-uid", computev1alpha1.InstanceStatus{}
			in.Status.Machine.CreateToken = "cloud-intruder-token"
			return map[string]any{"instance": in}
		})},
		{"cloud: set faults", put(simcloud.PathFaults, simulated.Faults{})},
		{"cloud: set capacity", put(simcloud.PathCapacity, simcloud.CapacityRequest{InstanceType: "cpu1-small", Machines: 1000})},
		{"cloud: listing serves instanceMetadata values", c.listingLeaks},
	}
}

// tryEach presents every tenant credential; the attack succeeded if any
// call was let in (answered other than 401 or 403), or the victim's
// machine is gone or being deleted.
func (c *cloudTenancy) tryEach(ctx context.Context, method, path string, body func(*computev1alpha1.Instance) any) (bool, string, error) {
	if err := c.setUp(ctx); err != nil {
		return false, "", err
	}
	var answers []string
	succeeded := false
	for _, cred := range c.creds {
		var data []byte
		if body != nil {
			data, _ = json.Marshal(body(c.victim))
		}
		code, resp, err := do(c.http, method, c.stack.SimcloudURL+path, cred.auth, "application/json", data)
		if err != nil {
			return false, "", err
		}
		// Any answer but 401 or 403 means the cloud let the caller in and
		// the call reached the machine's state (a stop refused for the
		// machine's phase is still a stranger's call acted on).
		if code != http.StatusUnauthorized && code != http.StatusForbidden {
			succeeded = true
		}
		answers = append(answers, fmt.Sprintf("%s: %d %s", cred.name, code, strings.TrimSpace(truncate(resp))))
	}
	if alive, err := c.victimMachineAlive(ctx); err != nil {
		return false, "", err
	} else if !alive {
		succeeded = true
		answers = append(answers, "the victim's machine is gone or going")
	}
	return succeeded, strings.Join(answers, "; "), nil
}

// listingLeaks lists the machines as the controllers do and looks for the
// metadata value an instance was given.
func (c *cloudTenancy) listingLeaks(ctx context.Context, _ int) (bool, string, error) {
	if err := c.setUp(ctx); err != nil {
		return false, "", err
	}
	token, err := devstack.ReadToken(c.stack.SimcloudCallerTokenFile)
	if err != nil {
		return false, "", err
	}
	code, body, err := do(c.http, http.MethodGet, c.stack.SimcloudURL+simcloud.PathMachines, "Bearer "+token, "", nil)
	if err != nil {
		return false, "", err
	}
	if code != http.StatusOK {
		return false, "", fmt.Errorf("the controllers' listing answered %d: %s", code, truncate(body))
	}
	leaked := strings.Contains(string(body), "AAAA-tenancy-cloud-secret")
	return leaked, fmt.Sprintf("%d, %d bytes, secret served: %v", code, len(body), leaked), nil
}

func (c *cloudTenancy) victimMachineAlive(ctx context.Context) (bool, error) {
	cloud, err := c.stack.SimcloudAdmin()
	if err != nil {
		return false, err
	}
	machines, err := cloud.Machines(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range machines {
		if m.ID == c.victim.Status.Machine.ID {
			return m.Phase != provider.PhaseDeleting, nil
		}
	}
	return false, nil
}

func (c *cloudTenancy) setUp(ctx context.Context) error {
	c.once.Do(func() { c.err = c.prepare(ctx) })
	return c.err
}

// prepare mints the tenant's cloud-audience token, gives an instance of the
// tenant's own project a metadata secret, and waits until both it and the
// victim's instance run on machines.
func (c *cloudTenancy) prepare(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.stack.Config)
	if err != nil {
		return err
	}
	tr, err := cs.CoreV1().ServiceAccounts(devstack.SampleNamespace).CreateToken(ctx, devstack.DeployerServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{simcloud.DefaultAudience}}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("failed to mint the tenant's cloud-audience token: %w", err)
	}
	c.creds = []struct{ name, auth string }{
		{"no token", ""},
		{"the deployer's token", "Bearer " + c.deployerToken},
		{"the deployer's simcloud-audience token", "Bearer " + tr.Status.Token},
	}
	secretive := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "cloud-secretive", Namespace: devstack.SampleNamespace},
		Spec: computev1alpha1.InstanceSpec{Type: tenancyType,
			InstanceMetadata: []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: cloudSecret}}}}
	if err := c.admin.Create(ctx, secretive); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create the instance with a metadata secret: %w", err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		victim, mine := &computev1alpha1.Instance{}, &computev1alpha1.Instance{}
		errV := c.admin.Get(ctx, client.ObjectKey{Namespace: victimProject, Name: "victim-vm"}, victim)
		errM := c.admin.Get(ctx, client.ObjectKeyFromObject(secretive), mine)
		if errV == nil && errM == nil && victim.Status.Machine.ID != "" && mine.Status.Machine.ID != "" {
			c.victim = victim
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the victim's and the secretive instance's machines did not appear: %w", errors.Join(errV, errM))
		}
	}
}
