package controller

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// generatedValueLength gives ~190 bits of entropy with the alphabet below.
const generatedValueLength = 32

// alphanumeric values are safe in URLs (amqp://user:pass@host) and configs.
const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// missingCredential is a generated value whose Secret (or key) is gone while
// the data it opens still exists: a new value would not open that data (the
// postgres image skips initdb on a non-empty data directory, so its roles
// keep the old password), so none is generated.
type missingCredential struct {
	resource.DataCredential
	key string
}

func (m missingCredential) Error() string {
	return fmt.Sprintf("Secret %s has no %q while the volumes of %s exist: a new value would not open their data, so none is generated; "+
		"restore the Secret from a backup (kubectl apply of the saved Secret, with that key), or delete those PersistentVolumeClaims to start %s empty",
		m.Secret, m.key, m.Identity, m.Identity)
}

// resolveCredentials returns every generated value of the platform: the one
// stored in the live Secret when there is one, else a new random value, but
// only while the component the value opens has no data volume yet. Values
// are never logged.
func (r *ParserPlatformReconciler) resolveCredentials(ctx context.Context, p *platformv1.ParserPlatform) (resource.Credentials, []missingCredential, error) {
	creds := resource.Credentials{}
	var missing []missingCredential
	live := map[string]*corev1.Secret{}
	volumes := map[string]bool{} // by component identity: has a PVC
	for _, key := range resource.GeneratedKeys(p) {
		secret, seen := live[key.Secret]
		if !seen {
			var err error
			if secret, err = r.liveSecret(ctx, p.Namespace, key.Secret); err != nil {
				return nil, nil, err
			}
			live[key.Secret] = secret
		}
		if value := string(secret.Data[key.Key]); value != "" {
			creds[key] = value
			continue
		}
		if data, ok := resource.DataCredentialOf(p, key.Secret); ok {
			exists, looked := volumes[data.Identity]
			if !looked {
				var err error
				if exists, err = r.dataVolumesExist(ctx, p, data.Identity); err != nil {
					return nil, nil, err
				}
				volumes[data.Identity] = exists // the broker's two keys share one look
			}
			if exists {
				missing = append(missing, missingCredential{DataCredential: data, key: key.Key})
				continue
			}
		}
		value, err := randomValue(generatedValueLength)
		if err != nil {
			return nil, nil, err
		}
		creds[key] = value
	}
	return creds, missing, nil
}

// dataVolumesExist tells whether a stateful component has a PVC. It reads
// past the cache (PVCs are not watched) and only when a generated value is
// missing, which is once per platform in normal operation.
func (r *ParserPlatformReconciler) dataVolumesExist(ctx context.Context, p *platformv1.ParserPlatform, identity string) (bool, error) {
	pvcs := &corev1.PersistentVolumeClaimList{}
	err := r.APIReader.List(ctx, pvcs, client.InNamespace(p.Namespace),
		client.MatchingLabels(resource.DataVolumeSelector(p, identity)), client.Limit(1))
	if err != nil {
		return false, fmt.Errorf("looking for the data volumes of %s: %w", identity, err)
	}
	return len(pvcs.Items) > 0, nil
}

// liveSecret reads a Secret through the cache and, on a miss, once more past
// it: a Secret created a moment ago may not be cached yet, and generating a
// second password for it would overwrite the one its database was made with.
// A Secret that does not exist comes back empty.
func (r *ParserPlatformReconciler) liveSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, secret)
	}
	if apierrors.IsNotFound(err) {
		return &corev1.Secret{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	return secret, nil
}

// randomValue draws n characters from alphanumeric with crypto/rand,
// without modulo bias.
func randomValue(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generating a secret value: %w", err)
		}
		for _, b := range buf {
			// 248 = 4 * 62: values above it would favour the first characters.
			if int(b) < 4*len(alphanumeric) && len(out) < n {
				out = append(out, alphanumeric[int(b)%len(alphanumeric)])
			}
		}
	}
	return string(out), nil
}

// withholdChildren splits the desired children into those to write and those
// withheld because a missing credential leaves them wrong: the Secret with the
// hole, and every workload whose pods read that Secret (a new template would
// roll them onto a value that does not open the data). Withheld children
// are left as they are, neither written nor pruned.
func withholdChildren(desired []client.Object, missing []missingCredential) (write, withheld []client.Object) {
	if len(missing) == 0 {
		return desired, nil
	}
	gone := map[string]bool{}
	for _, m := range missing {
		gone[m.Secret] = true
	}
	for _, obj := range desired {
		_, isSecret := obj.(*corev1.Secret)
		if (isSecret && gone[obj.GetName()]) || resource.ReadsAnySecret(resource.PodTemplateOf(obj), gone) {
			withheld = append(withheld, obj)
		} else {
			write = append(write, obj)
		}
	}
	return write, withheld
}
