package simcluster

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"POD_NAME": "vk-cache-0", "NS": "parser"}
	for in, want := range map[string]string{
		"$(POD_NAME).vk-cache-headless.$(NS).svc": "vk-cache-0.vk-cache-headless.parser.svc",
		"$(UNKNOWN)-x":           "$(UNKNOWN)-x", // kept, as a kubelet keeps it
		"$$(POD_NAME)":           "$(POD_NAME)",  // $$ escapes
		"cost $5 $":              "cost $5 $",
		"$(unterminated":         "$(unterminated",
		"--port":                 "--port",
		"$(POD_NAME)$(POD_NAME)": "vk-cache-0vk-cache-0",
	} {
		if got := expand(in, env); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodFSHostPath(t *testing.T) {
	fs := &podFS{mounts: []mount{ // deepest first, as materialize sorts them
		{path: "/etc/redis/redis.conf", host: "/h/config/redis.conf"},
		{path: "/etc/redis/auth", host: "/h/auth"},
		{path: "/data", host: "/h/pvc"},
	}}
	for in, want := range map[string]string{
		"/etc/redis/redis.conf":       "/h/config/redis.conf",
		"/etc/redis/auth/auth.conf":   "/h/auth/auth.conf",
		"/data":                       "/h/pvc",
		"/data/nodes.conf":            "/h/pvc/nodes.conf",
		"/database/x":                 "/database/x", // a prefix of a name is not a parent
		"/etc/redis/other.conf":       "/etc/redis/other.conf",
		"--cluster-announce-hostname": "--cluster-announce-hostname",
		"relative/path":               "relative/path",
	} {
		if got := fs.hostPath(in); got != want {
			t.Errorf("hostPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRewriteConfig moves the paths of a redis.conf to the machine and
// leaves everything else, passwords in an included file above all, as it is.
func TestRewriteConfig(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth", "auth.conf")
	conf := filepath.Join(dir, "redis.conf")
	if err := writeVolume(filepath.Join(dir, "auth"), map[string][]byte{
		"auth.conf": []byte("requirepass \"/data/not-a-path\"\n"), "password": []byte("x"),
	}, []corev1.KeyToPath{{Key: "auth.conf", Path: "auth.conf"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "auth", "password")); !os.IsNotExist(err) {
		t.Errorf("a key not in the volume's items was written: %v", err)
	}
	in := "# dir /data stays in comments\nport 6379\ndir /data\ncluster-config-file /data/nodes.conf\nsave \"\"\ninclude /etc/redis/auth/auth.conf\n"
	if err := os.WriteFile(conf, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := &podFS{mounts: []mount{{path: "/etc/redis/auth", host: filepath.Join(dir, "auth")}, {path: "/data", host: "/pvc"}}}
	if err := fs.rewriteConfig(conf); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(conf)
	want := "# dir /data stays in comments\nport 6379\ndir /pvc\ncluster-config-file /pvc/nodes.conf\nsave \"\"\ninclude " + auth + "\n"
	if string(got) != want {
		t.Errorf("rewritten config:\n%s\nwant:\n%s", got, want)
	}
	if got, _ := os.ReadFile(auth); string(got) != "requirepass \"/data/not-a-path\"\n" {
		t.Errorf("the included file changed: %q", got)
	}

	// An include the pod does not have is an error, not a redis-server
	// that starts without its password.
	if err := os.WriteFile(conf, []byte("include /etc/redis/auth/missing.conf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.rewriteConfig(conf); err == nil {
		t.Error("rewriteConfig accepted an include of a missing file")
	}
}
