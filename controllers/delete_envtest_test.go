package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// TestStaleReadNeverLetsAnInstanceGo, on the real kube-apiserver: a pass
// reads a deleted instance whose status names a lost machine; just after
// that read another pass stored a replacement's create token and the cloud
// made the replacement. The stale pass finds the lost machine gone, and its
// finalizer removal, which carries the resourceVersion it read, conflicts;
// the next pass reads the new version and deletes the replacement before
// the instance goes.
func TestStaleReadNeverLetsAnInstanceGo(t *testing.T) {
	ctx := context.Background()
	ns := fmt.Sprintf("stale-%d-%d", os.Getpid()%10000, nsCounter.Add(1))
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	inst := &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: "vm", Namespace: ns, Finalizers: []string{computev1alpha1.Finalizer}},
		Spec:       computev1alpha1.InstanceSpec{Type: typeURI},
	}
	if err := env.Client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	lost := provider.CreateToken(inst)
	setMachine := func(ref computev1alpha1.MachineRef) *computev1alpha1.Instance {
		t.Helper()
		fresh := &computev1alpha1.Instance{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(inst), fresh); err != nil {
			t.Fatal(err)
		}
		fresh.Status.Machine = ref
		if err := env.Client.Status().Update(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	setMachine(computev1alpha1.MachineRef{Provider: simulated.Name, ID: "vm-lost", CreateToken: lost})
	if err := env.Client.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	stale := &computev1alpha1.Instance{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(inst), stale); err != nil {
		t.Fatal(err)
	}
	cfg := simulated.DefaultConfig()
	cfg.Latencies, cfg.Seed = simulated.Latencies{}, 1
	cloud, err := simulated.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	replaced := setMachine(computev1alpha1.MachineRef{Provider: simulated.Name, CreateToken: provider.ReplacementToken(lost)})
	if _, err := cloud.Create(ctx, replaced); err != nil {
		t.Fatal(err)
	}

	live, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	served := false
	// The first read is the stale one, as a cache that has not seen the status write yet answers.
	reader := interceptor.NewClient(live, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if out, ok := obj.(*computev1alpha1.Instance); ok && !served && key == client.ObjectKeyFromObject(inst) {
				served = true
				stale.DeepCopyInto(out)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.InstanceReconciler{Client: reader, Provider: cloud, Recorder: events.NewFakeRecorder(100)}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(inst)}

	_, err = r.Reconcile(ctx, req)
	if !apierrors.IsConflict(err) {
		t.Fatalf("the pass on the stale read ended with %v, want a conflict", err)
	}
	now := &computev1alpha1.Instance{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(inst), now); err != nil || !controllerutil.ContainsFinalizer(now, computev1alpha1.Finalizer) {
		t.Fatalf("the finalizer went on a stale read while the replacement runs (get: %v)", err)
	}
	for pass := 0; pass < 5; pass++ {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(inst), now); apierrors.IsNotFound(err) {
			break
		}
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(inst), now); !apierrors.IsNotFound(err) {
		t.Errorf("the instance is still there after five passes: %v", err)
	}
	if left := cloud.Machines(); len(left) != 0 {
		t.Errorf("machines left in the cloud: %+v", left)
	}
}
