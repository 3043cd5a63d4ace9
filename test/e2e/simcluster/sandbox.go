package simcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A sandbox is what a container runtime gives a container, as far as the
// servers behind the pods need it, made with unshare(1) (util-linux) and no
// image: the machine's own file system in a private mount namespace, where
// the pod's volumes are bind-mounted at their mount paths (so the pod's
// command, arguments and config files run unchanged), /etc/hosts and
// /etc/hostname are the pod's, a few image directories are the container's
// own (empty, writable unless readOnlyRootFilesystem), the host name is the
// pod's (UTS namespace), and the process tree is a PID namespace: when its
// first process ends, the kernel ends everything in it, so no server, CLI
// or helper a server forks (epmd, backends) outlives the container.
//
// The network is the machine's: pods share the loopback, and each server
// binds its pod IP (127.N.x.y).
type sandbox struct {
	// dir holds the container's own files (layer/, hosts, hostname); every
	// source of a mount is under root (the runtime's directory), which the
	// script reaches through a descriptor: a pod may mount over the path
	// of root itself (an emptyDir on /tmp hides /tmp/simcluster-*).
	dir, root string
	hostname  string
	// layer: image directories that are the container's own, created
	// empty under dir/layer and owned by the server's user.
	layer []string
	// files are files of the image that the machine has elsewhere (the
	// operator's binary), bind-mounted at their image paths.
	files    []bindMount
	mounts   []bindMount // the pod's volumes, parents first
	readOnly bool        // securityContext.readOnlyRootFilesystem: the layer is read-only
	user     owner
	workDir  string
}

// command is the process that runs argv as the server's user in a fresh
// sandbox, with exactly env as its environment (as a container's process
// has the image's and the pod's variables, nothing of the harness's).
func (sb *sandbox) command(argv, env []string) (*exec.Cmd, error) {
	if err := sb.prepareLayer(); err != nil {
		return nil, err
	}
	script, err := sb.script()
	if err != nil {
		return nil, err
	}
	args := []string{"--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
		"--", "/bin/sh", "-c", script, "sandbox"}
	cmd := exec.Command("unshare", append(args, argv...)...)
	cmd.Env = env
	return cmd, nil
}

func (sb *sandbox) prepareLayer() error {
	for _, d := range sb.layer {
		dir := filepath.Join(sb.dir, "layer", d)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, sb.user.uid, sb.user.gid); err != nil {
			return err
		}
	}
	return nil
}

// script mounts the container's file system, then execs the argv ($@) as
// the server's user. setpriv sets the parent-death signal again after it
// changes the user (the kernel clears it on a change of credentials).
func (sb *sandbox) script() (string, error) {
	var s strings.Builder
	s.WriteString("set -e\nexec 3<" + shQuote(sb.root) + "\n")
	s.WriteString("hostname " + shQuote(sb.hostname) + "\n")
	var layers []bindMount
	for _, d := range sb.layer {
		if sb.shadowed(d) {
			continue // a volume is mounted there: the layer is not seen
		}
		layers = append(layers, bindMount{source: filepath.Join(sb.dir, "layer", d), target: d})
	}
	sortMounts(layers)
	all := append(layers,
		bindMount{source: filepath.Join(sb.dir, "hosts"), target: "/etc/hosts", readOnly: true},
		bindMount{source: filepath.Join(sb.dir, "hostname"), target: "/etc/hostname", readOnly: true})
	all = append(append(all, sb.files...), sb.mounts...)
	for _, m := range all {
		line, err := sb.mountLine(m)
		if err != nil {
			return "", err
		}
		s.WriteString(line)
	}
	// Read-only last: the volumes' mount points inside the layer exist now.
	for _, m := range layers {
		if sb.readOnly {
			s.WriteString("mount --no-canonicalize -o remount,bind,ro " + shQuote(m.target) + "\n")
		}
	}
	s.WriteString("exec 3<&-\n")
	wd := sb.workDir
	if wd == "" {
		wd = "/"
	}
	s.WriteString("cd " + shQuote(wd) + " 2>/dev/null || cd /\n")
	fmt.Fprintf(&s, "exec setpriv --reuid=%d --regid=%d --init-groups --pdeathsig SIGKILL -- \"$@\"\n", sb.user.uid, sb.user.gid)
	return s.String(), nil
}

// shadowed: a volume is mounted at dir or above it.
func (sb *sandbox) shadowed(dir string) bool {
	for _, m := range sb.mounts {
		if m.target == dir || strings.HasPrefix(dir, m.target+"/") {
			return true
		}
	}
	return false
}

// mountLine bind-mounts m.source at m.target, creating the mount point as
// the kubelet does (a directory, or an empty file for a file).
func (sb *sandbox) mountLine(m bindMount) (string, error) {
	rel, err := filepath.Rel(sb.root, m.source)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("mount source %s is outside %s", m.source, sb.root)
	}
	st, err := os.Stat(m.source)
	if err != nil {
		return "", err
	}
	src, dst := shQuote("/proc/self/fd/3/"+rel), shQuote(m.target)
	var s strings.Builder
	if st.IsDir() {
		fmt.Fprintf(&s, "[ -d %[1]s ] || mkdir -p %[1]s\n", dst)
	} else {
		fmt.Fprintf(&s, "[ -e %[1]s ] || { mkdir -p \"$(dirname %[1]s)\"; : >%[1]s; }\n", dst)
	}
	fmt.Fprintf(&s, "mount --no-canonicalize --bind %s %s\n", src, dst)
	if m.readOnly {
		fmt.Fprintf(&s, "mount --no-canonicalize -o remount,bind,ro %s\n", dst)
	}
	return s.String(), nil
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// execIn runs argv in the sandbox of a running container (its mount, UTS
// and PID namespaces: those of its first process, pid) as its user with
// env, as the kubelet runs an exec probe or `kubectl exec`: output and
// exit code, within timeout.
func execIn(ctx context.Context, pid int, user owner, env []string, timeout time.Duration, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--pid", "--wd=/", "--",
		"setpriv", "--reuid=" + strconv.Itoa(user.uid), "--regid=" + strconv.Itoa(user.gid), "--init-groups",
		"--pdeathsig", "SIGKILL", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(args, argv...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A timed-out probe goes with everything it started (nsenter forks the
	// process that enters the PID namespace; both share the group).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return out, fmt.Errorf("timed out after %s", timeout)
	}
	return out, err
}

// sandboxInit is the first process of the sandbox that unshare (pid)
// forked: the one whose namespaces execIn enters.
func sandboxInit(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0, fmt.Errorf("process %d has no child yet", pid)
	}
	return strconv.Atoi(fields[0])
}
