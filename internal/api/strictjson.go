package api

import (
	"fmt"
	"strings"

	sigsjson "sigs.k8s.io/json"
)

// decodeStrict decodes a JSON body as kube-apiserver's strict field
// validation does (sigs.k8s.io/json): field names match case-sensitively,
// and a key given twice, at any depth, or a field the type does not have is
// refused, instead of the last value silently winning.
func decodeStrict(data []byte, v any, options ...sigsjson.StrictOption) *apiError {
	if len(options) == 0 {
		options = []sigsjson.StrictOption{sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields}
	}
	strictErrs, err := sigsjson.UnmarshalStrict(data, v, options...)
	if err != nil {
		return malformed(err)
	}
	if len(strictErrs) == 0 {
		return nil
	}
	first := strictErrs[0]
	field := ""
	if fe, ok := first.(interface{ FieldPath() string }); ok {
		field = truncate(fe.FieldPath(), 64)
	}
	if strings.HasPrefix(first.Error(), "duplicate field") {
		e := fieldError(field, fmt.Sprintf("field %q is given more than once", field))
		return e
	}
	return fieldError(field, fmt.Sprintf("unknown field %q", field))
}
