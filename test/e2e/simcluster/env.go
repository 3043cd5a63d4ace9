package simcluster

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// processEnv is a container process's environment, as "K=V": the image's
// variables, then the container's env in order (a later one wins), values
// as resolved (resolveEnv).
func processEnv(image []string, vars []corev1.EnvVar, resolved map[string]string) []string {
	var order []string
	values := map[string]string{}
	set := func(k, v string) {
		if _, ok := values[k]; !ok {
			order = append(order, k)
		}
		values[k] = v
	}
	for _, kv := range image {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, e := range vars {
		set(e.Name, resolved[e.Name])
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+values[k])
	}
	return out
}

// withEnv sets (or overrides) variables of a process environment.
func withEnv(env []string, kv ...string) []string {
	out := append([]string{}, env...)
	for _, pair := range kv {
		k, _, _ := strings.Cut(pair, "=")
		replaced := false
		for i, have := range out {
			if strings.HasPrefix(have, k+"=") {
				out[i], replaced = pair, true
			}
		}
		if !replaced {
			out = append(out, pair)
		}
	}
	return out
}

// envValue is a variable of a process environment.
func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

func (r *podRun) imageEnv() []string { return r.imgEnv }
