//go:build e2e

// Package e2e is the end-to-end suite: it starts a simulated cluster
// (package simcluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok fake Nodes, real redis-servers behind redis pods) and
// drives it with the real clients, kubectl and client-go. Run it with
// `make e2e`; the build tag keeps `go test ./...` (make test) from starting
// clusters.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"

	"github.com/vkparser/parser-operator/test/e2e/simcluster"
)

const (
	// timeout bounds every wait on the cluster; kwok makes pods Running in
	// well under a second, so only a broken cluster comes near it.
	timeout = 60 * time.Second
	poll    = 200 * time.Millisecond
)

var (
	cluster *simcluster.Cluster
	clients kubernetes.Interface
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(timeout)
	SetDefaultEventuallyPollingInterval(poll)
	SetDefaultConsistentlyPollingInterval(poll)
	// Without this, Eventually(...).WithContext(ctx) waits as long as the
	// spec's context, not the default timeout.
	EnforceDefaultTimeoutsWhenUsingContexts()
	RunSpecs(t, "E2E Suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	start := time.Now()
	var err error
	cluster, err = simcluster.Start(ctx, simcluster.Options{Log: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	clients = cluster.Client
	// kubectl (and later helm) run as child processes with this kubeconfig.
	Expect(os.Setenv("KUBECONFIG", cluster.Kubeconfig)).To(Succeed())
	AddReportEntry("simulated cluster start", fmt.Sprintf("%s (binaries cached; Start incl. lookup: %s)",
		cluster.StartupTime.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond)))
}, NodeTimeout(20*time.Minute)) // the first run on a machine builds the binaries

var failed bool

var _ = AfterSuite(func() {
	if cluster == nil {
		return
	}
	if failed {
		cluster.KeepDir()
		AddReportEntry("simulated cluster kept", "logs of every component and redis-server: "+cluster.Dir+"/logs")
	}
	Expect(cluster.Stop()).To(Succeed())
})

// A component that dies fails the spec that was running, with its log.
var _ = AfterEach(func() {
	select {
	case err := <-cluster.Failed():
		Fail(err.Error())
	default:
	}
})

var _ = ReportAfterEach(func(report SpecReport) {
	failed = failed || report.Failed()
})

// kubectl runs kubectl against the simulated cluster, stdin optional, and
// returns its output; a failure is returned, not asserted, so a spec can
// expect one.
func kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}
