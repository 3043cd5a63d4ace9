package resource

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// TestNginxConfAcceptedByNginx runs the real `nginx -t` on the rendered
// nginx.conf, unchanged. nginx resolves the upstream's host name while it
// checks, and the gateway's Service name resolves only inside a cluster, so
// nginx runs in a private mount namespace where a hosts file maps that name
// to 127.0.0.1 and a temp dir stands in for /tmp (the conf writes its pid and
// temp files there): the test leaves nothing behind on the machine.
func TestNginxConfAcceptedByNginx(t *testing.T) {
	nginx := requireNginxSandbox(t)

	long := samplePlatform()
	long.Name = "long-" + strings.Repeat("n", 40) // 45, the most the CRD allows
	long.Namespace = "vk-parser-production"
	long.Spec.Gateway.Port = 9443

	for name, p := range map[string]*platformv1.ParserPlatform{"sample": samplePlatform(), "long name": long} {
		t.Run(name, func(t *testing.T) {
			conf := RenderNginxConf(p)
			out, err := nginxTest(t, nginx, conf, ServiceHost(p, "gateway"))
			if err != nil {
				t.Fatalf("nginx -t rejected the rendered nginx.conf: %v\n%s\n--- nginx.conf ---\n%s", err, out, conf)
			}
			if !strings.Contains(out, "test is successful") {
				t.Fatalf("nginx -t exited 0 without reporting success:\n%s", out)
			}
			if strings.Contains(out, "[warn]") || strings.Contains(out, "[alert]") {
				t.Errorf("nginx -t accepted the conf with warnings:\n%s", out)
			}
		})
	}
}

// TestNginxTestHarnessRejectsBrokenConf is the control: the same harness on a
// conf with a missing brace must fail, so the test above cannot pass because
// nginx -t was never really run.
func TestNginxTestHarnessRejectsBrokenConf(t *testing.T) {
	nginx := requireNginxSandbox(t)
	p := samplePlatform()
	broken := strings.TrimSuffix(strings.TrimSpace(RenderNginxConf(p)), "}") + "\n"
	out, err := nginxTest(t, nginx, broken, ServiceHost(p, "gateway"))
	if err == nil {
		t.Fatalf("nginx -t accepted a conf without its closing brace:\n%s", out)
	}
	if !strings.Contains(out, "[emerg]") {
		t.Fatalf("nginx -t failed, but not on the configuration: %v\n%s", err, out)
	}
}

// nginxTest writes conf and a hosts file mapping host to 127.0.0.1, and runs
// `nginx -t` on conf in a private mount namespace; it returns nginx's output.
func nginxTest(t *testing.T, nginx, conf, host string) (string, error) {
	t.Helper()
	scratch, etc := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(scratch, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 " + host + "\n"
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	// scratch is bind-mounted over /tmp, so the conf is /tmp/nginx.conf and
	// its pid and temp paths land in scratch.
	script := `mount --bind "$1" /etc/hosts && mount --bind "$2" /tmp && exec "$3" -t -c /tmp/nginx.conf`
	args := append(unshareArgs(), "sh", "-c", script, "sh", filepath.Join(etc, "hosts"), scratch, nginx)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", args...).CombinedOutput()
	return string(out), err
}

// unshareArgs make a private mount namespace; without root, a user namespace
// that maps the caller to root is needed to mount in it.
func unshareArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--mount", "--propagation", "private"}
	}
	return []string{"--map-root-user", "--mount", "--propagation", "private"}
}

// requireNginxSandbox returns nginx's path once it is sure nginx and a mount
// namespace are available. Without them the test is skipped on a developer's
// machine and fails in CI (CI set), where skipping would hide a regression.
func requireNginxSandbox(t *testing.T) string {
	t.Helper()
	nginx, err := testutil.LookSbin("nginx")
	if err != nil {
		testutil.MissingTool(t, "nginx (Debian package nginx-light)", err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testutil.MissingTool(t, "unshare (util-linux)", err)
	}
	if out, err := exec.CommandContext(t.Context(), "unshare", append(unshareArgs(), "true")...).CombinedOutput(); err != nil {
		testutil.MissingTool(t, "a private mount namespace (unshare --mount)", errors.New(strings.TrimSpace(string(out))+": "+err.Error()))
	}
	return nginx
}
