package resource

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
)

// ConfigHash hashes configuration contents (ConfigMap data) in a stable key
// order. Pod templates carry it, so a config change, and only a config
// change, rolls the pods that read the config.
func ConfigHash(configs ...map[string]string) string {
	h := sha256.New()
	for _, data := range configs {
		for _, k := range slices.Sorted(maps.Keys(data)) {
			h.Write([]byte(k))
			h.Write([]byte{0})
			h.Write([]byte(data[k]))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
