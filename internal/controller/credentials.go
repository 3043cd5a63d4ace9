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

// resolveCredentials returns every generated value of the platform: the one
// stored in the live Secret when there is one, else a new random value.
// Values are never logged.
func (r *ParserPlatformReconciler) resolveCredentials(ctx context.Context, p *platformv1.ParserPlatform) (resource.Credentials, error) {
	creds := resource.Credentials{}
	live := map[string]*corev1.Secret{}
	for _, key := range resource.GeneratedKeys(p) {
		secret, seen := live[key.Secret]
		if !seen {
			var err error
			if secret, err = r.liveSecret(ctx, p.Namespace, key.Secret); err != nil {
				return nil, err
			}
			live[key.Secret] = secret
		}
		if value := string(secret.Data[key.Key]); value != "" {
			creds[key] = value
			continue
		}
		value, err := randomValue(generatedValueLength)
		if err != nil {
			return nil, err
		}
		creds[key] = value
	}
	return creds, nil
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
