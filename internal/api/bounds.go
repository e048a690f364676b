package api

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// The CRD's patterns, compiled once; the constants are the CRD's own.
var (
	singleLineText = regexp.MustCompile(computev1alpha1.SingleLineTextPattern)
	multiLineText  = regexp.MustCompile(computev1alpha1.MultiLineTextPattern)
	diskSource     = regexp.MustCompile(computev1alpha1.DiskSourcePattern)
	metadataKey    = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// boundsCheck collects the violations of a request's counts, sizes and
// free-text rules. It reads only the request: it runs before any
// SubjectAccessReview, cloud or kube-apiserver call made per item, so the
// work of a request is bounded by the CRD's limits, not by its body.
type boundsCheck struct{ violations []FieldViolation }

func (b *boundsCheck) add(field, format string, args ...any) {
	b.violations = append(b.violations, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// count refuses a list or map of more than limit entries.
func (b *boundsCheck) count(field string, n, limit int) bool {
	if n > limit {
		b.add(field, "%s has %d entries; at most %d are allowed", field, n, limit)
		return false
	}
	return true
}

// text refuses a string longer than limit bytes or that does not match the
// field's text pattern.
func (b *boundsCheck) text(field, s string, limit int, pattern *regexp.Regexp) {
	switch {
	case len(s) > limit:
		b.add(field, "%s is %d bytes long; at most %d are allowed", field, len(s), limit)
	case pattern != nil && !pattern.MatchString(s):
		b.add(field, "%s must not contain control characters%s", field, lineBreaksNote(pattern))
	}
}

func lineBreaksNote(pattern *regexp.Regexp) string {
	if pattern == multiLineText {
		return " other than tabs and line breaks"
	}
	return ""
}

func (b *boundsCheck) err() *apiError {
	if len(b.violations) == 0 {
		return nil
	}
	return invalidInstance(b.violations, nil)
}

// checkCreateBounds checks every count and size of a create request.
func checkCreateBounds(req *CreateRequest) *apiError {
	var b boundsCheck
	b.text("displayName", req.DisplayName, computev1alpha1.MaxDisplayNameLength, singleLineText)
	b.text("description", req.Description, computev1alpha1.MaxDescriptionLength, multiLineText)
	b.text("type", req.Type, computev1alpha1.MaxURILength, nil)
	b.text("hostname", req.Hostname, computev1alpha1.MaxHostnameLength, nil)
	b.labels(req.Labels)
	b.metadata(req.InstanceMetadata)
	if b.count("disks", len(req.Disks), computev1alpha1.MaxDisks) {
		for i, d := range req.Disks {
			field := fmt.Sprintf("disks[%d].source", i)
			b.text(field, d.Source, computev1alpha1.MaxURILength, nil)
			if d.Source != "" && len(d.Source) <= computev1alpha1.MaxURILength && !diskSource.MatchString(d.Source) {
				b.add(field, "source must be an image URI such as /v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3, "+
					"or a volume or snapshot URI such as /v1/regions/us-texas-1/projects/project-x9y8z7/compute/volumes/volume-1")
			}
		}
	}
	if b.count("nics", len(req.NICs), computev1alpha1.MaxNICs) {
		for i, n := range req.NICs {
			b.text(fmt.Sprintf("nics[%d].network", i), n.Network, computev1alpha1.MaxURILength, nil)
			b.text(fmt.Sprintf("nics[%d].subnet", i), n.Subnet, computev1alpha1.MaxURILength, nil)
		}
	}
	if b.count("gpus", len(req.GPUs), computev1alpha1.MaxGPUs) {
		for i, g := range req.GPUs {
			b.text(fmt.Sprintf("gpus[%d].type", i), g.Type, computev1alpha1.MaxURILength, nil)
		}
	}
	return b.err()
}

// checkPatchBounds checks the fields a PATCH sets. Labels are checked again
// once merged with the stored ones (checkLabelCount).
func checkPatchBounds(p *Patch) *apiError {
	var b boundsCheck
	if p.DisplayName != nil {
		b.text("displayName", *p.DisplayName, computev1alpha1.MaxDisplayNameLength, singleLineText)
	}
	if p.Description != nil {
		b.text("description", *p.Description, computev1alpha1.MaxDescriptionLength, multiLineText)
	}
	if p.InstanceMetadata != nil {
		b.metadata(*p.InstanceMetadata)
	}
	// A patch may remove every stored label and set as many new ones.
	if b.count("labels", len(p.Labels), 2*computev1alpha1.MaxLabels) {
		set := map[string]string{}
		for k, v := range p.Labels {
			if v != nil {
				set[k] = *v
			} else {
				b.labelKey(k)
			}
		}
		b.labels(set)
	}
	return b.err()
}

// labels checks the API's labels: at most MaxLabels, keys without a prefix
// and keys and values by Kubernetes' own rules.
func (b *boundsCheck) labels(labels map[string]string) {
	if !b.count("labels", len(labels), computev1alpha1.MaxLabels) {
		return
	}
	for k, v := range labels {
		if !b.labelKey(k) {
			continue
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			b.add("labels."+k, "the value of label %q is invalid: %s", k, strings.Join(errs, "; "))
		}
	}
}

func (b *boundsCheck) labelKey(k string) bool {
	if strings.Contains(k, "/") {
		b.add("labels", "label key %q must not contain '/'", truncate(k, 64))
		return false
	}
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		b.add("labels", "label key %q is invalid: %s", truncate(k, 64), strings.Join(errs, "; "))
		return false
	}
	return true
}

// metadata checks instanceMetadata: its count, each key and value, unique
// keys, and the total of keys and values.
func (b *boundsCheck) metadata(items []computev1alpha1.MetadataItem) {
	if !b.count("instanceMetadata", len(items), computev1alpha1.MaxInstanceMetadataItems) {
		return
	}
	total := 0
	seen := make(map[string]bool, len(items))
	for i, m := range items {
		field := fmt.Sprintf("instanceMetadata[%d]", i)
		switch {
		case m.Key == "" || len(m.Key) > computev1alpha1.MaxMetadataKeyLength || !metadataKey.MatchString(m.Key):
			b.add(field+".key", "key must be 1-%d letters, digits, '-' and '_'", computev1alpha1.MaxMetadataKeyLength)
		case seen[m.Key]:
			b.add(field+".key", "key %q is given more than once", m.Key)
		}
		seen[m.Key] = true
		b.text(field+".value", m.Value, computev1alpha1.MaxMetadataValueLength, multiLineText)
		total += len(m.Key) + len(m.Value)
	}
	if total > computev1alpha1.MaxInstanceMetadataBytes {
		b.add("instanceMetadata", "the keys and values of instanceMetadata hold %d bytes; at most %d are allowed",
			total, computev1alpha1.MaxInstanceMetadataBytes)
	}
}

// checkLabelCount refuses a stored instance whose labels, the API's and
// tooling's, would number more than MaxLabels after a PATCH.
func checkLabelCount(labels map[string]string, before int) *apiError {
	var b boundsCheck
	if len(labels) > computev1alpha1.MaxLabels && len(labels) > before {
		b.add("labels", "the instance would have %d labels (those with a prefix, set by tooling, included); at most %d are allowed",
			len(labels), computev1alpha1.MaxLabels)
	}
	return b.err()
}
