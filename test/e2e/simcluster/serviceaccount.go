package simcluster

import (
	"context"
	"fmt"
	"os"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubeconfigFor writes a kubeconfig that authenticates as the ServiceAccount
// namespace/name with a token from the TokenRequest API (valid for a day),
// for a process that must run with exactly that account's permissions: the
// operator, beside the cluster, with the RBAC its chart grants.
func (c *Cluster) KubeconfigFor(ctx context.Context, namespace, name, path string) error {
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr[int64](24 * 3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	ca, err := os.ReadFile(c.caCert)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: simcluster
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: %s
  user: {token: %s}
contexts:
- name: simcluster
  context: {cluster: simcluster, user: %s, namespace: %s}
current-context: simcluster
`, c.Config.Host, base64Std(ca), name, tr.Status.Token, name, namespace)
	return os.WriteFile(path, []byte(cfg), 0o600)
}
