package simcluster

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// What the sandboxed kinds (postgres, rabbitmq) share.

// requireSandboxTools checks for what a sandbox is made with (util-linux:
// unshare, nsenter, setpriv) and the root it needs to mount.
func requireSandboxTools() error {
	for _, tool := range []string{"unshare", "nsenter", "setpriv", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (util-linux; hack/install-test-deps.sh)", tool)
		}
	}
	return nil
}

// systemUser is a service user of the machine (postgres, rabbitmq), the one
// a Debian package runs its server as.
func systemUser(name string) (owner, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return owner{}, fmt.Errorf("user %s: %w (hack/install-test-deps.sh installs its package)", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return owner{}, err
	}
	return owner{uid: uid, gid: gid}, nil
}

// containerNamed is the pod's container with that name whose image is of
// that repository (the last path element before the tag), nil if none.
func containerNamed(pod *corev1.Pod, name, repository string) *corev1.Container {
	if pod == nil {
		return nil
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == name && imageRepository(c.Image) == repository {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// imageRepository: "docker.io/library/postgres:16-alpine" -> "postgres".
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	base := path.Base(image)
	repo, _, _ := strings.Cut(base, ":")
	return repo
}

// newSandbox is the sandbox of a pod's containers, with the image
// directories that are the container's own.
func newSandbox(rt *runtime, r *podRun, layer ...string) *sandbox {
	readOnly := false
	if sc := r.container.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil {
		readOnly = *sc.ReadOnlyRootFilesystem
	}
	return &sandbox{
		dir: r.dir, root: rt.root, hostname: podHostname(r.pod), layer: layer,
		readOnly: readOnly, user: r.user, workDir: r.container.WorkingDir,
	}
}

// containerArgv is the container's command and args, $(VAR) expanded, or
// when it has no command, the image's entrypoint and cmd with its args in
// place of cmd.
func containerArgv(c *corev1.Container, env map[string]string, entrypoint, cmd []string) []string {
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(append(argv, c.Command...), c.Args...)
	case len(c.Args) > 0:
		argv = append(append(argv, entrypoint...), c.Args...)
	default:
		argv = append(append(argv, entrypoint...), cmd...)
	}
	out := make([]string, 0, len(argv))
	for _, a := range argv {
		if len(c.Command) > 0 || len(c.Args) > 0 {
			a = expand(a, env)
		}
		out = append(out, a)
	}
	return out
}

// containerPort is the container's port of that name, else def.
func containerPort(c *corev1.Container, name string, def int) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return int(p.ContainerPort)
		}
	}
	return def
}

// startSandboxed starts the main container in its sandbox.
func startSandboxed(_ context.Context, k serverKind, logDir string, r *podRun) (*process, error) {
	cmd, err := r.sandbox.command(r.argv, r.env)
	if err != nil {
		return nil, err
	}
	return startCmd(fmt.Sprintf("%s-%s-%s", k.name(), r.pod.Namespace, r.pod.Name), logDir, cmd)
}
