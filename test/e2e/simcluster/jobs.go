package simcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// The job kind backs the pods of the operator's backup and restore Jobs
// (their main container is named dump, restore or prune): their containers
// run for real, to their end, and the pod ends Succeeded or Failed as a
// kubelet leaves a pod of restartPolicy Never, so the Job controller of the
// cluster sees the real outcome (kwok's pod-complete stage, which makes
// every other Job pod succeed at once, leaves these alone).
//
// A Job pod runs two kinds of image, both as the machine's postgres user
// (the harness cannot run a process as a user the machine does not have;
// the pod's volumes are that user's, so only their modes decide):
//   - the shard's PostgreSQL image: Debian's PostgreSQL 15 client tools
//     (pg_dump, pg_restore, psql) on PATH, bash as the image has it;
//   - the operator's image: its one file, /parser-operator, is the binary
//     given to Cluster.UseOperatorBinary, bind-mounted read-only.
type jobKind struct {
	binDir string
	root   string // where the operator binary's copy lives (under the runtime's root)
	logDir string
	user   owner

	mu       sync.Mutex
	operator string // the copy of the operator binary, "" until UseOperatorBinary
}

// JobContainers are the names of the main containers of the operator's
// Jobs that the job kind runs.
var JobContainers = []string{"dump", "restore", "prune"}

// operatorImageBinary is the operator binary's path in its image.
const operatorImageBinary = "/parser-operator"

func newJobKind(c *Cluster, binDir string) (*jobKind, error) {
	for _, bin := range []string{"pg_dump", "pg_restore", "psql"} {
		if !isExecutable(filepath.Join(binDir, bin)) {
			return nil, fmt.Errorf("%s not found in %s (Debian's postgresql, hack/install-test-deps.sh; Options.NoJobs goes without)", bin, binDir)
		}
	}
	u, err := systemUser("postgres")
	if err != nil {
		return nil, err
	}
	return &jobKind{binDir: binDir, root: filepath.Join(c.Dir, "runtime", "images"), logDir: filepath.Join(c.Dir, "logs"), user: u}, nil
}

func (*jobKind) name() string { return "job" }

func (*jobKind) container(pod *corev1.Pod) *corev1.Container {
	if pod == nil || !ownedByJob(pod) {
		return nil
	}
	for i, c := range pod.Spec.Containers {
		if slices.Contains(JobContainers, c.Name) {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func ownedByJob(pod *corev1.Pod) bool {
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == "Job" {
			return true
		}
	}
	return false
}

// useBinary copies the operator binary under the runtime's root (every
// mount source of a sandbox is there).
func (k *jobKind) useBinary(path string) error {
	if err := os.MkdirAll(k.root, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(k.root, "parser-operator")
	if err := copyExecutable(path, dst); err != nil {
		return fmt.Errorf("operator binary: %w", err)
	}
	k.mu.Lock()
	k.operator = dst
	k.mu.Unlock()
	return nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err := errors.Join(err, out.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// prepare: the image's PATH (PostgreSQL's client tools first) and the
// operator's binary at its image path, for every container of the pod.
func (k *jobKind) prepare(_ context.Context, r *podRun) error {
	k.mu.Lock()
	operator := k.operator
	k.mu.Unlock()
	if operator == "" {
		return errors.New("a Job pod of the operator, and no operator binary to run it with (Cluster.UseOperatorBinary)")
	}
	r.user = k.user
	r.imgEnv = []string{
		"PATH=" + k.binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
	}
	r.env = processEnv(r.imgEnv, r.container.Env, r.envMap)
	r.sandbox = newSandbox(r.rt, r)
	r.sandbox.files = []bindMount{{source: operator, target: operatorImageBinary, readOnly: true}}
	r.argv = containerArgv(r.container, r.envMap, nil, nil)
	if len(r.argv) == 0 {
		return fmt.Errorf("container %s has no command (the image's entrypoint is not known here)", r.container.Name)
	}
	return nil
}

func (k *jobKind) start(ctx context.Context, r *podRun) (*process, error) {
	return startSandboxed(ctx, k, k.logDir, r)
}

// ready: these containers have no readiness probe; running is ready.
func (*jobKind) ready(ctx context.Context, r *podRun, proc *process) bool {
	return execReady(ctx, r, proc)
}

func (*jobKind) stopped(*podRun) {}

// UseOperatorBinary is the binary that the operator's image holds, which
// the containers of its Job pods run (the harness has no images): the
// Jobs' pods wait for it.
func (c *Cluster) UseOperatorBinary(path string) error {
	if c.jobs == nil {
		return errors.New("the cluster runs no Job pods (Options.NoJobs, or no runtime)")
	}
	return c.jobs.useBinary(path)
}
