package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the Instance API.
	GroupVersion = schema.GroupVersion{Group: "compute.k0rdent.ai", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a runtime.Scheme. It is
	// apimachinery's, not controller-runtime's deprecated scheme.Builder, so
	// that importing the API pulls in no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Instance{}, &InstanceList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
