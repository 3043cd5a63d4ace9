package simcluster

import (
	"fmt"
	"os/exec"
	"strings"
)

// Every pod IP is an address of the machine's loopback (127.0.0.0/8 is
// local), and the kernel's route for that range names 127.0.0.1 as the
// source of every connection to it. So a server behind a pod would see
// each client, its own probes included, come from 127.0.0.1, which servers
// trust as "local" (PostgreSQL's pg_hba.conf does): a probe that logs in
// over the pod IP to check the Secret's password, as the product's shard
// readiness does, would pass with any password.
//
// In a pod, a connection to the pod's own IP comes from that IP. The
// runtime gives the pod range a local route of its own with no preferred
// source, for which Linux uses the destination as the source: every
// connection to a pod IP, from its pod or from anything on the machine
// (the operator, a test), comes from that pod IP, never from 127.0.0.1, as
// it would from a pod's network namespace or another pod. A client that
// binds an address of its own (a test standing for another pod) keeps it.

// addPodRoute makes connections to the pod range come from their
// destination: `ip route replace local <cidr> dev lo table local`.
func addPodRoute(cidr string) error {
	return ipRoute("replace", cidr)
}

// removePodRoute undoes addPodRoute.
func removePodRoute(cidr string) error {
	return ipRoute("del", cidr)
}

func ipRoute(verb, cidr string) error {
	out, err := exec.Command("ip", "route", verb, "local", cidr, "dev", "lo", "table", "local").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip route %s local %s dev lo table local: %w: %s", verb, cidr, err, strings.TrimSpace(string(out)))
	}
	return nil
}
