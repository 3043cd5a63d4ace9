package backup

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credential names. The Secret keys are the ones spec.backup.objectStore's
// secretRef documents, so the Secret can be mounted as a volume unchanged;
// the environment variables are the AWS SDKs' own, so a Job can also take
// them with secretKeyRef.
const (
	AccessKeyIDKey     = "accessKeyId"
	SecretAccessKeyKey = "secretAccessKey"
	AccessKeyIDEnv     = "AWS_ACCESS_KEY_ID"
	SecretAccessKeyEnv = "AWS_SECRET_ACCESS_KEY" //nolint:gosec // G101: an environment variable's name, not a credential.
)

// ObjectStore says where backup sets live: the data plane's view of
// spec.backup.objectStore, with the Secret's contents already read.
type ObjectStore struct {
	// Endpoint is a URL (https://s3.example.com, http://127.0.0.1:9000) or a
	// bare host[:port], which means https.
	Endpoint string
	// Bucket must exist; the operator never creates buckets.
	Bucket string
	// Prefix is prepended to every key (no leading or trailing "/" needed).
	Prefix string
	// Region is sent in signatures; empty lets the client discover it.
	Region string
	// Credentials sign the requests. They are not printed by String.
	Credentials Credentials
	// InsecureSkipTLSVerify accepts any server certificate (test stores only).
	InsecureSkipTLSVerify bool
	// CAPEM, when set, is the only CA trusted for the endpoint's certificate.
	CAPEM []byte
	// PartSize is the multipart part size of uploads (0: DefaultPartSize):
	// an upload holds one part in memory, and an object has at most 10,000.
	PartSize uint64
}

// Credentials are an access key pair. Its String and GoString redact the
// secret so that a %v of a config in a log line or an error cannot leak it.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// String shows only whether the credentials are set.
func (c Credentials) String() string {
	if c.AccessKeyID == "" && c.SecretAccessKey == "" {
		return "<none>"
	}
	return "<redacted>"
}

// GoString keeps %#v as quiet as %v.
func (c Credentials) GoString() string { return c.String() }

// LoadCredentials reads the key pair from dir (a mounted Secret: files
// accessKeyId and secretAccessKey) when dir is not empty, otherwise from the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Secrets never come
// from command-line arguments, which any process on the node can read.
func LoadCredentials(dir string, getenv func(string) string) (Credentials, error) {
	if dir == "" {
		c := Credentials{AccessKeyID: getenv(AccessKeyIDEnv), SecretAccessKey: getenv(SecretAccessKeyEnv)}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return Credentials{}, fmt.Errorf("object store credentials: set %s and %s, or mount the Secret and pass its directory",
				AccessKeyIDEnv, SecretAccessKeyEnv)
		}
		return c, nil
	}
	read := func(key string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, key)) //nolint:gosec // G304: the mounted credentials Secret's directory and a fixed key name.
		if err != nil {
			return "", fmt.Errorf("object store credentials: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("object store credentials: %s is empty", filepath.Join(dir, key))
		}
		return v, nil
	}
	id, err := read(AccessKeyIDKey)
	if err != nil {
		return Credentials{}, err
	}
	secret, err := read(SecretAccessKeyKey)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
}

// Store is a client for one bucket and prefix.
type Store struct {
	client   *minio.Client
	bucket   string
	prefix   string
	partSize uint64
}

// DefaultPartSize is the multipart part size of uploads: 64 MiB of memory
// per upload, objects up to 640 GiB.
const DefaultPartSize = 64 << 20

// NewStore checks cfg and builds a client; it makes no request, so a wrong
// endpoint or key shows up on first use, with the object key in the error.
func NewStore(cfg ObjectStore) (*Store, error) {
	host, secure, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Bucket == "" {
		return nil, errors.New("object store: bucket is required")
	}
	if cfg.Credentials.AccessKeyID == "" || cfg.Credentials.SecretAccessKey == "" {
		return nil, errors.New("object store: credentials are required")
	}
	transport, err := newTransport(cfg, secure)
	if err != nil {
		return nil, err
	}
	client, err := minio.New(host, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.Credentials.AccessKeyID, cfg.Credentials.SecretAccessKey, ""),
		Secure:    secure,
		Region:    cfg.Region,
		Transport: transport,
		// Path-style for any endpoint but AWS's own: in-cluster stores and
		// test servers have no wildcard DNS for bucket subdomains.
		BucketLookup: minio.BucketLookupAuto,
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", cfg.Endpoint, err)
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	return &Store{client: client, bucket: cfg.Bucket, prefix: strings.Trim(cfg.Prefix, "/"), partSize: partSize}, nil
}

// parseEndpoint splits an endpoint into the host minio-go wants and whether
// to use TLS.
func parseEndpoint(endpoint string) (host string, secure bool, err error) {
	if endpoint == "" {
		return "", false, errors.New("object store: endpoint is required")
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("object store endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("object store endpoint %q: scheme must be http or https", endpoint)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("object store endpoint %q: want scheme://host[:port] only (the bucket and prefix are separate fields)", endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}

func newTransport(cfg ObjectStore, secure bool) (http.RoundTripper, error) {
	t, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	if !secure {
		return t, nil
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if len(cfg.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAPEM) {
			return nil, errors.New("object store: the CA bundle holds no PEM certificate")
		}
		t.TLSClientConfig.RootCAs = pool
	}
	t.TLSClientConfig.InsecureSkipVerify = cfg.InsecureSkipTLSVerify
	return t, nil
}
