package simcluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The cluster has no DNS server; a sandboxed server resolves names through
// its /etc/hosts, which the runtime writes as the kubelet does (localhost,
// the pod's own name) plus what cluster DNS would answer for pods: the
// records <hostname>.<subdomain>.<ns>.svc[.cluster.local] of every pod with
// a hostname and subdomain (StatefulSet pods), while a headless Service of
// that name selects it and the pod is Ready or the Service publishes
// not-ready addresses; and the records <service>.<ns>.svc[.cluster.local]
// of a headless Service, one line per pod it selects on the same terms
// (a ClusterIP has no server behind it here). It is rewritten in place (the bind mount holds the
// inode) when pods or Services change.

// writeSandboxFiles writes the pod's /etc/hosts and /etc/hostname.
func (rt *runtime) writeSandboxFiles(r *podRun) error {
	if err := os.WriteFile(filepath.Join(r.sandbox.dir, "hostname"), []byte(r.sandbox.hostname+"\n"), 0o644); err != nil {
		return err
	}
	return rt.writeHosts(r)
}

func (rt *runtime) writeHosts(r *podRun) error {
	path := filepath.Join(r.sandbox.dir, "hosts")
	want := rt.hostsFile(r.pod)
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want) {
		return nil
	}
	// Rewritten in place, never renamed: the sandbox has this inode mounted.
	return os.WriteFile(path, want, 0o644)
}

// refreshHosts rewrites the hosts file of every running sandbox.
func (rt *runtime) refreshHosts() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, r := range rt.pods {
		if r.sandbox == nil {
			continue
		}
		if err := rt.writeHosts(r); err != nil {
			rt.c.logf("runtime %s: hosts: %v", r.key, err)
		}
	}
}

func (rt *runtime) hostsFile(self *corev1.Pod) []byte {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (simcluster: plus the cluster DNS records of pods).\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	host := podHostname(self)
	if fqdn := podFQDN(self); fqdn != "" {
		fmt.Fprintf(&b, "%s\t%s %s.cluster.local %s\n", self.Status.PodIP, fqdn, fqdn, host)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", self.Status.PodIP, host)
	}
	pods, err := rt.lister.List(labels.Everything())
	if err != nil {
		return []byte(b.String())
	}
	var lines []string
	for _, p := range pods {
		if p.UID == self.UID || p.Status.PodIP == "" || p.DeletionTimestamp != nil || !rt.resolvable(p) {
			continue
		}
		fqdn := podFQDN(p)
		lines = append(lines, fmt.Sprintf("%s\t%s %s.cluster.local\n", p.Status.PodIP, fqdn, fqdn))
	}
	lines = append(lines, rt.headlessRecords(pods)...)
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, ""))
	return []byte(b.String())
}

// headlessRecords are the hosts lines of every headless Service's name:
// the pods it selects that cluster DNS would answer with.
func (rt *runtime) headlessRecords(pods []*corev1.Pod) []string {
	services, err := rt.services.List(labels.Everything())
	if err != nil {
		return nil
	}
	var lines []string
	for _, svc := range services {
		name := fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace)
		for _, p := range pods {
			if p.Status.PodIP != "" && p.DeletionTimestamp == nil && headlessAnswers(svc, p) {
				lines = append(lines, fmt.Sprintf("%s\t%s %s.cluster.local\n", p.Status.PodIP, name, name))
			}
		}
	}
	return lines
}

// resolvable: cluster DNS has the pod's hostname record.
func (rt *runtime) resolvable(p *corev1.Pod) bool {
	if podFQDN(p) == "" {
		return false
	}
	svc, err := rt.services.Services(p.Namespace).Get(p.Spec.Subdomain)
	return err == nil && headlessAnswers(svc, p)
}

// headlessAnswers: cluster DNS answers the headless Service svc with pod p
// (it selects p, and p is Ready or svc publishes not-ready addresses).
func headlessAnswers(svc *corev1.Service, p *corev1.Pod) bool {
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Selector) == 0 || svc.Namespace != p.Namespace {
		return false
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.Labels)) {
		return false
	}
	return svc.Spec.PublishNotReadyAddresses || podReady(p)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podHostname is the pod's host name: spec.hostname, else its name.
func podHostname(p *corev1.Pod) string {
	if p.Spec.Hostname != "" {
		return p.Spec.Hostname
	}
	return p.Name
}

// podFQDN is <hostname>.<subdomain>.<ns>.svc, "" without a subdomain.
func podFQDN(p *corev1.Pod) string {
	if p.Spec.Subdomain == "" {
		return ""
	}
	return fmt.Sprintf("%s.%s.%s.svc", podHostname(p), p.Spec.Subdomain, p.Namespace)
}
