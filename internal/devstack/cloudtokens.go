package devstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/k0rdent-ai/instance-operator/internal/simcloud"
)

// The simulated cloud's callers, named as config/default names them: the
// controllers' service account, whose token (audience simcloud) the
// manager sends, and the cloud's operator, whose token sets faults and
// capacity. Only these two are admitted; every other principal, the
// deployer included, is refused.
const (
	OperatorNamespace           = "instance-operator-system"
	ControllerServiceAccount    = "instance-operator-controller-manager"
	SimcloudAdminServiceAccount = "instance-operator-simcloud-admin"
	simcloudCallerTokenFileName = "simcloud-token"
	simcloudAdminTokenFileName  = "simcloud-admin-token"
)

// writeSimcloudTokens makes the two service accounts and writes a token of
// each, minted by the TokenRequest API for the cloud's audience, as the
// kubelet's projected token volume does in a cluster.
func (s *Stack) writeSimcloudTokens(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}
	if err := s.client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", OperatorNamespace, err)
	}
	clientset, err := kubernetes.NewForConfig(s.Config)
	if err != nil {
		return err
	}
	s.SimcloudCallerTokenFile = filepath.Join(s.opts.DataDir, simcloudCallerTokenFileName)
	s.SimcloudAdminTokenFile = filepath.Join(s.opts.DataDir, simcloudAdminTokenFileName)
	for name, path := range map[string]string{ControllerServiceAccount: s.SimcloudCallerTokenFile, SimcloudAdminServiceAccount: s.SimcloudAdminTokenFile} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: OperatorNamespace}}
		if err := s.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create service account %s: %w", name, err)
		}
		tr, err := clientset.CoreV1().ServiceAccounts(OperatorNamespace).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences:         []string{simcloud.DefaultAudience},
				ExpirationSeconds: ptr.To(int64(tokenLifetime / time.Second)),
			}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("failed to request a simulated cloud token for %s: %w", name, err)
		}
		if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
			return fmt.Errorf("failed to write the simulated cloud's token: %w", err)
		}
	}
	s.logf("simulated cloud tokens (audience %s) of %s/%s and %s/%s written to %s and %s", simcloud.DefaultAudience,
		OperatorNamespace, ControllerServiceAccount, OperatorNamespace, SimcloudAdminServiceAccount,
		s.SimcloudCallerTokenFile, s.SimcloudAdminTokenFile)
	return nil
}

// simcloudAccessArgs admit the controllers' and the admin's service accounts.
func simcloudAccessArgs() []string {
	return []string{
		"--caller-service-accounts=" + OperatorNamespace + "/" + ControllerServiceAccount,
		"--admin-service-accounts=" + OperatorNamespace + "/" + SimcloudAdminServiceAccount,
	}
}

// SimcloudAdmin is a client of the simulated cloud's service holding the
// admin's token: it lists machines and sets faults and capacity.
func (s *Stack) SimcloudAdmin() (*simcloud.Client, error) {
	opts := simcloud.DefaultClientOptions()
	opts.TokenFile = s.SimcloudAdminTokenFile
	return simcloud.NewClient(s.SimcloudURL, opts)
}
