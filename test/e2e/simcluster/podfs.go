package simcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podFS is what a container of a pod would see of its volumes, written out
// under a directory of the machine: mount path -> directory (or file, for a
// subPath mount).
type podFS struct {
	mounts []mount // deepest mount path first
}

type mount struct{ path, host string }

// podFSOf is the container's view of its volumes for a server that runs
// on the machine's own file system (redis-server): paths are moved instead
// of mounted.
func podFSOf(mounts []bindMount) *podFS {
	fs := &podFS{}
	for _, m := range mounts {
		fs.mounts = append(fs.mounts, mount{path: m.target, host: m.source})
	}
	sort.Slice(fs.mounts, func(i, j int) bool { return len(fs.mounts[i].path) > len(fs.mounts[j].path) })
	return fs
}

// hostPath maps a path inside the container to the machine; anything else
// (a flag, a relative path, a path on no volume) is returned unchanged.
func (fs *podFS) hostPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return p
	}
	clean := filepath.Clean(p)
	for _, m := range fs.mounts {
		if clean == m.path {
			return m.host
		}
		if strings.HasPrefix(clean, m.path+"/") {
			return filepath.Join(m.host, strings.TrimPrefix(clean, m.path+"/"))
		}
	}
	return p
}

// rewriteConfig moves the container paths of a redis.conf (dir,
// cluster-config-file, include, ...) to the machine, in place, and the files
// it includes likewise. Only the arguments of directives change.
func (fs *podFS) rewriteConfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the config file %s: %w", path, err)
	}
	var out []string
	var includes []string
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			out = append(out, line)
			continue
		}
		changed := false
		for i, f := range fields[1:] {
			if h := fs.hostPath(f); h != f {
				fields[i+1], changed = h, true
			}
		}
		if strings.EqualFold(fields[0], "include") {
			includes = append(includes, fields[1])
		}
		if changed {
			line = strings.Join(fields, " ")
		}
		out = append(out, line)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		return err
	}
	for _, inc := range includes {
		// An included file (the Secret's auth.conf) is read, never written:
		// its only arguments are passwords, which must stay byte for byte.
		if _, err := os.Stat(inc); err != nil {
			return fmt.Errorf("%s includes %s, which the pod does not have: %w", path, inc, err)
		}
	}
	return nil
}

// resolveEnv is the container's environment as a kubelet builds it: values
// (with $(VAR) of earlier ones expanded), fields of the pod, keys of
// ConfigMaps and Secrets.
func (rt *runtime) resolveEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = podField(pod, e.ValueFrom.FieldRef.FieldPath)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := rt.c.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env[e.Name] = string(s.Data[ref.Key])
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := rt.c.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env[e.Name] = cm.Data[ref.Key]
		}
	}
	return env, nil
}

func podField(pod *corev1.Pod, path string) string {
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	case "status.podIP":
		return pod.Status.PodIP
	case "status.hostIP":
		return pod.Status.HostIP
	}
	return ""
}

// expand replaces $(VAR) with env's VAR and $$ with $, leaving unknown
// references as they are: Kubernetes' rule for command, args and env.
func expand(s string, env map[string]string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			out.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			out.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				out.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				out.WriteString(v)
			} else {
				out.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			out.WriteByte(s[i])
		}
	}
	return out.String()
}
