package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// scope is the metadata of an error about the project.
func (op *operation) scope() map[string]string {
	return map[string]string{"region": op.rt.region, "project": op.rt.project}
}

// authorize asks the cluster's RBAC (by a cached SubjectAccessReview) whether
// the caller may do the route's verb on instances in its namespace ("", for
// a project of several, is every namespace; a project of none is asked
// about as unmappedNamespace says, the same question as a known one's).
func (op *operation) authorize(ctx context.Context) error {
	ns := op.ns
	if ns == "" && op.nsConflict == nil && validScope(op.rt.region) && validScope(op.rt.project) {
		ns = unmappedNamespace(op.rt.region, op.rt.project)
	}
	attrs := authorizer.AttributesRecord{
		User:            op.user.User,
		Verb:            op.entry.verb,
		Namespace:       ns,
		APIGroup:        computev1alpha1.GroupVersion.Group,
		APIVersion:      computev1alpha1.GroupVersion.Version,
		Resource:        "instances",
		ResourceRequest: true,
	}
	// First without the name: one cached answer serves every instance of the
	// namespace. Only when that is denied, with the name, for roles limited
	// to some instances by resourceNames.
	decision, _, err := op.s.authz.Authorize(ctx, attrs)
	if err == nil && decision != authorizer.DecisionAllow && op.rt.id != "" && op.rt.valid && ns != "" {
		attrs.Name = op.rt.id
		decision, _, err = op.s.authz.Authorize(ctx, attrs)
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
// cache miss (an instance created a moment ago); fromStore says it is the
// informer's own object, not a copy: read it, never change it.
func (op *operation) fetch() (in *computev1alpha1.Instance, fromStore bool, err error) {
	if !op.rt.valid {
		return nil, false, op.notFound()
	}
	if store := op.s.instanceStore; store != nil {
		obj, exists, err := store.GetByKey(op.ns + "/" + op.rt.id)
		if err == nil && exists {
			if in, ok := obj.(*computev1alpha1.Instance); ok {
				return in, true, nil
			}
		}
	}
	key := client.ObjectKey{Namespace: op.ns, Name: op.rt.id}
	in = &computev1alpha1.Instance{}
	err = op.s.kubeClient.Get(op.r.Context(), key, in)
	if apierrors.IsNotFound(err) {
		err = op.s.live.Get(op.r.Context(), key, in)
	}
	if apierrors.IsNotFound(err) {
		return nil, false, op.notFound()
	}
	if err != nil {
		return nil, false, fmt.Errorf("failed to get the instance: %w", err)
	}
	return in, false, nil
}

func (op *operation) get() error {
	in, fromStore, err := op.fetch()
	if err != nil {
		return err
	}
	e, err := op.encoded(in, fromStore)
	if err != nil {
		return err
	}
	op.writeBody(http.StatusOK, e.body, e.etag)
	return nil
}

// list answers a page of the project's instances in id order, written as a
// stream of their stored encodings: the page is never built whole in memory.
func (op *operation) list() error {
	size, after, perr := parsePage(op.query)
	if perr != nil {
		return perr
	}
	items, fromStore, err := op.listAfter(after, size+1)
	if err != nil {
		return err
	}
	next := ""
	if len(items) > size {
		items = items[:size]
		next = encodePageToken(items[size-1].Name)
	}
	// The ETag comes from the resourceVersions, before any body is written.
	etag := pageETag(items, next)
	if ifNoneMatch(op.r, etag) {
		op.writeNotModified(etag)
		return nil
	}
	// Every encoding is ready before the status is written, so an error can
	// still be answered as one; they are the stored bytes, not a copy.
	encs := make([]*encodedInstance, len(items))
	length := len(`{"instances":[]}`) + 1
	for i, in := range items {
		if encs[i], err = op.encoded(in, fromStore); err != nil {
			return err
		}
		length += len(encs[i].json())
	}
	length += max(0, len(encs)-1) // commas
	if next != "" {
		length += len(`,"nextPageToken":""`) + len(next)
	}
	op.writeHeader(http.StatusOK, length, etag)
	// net/http buffers the small pieces; an encoding larger than its buffer
	// goes straight to the connection.
	w := op.w
	_, _ = w.Write(listOpen)
	for i, e := range encs {
		if i > 0 {
			_, _ = w.Write(listComma)
		}
		_, _ = w.Write(e.json())
	}
	_, _ = w.Write(listItemsClose)
	if next != "" {
		// A page token is base64url: nothing in it needs escaping.
		_, _ = io.WriteString(w, `,"nextPageToken":"`+next+`"`)
	}
	_, _ = w.Write(listClose)
	return nil
}

var (
	listOpen       = []byte(`{"instances":[`)
	listComma      = []byte(`,`)
	listItemsClose = []byte(`]`)
	listClose      = []byte("}\n")
)

// listAfter returns up to limit of the namespace's instances whose id sorts
// after after, in id order.
func (op *operation) listAfter(after string, limit int) (items []*computev1alpha1.Instance, fromStore bool, err error) {
	if op.s.order != nil {
		items, err = op.s.order.page(op.ns, after, limit)
		return items, true, err
	}
	var list computev1alpha1.InstanceList
	if err := op.s.kubeClient.List(op.r.Context(), &list, client.InNamespace(op.ns)); err != nil {
		return nil, false, fmt.Errorf("failed to list instances: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].Name > after {
			items = append(items, &list.Items[i])
		}
	}
	slices.SortFunc(items, func(a, b *computev1alpha1.Instance) int { return strings.Compare(a.Name, b.Name) })
	return items[:min(limit, len(items))], false, nil
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
	if op.dryRun() {
		return op.validateCreate(in)
	}
	if err := op.s.kubeClient.Create(op.r.Context(), in); err != nil {
		return err
	}
	op.w.Header().Set("Location", selfLink(op.rt.region, op.rt.project, in.Name))
	op.writeJSON(http.StatusCreated, toAPI(op.rt.region, op.rt.project, in), instanceETag(in.ResourceVersion))
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
	return op.update(func(in *computev1alpha1.Instance) error {
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
			// The stored labels, tooling's included, stay within the bound
			// the admission policy holds kubectl users to (an instance
			// stored with more before the bound may keep, not add).
			if err := checkLabelCount(labels, len(in.Labels)); err != nil {
				return err
			}
			in.Labels = labels
		}
		return nil
	})
}

// setPowerState is the handler of a custom method asking for a power state.
func setPowerState(want computev1alpha1.PowerState) func(*operation) error {
	return func(op *operation) error {
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
		return op.update(func(in *computev1alpha1.Instance) error { in.Spec.PowerState = want; return nil })
	}
}

// update applies change to the live instance and writes it back, retrying on
// a write conflict; a change that changes nothing writes nothing. With
// If-Match, the change is made only to the state the caller read: a write
// in between is a 412, not a retry.
func (op *operation) update(change func(*computev1alpha1.Instance) error) error {
	if !op.rt.valid {
		return op.notFound()
	}
	var out *computev1alpha1.Instance
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var in computev1alpha1.Instance
		if err := op.s.live.Get(op.r.Context(), client.ObjectKey{Namespace: op.ns, Name: op.rt.id}, &in); err != nil {
			return err
		}
		if err := checkIfMatch(op.r, instanceETag(in.ResourceVersion)); err != nil {
			return err
		}
		if in.DeletionTimestamp != nil {
			return newError(http.StatusConflict, ReasonInstanceBeingDeleted,
				fmt.Sprintf("instance %q is being deleted and cannot be changed", op.rt.id), map[string]string{"id": op.rt.id})
		}
		before := in.DeepCopy()
		if err := change(&in); err != nil {
			return err
		}
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
	op.writeJSON(http.StatusOK, toAPI(op.rt.region, op.rt.project, out), instanceETag(out.ResourceVersion))
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
	var opts []client.DeleteOption
	if op.r.Header.Get("If-Match") != "" {
		// The live state, as a PATCH compares it; the delete then carries it
		// as a precondition, so a write in between fails it too.
		if err := op.s.live.Get(op.r.Context(), client.ObjectKeyFromObject(in), in); err != nil {
			return err
		}
		if err := checkIfMatch(op.r, instanceETag(in.ResourceVersion)); err != nil {
			return err
		}
		opts = append(opts, client.Preconditions{UID: &in.UID, ResourceVersion: &in.ResourceVersion})
	}
	if err := op.s.kubeClient.Delete(op.r.Context(), in, opts...); err != nil {
		if apierrors.IsConflict(err) && len(opts) > 0 {
			return preconditionFailed("the instance changed while it was being deleted; read it again", nil)
		}
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
		if aerr := bodyReadError(err, op.s.opts.BodyReadTimeout); aerr != nil {
			return nil, aerr
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

func putResponseBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<20 {
		buf.Reset()
		responseBuffers.Put(buf)
	}
}

// writeJSON encodes v as the response, with etag when it is not "".
func (op *operation) writeJSON(status int, v any, etag string) {
	buf := responseBuffers.Get().(*bytes.Buffer)
	defer putResponseBuffer(buf)
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		op.fail(op.w, fmt.Errorf("failed to encode the response: %w", err))
		return
	}
	op.writeBody(status, buf.Bytes(), etag)
}

// writeBody writes an encoded JSON body; a GET whose If-None-Match names
// etag is answered 304 instead.
func (op *operation) writeBody(status int, body []byte, etag string) {
	if status == http.StatusOK && op.r.Method == http.MethodGet && ifNoneMatch(op.r, etag) {
		op.writeNotModified(etag)
		return
	}
	op.writeHeader(status, len(body), etag)
	_, _ = op.w.Write(body)
}

// writeHeader writes a JSON answer's status and headers for a body of length bytes.
func (op *operation) writeHeader(status, length int, etag string) {
	// Assigned, not Set: the keys are canonical and the constant values
	// shared, which spares a canonicalization and an allocation each.
	h := op.w.Header()
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNosniff
	h["Cache-Control"] = headerNoStore
	h["Content-Length"] = []string{strconv.Itoa(length)}
	if etag != "" {
		h["Etag"] = []string{etag}
	}
	op.w.WriteHeader(status)
}

var (
	headerJSON    = []string{"application/json"}
	headerNosniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
)

// writeNotModified is the 304 of a GET whose If-None-Match names etag.
func (op *operation) writeNotModified(etag string) {
	h := op.w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-store")
	op.w.WriteHeader(http.StatusNotModified)
}

// fail answers an error with the envelope; errors that are not the API's own
// are translated from the API server's answer, or logged and hidden as 500.
func (op *operation) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae)
		return
	}
	if ae = op.fromKubernetes(err); ae != nil {
		writeError(w, ae)
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The request's bounds keep a caller from making this happen; a
		// slow kube-apiserver or authorizer still can: the caller retries.
		op.log().Error(err, "the request ran out of time")
		writeError(w, newError(http.StatusServiceUnavailable, ReasonUnavailable,
			"the request could not be completed in the time the server allows; try again later", nil))
		return
	}
	op.log().Error(err, "request failed")
	writeError(w, internalError())
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
		op.log().Error(err, "the API server is busy")
		return newError(http.StatusServiceUnavailable, ReasonUnavailable, "the service is busy; try again later", nil)
	}
	return nil
}

// quotaExceeded matches the refusal of kube-apiserver's ResourceQuota
// admission (k8s.io/apiserver/pkg/admission/plugin/resourcequota), the only
// place the quota's name and limit are told.
var (
	quotaExceeded  = regexp.MustCompile(`exceeded quota: ([^,]+), requested: ([^ ]+), used: ([^ ]+), limited: ([^ ]+)$`)
	quotaUncounted = regexp.MustCompile(`status unknown for quota: ([^,]+)`)
)

// fromQuota answers a quota's refusal: 403 QUOTA_EXCEEDED naming the quota
// and its limit, or 503 while kube-controller-manager has not yet counted a
// new quota (kube-apiserver refuses every create it constrains until then);
// nil for any other refusal.
func (op *operation) fromQuota(msg string, md map[string]string) *apiError {
	if m := quotaExceeded.FindStringSubmatch(msg); m != nil {
		md["quota"], md["requested"], md["used"], md["limit"] = m[1], m[2], m[3], m[4]
		return newError(http.StatusForbidden, ReasonQuotaExceeded,
			fmt.Sprintf("project %q of region %q is at its quota %q: limited %s, used %s", op.rt.project, op.rt.region, m[1], m[4], m[3]), md)
	}
	if m := quotaUncounted.FindStringSubmatch(msg); m != nil {
		op.log().Info("the project's quota is not counted yet", "quota", m[1])
		return newError(http.StatusServiceUnavailable, ReasonUnavailable,
			fmt.Sprintf("the quota %q of project %q is being counted; try again shortly", m[1], op.rt.project), nil)
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
