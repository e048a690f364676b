package api

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverapi "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	tokenunion "k8s.io/apiserver/pkg/authentication/token/union"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
	webhooktoken "k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"
	"k8s.io/client-go/kubernetes"
)

// webhookBackoff is the retry policy of TokenReview and SubjectAccessReview
// calls, the one aggregated API servers use.
var webhookBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// newAuthenticator tries OIDC (when configured), then the cluster's
// TokenReview, k8s.io/apiserver's own authenticators; tokenCache keeps their
// answers for AuthnCacheTTL.
func newAuthenticator(ctx context.Context, o *Options, cs kubernetes.Interface) (authenticator.Request, error) {
	var tokens []authenticator.Token
	if o.OIDCIssuerURL != "" {
		oidcAuth, err := newOIDC(ctx, o)
		if err != nil {
			return nil, err
		}
		if len(o.TokenAudiences) > 0 {
			// The JWT's own audience is --api-oidc-client-id; the request's
			// audiences are the API's.
			oidcAuth = authenticator.WrapAudienceAgnosticToken(o.TokenAudiences, oidcAuth)
		}
		tokens = append(tokens, oidcAuth)
	}
	authenticatorfactory.RegisterMetrics()
	review, err := webhooktoken.NewFromInterface(cs.AuthenticationV1(), o.TokenAudiences, webhookBackoff, 10*time.Second,
		webhooktoken.AuthenticatorMetrics{
			RecordRequestTotal:   authenticatorfactory.RecordRequestTotal,
			RecordRequestLatency: authenticatorfactory.RecordRequestLatency,
		})
	if err != nil {
		return nil, fmt.Errorf("failed to set up TokenReview authentication: %w", err)
	}
	tokens = append(tokens, review)
	return bearertoken.New(newTokenCache(tokenunion.New(tokens...), o.AuthnCacheTTL)), nil
}

// tokenCache remembers a token's answer, whether it authenticated or not,
// for ttl, with system:authenticated among the groups of a user (what
// group.AuthenticatedGroupAdder does per request). The same token thus
// gives the same user.Info for ttl, which decisionCache keys by. It stands in for k8s.io/apiserver's token cache, whose HMAC key
// and statistics cost more than the rest of a cached GET. The key is the
// token's SHA-256, so the cache holds no token; concurrent first uses of a
// token each ask (the API's clients reuse a token, so that is once). A
// connection remembers its last token and answer (connectionToken), so
// the same token on a kept-alive connection costs a comparison.
type tokenCache struct {
	authenticator.Token
	ttl     time.Duration
	answers *utilcache.LRUExpireCache
}

type tokenAnswer struct {
	resp    *authenticator.Response
	ok      bool
	err     error
	expires time.Time
}

// connectionToken is a connection's last token and its answer, so that a
// client that sends the same token on a kept-alive connection is not hashed
// again. It holds the token as long as the connection, which carries it on
// every request anyway, and never past the shared answer's expiry.
type connectionToken struct {
	token string
	tokenAnswer
}

// connectionDecision is a connection's last authorization question about
// resources and its answer, until the shared answer's expiry: a client asks
// the same question of each request on a kept-alive connection, and the
// shared cache's lookup (boxing and hashing the question, the LRU's lock and
// list) was most of a cached GET's authorization.
type connectionDecision struct {
	key sameUserKey
	decision
}

// connectionMemo is what a connection remembers of its last request.
type connectionMemo struct {
	token    atomic.Pointer[connectionToken]
	decision atomic.Pointer[connectionDecision]
}

type connectionMemoKey struct{}

// withConnectionMemo gives a connection's context its memo (the
// http.Server's ConnContext).
func withConnectionMemo(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connectionMemoKey{}, new(connectionMemo))
}

// memoOf is the connection's memo, or nil for a request without one.
func memoOf(ctx context.Context) *connectionMemo {
	m, _ := ctx.Value(connectionMemoKey{}).(*connectionMemo)
	return m
}

func newTokenCache(inner authenticator.Token, ttl time.Duration) *tokenCache {
	return &tokenCache{Token: inner, ttl: ttl, answers: utilcache.NewLRUExpireCache(8192)}
}

func (c *tokenCache) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	if c.ttl <= 0 {
		return c.Token.AuthenticateToken(ctx, token)
	}
	now := time.Now()
	var memo *atomic.Pointer[connectionToken]
	if cm := memoOf(ctx); cm != nil {
		memo = &cm.token
		if m := memo.Load(); m != nil && m.token == token && now.Before(m.expires) {
			return m.resp, m.ok, m.err
		}
	}
	key := sha256.Sum256([]byte(token))
	a, found := tokenAnswer{}, false
	if v, ok := c.answers.Get(key); ok {
		a, found = v.(tokenAnswer), true
	} else {
		a.resp, a.ok, a.err = c.Token.AuthenticateToken(ctx, token)
		if a.ok {
			a.resp = withAuthenticatedGroup(a.resp)
		}
		a.expires = now.Add(c.ttl)
		// An answer cut short by the request's end says nothing of the token.
		found = ctx.Err() == nil
		if found {
			c.answers.Add(key, a, c.ttl)
		}
	}
	if memo != nil && found {
		memo.Store(&connectionToken{token: token, tokenAnswer: a})
	}
	return a.resp, a.ok, a.err
}

// withAuthenticatedGroup adds system:authenticated to the groups of an
// authenticated user that lacks it, as group.AuthenticatedGroupAdder does.
func withAuthenticatedGroup(resp *authenticator.Response) *authenticator.Response {
	u := resp.User
	if u.GetName() == user.Anonymous || slices.Contains(u.GetGroups(), user.AllAuthenticated) {
		return resp
	}
	out := *resp
	out.User = &user.DefaultInfo{
		Name: u.GetName(), UID: u.GetUID(), Extra: u.GetExtra(),
		Groups: append(slices.Clip(u.GetGroups()), user.AllAuthenticated),
	}
	return &out
}

// maxTokenBytes bounds the tokens passed on to the authenticators: no real
// token is near it, and a huge one should cost no TokenReview.
const maxTokenBytes = 16 << 10

// staticCA is the OIDC issuer's CA bundle read from --api-oidc-ca-file.
type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }

func newOIDC(ctx context.Context, o *Options) (authenticator.Token, error) {
	usernamePrefix := o.OIDCUsernamePrefix
	if usernamePrefix == "-" {
		usernamePrefix = ""
	}
	jwt := apiserverapi.JWTAuthenticator{
		Issuer: apiserverapi.Issuer{URL: o.OIDCIssuerURL, Audiences: []string{o.OIDCClientID}},
		ClaimMappings: apiserverapi.ClaimMappings{
			Username: apiserverapi.PrefixedClaimOrExpression{Claim: o.OIDCUsernameClaim, Prefix: &usernamePrefix},
		},
	}
	if o.OIDCGroupsClaim != "" {
		groupsPrefix := o.OIDCGroupsPrefix
		jwt.ClaimMappings.Groups = apiserverapi.PrefixedClaimOrExpression{Claim: o.OIDCGroupsClaim, Prefix: &groupsPrefix}
	}
	opts := oidc.Options{JWTAuthenticator: jwt, SupportedSigningAlgs: o.OIDCSigningAlgs}
	if o.OIDCCAFile != "" {
		ca, err := os.ReadFile(o.OIDCCAFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read --api-oidc-ca-file: %w", err)
		}
		opts.CAContentProvider = staticCA(ca)
	}
	a, err := oidc.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to set up OIDC authentication: %w", err)
	}
	return a, nil
}

// newAuthorizer asks the cluster by SubjectAccessReview; decisionCache
// remembers the answers.
func newAuthorizer(o *Options, cs kubernetes.Interface) (authorizer.Authorizer, error) {
	a, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cs.AuthorizationV1(),
		// decisionCache keeps the answers for the configured TTLs; a second
		// cache behind it would let an answer live for both.
		AllowCacheTTL:       0,
		DenyCacheTTL:        0,
		WebhookRetryBackoff: &webhookBackoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("failed to set up SubjectAccessReview authorization: %w", err)
	}
	return newDecisionCache(a, o.AuthzAllowTTL, o.AuthzDenyTTL), nil
}

// decisionCache answers a question asked in the last TTL from memory. The
// delegating authorizer's own cache builds a SubjectAccessReview and
// marshals it to JSON for its key on every request, which cost more than
// the rest of a cached GET; this key is the question's fields, length-prefixed.
type decisionCache struct {
	authorizer.Authorizer
	allowTTL, denyTTL time.Duration
	answers           *utilcache.LRUExpireCache
}

type decision struct {
	decision authorizer.Decision
	reason   string
	expires  time.Time
}

func newDecisionCache(a authorizer.Authorizer, allowTTL, denyTTL time.Duration) *decisionCache {
	return &decisionCache{Authorizer: a, allowTTL: allowTTL, denyTTL: denyTTL, answers: utilcache.NewLRUExpireCache(8192)}
}

func (c *decisionCache) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	now := time.Now()
	var key any
	var memo *atomic.Pointer[connectionDecision]
	var userKey sameUserKey
	if u, ok := a.GetUser().(*user.DefaultInfo); ok && a.IsResourceRequest() && a.GetPath() == "" {
		// The token cache hands out one user.Info per token and TTL: its
		// address stands for all of its fields.
		userKey = sameUserKey{u, a.GetVerb(), a.GetNamespace(), a.GetAPIGroup(), a.GetAPIVersion(), a.GetResource(), a.GetSubresource(), a.GetName()}
		if cm := memoOf(ctx); cm != nil {
			memo = &cm.decision
			if m := memo.Load(); m != nil && m.key == userKey && now.Before(m.expires) {
				return m.decision.decision, m.reason, nil
			}
		}
		key = userKey
	} else {
		key = decisionKey(a)
	}
	if v, ok := c.answers.Get(key); ok {
		d := v.(decision)
		if memo != nil {
			memo.Store(&connectionDecision{key: userKey, decision: d})
		}
		return d.decision, d.reason, nil
	}
	d, reason, err := c.Authorizer.Authorize(ctx, a)
	if err != nil {
		return d, reason, err
	}
	ttl := c.denyTTL
	if d == authorizer.DecisionAllow {
		ttl = c.allowTTL
	}
	if ttl > 0 {
		answer := decision{d, reason, now.Add(ttl)}
		c.answers.Add(key, answer, ttl)
		if memo != nil {
			memo.Store(&connectionDecision{key: userKey, decision: answer})
		}
	}
	return d, reason, nil
}

// sameUserKey is a question about resources asked by one user.Info.
type sameUserKey struct {
	user                                                               *user.DefaultInfo
	verb, namespace, apiGroup, apiVersion, resource, subresource, name string
}

// decisionKey is every field of a that a SubjectAccessReview carries, each
// length-prefixed so that no value can pose as two.
func decisionKey(a authorizer.Attributes) string {
	b := make([]byte, 0, 256)
	add := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if u := a.GetUser(); u != nil {
		add(u.GetName())
		add(u.GetUID())
		groups := u.GetGroups()
		b = binary.AppendUvarint(b, uint64(len(groups)))
		for _, g := range groups {
			add(g)
		}
		extra := u.GetExtra()
		b = binary.AppendUvarint(b, uint64(len(extra)))
		addExtra := func(k string) {
			add(k)
			b = binary.AppendUvarint(b, uint64(len(extra[k])))
			for _, v := range extra[k] {
				add(v)
			}
		}
		if len(extra) == 1 {
			for k := range extra {
				addExtra(k)
			}
		} else {
			for _, k := range slices.Sorted(maps.Keys(extra)) {
				addExtra(k)
			}
		}
	}
	add(a.GetVerb())
	add(a.GetNamespace())
	add(a.GetAPIGroup())
	add(a.GetAPIVersion())
	add(a.GetResource())
	add(a.GetSubresource())
	add(a.GetName())
	add(a.GetPath())
	if a.IsResourceRequest() {
		b = append(b, 1)
	}
	return string(b)
}

// authenticateDetailed returns the caller, or the 401 to answer and whether
// the token was definitely refused (false when an authenticator erred).
func (s *Server) authenticateDetailed(r *http.Request) (*authenticator.Response, bool, *apiError) {
	if r.Header.Get("Authorization") == "" {
		return nil, true, newError(http.StatusUnauthorized, ReasonUnauthenticated, "the request has no bearer token: send Authorization: Bearer <token>", nil)
	}
	if len(r.Header.Get("Authorization")) > maxTokenBytes {
		return nil, true, newError(http.StatusUnauthorized, ReasonUnauthenticated, "the bearer token is invalid or expired", nil)
	}
	if len(s.opts.TokenAudiences) > 0 {
		// The TokenReview asks for these audiences (the webhook reads them from the context).
		r = r.WithContext(authenticator.WithAudiences(r.Context(), s.opts.TokenAudiences))
	}
	resp, ok, err := s.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		if err != nil {
			s.opOf(r).log().V(1).Info("authentication failed", "error", err.Error())
		}
		return nil, !transientAuthError(err), newError(http.StatusUnauthorized, ReasonUnauthenticated, "the bearer token is invalid or expired", nil)
	}
	return resp, false, nil
}
