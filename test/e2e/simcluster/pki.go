package simcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the cluster's private key infrastructure: one CA that signs the API
// server's serving certificate and the admin client certificate, and the key
// that signs ServiceAccount tokens. ECDSA P-256 keys: generating them takes
// microseconds, where RSA 2048 takes tens of milliseconds each.
type pki struct {
	dir string

	CACert, CAKey           string // also --cluster-signing-* for CSRs
	ServingCert, ServingKey string
	AdminCert, AdminKey     string
	SAKey, SAPub            string // --service-account-signing-key-file / --service-account-key-file
}

// newPKI writes every key and certificate into dir. serviceIP is the first
// address of the Service range, the ClusterIP of default/kubernetes, which
// in-cluster clients use to reach the API server.
func newPKI(dir string, serviceIP net.IP) (*pki, error) {
	p := &pki{dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour) // tolerate small clock differences
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "simcluster-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	if p.CACert, p.CAKey, err = p.write("ca", caDER, caKey); err != nil {
		return nil, err
	}

	serving := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), serviceIP},
	}
	if p.ServingCert, p.ServingKey, err = p.signed("apiserver", serving, caCert, caKey); err != nil {
		return nil, err
	}

	// system:masters: the admin kubeconfig, and the identity of
	// kube-controller-manager (which runs with
	// --use-service-account-credentials=false), kube-scheduler and kwok.
	admin := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.AdminCert, p.AdminKey, err = p.signed("admin", admin, caCert, caKey); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if p.SAKey, err = p.writeKey("sa", saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	p.SAPub = filepath.Join(dir, "sa.pub")
	return p, writePEM(p.SAPub, "PUBLIC KEY", pubDER)
}

func (p *pki) signed(name string, tmpl, ca *x509.Certificate, caKey crypto.Signer) (string, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("signing the %s certificate: %w", name, err)
	}
	return p.write(name, der, key)
}

func (p *pki) write(name string, certDER []byte, key *ecdsa.PrivateKey) (string, string, error) {
	cert := filepath.Join(p.dir, name+".crt")
	if err := writePEM(cert, "CERTIFICATE", certDER); err != nil {
		return "", "", err
	}
	keyPath, err := p.writeKey(name, key)
	return cert, keyPath, err
}

func (p *pki) writeKey(name string, key *ecdsa.PrivateKey) (string, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.dir, name+".key")
	return path, writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
