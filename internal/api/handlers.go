package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// operation is one API request being served.
type operation struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	rt   route
	user *authenticator.Response
	ns   string
}

// verb is the RBAC verb the request needs on instances.
func (op *operation) verb() string {
	switch {
	case op.rt.custom != "":
		return "patch"
	case op.r.Method == http.MethodGet && op.rt.id == "":
		return "list"
	case op.r.Method == http.MethodGet:
		return "get"
	case op.r.Method == http.MethodPost:
		return "create"
	case op.r.Method == http.MethodPatch:
		return "patch"
	case op.r.Method == http.MethodDelete:
		return "delete"
	}
	return ""
}

func (op *operation) run() error {
	if err := op.resolve(); err != nil {
		return err
	}
	switch {
	case op.rt.custom != "":
		return op.setPowerState()
	case op.r.Method == http.MethodGet && op.rt.id == "":
		return op.list()
	case op.r.Method == http.MethodGet:
		return op.get()
	case op.r.Method == http.MethodPost:
		return op.create()
	case op.r.Method == http.MethodPatch:
		return op.patch()
	case op.r.Method == http.MethodDelete:
		return op.delete()
	}
	return internalError()
}

// resolve maps the project to its namespace and authorizes the caller,
// permission before existence: a caller gets 403 whether or not the project
// or instance exists, and learns of a missing project only when allowed the
// verb on instances in every namespace.
func (op *operation) resolve() error {
	ns := ""
	var conflict *errScopeConflict
	if validScope(op.rt.region) && validScope(op.rt.project) {
		var err error
		ns, err = op.s.namespaceFor(op.r.Context(), op.rt.region, op.rt.project)
		if err != nil && !errors.As(err, &conflict) {
			return err
		}
	}
	if err := op.authorize(ns); err != nil {
		return err
	}
	if conflict != nil {
		op.s.log(op.r).Error(conflict, "cannot map the project to one namespace", "region", op.rt.region, "project", op.rt.project)
		return newError(http.StatusInternalServerError, ReasonProjectMappingClash,
			fmt.Sprintf("project %q of region %q is configured more than once; an administrator must resolve the conflict", op.rt.project, op.rt.region),
			map[string]string{"region": op.rt.region, "project": op.rt.project})
	}
	if ns == "" {
		return newError(http.StatusNotFound, ReasonProjectNotFound,
			fmt.Sprintf("project %q of region %q not found", op.rt.project, op.rt.region),
			map[string]string{"region": op.rt.region, "project": op.rt.project})
	}
	op.ns = ns
	return nil
}

// authorize asks the cluster's RBAC (by a cached SubjectAccessReview) whether
// the caller may do the verb on instances in ns ("" is every namespace).
func (op *operation) authorize(ns string) error {
	attrs := authorizer.AttributesRecord{
		User:            op.user.User,
		Verb:            op.verb(),
		Namespace:       ns,
		APIGroup:        computev1alpha1.GroupVersion.Group,
		APIVersion:      computev1alpha1.GroupVersion.Version,
		Resource:        "instances",
		ResourceRequest: true,
	}
	// First without the name: one cached answer serves every instance of the
	// namespace. Only when that is denied, with the name, for roles limited
	// to some instances by resourceNames.
	decision, _, err := op.s.authz.Authorize(op.r.Context(), attrs)
	if err == nil && decision != authorizer.DecisionAllow && op.rt.id != "" && op.rt.valid && ns != "" {
		attrs.Name = op.rt.id
		decision, _, err = op.s.authz.Authorize(op.r.Context(), attrs)
	}
	if err != nil {
		return fmt.Errorf("failed to authorize: %w", err)
	}
	if decision != authorizer.DecisionAllow {
		return newError(http.StatusForbidden, ReasonPermissionDenied,
			fmt.Sprintf("permission denied: the caller may not %s instances in project %q of region %q", attrs.Verb, op.rt.project, op.rt.region),
			map[string]string{"permission": "compute.instances." + attrs.Verb, "region": op.rt.region, "project": op.rt.project})
	}
	return nil
}

func (op *operation) notFound() *apiError {
	return newError(http.StatusNotFound, ReasonInstanceNotFound,
		fmt.Sprintf("instance %q not found in project %q of region %q", truncate(op.rt.id, 64), op.rt.project, op.rt.region),
		map[string]string{"id": truncate(op.rt.id, 64), "region": op.rt.region, "project": op.rt.project})
}

// fetch reads the instance from the cache, and from the API server on a
// cache miss (an instance created a moment ago). The result may be the
// cache's own object: read it, never change it.
func (op *operation) fetch() (*computev1alpha1.Instance, error) {
	if !op.rt.valid {
		return nil, op.notFound()
	}
	if store := op.s.instanceStore; store != nil {
		// The cached object itself, not a copy: the caller only reads it.
		obj, exists, err := store.GetByKey(op.ns + "/" + op.rt.id)
		if err == nil && exists {
			if in, ok := obj.(*computev1alpha1.Instance); ok {
				return in, nil
			}
		}
	}
	key := client.ObjectKey{Namespace: op.ns, Name: op.rt.id}
	var in computev1alpha1.Instance
	err := op.s.kubeClient.Get(op.r.Context(), key, &in)
	if apierrors.IsNotFound(err) {
		err = op.s.live.Get(op.r.Context(), key, &in)
	}
	if apierrors.IsNotFound(err) {
		return nil, op.notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get the instance: %w", err)
	}
	return &in, nil
}

func (op *operation) get() error {
	in, err := op.fetch()
	if err != nil {
		return err
	}
	op.writeJSON(http.StatusOK, toAPI(op.rt.region, op.rt.project, in))
	return nil
}

func (op *operation) list() error {
	size, after, perr := parsePage(op.r.URL.Query())
	if perr != nil {
		return perr
	}
	var list computev1alpha1.InstanceList
	// Shallow copies of the cache's objects: they are sorted and read, never changed.
	if err := op.s.kubeClient.List(op.r.Context(), &list, client.InNamespace(op.ns), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("failed to list instances: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	start := sort.Search(len(list.Items), func(i int) bool { return list.Items[i].Name > after })
	items := list.Items[start:]
	out := InstanceList{Instances: make([]Instance, 0, min(size, len(items)))}
	for i := range items {
		if i == size {
			out.NextPageToken = encodePageToken(items[i-1].Name)
			break
		}
		out.Instances = append(out.Instances, toAPI(op.rt.region, op.rt.project, &items[i]))
	}
	op.writeJSON(http.StatusOK, out)
	return nil
}

func (op *operation) create() error {
	body, err := op.readBody(true, "application/json")
	if err != nil {
		return err
	}
	req, derr := decodeCreate(body)
	if derr != nil {
		return derr
	}
	if serr := checkScope(req, op.rt.region, op.rt.project); serr != nil {
		return serr
	}
	if err := op.authorizeDiskSources(req); err != nil {
		return err
	}
	in := &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   op.ns,
			Name:        req.ID,
			Labels:      req.Labels,
			Annotations: map[string]string{computev1alpha1.CreatedByAnnotation: op.user.User.GetName()},
			// Stamped here, the finalizer needs no write of the operator's,
			// and the create skips the admission policy, which refuses
			// creates for a few seconds after kube-apiserver starts.
			Finalizers: []string{computev1alpha1.Finalizer},
		},
		Spec: computev1alpha1.InstanceSpec{
			DisplayName:      req.DisplayName,
			Description:      req.Description,
			Type:             req.Type,
			Hostname:         req.Hostname,
			InstanceMetadata: req.InstanceMetadata,
			Disks:            req.Disks,
			NICs:             req.NICs,
			GPUs:             req.GPUs,
			PowerState:       computev1alpha1.PowerStateRunning,
			DeletionPolicy:   computev1alpha1.DeletionPolicyDelete,
		},
	}
	if req.ID == "" {
		in.GenerateName = "instance-"
	}
	op.rt.id = req.ID
	if err := op.s.kubeClient.Create(op.r.Context(), in); err != nil {
		return err
	}
	op.w.Header().Set("Location", selfLink(op.rt.region, op.rt.project, in.Name))
	op.writeJSON(http.StatusCreated, toAPI(op.rt.region, op.rt.project, in))
	return nil
}

func (op *operation) patch() error {
	body, err := op.readBody(true, "application/json", "application/merge-patch+json")
	if err != nil {
		return err
	}
	p, derr := decodePatch(body)
	if derr != nil {
		return derr
	}
	return op.update(func(in *computev1alpha1.Instance) {
		if p.DisplayName != nil {
			in.Spec.DisplayName = *p.DisplayName
		}
		if p.Description != nil {
			in.Spec.Description = *p.Description
		}
		if p.InstanceMetadata != nil {
			in.Spec.InstanceMetadata = *p.InstanceMetadata
		}
		if p.Labels != nil {
			// Only the API's labels (no "/" in the key) change; tooling's stay.
			labels := map[string]string{}
			for k, v := range in.Labels {
				if strings.Contains(k, "/") || !p.ClearLabels {
					labels[k] = v
				}
			}
			for k, v := range p.Labels {
				if v == nil {
					delete(labels, k)
				} else {
					labels[k] = *v
				}
			}
			in.Labels = labels
		}
	})
}

func (op *operation) setPowerState() error {
	body, err := op.readBody(false, "application/json")
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		var empty map[string]json.RawMessage
		if err := json.Unmarshal(body, &empty); err != nil {
			return malformed(err)
		}
		for k := range empty {
			return fieldError(truncate(k, 64), fmt.Sprintf("unknown field %q; :%s takes no fields", truncate(k, 64), op.rt.custom))
		}
	}
	want := customPowerStates[op.rt.custom]
	return op.update(func(in *computev1alpha1.Instance) { in.Spec.PowerState = want })
}

// update applies change to the live instance and writes it back, retrying on
// a write conflict; a change that changes nothing writes nothing.
func (op *operation) update(change func(*computev1alpha1.Instance)) error {
	if !op.rt.valid {
		return op.notFound()
	}
	var out *computev1alpha1.Instance
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var in computev1alpha1.Instance
		if err := op.s.live.Get(op.r.Context(), client.ObjectKey{Namespace: op.ns, Name: op.rt.id}, &in); err != nil {
			return err
		}
		if in.DeletionTimestamp != nil {
			return newError(http.StatusConflict, ReasonInstanceBeingDeleted,
				fmt.Sprintf("instance %q is being deleted and cannot be changed", op.rt.id), map[string]string{"id": op.rt.id})
		}
		before := in.DeepCopy()
		change(&in)
		if equalForUpdate(before, &in) {
			out = &in
			return nil
		}
		if err := op.s.kubeClient.Update(op.r.Context(), &in); err != nil {
			return err
		}
		out = &in
		return nil
	})
	if err != nil {
		return err
	}
	op.writeJSON(http.StatusOK, toAPI(op.rt.region, op.rt.project, out))
	return nil
}

func equalForUpdate(a, b *computev1alpha1.Instance) bool {
	ja, _ := json.Marshal(struct {
		L map[string]string
		S computev1alpha1.InstanceSpec
	}{a.Labels, a.Spec})
	jb, _ := json.Marshal(struct {
		L map[string]string
		S computev1alpha1.InstanceSpec
	}{b.Labels, b.Spec})
	return string(ja) == string(jb)
}

func (op *operation) delete() error {
	if !op.rt.valid {
		return op.notFound()
	}
	in := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Namespace: op.ns, Name: op.rt.id}}
	if err := op.s.kubeClient.Delete(op.r.Context(), in); err != nil {
		return err
	}
	op.w.WriteHeader(http.StatusNoContent)
	return nil
}

// readBody checks the content type and reads the body within the size limit.
// An empty body is allowed only when required is false.
func (op *operation) readBody(required bool, mediaTypes ...string) ([]byte, error) {
	r := op.r
	limit := op.s.opts.MaxBodyBytes
	tooLarge := newError(http.StatusRequestEntityTooLarge, ReasonRequestTooLarge,
		fmt.Sprintf("the request body is larger than %d bytes", limit), nil)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(op.w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, newError(http.StatusBadRequest, ReasonMalformedRequestBody, "the request body could not be read", nil)
	}
	if len(body) == 0 && !required {
		return body, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	if ct == "" || perr != nil || !slices.Contains(mediaTypes, mt) {
		return nil, newError(http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType,
			fmt.Sprintf("Content-Type must be %s", strings.Join(mediaTypes, " or ")), nil)
	}
	if len(body) == 0 {
		return nil, newError(http.StatusBadRequest, ReasonMalformedRequestBody, "the request body is empty; a JSON object is expected", nil)
	}
	return body, nil
}

// responseBuffers recycles the buffers responses are encoded into.
var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (op *operation) writeJSON(status int, v any) {
	buf := responseBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			responseBuffers.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		op.fail(fmt.Errorf("failed to encode the response: %w", err))
		return
	}
	h := op.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	op.w.WriteHeader(status)
	_, _ = op.w.Write(buf.Bytes())
}

// fail answers an error with the envelope; errors that are not the API's own
// are translated from the API server's answer, or logged and hidden as 500.
func (op *operation) fail(err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(op.w, ae)
		return
	}
	if ae = op.fromKubernetes(err); ae != nil {
		writeError(op.w, ae)
		return
	}
	op.s.log(op.r).Error(err, "request failed")
	writeError(op.w, internalError())
}

// fromKubernetes translates the API server's refusals into the envelope,
// naming fields as the REST API does; nil for an internal failure.
func (op *operation) fromKubernetes(err error) *apiError {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return nil
	}
	if ae := op.fromForbidden(err); ae != nil {
		return ae
	}
	md := map[string]string{"region": op.rt.region, "project": op.rt.project}
	switch {
	case apierrors.IsNotFound(err):
		return op.notFound()
	case apierrors.IsAlreadyExists(err):
		md["id"] = op.rt.id
		return newError(http.StatusConflict, ReasonAlreadyExists,
			fmt.Sprintf("instance %q already exists in project %q of region %q", op.rt.id, op.rt.project, op.rt.region), md)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		var violations []FieldViolation
		if d := status.Status().Details; d != nil {
			for _, c := range d.Causes {
				violations = append(violations, FieldViolation{Field: apiFieldName(c.Field), Description: apiMessage(c.Message)})
			}
		}
		return invalidInstance(violations, md)
	case apierrors.IsConflict(err):
		return newError(http.StatusConflict, ReasonConflict, "the instance changed while it was being updated; try again", md)
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsServiceUnavailable(err):
		op.s.log(op.r).Error(err, "the API server is busy")
		return newError(http.StatusServiceUnavailable, ReasonUnavailable, "the service is busy; try again later", nil)
	}
	return nil
}

// resourcePaths maps the resource's field paths, as the API server's messages
// quote them, to the REST API's names.
var resourcePaths = strings.NewReplacer("metadata.generateName", "id", "metadata.name", "id", "metadata.labels", "labels", "spec.", "")

// apiMessage rewrites an API server message in the REST API's field names.
func apiMessage(msg string) string { return resourcePaths.Replace(msg) }

// apiFieldName turns a resource field path (spec.disks[0].source,
// metadata.name) into the REST API's (disks[0].source, id).
func apiFieldName(path string) string {
	switch {
	case path == "metadata.name" || path == "metadata.generateName":
		return "id"
	case strings.HasPrefix(path, "metadata.labels"):
		return "labels" + strings.TrimPrefix(path, "metadata.labels")
	case strings.HasPrefix(path, "spec."):
		return strings.TrimPrefix(path, "spec.")
	case path == "spec" || path == "":
		return "instance"
	}
	return path
}
