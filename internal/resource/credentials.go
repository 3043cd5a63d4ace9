package resource

import (
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// SecretKey names one generated value: a key of a Secret the platform owns.
type SecretKey struct {
	Secret string
	Key    string
}

// Credentials are the generated secret values (passwords, the Erlang cookie)
// the builders need. The controller resolves them before building: the value
// already stored in the live Secret, or a new random one when the Secret does
// not exist yet. So builders stay pure, and a password is made once and never
// regenerated.
type Credentials map[SecretKey]string

// Digest is the part of a config hash input that covers generated values:
// a pod that reads one of them (from env or a file) must restart when it
// changes. ConfigHash keeps only a truncated sha256 of it, so no value shows
// in the pod template.
func (c Credentials) Digest(keys ...SecretKey) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k.Secret+"/"+k.Key] = c[k]
	}
	return out
}

// Get returns a resolved value; "" when it was not resolved (the render
// subcommand and unit tests may leave values out).
func (c Credentials) Get(secret, key string) string {
	return c[SecretKey{Secret: secret, Key: key}]
}

// AnnotationRetainedFor marks a credentials Secret released from a deleted
// platform (deletionPolicy Retain) together with the volumes it opens; its
// value is the platform's name. A platform of that name adopts the Secret
// again, so its data opens with the password it was made with.
const AnnotationRetainedFor = "platform.vkparser.io/retained-for"

// DataCredential is a Secret of generated values that open a stateful
// component's data: the passwords a shard's roles were created with, the
// cache's password (in its nodes' configuration), the broker's user and
// Erlang cookie. Such a value must live as long as the component's volumes.
type DataCredential struct {
	Secret string
	// Identity is the app.kubernetes.io/name of the component, which its
	// StatefulSet's PVCs carry too.
	Identity  string
	Component string
}

// DataCredentials lists the platform's data credentials Secrets.
func DataCredentials(p *platformv1.ParserPlatform) []DataCredential {
	out := make([]DataCredential, 0, ShardCount(p)+2)
	for i := range ShardCount(p) {
		out = append(out, DataCredential{Secret: ShardSecretName(p, i), Identity: ShardName(i), Component: ComponentDatabase})
	}
	out = append(out, DataCredential{Secret: CacheName(p), Identity: cacheName, Component: ComponentCache})
	if hasQueues(p) {
		out = append(out, DataCredential{Secret: BrokerName(p), Identity: brokerName, Component: ComponentBroker})
	}
	return out
}

// DataCredentialSecrets are the names of DataCredentials.
func DataCredentialSecrets(p *platformv1.ParserPlatform) []string {
	var out []string
	for _, c := range DataCredentials(p) {
		out = append(out, c.Secret)
	}
	return out
}

// DataCredentialOf finds the data credential stored in Secret secret.
func DataCredentialOf(p *platformv1.ParserPlatform, secret string) (DataCredential, bool) {
	for _, c := range DataCredentials(p) {
		if c.Secret == secret {
			return c, true
		}
	}
	return DataCredential{}, false
}

// DataVolumeSelector selects the PVCs of one stateful component.
func DataVolumeSelector(p *platformv1.ParserPlatform, identity string) map[string]string {
	return mergeMaps(InstanceSelector(p), SelectorLabels(p, identity))
}

// PodTemplateOf is the pod template of a Deployment or StatefulSet, nil for
// other kinds.
func PodTemplateOf(obj client.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	}
	return nil
}

// ReadsAnySecret tells whether pods of the template read one of the Secrets,
// through env, envFrom or a volume.
func ReadsAnySecret(t *corev1.PodTemplateSpec, names map[string]bool) bool {
	if t == nil {
		return false
	}
	for _, v := range t.Spec.Volumes {
		if v.Secret != nil && names[v.Secret.SecretName] {
			return true
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && names[src.Secret.Name] {
					return true
				}
			}
		}
	}
	for _, c := range slices.Concat(t.Spec.InitContainers, t.Spec.Containers) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && names[e.ValueFrom.SecretKeyRef.Name] {
				return true
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && names[e.SecretRef.Name] {
				return true
			}
		}
	}
	return false
}
