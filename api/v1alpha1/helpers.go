package v1alpha1

import "strings"

// APILabels returns the resource's labels that belong to the REST API's
// labels field: those whose key has no prefix. A key with a "/" belongs to
// tooling (Helm, Argo CD, kustomize), not to the user.
func (in *Instance) APILabels() map[string]string {
	out := map[string]string{}
	for k, v := range in.Labels {
		if !strings.Contains(k, "/") {
			out[k] = v
		}
	}
	return out
}

// IsPaused reports whether the PausedAnnotation stops provider calls.
func (in *Instance) IsPaused() bool {
	v, ok := in.Annotations[PausedAnnotation]
	return ok && v != "false"
}

// EffectiveHostname is the machine's host name: spec.hostname, or, when it is
// absent, the generated one, which is the instance's name. Every provider, the
// reconciler and the REST API answer with it, so that status.hostname, the
// guest's own name and GET's hostname agree.
func (in *Instance) EffectiveHostname() string {
	if in.Spec.Hostname != "" {
		return in.Spec.Hostname
	}
	return in.Name
}

// TypeName is the last path segment of an instance or GPU type URI:
// "g1-xlarge" for /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge.
func TypeName(uri string) string {
	return uri[strings.LastIndex(uri, "/")+1:]
}

// ZoneOf is the zone segment of a zonal type URI, or "" for a regional or
// project-scoped one.
func ZoneOf(uri string) string {
	parts := strings.Split(strings.TrimPrefix(uri, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "zones" {
			return parts[i+1]
		}
	}
	return ""
}
