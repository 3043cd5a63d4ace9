package simcluster

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestAtomicVolumeLayout: a ConfigMap or Secret volume is laid out as the
// kubelet's atomic writer does (..data, a timestamped directory, one
// symlink per top-level entry), with defaultMode and per-item modes.
func TestAtomicVolumeLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	mode, itemMode := int32(0o400), int32(0o600)
	err := writeAtomicVolume(dir, map[string][]byte{"a": []byte("A"), "b": []byte("B"), "c": []byte("C")},
		[]corev1.KeyToPath{{Key: "a", Path: "a.conf"}, {Key: "b", Path: "sub/b.conf", Mode: &itemMode}}, &mode)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(data, "..") {
		t.Fatalf("..data: %q, %v", data, err)
	}
	if link, _ := os.Readlink(filepath.Join(dir, "a.conf")); link != "..data/a.conf" {
		t.Errorf("a.conf links to %q, want ..data/a.conf", link)
	}
	if link, _ := os.Readlink(filepath.Join(dir, "sub")); link != "..data/sub" {
		t.Errorf("sub links to %q, want ..data/sub", link)
	}
	for path, want := range map[string]os.FileMode{"a.conf": 0o400, "sub/b.conf": 0o600} {
		st, err := os.Stat(filepath.Join(dir, path))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "c")); !os.IsNotExist(err) {
		t.Errorf("a key not in the items was written: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 { // ..<time>, ..data, a.conf, sub
		t.Errorf("volume entries %v, want the timestamped dir, ..data, a.conf, sub", entries)
	}
}

// TestFSGroupMode is the kubelet's rule: files get group rw (r for a
// read-only volume), directories also setgid and group x. An Erlang
// cookie made 0400 comes out 0660, which Erlang refuses.
func TestFSGroupMode(t *testing.T) {
	for _, tc := range []struct {
		in, mask, want os.FileMode
	}{
		{0o400, fsGroupRW, 0o660},
		{0o600, fsGroupRW, 0o660},
		{0o644, fsGroupRW, 0o664},
		{0o400, fsGroupRO, 0o440},
		{os.ModeDir | 0o755, fsGroupRW, os.ModeSetgid | 0o775},
		{os.ModeDir | 0o700, fsGroupRW, os.ModeSetgid | 0o770},
	} {
		if got := fsGroupMode(tc.in, tc.mask); got != tc.want&^os.ModeDir {
			t.Errorf("fsGroupMode(%v, %o) = %v, want %v", tc.in, tc.mask, got, tc.want&^os.ModeDir)
		}
	}
}

// TestApplyFSGroup walks a volume: everything to the owner, the modes as
// above, symlinks' targets untouched.
func TestApplyFSGroup(t *testing.T) {
	dir := t.TempDir()
	cookie := filepath.Join(dir, ".erlang.cookie")
	if err := os.WriteFile(cookie, []byte("c"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "mnesia"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".erlang.cookie", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := applyFSGroup(dir, owner{uid: os.Getuid(), gid: os.Getgid()}, false); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(cookie)
	if st.Mode().Perm() != 0o660 {
		t.Errorf("cookie mode %v, want 0660 (group rw added)", st.Mode().Perm())
	}
	st, _ = os.Stat(filepath.Join(dir, "mnesia"))
	if st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o770 {
		t.Errorf("directory mode %v, want setgid 0770", st.Mode())
	}
}

func TestProbeCommand(t *testing.T) {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
		"sh", "-c", `exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d $(DB)`, "localhost:5432", "127.0.0.10", "notlocalhostname",
	}}}}
	got := probeCommand(probe, map[string]string{"DB": "parser"}, "127.5.0.7")
	want := []string{"sh", "-c", `exec pg_isready -h 127.5.0.7 -p 5432 -U "$POSTGRES_USER" -d parser`, "127.5.0.7:5432", "127.0.0.10", "notlocalhostname"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("probeCommand:\n got %q\nwant %q", got, want)
	}
	if probeCommand(&corev1.Probe{}, nil, "x") != nil {
		t.Error("a probe without exec gave a command")
	}
}

func TestProcessEnv(t *testing.T) {
	env := processEnv([]string{"PATH=/bin", "HOME=/root"},
		[]corev1.EnvVar{{Name: "HOME", Value: "/var/lib/x"}, {Name: "A", Value: "$(HOME)/a"}},
		map[string]string{"HOME": "/var/lib/x", "A": "/var/lib/x/a"})
	if got := strings.Join(env, " "); got != "PATH=/bin HOME=/var/lib/x A=/var/lib/x/a" {
		t.Errorf("processEnv = %s", got)
	}
	env = withEnv(env, "A=b", "B=c")
	if got := strings.Join(env, " "); got != "PATH=/bin HOME=/var/lib/x A=b B=c" {
		t.Errorf("withEnv = %s", got)
	}
	if v, ok := envValue(env, "B"); !ok || v != "c" {
		t.Errorf("envValue B = %q %v", v, ok)
	}
}

func TestContainerArgv(t *testing.T) {
	env := map[string]string{"N": "x"}
	for _, tc := range []struct {
		c    corev1.Container
		want string
	}{
		{corev1.Container{}, "entry cmd"},
		{corev1.Container{Args: []string{"-c", "$(N)"}}, "entry -c x"},
		{corev1.Container{Command: []string{"sh", "-c"}, Args: []string{"echo $(N)"}}, "sh -c echo x"},
	} {
		if got := strings.Join(containerArgv(&tc.c, env, []string{"entry"}, []string{"cmd"}), " "); got != tc.want {
			t.Errorf("containerArgv(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestImageRepository(t *testing.T) {
	for in, want := range map[string]string{
		"postgres:16-alpine": "postgres", "docker.io/library/postgres:15": "postgres",
		"registry:5000/x/postgres@sha256:ab": "postgres", "bitnami/postgresql:16": "postgresql",
	} {
		if got := imageRepository(in); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSandboxScript: volumes are mounted through the descriptor of the
// runtime's root (a pod's /tmp may hide it), parents first, read-only
// where asked, the layer read-only last; then the server's user.
func TestSandboxScript(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pods", "p")
	for _, d := range []string{"vol/tmp", "vol/data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "vol", "cookie"), []byte("c"), 0o600); err != nil {
		t.Fatal(err)
	}
	ms := []bindMount{
		{source: filepath.Join(root, "vol/cookie"), target: "/tmp/x/.erlang.cookie", readOnly: true},
		{source: filepath.Join(root, "vol/tmp"), target: "/tmp"},
		{source: filepath.Join(root, "vol/data"), target: "/var/lib/rabbitmq"},
	}
	sortMounts(ms)
	if ms[0].target != "/tmp" {
		t.Errorf("mounts not parents first: %+v", ms)
	}
	sb := &sandbox{dir: dir, root: root, hostname: "broker-0", layer: []string{"/etc/rabbitmq"}, mounts: ms, readOnly: true, user: owner{104, 107}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"hosts", "hostname"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.prepareLayer(); err != nil {
		t.Fatal(err)
	}
	script, err := sb.script()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"exec 3<'" + root + "'",
		"hostname 'broker-0'",
		"mount --no-canonicalize --bind '/proc/self/fd/3/vol/tmp' '/tmp'",
		": >'/tmp/x/.erlang.cookie'",
		"mount --no-canonicalize -o remount,bind,ro '/tmp/x/.erlang.cookie'",
		"mount --no-canonicalize -o remount,bind,ro '/etc/rabbitmq'",
		"setpriv --reuid=104 --regid=107 --init-groups --pdeathsig SIGKILL",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if strings.Index(script, "'/tmp'\n") > strings.Index(script, "'/tmp/x/.erlang.cookie'\n") {
		t.Errorf("/tmp is mounted after a mount inside it:\n%s", script)
	}
	sb.mounts = append(sb.mounts, bindMount{source: "/etc/passwd", target: "/x"})
	if _, err := sb.script(); err == nil {
		t.Error("a mount source outside the runtime's root was accepted")
	}
}

func TestBackedStages(t *testing.T) {
	stages := stagePodReady + stagePodStartRedis + stagePodStartRuntime + stagePodComplete
	all := (&Cluster{}).backedStages(stages)
	backed := "['postgres', 'rabbitmq', 'dump', 'restore', 'prune']"
	if strings.Contains(all, "# simcluster:r") || strings.Count(all, backed) != 3 || !strings.Contains(all, "['redis-server']") {
		t.Errorf("stages with every server (pod-ready, pod-start-runtime and pod-complete name %s):\n%s", backed, all)
	}
	none := (&Cluster{opts: Options{NoRedis: true, NoPostgres: true, NoRabbitMQ: true, NoJobs: true}}).backedStages(stages)
	if strings.Contains(none, "postgres'") || strings.Contains(none, "'redis-server'") || strings.Contains(none, "'dump'") {
		t.Errorf("stages with no server still select backed pods:\n%s", none)
	}
	pg := (&Cluster{opts: Options{NoRabbitMQ: true, NoJobs: true}}).backedStages(stages)
	if !strings.Contains(pg, "values: ['postgres']") {
		t.Errorf("stages without RabbitMQ:\n%s", pg)
	}
}

// TestEPMD speaks the epmd protocol to the runtime's epmd: a node
// registers on 127.0.0.1 with its port; the pod IP that owns that port
// lists it and gives its port, another pod IP knows nothing.
func TestEPMD(t *testing.T) {
	cidr, unlock, err := lockPodCIDR()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	base := strings.TrimSuffix(cidr, "0.0/16")
	podA, podB := base+"0.2", base+"0.3"
	e, err := startEPMD()
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	if err := e.add(podA, 25999); err != nil {
		t.Fatal(err)
	}
	if err := e.add(podB, 26000); err != nil {
		t.Fatal(err)
	}
	// ALIVE2_REQ: port, type 77, proto 0, versions 6 and 5, name, no extra.
	alive := []byte{epmdAlive2Req}
	alive = binary.BigEndian.AppendUint16(alive, 25999)
	alive = append(alive, 77, 0, 0, 6, 0, 5)
	alive = binary.BigEndian.AppendUint16(alive, 6)
	alive = append(append(alive, "rabbit"...), 0, 0)
	reg := epmdDial(t, "127.0.0.1", e.port, alive)
	defer func() { _ = reg.Close() }()
	resp := make([]byte, 6)
	if _, err := io.ReadFull(reg, resp); err != nil || resp[0] != epmdAlive2XResp || resp[1] != 0 {
		t.Fatalf("ALIVE2 answered %v, %v", resp, err)
	}
	names := func(ip string) string {
		c := epmdDial(t, ip, e.port, []byte{epmdNamesReq})
		defer func() { _ = c.Close() }()
		out, _ := io.ReadAll(c)
		return string(out[4:])
	}
	if got := names(podA); got != "name rabbit at port 25999\n" {
		t.Errorf("NAMES on %s = %q", podA, got)
	}
	if got := names(podB); got != "" {
		t.Errorf("NAMES on %s = %q, want none", podB, got)
	}
	c := epmdDial(t, podA, e.port, append([]byte{epmdPortPlease2}, "rabbit"...))
	out, _ := io.ReadAll(c)
	_ = c.Close()
	if len(out) < 4 || out[0] != epmdPort2Resp || out[1] != 0 || binary.BigEndian.Uint16(out[2:4]) != 25999 {
		t.Errorf("PORT_PLEASE2 on %s = %v", podA, out)
	}
	c = epmdDial(t, podB, e.port, append([]byte{epmdPortPlease2}, "rabbit"...))
	out, _ = io.ReadAll(c)
	_ = c.Close()
	if len(out) != 2 || out[1] == 0 {
		t.Errorf("PORT_PLEASE2 on %s = %v, want an error", podB, out)
	}
}

func epmdDial(t *testing.T, ip string, port int, req []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(req)))
	if _, err := c.Write(append(msg, req...)); err != nil {
		t.Fatal(err)
	}
	return c
}
