// Command simcluster runs the simulated cluster of the e2e suite (package
// test/e2e/simcluster) until it is interrupted: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok with fake Nodes, and real
// servers behind redis, postgres and rabbitmq pods. It prints the kubeconfig, writes
// <dir>/env (shell exports) once the cluster works, and on SIGINT or SIGTERM
// stops everything it started. hack/simcluster.sh drives it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vkparser/parser-operator/test/e2e/simcluster"
)

func main() {
	var opts simcluster.Options
	flag.StringVar(&opts.Dir, "dir", "", "Working directory (kubeconfig, logs, data). Empty: a temporary one, removed on exit.")
	flag.IntVar(&opts.Nodes, "nodes", 3, "Number of fake Nodes.")
	flag.StringVar(&opts.PodCIDR, "pod-cidr", "", "Pod IP range inside 127.0.0.0/8. Empty: the first free 127.N.0.0/16.")
	flag.StringVar(&opts.ServiceCIDR, "service-cidr", "", "ClusterIP range (default 10.96.0.0/16).")
	flag.BoolVar(&opts.NoRedis, "no-redis", false, "Do not start real redis-servers behind redis pods.")
	flag.BoolVar(&opts.NoPostgres, "no-postgres", false, "Do not start real PostgreSQL servers behind postgres pods (kwok makes them Ready).")
	flag.BoolVar(&opts.NoRabbitMQ, "no-rabbitmq", false, "Do not start real RabbitMQ nodes behind rabbitmq pods (kwok makes them Ready).")
	flag.StringVar(&opts.PostgresBinDir, "postgres-bin-dir", "", "PostgreSQL's binaries (default "+simcluster.DefaultPostgresBinDir+").")
	flag.BoolVar(&opts.RedisAnnounceIP, "redis-announce-ip", false, "Redis nodes announce their pod IP as hostname (DNS names do not resolve outside the cluster).")
	flag.Parse()
	opts.Log = os.Stderr
	os.Exit(run(opts))
}

func run(opts simcluster.Options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := simcluster.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "simcluster:", err)
		return 1
	}
	defer func() { _ = c.Stop() }()
	env := fmt.Sprintf("export KUBECONFIG=%s\nexport SIMCLUSTER_DIR=%s\nexport SIMCLUSTER_POD_CIDR=%s\n", c.Kubeconfig, c.Dir, c.PodCIDR)
	if err := os.WriteFile(filepath.Join(c.Dir, "env"), []byte(env), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "simcluster:", err)
		return 1
	}
	fmt.Printf("simcluster: up in %s (pods get IPs from %s, logs in %s)\n%s",
		c.StartupTime.Round(1e8), c.PodCIDR, filepath.Join(c.Dir, "logs"), env)
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "simcluster: stopping")
		return 0
	case err := <-c.Failed():
		fmt.Fprintln(os.Stderr, "simcluster: a component died:", err)
		return 1
	}
}
