package resource

import (
	"maps"
	"testing"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// TestGeneratedValuesRollTheirReaders changes each generated value in turn:
// exactly the pods that read its Secret get a new config hash (a pod started
// with an old password or cookie would keep it; Redis and RabbitMQ read
// theirs only at start), and no other pod restarts.
func TestGeneratedValuesRollTheirReaders(t *testing.T) {
	platforms := platformVariants()
	platforms["redis broker"] = redisBrokerPlatform()
	for variant, p := range platforms {
		base := credentialsFor(p)
		before := podTemplates(t, Children(p, base))
		for _, key := range GeneratedKeys(p) {
			changed := maps.Clone(base)
			changed[key] = base[key] + "-changed"
			for name, tmpl := range podTemplates(t, Children(p, changed)) {
				reads := ReadsAnySecret(tmpl, map[string]bool{key.Secret: true})
				rolled := tmpl.Annotations[AnnotationConfigHash] != before[name].Annotations[AnnotationConfigHash]
				if reads != rolled && (key.Key != KeyErlangCookie || isBrokerTemplate(p, name)) {
					t.Errorf("%s: %s/%s changed: %s rolled=%v, reads that Secret=%v", variant, key.Secret, key.Key, name, rolled, reads)
				}
			}
		}
	}
}

// isBrokerTemplate: apps read the broker Secret (its URL) but not the
// Erlang cookie in it, so a new cookie rolls only the broker.
func isBrokerTemplate(p *platformv1.ParserPlatform, name string) bool {
	return name == "StatefulSet/"+BrokerName(p)
}
