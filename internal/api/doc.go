// Package api is the REST facade of the k0rdent AI compute API: it serves
// /v1/regions/{region}/projects/{project}/compute/instances over the Instance
// custom resources. A region and project name the one namespace labelled
// k0rdent.ai/region and k0rdent.ai/project; reads come from the manager's
// informer cache; callers are authenticated by bearer token (OIDC, then the
// cluster's TokenReview) and authorized by SubjectAccessReview against the
// cluster's RBAC, both with k8s.io/apiserver's delegating, caching
// authenticator and authorizer. The server is a manager Runnable that is not
// leader-gated, so API replicas scale out. Its OpenAPI document, openapi.json
// in this directory, is embedded and served at /openapi.json. A request
// passes one ordered chain of small wrappers (chain.go) to the operation the
// route table (routes.go) names; answers carry ETags and honour If-None-Match
// and If-Match (conditional.go); each instance's JSON is encoded once per
// resourceVersion (encode.go).
package api

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances,verbs=get;list;watch;create;update;delete;create-on-behalf
