package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// validID reports whether s is a valid id, the contract's ^[a-z]([-a-z0-9]*[a-z0-9])?$
// in 1-63 characters, without a regexp on the request path.
func validID(s string) bool {
	return len(s) > 0 && s[0] >= 'a' && s[0] <= 'z' && validLabel(s)
}

// validScope reports whether s is a valid region or project, a DNS label:
// ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ in 1-63 characters.
func validScope(s string) bool {
	return len(s) > 0 && validLabel(s)
}

// validLabel checks a DNS label's length, characters and last character.
func validLabel(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

// Custom methods, written as colon methods on the instance.
const (
	methodStop    = "stop"
	methodStart   = "start"
	methodSuspend = "suspend"
	methodResume  = "resume"
)

// route is a parsed API path.
type route struct {
	region, project string
	// id is empty for the collection.
	id string
	// custom is the colon method ("stop", ...), empty for the plain resource.
	custom string
	// valid is false when a segment breaks its naming rule: such a resource
	// cannot exist, but the caller is still authorized before being told so.
	valid bool
}

// template is the OpenAPI path template of the route.
func (r route) template() string {
	switch {
	case r.id == "":
		return "/v1/regions/{region}/projects/{project}/compute/instances"
	case r.custom != "":
		return "/v1/regions/{region}/projects/{project}/compute/instances/{id}:" + r.custom
	default:
		return "/v1/regions/{region}/projects/{project}/compute/instances/{id}"
	}
}

// parsePath parses /v1/regions/{region}/projects/{project}/compute/instances[/{id}[:method]].
// ok is false for a path that is not one of the API's routes.
func parsePath(path string) (r route, ok bool) {
	const prefix = "/v1/regions/"
	if !strings.HasPrefix(path, prefix) {
		return route{}, false
	}
	segs := strings.Split(path[len(prefix):], "/")
	if len(segs) != 5 && len(segs) != 6 {
		return route{}, false
	}
	if segs[1] != "projects" || segs[3] != "compute" || segs[4] != "instances" || segs[0] == "" || segs[2] == "" {
		return route{}, false
	}
	r = route{region: segs[0], project: segs[2], valid: true}
	if len(segs) == 6 {
		last := segs[5]
		if last == "" {
			return route{}, false
		}
		if i := strings.IndexByte(last, ':'); i >= 0 {
			r.custom = last[i+1:]
			last = last[:i]
			if !customMethods[r.custom] || last == "" {
				return route{}, false
			}
		}
		r.id = last
		if !validID(r.id) {
			r.valid = false
		}
	}
	if !validScope(r.region) || !validScope(r.project) {
		r.valid = false
	}
	return r, true
}

// Paging bounds of the contract.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// pageTokenPrefix versions the opaque page token.
const pageTokenPrefix = "v1:"

// parsePage reads pageSize and pageToken: the size, and the id after which the page starts.
func parsePage(q url.Values) (size int, after string, err *apiError) {
	size = defaultPageSize
	if vs, ok := q["pageSize"]; ok {
		if len(vs) != 1 {
			return 0, "", newError(http.StatusBadRequest, ReasonInvalidPageSize, "pageSize must be given once", nil)
		}
		n, convErr := strconv.Atoi(vs[0])
		if convErr != nil || n < 1 || n > maxPageSize {
			return 0, "", newError(http.StatusBadRequest, ReasonInvalidPageSize,
				fmt.Sprintf("pageSize must be an integer from 1 to %d", maxPageSize), map[string]string{"pageSize": truncate(vs[0], 32)})
		}
		size = n
	}
	if vs, ok := q["pageToken"]; ok {
		if len(vs) != 1 {
			return 0, "", newError(http.StatusBadRequest, ReasonInvalidPageToken, "pageToken must be given once", nil)
		}
		if vs[0] != "" {
			after, err = decodePageToken(vs[0])
			if err != nil {
				return 0, "", err
			}
		}
	}
	return size, after, nil
}

func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + lastID))
}

func decodePageToken(token string) (string, *apiError) {
	bad := newError(http.StatusBadRequest, ReasonInvalidPageToken, "pageToken is not a token this API returned", nil)
	if len(token) > 128 {
		return "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !bytes.HasPrefix(raw, []byte(pageTokenPrefix)) {
		return "", bad
	}
	id := string(raw[len(pageTokenPrefix):])
	if !validID(id) {
		return "", bad
	}
	return id, nil
}

// readOnlyFields are the instance's output-only fields, refused in a request body.
var readOnlyFields = map[string]bool{
	"selfLink": true, "uid": true, "lifecycle": true, "createdAt": true, "updatedAt": true,
}

// decodeCreate parses a create request, refusing unknown and read-only fields.
func decodeCreate(body []byte) (*CreateRequest, *apiError) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, malformed(err)
	}
	if raw == nil {
		return nil, newError(http.StatusBadRequest, ReasonMalformedRequestBody, "the request body must be a JSON object", nil)
	}
	for k := range raw {
		if readOnlyFields[k] {
			return nil, fieldError(k, "field "+k+" is read-only and cannot be set")
		}
	}
	var req CreateRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.Type == "" {
		return nil, fieldError("type", "type is required")
	}
	if req.ID != "" && !validID(req.ID) {
		return nil, fieldError("id", "id must be 1-63 lowercase letters, digits and '-', starting with a letter and not ending with '-'")
	}
	if err := checkCreateBounds(&req); err != nil {
		return nil, err
	}
	return &req, nil
}

// Patch is a parsed PATCH body: a JSON merge patch (RFC 7386) of the
// mutable fields. A nil pointer leaves the field alone; a field given as null
// clears it. Labels merge key by key (a null value removes the key; labels:
// null removes them all); instanceMetadata, an array, is replaced whole.
type Patch struct {
	DisplayName      *string
	Description      *string
	ClearLabels      bool
	Labels           map[string]*string
	InstanceMetadata *[]computev1alpha1.MetadataItem
}

// patchableFields are the fields a PATCH may change.
var patchableFields = []string{"displayName", "description", "labels", "instanceMetadata"}

// decodePatch parses a PATCH body; any field but the four mutable ones is a 400 naming it.
func decodePatch(body []byte) (*Patch, *apiError) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw, sigsjson.DisallowDuplicateFields); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, newError(http.StatusBadRequest, ReasonMalformedRequestBody, "the request body must be a JSON object", nil)
	}
	var p Patch
	for k, v := range raw {
		isNull := bytes.Equal(bytes.TrimSpace(v), []byte("null"))
		var err error
		switch k {
		case "displayName":
			s := ""
			if !isNull {
				err = json.Unmarshal(v, &s)
			}
			p.DisplayName = &s
		case "description":
			s := ""
			if !isNull {
				err = json.Unmarshal(v, &s)
			}
			p.Description = &s
		case "labels":
			p.Labels = map[string]*string{}
			if isNull {
				p.ClearLabels = true
			} else if derr := decodeNested(k, v, &p.Labels); derr != nil {
				return nil, derr
			}
		case "instanceMetadata":
			var items []computev1alpha1.MetadataItem
			if !isNull {
				if derr := decodeNested(k, v, &items); derr != nil {
					return nil, derr
				}
			}
			p.InstanceMetadata = &items
		default:
			if _, known := knownInstanceFields[k]; known {
				return nil, notUpdatable(k)
			}
			return nil, fieldError(truncate(k, 64), fmt.Sprintf("unknown field %q; only %s may be changed", truncate(k, 64), strings.Join(patchableFields, ", ")))
		}
		if err != nil {
			return nil, fieldError(k, fmt.Sprintf("field %s has the wrong type: %s", k, jsonProblem(err)))
		}
	}
	if err := checkPatchBounds(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// decodeNested decodes the value of the PATCH body's field k strictly; a
// wrong type names the field.
func decodeNested(k string, v json.RawMessage, into any) *apiError {
	err := decodeStrict(v, into)
	if err == nil {
		return nil
	}
	if len(err.violations) == 1 && err.violations[0].Field != "" {
		return fieldError(k+"."+err.violations[0].Field, err.message)
	}
	return fieldError(k, fmt.Sprintf("field %s has the wrong type: %s", k, strings.TrimPrefix(err.message, "the request body is not valid JSON: ")))
}

var knownInstanceFields = map[string]struct{}{
	"selfLink": {}, "uid": {}, "id": {}, "type": {}, "hostname": {}, "lifecycle": {},
	"disks": {}, "nics": {}, "gpus": {}, "createdAt": {}, "updatedAt": {},
}

func notUpdatable(field string) *apiError {
	e := fieldError(field, fmt.Sprintf("field %s cannot be changed; only %s may be changed", field, strings.Join(patchableFields, ", ")))
	e.reason = ReasonFieldNotUpdatable
	return e
}

func fieldError(field, description string) *apiError {
	e := newError(http.StatusBadRequest, ReasonInvalidArgument, description, map[string]string{"field": field})
	e.violations = []FieldViolation{{Field: field, Description: description}}
	return e
}

func malformed(err error) *apiError {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return fieldError(ute.Field, fmt.Sprintf("field %s must be %s, not a JSON %s", ute.Field, jsonKind(ute.Type.Kind().String()), ute.Value))
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		name := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return fieldError(truncate(name, 64), fmt.Sprintf("unknown field %q", truncate(name, 64)))
	}
	return newError(http.StatusBadRequest, ReasonMalformedRequestBody, "the request body is not valid JSON: "+jsonProblem(err), nil)
}

func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int32", "int64", "int":
		return "an integer"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return kind
}

func jsonProblem(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// scopeOf reads the region, and the project if there is one, of a resource
// URI of the API (/v1/regions/{region}/[projects/{project}/]...). ok is false
// for anything else, which the resource's own validation reports.
func scopeOf(uri string) (region, project string, ok bool) {
	rest, found := strings.CutPrefix(uri, "/v1/regions/")
	if !found {
		return "", "", false
	}
	region, rest, _ = strings.Cut(rest, "/")
	if after, found := strings.CutPrefix(rest, "projects/"); found {
		project, _, _ = strings.Cut(after, "/")
	}
	return region, project, region != ""
}

// checkScope refuses references to another region's (or another project's)
// types, images, networks and GPU types: an instance is made in the region
// and project of the request's path, and kube-apiserver cannot tell, since a
// namespace's region is in its labels.
func checkScope(req *CreateRequest, region, project string) *apiError {
	var violations []FieldViolation
	check := func(field, uri string) {
		r, p, ok := scopeOf(uri)
		switch {
		case !ok:
		case r != region:
			violations = append(violations, FieldViolation{Field: field,
				Description: fmt.Sprintf("%s is in region %q; the instance is made in region %q", truncate(uri, 128), truncate(r, 64), region)})
		case p != "" && p != project:
			violations = append(violations, FieldViolation{Field: field,
				Description: fmt.Sprintf("%s belongs to project %q; the instance is made in project %q", truncate(uri, 128), truncate(p, 64), project)})
		}
	}
	check("type", req.Type)
	for i, d := range req.Disks {
		check(fmt.Sprintf("disks[%d].source", i), d.Source)
	}
	for i, n := range req.NICs {
		check(fmt.Sprintf("nics[%d].network", i), n.Network)
		check(fmt.Sprintf("nics[%d].subnet", i), n.Subnet)
	}
	for i, g := range req.GPUs {
		check(fmt.Sprintf("gpus[%d].type", i), g.Type)
	}
	if len(violations) == 0 {
		return nil
	}
	return invalidInstance(violations, nil)
}

// invalidInstance is the 400 for an instance with field violations; its
// message lists them all.
func invalidInstance(violations []FieldViolation, metadata map[string]string) *apiError {
	msgs := make([]string, len(violations))
	for i, v := range violations {
		msgs[i] = v.Field + ": " + v.Description
	}
	if len(msgs) == 0 {
		msgs = []string{"the request was refused as invalid"}
	}
	e := newError(http.StatusBadRequest, ReasonInvalidArgument, "invalid instance: "+strings.Join(msgs, "; "), metadata)
	e.violations = violations
	return e
}
