package v1alpha1

// The bounds of what a tenant stores in one Instance. Every Instance lives in
// the caches of both the controllers and the REST API, so each field that a
// tenant fills has a count and a size. The CRD's markers (which cannot name a
// Go constant) carry the same numbers; TestCRDBoundsAreTheConstants fails if
// the generated schema and these constants disagree, and the REST API checks
// a request against these constants before any per-item call.
const (
	// MaxDisplayNameLength bounds spec.displayName.
	MaxDisplayNameLength = 256
	// MaxDescriptionLength bounds spec.description.
	MaxDescriptionLength = 4096
	// MaxURILength bounds every resource URI of the spec (type, disk
	// sources, networks, subnets, GPU types).
	MaxURILength = 512
	// MaxHostnameLength bounds spec.hostname (RFC 1035's 253).
	MaxHostnameLength = 253
	// MaxInstanceMetadataItems bounds the entries of spec.instanceMetadata.
	MaxInstanceMetadataItems = 128
	// MaxMetadataKeyLength bounds an instanceMetadata key.
	MaxMetadataKeyLength = 127
	// MaxMetadataValueLength bounds one instanceMetadata value; the items
	// together are bounded by MaxInstanceMetadataBytes.
	MaxMetadataValueLength = 262144
	// MaxDisks, MaxNICs and MaxGPUs bound spec.disks, spec.nics and spec.gpus.
	MaxDisks = 16
	MaxNICs  = 8
	MaxGPUs  = 8

	// MaxLabels bounds metadata.labels, the REST API's labels and tooling's
	// together: Compute Engine's 64. Keys and values follow Kubernetes'
	// rules (a key's name part and a value at most 63 characters), so 64
	// labels hold at most about 24 KiB. The CRD schema cannot constrain
	// metadata; config/admission/instance_bounds_policy.yaml enforces it
	// for every writer.
	MaxLabels = 64
	// MaxAnnotations bounds the number of metadata.annotations. Their total
	// size is bounded by kube-apiserver itself for every object (256 KiB,
	// TotalAnnotationSizeLimitB), which leaves room for kubectl's
	// last-applied-configuration of an Instance whose instanceMetadata is
	// near its own bound.
	MaxAnnotations = 64
	// MaxFinalizers and MaxOwnerReferences bound the other lists of
	// metadata that a writer fills and Kubernetes leaves unbounded.
	MaxFinalizers      = 16
	MaxOwnerReferences = 16
)

// Patterns of the CRD's free-text fields: no control characters, except that
// multi-line text (description, instanceMetadata values such as ssh-keys)
// may hold tabs and line breaks. NUL and the other controls corrupt logs,
// terminals and the guest's metadata readers. The CRD's Pattern markers are
// these strings; TestCRDBoundsAreTheConstants checks it.
const (
	SingleLineTextPattern = `^[^\x00-\x1F\x7F]*$`
	MultiLineTextPattern  = `^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$`
)

// DiskSourcePattern is the shape of a disk's source URI, as the CRD's CEL
// rule on spec.disks[].source matches it (TestCRDBoundsAreTheConstants
// checks that the rule is self.matches of this pattern).
const DiskSourcePattern = `^/v1/regions/[a-z0-9]([-a-z0-9]*[a-z0-9])?/(compute/images|projects/[a-z0-9]([-a-z0-9]*[a-z0-9])?/compute/(volumes|snapshots))/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$`
