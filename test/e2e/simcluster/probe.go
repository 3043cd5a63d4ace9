package simcluster

import (
	"context"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Exec probes run as the kubelet runs them: the pod's command, $(VAR)
// expanded from the container's env, in the container's sandbox, as its
// user, with its environment, within timeoutSeconds. One change: every pod
// shares the machine's loopback, so a probe that names 127.0.0.1 or
// localhost as the host to reach (pg_isready -h 127.0.0.1) would reach
// whatever listens there, not its own server; those words are replaced by
// the pod IP.

var loopbackWord = regexp.MustCompile(`\b(127\.0\.0\.1|localhost)\b`)

// probeCommand is the argv of an exec probe as the runtime runs it.
func probeCommand(p *corev1.Probe, env map[string]string, podIP string) []string {
	if p == nil || p.Exec == nil {
		return nil
	}
	out := make([]string, 0, len(p.Exec.Command))
	for _, a := range p.Exec.Command {
		out = append(out, loopbackWord.ReplaceAllString(expand(a, env), podIP))
	}
	return out
}

// probeTimeout is the probe's timeoutSeconds (default 1 s).
func probeTimeout(p *corev1.Probe) time.Duration {
	if p != nil && p.TimeoutSeconds > 0 {
		return time.Duration(p.TimeoutSeconds) * time.Second
	}
	return time.Second
}

// execReady runs the container's exec readiness probe; a container with
// none is ready once it runs.
func execReady(ctx context.Context, r *podRun, proc *process) bool {
	argv := probeCommand(r.container.ReadinessProbe, r.envMap, r.ip)
	if len(argv) == 0 {
		return true
	}
	pid, err := sandboxInit(proc.cmd.Process.Pid)
	if err != nil {
		return false
	}
	_, err = execIn(ctx, pid, r.user, r.env, probeTimeout(r.container.ReadinessProbe), argv...)
	return err == nil
}
