package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// The API's defaults these attacks measure against.
const (
	addressBurst = 20  // --api-auth-failure-burst, at 1 per second
	globalBurst  = 50  // --api-auth-review-burst, at 5 per second
	globalRate   = 5.0 // --api-auth-review-rate
)

// apiAttacks are the attacks on what the REST API and the metrics port
// spend for callers (issue 21 items 6-8): work for strangers, an oracle of
// which projects exist, slots held by one project's slow clients, and the
// bad-token guard turned against good users or around its bounds. Each
// attack's round is independent; the ones that need a setup make it in
// their first round.
func apiAttacks(ctx context.Context, e env, stack *devstack.Stack, admin client.Client, cs kubernetes.Interface, apiURL string) []tenancyAttack {
	a := &apiAttackEnv{e: e, stack: stack, admin: admin, cs: cs, apiURL: apiURL,
		rounds: load.EnvInt("RELIABILITY_TENANCY_N", 10)}
	return []tenancyAttack{
		{"stranger LISTs for an unknown project", a.strangerLists},
		{"existence oracle by 403 timing", a.timingOracle},
		{"slow bodies starve another project", a.slowBodies},
		{"TokenReview flood from many addresses", a.manyAddresses},
		{"valid new token refused after a flood", a.goodTokenAfterFlood},
		{"revoked tokens re-reviewed for free", a.revokedTokens},
		{"metrics port TokenReview flood", a.metricsFlood},
	}
}

type apiAttackEnv struct {
	e      env
	stack  *devstack.Stack
	admin  client.Client
	cs     kubernetes.Interface
	apiURL string
	rounds int

	once          sync.Once
	setupErr      error
	stranger      string // a token with no role at all
	timer         string // another, for the timing oracle (its own rate limit)
	victimReader  string // compute.viewer of the victim project
	deployerToken string
	revoked       []string
	metricsURL    string
	metricsStop   func()
}

// setup mints the callers the attacks need.
func (a *apiAttackEnv) setup(ctx context.Context) error {
	a.once.Do(func() {
		var err error
		if a.deployerToken, err = devstack.ReadToken(a.stack.TokenFile); err != nil {
			a.setupErr = err
			return
		}
		if a.stranger, err = a.mint(ctx, "reliability-stranger"); err != nil {
			a.setupErr = err
			return
		}
		if a.timer, err = a.mint(ctx, "reliability-stranger-timer"); err != nil {
			a.setupErr = err
			return
		}
		if a.victimReader, err = a.mint(ctx, "reliability-victim-reader"); err != nil {
			a.setupErr = err
			return
		}
		a.setupErr = a.admin.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "reliability-victim-reader", Namespace: victimProject},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "compute.viewer"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reliability-victim-reader", Namespace: devstack.SampleNamespace}},
		})
		if apierrors.IsAlreadyExists(a.setupErr) {
			a.setupErr = nil
		}
	})
	return a.setupErr
}

// mint makes a service account in the sample namespace and a token of it.
func (a *apiAttackEnv) mint(ctx context.Context, name string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: devstack.SampleNamespace}}
	if err := a.admin.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	tr, err := a.cs.CoreV1().ServiceAccounts(devstack.SampleNamespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to mint a token for %s: %w", name, err)
	}
	return tr.Status.Token, nil
}

func ptrTo[T any](v T) *T { return &v }

// from is an HTTP client whose connections come from the loopback address ip.
func from(ip string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the metrics port's certificate is self-signed
	}}
}

// strangerLists: a principal with no role asks 30 times about a project
// that does not exist; it succeeds when that made the API LIST namespaces
// from kube-apiserver (more than a few LISTs: other clients list too).
func (a *apiAttackEnv) strangerLists(ctx context.Context, n int) (bool, string, error) {
	if err := a.setup(ctx); err != nil {
		return false, "", err
	}
	before, err := apiserverRequests(ctx, a.cs, "namespaces", "LIST")
	if err != nil {
		return false, "", err
	}
	path := fmt.Sprintf("/v1/regions/us-texas-1/projects/project-nobody-%d/compute/instances", n)
	codes := map[int]int{}
	c := from("127.0.0.1")
	for range 30 {
		code, _, err := do(c, http.MethodGet, a.apiURL+path, "Bearer "+a.stranger, "", nil)
		if err != nil {
			return false, "", err
		}
		codes[code]++
	}
	after, err := apiserverRequests(ctx, a.cs, "namespaces", "LIST")
	if err != nil {
		return false, "", err
	}
	lists := int(after - before)
	return lists >= 10, fmt.Sprintf("30 stranger requests: answers %v, %d namespace LISTs", codes, lists), nil
}

// timingOracle: a stranger times its 403s for a project that exists and one
// that does not, interleaved; it succeeds when the medians differ by more
// than 0.5 ms and a fifth of the known project's.
func (a *apiAttackEnv) timingOracle(ctx context.Context, n int) (bool, string, error) {
	if err := a.setup(ctx); err != nil {
		return false, "", err
	}
	known := "/v1/regions/us-texas-1/projects/" + victimProject + "/compute/instances/victim-vm"
	unknown := fmt.Sprintf("/v1/regions/us-texas-1/projects/project-ghost-%d/compute/instances/victim-vm", n)
	c := from("127.0.0.1")
	var tk, tu []time.Duration
	for i := range 62 {
		for _, p := range []struct {
			path string
			into *[]time.Duration
		}{{known, &tk}, {unknown, &tu}} {
			// Paced under the per-principal rate limit (100/s): a 429 is
			// no measurement.
			time.Sleep(12 * time.Millisecond)
			began := time.Now()
			code, _, err := do(c, http.MethodGet, a.apiURL+p.path, "Bearer "+a.timer, "", nil)
			if err != nil {
				return false, "", err
			}
			if code != http.StatusForbidden {
				return false, "", fmt.Errorf("%s answered %d to a stranger", p.path, code)
			}
			if i >= 2 { // the first answers warm the caches
				*p.into = append(*p.into, time.Since(began))
			}
		}
	}
	mk, mu := median(tk), median(tu)
	diff := (mu - mk).Abs()
	return diff > 500*time.Microsecond && diff > mk/5, fmt.Sprintf("median 403: known project %s, unknown %s", mk, mu), nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// slowPosts opens n creates from token whose bodies never finish, spaced so
// that the per-principal rate limit lets them in, and returns a closer.
func (a *apiAttackEnv) slowPosts(n int, token string) (func(), error) {
	host := strings.TrimPrefix(a.apiURL, "http://")
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for range n {
		c, err := net.Dial("tcp", host)
		if err != nil {
			closeAll()
			return nil, err
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
			projectPath, token)
		time.Sleep(4 * time.Millisecond)
	}
	return closeAll, nil
}

// slowBodies: the sample project's deployer opens 300 creates whose bodies
// never finish (more than the 256 in-flight slots); it succeeds when the
// victim project's reader is then refused for load.
func (a *apiAttackEnv) slowBodies(ctx context.Context, n int) (bool, string, error) {
	if err := a.setup(ctx); err != nil {
		return false, "", err
	}
	// The deployer's rate limit (burst 200 at 100/s) refills from the last
	// round, so that as many creates get in as the limit allows.
	time.Sleep(2500 * time.Millisecond)
	stop, err := a.slowPosts(300, a.deployerToken)
	if err != nil {
		return false, "", err
	}
	defer stop()
	time.Sleep(200 * time.Millisecond)
	path := "/v1/regions/us-texas-1/projects/" + victimProject + "/compute/instances/victim-vm"
	code, body, err := do(from("127.0.0.1"), http.MethodGet, a.apiURL+path, "Bearer "+a.victimReader, "", nil)
	if err != nil {
		return false, "", err
	}
	return code != http.StatusOK, fmt.Sprintf("the victim's read during 300 slow creates: %d %s", code, truncate(body)), nil
}

// reviewsDuring counts kube-apiserver's TokenReviews while f runs.
func (a *apiAttackEnv) reviewsDuring(ctx context.Context, f func() error) (int, time.Duration, error) {
	before, err := tokenReviewCount(ctx, a.cs)
	if err != nil {
		return 0, 0, err
	}
	began := time.Now()
	if err := f(); err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(began)
	after, err := tokenReviewCount(ctx, a.cs)
	return int(after - before), elapsed, err
}

// flood sends count random tokens to url from ip, returning the answers.
func flood(url, ip string, count int, codes map[int]int, mu *sync.Mutex) error {
	c := from(ip)
	for range count {
		code, _, err := do(c, http.MethodGet, url, "Bearer "+randomHex(), "", nil)
		if err != nil {
			return err
		}
		mu.Lock()
		codes[code]++
		mu.Unlock()
	}
	return nil
}

// manyAddresses: random tokens from ten client addresses at once, each past
// its own burst; it succeeds when they cost more TokenReviews than the
// global burst (and its refill while they ran) allows.
func (a *apiAttackEnv) manyAddresses(ctx context.Context, n int) (bool, string, error) {
	codes := map[int]int{}
	var mu sync.Mutex
	spent, elapsed, err := a.reviewsDuring(ctx, func() error {
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- flood(a.apiURL+seedPath, fmt.Sprintf("127.1.%d.%d", n, i+1), addressBurst+5, codes, &mu)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, "", err
	}
	allowed := globalBurst + int(elapsed.Seconds()*globalRate) + 1
	return spent > allowed, fmt.Sprintf("10 addresses x %d random tokens: answers %v, %d TokenReviews (global allows %d)",
		addressBurst+5, codes, spent, allowed), nil
}

// goodTokenAfterFlood: an address spends its budget on random tokens, then
// a valid token never seen before comes from it; it succeeds when that
// token is refused (429, or 401).
func (a *apiAttackEnv) goodTokenAfterFlood(ctx context.Context, n int) (bool, string, error) {
	ip := fmt.Sprintf("127.2.%d.1", n)
	codes := map[int]int{}
	var mu sync.Mutex
	if err := flood(a.apiURL+seedPath, ip, addressBurst+10, codes, &mu); err != nil {
		return false, "", err
	}
	fresh, err := a.mint(ctx, fmt.Sprintf("reliability-fresh-%d", n))
	if err != nil {
		return false, "", err
	}
	code, body, err := do(from(ip), http.MethodGet, a.apiURL+projectPath, "Bearer "+fresh, "", nil)
	if err != nil {
		return false, "", err
	}
	// The fresh account has no role: 403 is the answer of a token that authenticated.
	return code == http.StatusTooManyRequests || code == http.StatusUnauthorized,
		fmt.Sprintf("flood answers %v; then a new valid token: %d %s", codes, code, truncate(body)), nil
}

// revokedTokens: thirty tokens per round authenticate once, each round's
// from an address of its own, and are revoked (their service accounts
// deleted). Once kube-apiserver's own cache of the successes has passed
// (10s) they are sent again and fail; once the API's memory of those
// refusals (the authentication cache TTL, 10s) has passed, they are sent a
// third time. It succeeds when that third pass costs more TokenReviews than
// the address's budget allows (its burst, as a bucket holds no more, and
// its refill while the pass ran): a revoked token that passed once must
// spend the budget from then on. The first round revokes every round's
// tokens and makes the second pass, so the waits are paid once.
func (a *apiAttackEnv) revokedTokens(ctx context.Context, n int) (bool, string, error) {
	if n == 0 {
		if err := a.revokeAll(ctx); err != nil {
			return false, "", err
		}
	}
	c := from(fmt.Sprintf("127.3.%d.1", n))
	reviews, elapsed, err := a.reviewsDuring(ctx, func() error {
		for _, token := range a.revoked[n*revokedPerRound : (n+1)*revokedPerRound] {
			if _, _, err := do(c, http.MethodGet, a.apiURL+projectPath, "Bearer "+token, "", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, "", err
	}
	allowed := addressBurst + int(elapsed.Seconds()) + 1
	return reviews > allowed, fmt.Sprintf("%d revoked tokens sent again: %d TokenReviews (the address's budget allows %d)",
		revokedPerRound, reviews, allowed), nil
}

const revokedPerRound = 30

// revokeAll mints every round's tokens, authenticates each once from its
// round's address, revokes them, and, past kube-apiserver's cache, sends
// each once more (their first failure), then waits out the API's memory of it.
func (a *apiAttackEnv) revokeAll(ctx context.Context) error {
	for n := range a.rounds {
		c := from(fmt.Sprintf("127.3.%d.1", n))
		for i := range revokedPerRound {
			name := fmt.Sprintf("reliability-revoked-%d-%d", n, i)
			token, err := a.mint(ctx, name)
			if err != nil {
				return err
			}
			code, _, err := do(c, http.MethodGet, a.apiURL+projectPath, "Bearer "+token, "", nil)
			if err != nil {
				return fmt.Errorf("failed to read with token %s before its revocation: %w", name, err)
			}
			if code == http.StatusUnauthorized {
				return fmt.Errorf("token %s was refused before its revocation: %d", name, code)
			}
			a.revoked = append(a.revoked, token)
			if err := a.admin.Delete(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: devstack.SampleNamespace}}); err != nil {
				return err
			}
		}
	}
	time.Sleep(11 * time.Second)
	for n := range a.rounds {
		c := from(fmt.Sprintf("127.3.%d.1", n))
		for _, token := range a.revoked[n*revokedPerRound : (n+1)*revokedPerRound] {
			code, _, err := do(c, http.MethodGet, a.apiURL+projectPath, "Bearer "+token, "", nil)
			if err != nil {
				return fmt.Errorf("failed to read with a revoked token: %w", err)
			}
			if code != http.StatusUnauthorized {
				return fmt.Errorf("a revoked token was answered %d, not 401", code)
			}
		}
	}
	time.Sleep(11 * time.Second)
	return nil
}

// metricsFlood: random tokens from one address to a manager's metrics port
// (secure, as installed); it succeeds when they cost more TokenReviews than
// the guard's address burst allows.
func (a *apiAttackEnv) metricsFlood(ctx context.Context, n int) (bool, string, error) {
	if a.metricsURL == "" {
		if err := a.startMetricsManager(ctx); err != nil {
			return false, "", err
		}
	}
	if n == a.rounds-1 {
		defer a.metricsStop()
	}
	codes := map[int]int{}
	var mu sync.Mutex
	spent, elapsed, err := a.reviewsDuring(ctx, func() error {
		return flood(a.metricsURL+"/metrics", fmt.Sprintf("127.4.%d.1", n), 60, codes, &mu)
	})
	if err != nil {
		return false, "", err
	}
	allowed := addressBurst + int(elapsed.Seconds()) + 1
	return spent > allowed, fmt.Sprintf("60 random tokens to the metrics port: answers %v, %d TokenReviews (allowed %d)", codes, spent, allowed), nil
}

// startMetricsManager runs a second manager, serving only its metrics
// port, as installed (secure, with the default guard).
func (a *apiAttackEnv) startMetricsManager(ctx context.Context) error {
	port, err := load.FreePort()
	if err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(mctx, a.e.manager, "--enable-controllers=false", "--enable-api=false",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--health-probe-bind-address=0", "--zap-log-level=error")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+a.stack.Kubeconfig)
	logFile, err := os.Create(filepath.Join(a.e.work, "metrics-manager.log"))
	if err != nil {
		cancel()
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		cancel()
		return err
	}
	a.metricsStop = func() { cancel(); _ = cmd.Wait(); _ = logFile.Close() }
	a.metricsURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			a.metricsStop()
			return fmt.Errorf("the metrics-only manager never listened (log in %s)", logFile.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
