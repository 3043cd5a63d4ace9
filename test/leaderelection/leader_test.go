// Package leaderelection proves that two operator processes share the work
// safely: one leads, the other waits, and killing the leader lets the other
// take over and finish a change made meanwhile. It runs the real binary
// against a real API server (envtest's kube-apiserver and etcd).
package leaderelection

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/testutil"
)

const leaseName = "parser-operator.platform.vkparser.io"

func TestLeaderElection(t *testing.T) {
	root := filepath.Join("..", "..")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets(t, root),
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if err := platformv1.AddToScheme(scheme.Scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "operator", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	binary := buildOperator(t, root)

	ctx := context.Background()
	a := startOperator(t, binary, kubeconfig, "a")
	b := startOperator(t, binary, kubeconfig, "b")

	leader := waitForLeader(t, a, b)
	firstHolder := leaseHolder(ctx, c)
	follower := b
	if leader == b {
		follower = a
	}
	t.Logf("%s leads, %s waits", leader.name, follower.name)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "parser"}}
	must(t, c.Create(ctx, ns))
	p := &platformv1.ParserPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: "vk", Namespace: "parser"},
		Spec: platformv1.ParserPlatformSpec{
			Services: []platformv1.ServiceSpec{{Name: "auth", Image: "auth:1", Port: 8001}},
			Gateway:  platformv1.GatewaySpec{Image: "gateway:1"},
		},
	}
	must(t, c.Create(ctx, p))
	waitFor(t, "the leader creates the platform's children", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: "parser", Name: "vk-auth"}, &appsv1.Deployment{}) == nil
	})
	if follower.log().Contains("Created child") {
		t.Fatalf("the follower reconciled while not leading:\n%s", follower.log())
	}

	// Kill the leader without a chance to release the lease, then change
	// the spec: only the follower can make the change happen.
	leader.kill(t)
	must(t, c.Get(ctx, client.ObjectKeyFromObject(p), p))
	p.Spec.Services[0].Image = "auth:2"
	must(t, c.Update(ctx, p))
	start := time.Now()
	waitFor(t, "the follower takes over and rolls out auth:2", func() bool {
		d := &appsv1.Deployment{}
		return c.Get(ctx, client.ObjectKey{Namespace: "parser", Name: "vk-auth"}, d) == nil &&
			d.Spec.Template.Spec.Containers[0].Image == "auth:2"
	})
	t.Logf("takeover and change finished %s after the leader was killed", time.Since(start).Round(time.Second))
	if !follower.log().Contains("Successfully acquired lease") {
		t.Fatalf("the change was made, but the follower never took the lease")
	}
	if holder := leaseHolder(ctx, c); holder == firstHolder {
		t.Fatalf("the lease still names the killed leader %q", holder)
	}
}

func leaseHolder(ctx context.Context, c client.Client) string {
	lease := &coordinationv1.Lease{}
	if c.Get(ctx, client.ObjectKey{Namespace: "default", Name: leaseName}, lease) != nil {
		return ""
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "")
}

type operator struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
}

func (o *operator) log() *testutil.SyncBuffer { return o.out }

func (o *operator) kill(t *testing.T) {
	t.Helper()
	if err := o.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = o.cmd.Wait()
}

func startOperator(t *testing.T, binary, kubeconfig, name string) *operator {
	t.Helper()
	cmd := exec.Command(binary, "--leader-elect", "--leader-election-namespace=default",
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--kubeconfig="+kubeconfig)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := &operator{name: name, cmd: cmd, out: out}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("operator %s log:\n%s", name, out)
		}
	})
	return o
}

// waitForLeader finds the process that took the lease from its own log: the
// lease names the holder by host name and a random suffix, the same host here.
func waitForLeader(t *testing.T, ops ...*operator) *operator {
	t.Helper()
	var leader *operator
	waitFor(t, "one operator takes the lease", func() bool {
		for _, o := range ops {
			if o.log().Contains("Successfully acquired lease") {
				leader = o
			}
		}
		return leader != nil
	})
	for _, o := range ops {
		if o != leader && o.log().Contains("Successfully acquired lease") {
			t.Fatal("both operators took the lease")
		}
	}
	return leader
}

// waitFor polls until done, for at most a minute: a killed leader's lease
// runs out after its 15 s duration, then the follower's next retry wins.
func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func buildOperator(t *testing.T, root string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "parser-operator")
	cmd := exec.Command("go", "build", "-o", out, "./cmd")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the operator: %v\n%s", err, b)
	}
	return out
}

func assets(t *testing.T, root string) string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	out, err := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh")).Output()
	if err != nil {
		t.Fatalf("hack/envtest-assets.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
