package kubevirt

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// Pauser pauses and unpauses a VirtualMachineInstance. KubeVirt serves this
// as the pause and unpause subresources of its aggregated API
// (subresources.kubevirt.io), not as a field of the VMI.
type Pauser interface {
	Pause(ctx context.Context, namespace, name string) error
	Unpause(ctx context.Context, namespace, name string) error
}

// SubresourceGroupVersion is KubeVirt's aggregated subresource API.
var SubresourceGroupVersion = schema.GroupVersion{Group: "subresources.kubevirt.io", Version: "v1"}

// SubresourcePauser calls PUT
// /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/pause
// (and /unpause), as virtctl pause vmi does.
type SubresourcePauser struct {
	client rest.Interface
}

// NewSubresourcePauser returns a Pauser that talks to the cluster of cfg.
func NewSubresourcePauser(cfg *rest.Config) (*SubresourcePauser, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &SubresourceGroupVersion
	cfg.APIPath = "/apis"
	cfg.ContentType = "application/json"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	c, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create the KubeVirt subresource client: %w", err)
	}
	return &SubresourcePauser{client: c}, nil
}

// Pause implements Pauser.
func (s *SubresourcePauser) Pause(ctx context.Context, namespace, name string) error {
	return s.put(ctx, namespace, name, "pause")
}

// Unpause implements Pauser.
func (s *SubresourcePauser) Unpause(ctx context.Context, namespace, name string) error {
	return s.put(ctx, namespace, name, "unpause")
}

func (s *SubresourcePauser) put(ctx context.Context, namespace, name, subresource string) error {
	return s.client.Put().
		Namespace(namespace).
		Resource("virtualmachineinstances").
		Name(name).
		SubResource(subresource).
		SetHeader("Content-Type", "application/json").
		Body([]byte("{}")).
		Do(ctx).
		Error()
}
