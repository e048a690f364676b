package api

import (
	"encoding/json"
	"net/http"
)

// Domain is the ErrorInfo domain of every error the API returns.
const Domain = "compute.k0rdent.ai"

// ErrorInfo and BadRequest are the AIP-193 detail types of the error envelope.
const (
	typeErrorInfo  = "type.googleapis.com/google.rpc.ErrorInfo"
	typeBadRequest = "type.googleapis.com/google.rpc.BadRequest"
)

// Reasons of the ErrorInfo detail.
const (
	ReasonUnauthenticated      = "UNAUTHENTICATED"
	ReasonPermissionDenied     = "PERMISSION_DENIED"
	ReasonInstanceNotFound     = "INSTANCE_NOT_FOUND"
	ReasonProjectNotFound      = "PROJECT_NOT_FOUND"
	ReasonRouteNotFound        = "ROUTE_NOT_FOUND"
	ReasonMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	ReasonInvalidArgument      = "INVALID_ARGUMENT"
	ReasonAlreadyExists        = "ALREADY_EXISTS"
	ReasonConflict             = "CONFLICT"
	ReasonUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	ReasonRequestTooLarge      = "REQUEST_TOO_LARGE"
	ReasonRateLimited          = "RATE_LIMIT_EXCEEDED"
	ReasonProjectMappingClash  = "PROJECT_MAPPING_CONFLICT"
	ReasonInternal             = "INTERNAL"
	ReasonUnavailable          = "UNAVAILABLE"
	ReasonInstanceBeingDeleted = "INSTANCE_BEING_DELETED"
	ReasonFieldNotUpdatable    = "FIELD_NOT_UPDATABLE"
	ReasonInvalidPageToken     = "INVALID_PAGE_TOKEN"
	ReasonInvalidPageSize      = "INVALID_PAGE_SIZE"
	ReasonMalformedRequestBody = "MALFORMED_REQUEST_BODY"
	// ReasonQuotaExceeded answers a create that a ResourceQuota refuses (403).
	ReasonQuotaExceeded = "QUOTA_EXCEEDED"
	// ReasonPreconditionFailed answers a write whose If-Match no longer
	// names the instance's ETag (412).
	ReasonPreconditionFailed = "PRECONDITION_FAILED"
)

// FieldViolation is one entry of a google.rpc.BadRequest detail.
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// apiError is an error that the API answers with the envelope.
type apiError struct {
	status     int
	reason     string
	message    string
	metadata   map[string]string
	violations []FieldViolation
}

func (e *apiError) Error() string { return e.message }

func newError(status int, reason, message string, metadata map[string]string) *apiError {
	return &apiError{status: status, reason: reason, message: message, metadata: metadata}
}

type envelope struct {
	Error envelopeBody `json:"error"`
}

type envelopeBody struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Details []map[string]any `json:"details"`
}

func (e *apiError) body() envelope {
	md := map[string]string{}
	for k, v := range e.metadata {
		md[k] = v
	}
	details := []map[string]any{{
		"@type":    typeErrorInfo,
		"reason":   e.reason,
		"domain":   Domain,
		"metadata": md,
	}}
	if len(e.violations) > 0 {
		details = append(details, map[string]any{
			"@type":           typeBadRequest,
			"fieldViolations": e.violations,
		})
	}
	return envelope{Error: envelopeBody{Code: e.status, Message: e.message, Details: details}}
}

func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="compute.k0rdent.ai"`)
	}
	// Every 429 and 503 says when to come back (the OpenAPI document
	// promises it); those that know better set it before.
	if (e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(e.body())
}
