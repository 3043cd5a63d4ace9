// Command controlplane starts a local Kubernetes control plane (etcd and
// kube-apiserver from KUBEBUILDER_ASSETS, the envtest binaries) with the
// ParserPlatform CRD installed, writes an admin kubeconfig, and runs until it
// is interrupted, then stops everything it started. hack/demo.sh drives it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "", "Where to write the admin kubeconfig (required).")
	crds := flag.String("crds", "config/crd/bases", "Directory of CRDs to install.")
	serviceRange := flag.String("service-cluster-ip-range", "10.96.0.0/16", "ClusterIP range; envtest's default /24 holds only ~250 Services.")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "controlplane: --write-kubeconfig is required")
		os.Exit(2)
	}
	if err := run(*kubeconfig, *crds, *serviceRange); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, crds, serviceRange string) error {
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceRange)
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()

	user, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	config, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if err := os.WriteFile(kubeconfig, config, 0o600); err != nil {
		return err
	}
	fmt.Println("control plane ready; kubeconfig:", kubeconfig)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	fmt.Println("control plane stopping")
	return nil
}
