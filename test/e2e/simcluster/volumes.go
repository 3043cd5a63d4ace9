package simcluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kubelet's side of volumes, for the runtime: every volume of a pod is
// a directory on the machine (ConfigMap and Secret volumes written out as
// the kubelet's atomic writer lays them out, emptyDir a directory per pod,
// a PVC a directory per claim UID that outlives the pod), and the pod's
// securityContext.fsGroup is applied to them at every pod start.

// Modes the kubelet uses.
const (
	defaultVolumeFileMode = 0o644 // ConfigMap/Secret defaultMode when unset
	emptyDirMode          = 0o777 // the kubelet creates emptyDirs world-writable
	// A provisioned volume's root belongs to root and is not writable by a
	// non-root container until fsGroup makes it so (as on most CSI drivers).
	pvcRootMode = 0o755
	// pkg/volume/volume_linux.go: what fsGroup adds.
	fsGroupRW   = 0o660
	fsGroupRO   = 0o440
	fsGroupExec = 0o110
)

// owner is a uid and gid on the machine.
type owner struct{ uid, gid int }

// volumeSet is the pod's volumes on the machine, by volume name.
type volumeSet struct {
	dirs map[string]string
}

// podVolumes materializes every volume of the pod under podDir (PVCs under
// pvcRoot) and applies fsGroup. fsOwner is who the fsGroup files are given
// to: the harness cannot make the server join a group the pod names, so
// the server's own user owns what the kubelet would give to fsGroup, and
// only the mode bits decide, as they would in the pod.
func (rt *runtime) podVolumes(ctx context.Context, pod *corev1.Pod, podDir string, fsOwner *owner) (*volumeSet, error) {
	vs := &volumeSet{dirs: map[string]string{}}
	fsGroup := pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		dir, err := rt.volumeDir(ctx, pod, podDir, vol)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		vs.dirs[vol.Name] = dir
		if fsGroup && fsOwner != nil {
			readOnly := vol.ConfigMap != nil || vol.Secret != nil || vol.Projected != nil || vol.DownwardAPI != nil
			if err := applyFSGroup(dir, *fsOwner, readOnly); err != nil {
				return nil, fmt.Errorf("volume %q: fsGroup: %w", vol.Name, err)
			}
		}
	}
	return vs, nil
}

func (rt *runtime) volumeDir(ctx context.Context, pod *corev1.Pod, podDir string, vol *corev1.Volume) (string, error) {
	dir := filepath.Join(podDir, "volumes", vol.Name)
	switch {
	case vol.ConfigMap != nil:
		cm, err := rt.c.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, vol.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		data := map[string][]byte{}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
		return dir, writeAtomicVolume(dir, data, vol.ConfigMap.Items, vol.ConfigMap.DefaultMode)
	case vol.Secret != nil:
		s, err := rt.c.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, vol.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return dir, writeAtomicVolume(dir, s.Data, vol.Secret.Items, vol.Secret.DefaultMode)
	case vol.PersistentVolumeClaim != nil:
		pvc, err := rt.c.Client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, vol.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		dir = filepath.Join(rt.root, "pvcs", pod.Namespace, pvc.Name+"-"+string(pvc.UID))
		if _, err := os.Stat(dir); err == nil {
			return dir, nil
		}
		if err := os.MkdirAll(dir, pvcRootMode); err != nil {
			return "", err
		}
		return dir, os.Chmod(dir, pvcRootMode)
	case vol.EmptyDir != nil:
		if err := os.MkdirAll(dir, emptyDirMode); err != nil {
			return "", err
		}
		return dir, os.Chmod(dir, emptyDirMode) // past the umask
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// writeVolume writes a ConfigMap or Secret volume with the default mode.
func writeVolume(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	return writeAtomicVolume(dir, data, items, nil)
}

// writeAtomicVolume writes the keys of a ConfigMap or Secret as the
// kubelet's atomic writer does: the files in a timestamped directory
// "..<time>", a symlink "..data" to it, and for each top-level entry a
// symlink "<name>" -> "..data/<name>". All keys, or only the listed items
// under their paths and modes.
func writeAtomicVolume(dir string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32) error {
	mode := os.FileMode(defaultVolumeFileMode)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & os.ModePerm
	}
	type file struct {
		data []byte
		mode os.FileMode
	}
	files := map[string]file{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = file{v, mode}
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q not found", it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode) & os.ModePerm
		}
		files[filepath.Clean(it.Path)] = file{v, m}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	ts := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	for path, f := range files {
		full := filepath.Join(dir, ts, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil { // past the umask
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	top := map[string]bool{}
	for path := range files {
		top[strings.SplitN(path, "/", 2)[0]] = true
	}
	for name := range top {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// applyFSGroup is the kubelet's SetVolumeOwnership with fsGroupChangePolicy
// Always: every file and directory of the volume goes to the fsGroup (here:
// to o, see podVolumes), files get group read/write (read only for a
// read-only volume), directories also setgid and group search. Symlinks
// are given away but their modes are left alone.
func applyFSGroup(root string, o owner, readOnly bool) error {
	mask := os.FileMode(fsGroupRW)
	if readOnly {
		mask = fsGroupRO
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, o.uid, o.gid); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(path, fsGroupMode(info.Mode(), mask))
	})
}

// fsGroupMode is the mode applyFSGroup gives a file or directory.
func fsGroupMode(m, mask os.FileMode) os.FileMode {
	out := m&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) | mask
	if m.IsDir() {
		out |= os.ModeSetgid | fsGroupExec
	}
	return out
}

// mountsOf is where the container's volumes go: mount path -> machine path
// (a subPath mount is the file or directory inside the volume), parents
// before children, as the runtime must mount them.
func mountsOf(c *corev1.Container, vs *volumeSet) ([]bindMount, error) {
	var out []bindMount
	for _, m := range c.VolumeMounts {
		dir, ok := vs.dirs[m.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q names no volume of the pod", m.Name)
		}
		src := dir
		if m.SubPath != "" {
			src = filepath.Join(dir, m.SubPath)
			if _, err := os.Stat(src); os.IsNotExist(err) {
				// The kubelet creates a missing subPath as a directory.
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, bindMount{source: src, target: filepath.Clean(m.MountPath), readOnly: m.ReadOnly})
	}
	sortMounts(out)
	return out, nil
}

// bindMount is one mount of a container's mount namespace.
type bindMount struct {
	source, target string
	readOnly       bool
}

// sortMounts puts parents before children (fewer path elements first).
func sortMounts(ms []bindMount) {
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(ms[i].target, "/") < strings.Count(ms[j].target, "/")
	})
}
