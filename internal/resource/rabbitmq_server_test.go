package resource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vkparser/parser-operator/internal/testutil"
)

// The RabbitMQ test boots Debian's rabbitmq-server (3.10 on Erlang 25) on
// the broker's files laid out as the kubelet lays them out in the pod, and
// asks it with rabbitmqctl what it imported: the definitions must declare
// what Celery declares for the seed's queues, and create the one user,
// whose password hash only the right password matches.

// rabbitBootTimeout bounds the boot; RabbitMQ starts in about 5 s here.
const rabbitBootTimeout = 60 * time.Second

// TestGoldenQueueDefinitions pins queues.json for the seed's queues.
func TestGoldenQueueDefinitions(t *testing.T) {
	assertGolden(t, "queues.json.golden", RenderQueueDefinitions(withSeedQueues(samplePlatform())))
}

// TestRabbitMQDefinitionsOnRealServer boots RabbitMQ on the broker's
// rabbitmq.conf and definitions (only the definitions directory, the port
// and the plugins differ from the pod) and checks the queues, the exchange,
// the bindings, the user and its password, and the pod's probes.
func TestRabbitMQDefinitionsOnRealServer(t *testing.T) {
	rmq := requireRabbitMQ(t)
	p := withSeedQueues(samplePlatform())
	const password = "Cr3d9f8e7d6c5b4a39281706f5e4d3c2" // shaped like a generated one
	const cookie = "Cr3dCookie0123456789abcdefABCDEF"
	children := brokerChildren(p, Credentials{
		{Secret: BrokerName(p), Key: KeyPassword}:     password,
		{Secret: BrokerName(p), Key: KeyErlangCookie}: cookie,
	})
	cm := find[*corev1.ConfigMap](t, children, BrokerName(p))
	sts := find[*appsv1.StatefulSet](t, children, BrokerName(p))
	container := statefulContainer(t, sts, "rabbitmq")
	env := map[string]string{}
	for _, e := range container.Env {
		env[e.Name] = e.Value
	}

	// What the pod mounts, at the same paths under root, with the kubelet's
	// layout for ConfigMap, Secret and projected volumes.
	root := rabbitTempDir(t, rmq)
	podFilesystem(t, root, sts, container, children)
	inPod := func(path string) string { return filepath.Join(root, path) }

	// The ConfigMap's rabbitmq.conf, with only the definitions directory and
	// the port moved, and no cluster members: this node runs alone.
	defsDir := rabbitDefinitionsDir(t, cm.Data[RabbitConfKey])
	if cm.Data[RabbitConfKey] != RenderRabbitConf(defsDir, AMQPPort, rabbitNodes(p)...) {
		t.Fatalf("the ConfigMap's rabbitmq.conf is not RenderRabbitConf(%q, %d, nodes)", defsDir, AMQPPort)
	}
	confFile := env["RABBITMQ_CONFIG_FILE"] + ".conf"
	if _, err := os.Stat(inPod(confFile)); err != nil {
		t.Fatalf("RABBITMQ_CONFIG_FILE=%s: the pod has no %s: %v", env["RABBITMQ_CONFIG_FILE"], confFile, err)
	}
	port, distPort, epmdPort := freePort(t), freePort(t), freePort(t)
	writeThrough(t, inPod(confFile), RenderRabbitConf(inPod(defsDir), int32(port)))

	// No plugin starts in the test (management would take the fixed port
	// 15672); the ones the pod enables must at least exist.
	pluginsFile := env["RABBITMQ_ENABLED_PLUGINS_FILE"]
	assertPluginsExist(t, readFile(t, inPod(pluginsFile)))
	writeThrough(t, inPod(pluginsFile), "[].\n")
	chownTree(t, root, rmq.uid, rmq.gid)

	node := "t" + randomHex(t, 4) + "@localhost"
	srv := startRabbit(t, rmq, root, node, map[string]string{
		"RABBITMQ_CONFIG_FILE":          inPod(env["RABBITMQ_CONFIG_FILE"]),
		"RABBITMQ_ENABLED_PLUGINS_FILE": inPod(pluginsFile),
		"RABBITMQ_MNESIA_BASE":          filepath.Join(root, "mnesia"),
		"RABBITMQ_LOG_BASE":             filepath.Join(root, "log"),
		"RABBITMQ_NODENAME":             node,
		"RABBITMQ_DIST_PORT":            strconv.Itoa(distPort),
		// A private epmd, stopped with the node: the test leaves no daemon.
		"ERL_EPMD_PORT": strconv.Itoa(epmdPort),
		// The pod's cookie, from the Secret as in the pod.
		"RABBITMQ_ERLANG_COOKIE": cookie,
	}, port)

	// The pod's probes, run as the kubelet runs them: in the container's
	// environment, which names the node and carries the cookie.
	for name, probe := range map[string]*corev1.Probe{"readiness": container.ReadinessProbe, "liveness": container.LivenessProbe} {
		if probe == nil || probe.Exec == nil || len(probe.Exec.Command) == 0 {
			t.Errorf("%s probe is not an exec probe: %+v", name, probe)
			continue
		}
		if out, err := srv.run(t, probe.Exec.Command...); err != nil {
			t.Errorf("%s probe %q fails on a healthy node: %v\n%s", name, probe.Exec.Command, err, out)
		}
	}
	// The control: with another cookie the CLI is refused, so the probe
	// above really authenticated with the Secret's cookie.
	wrong := *srv
	wrong.env = append(slices.Clone(srv.env), "RABBITMQ_ERLANG_COOKIE=NotTheCookie0123456789")
	if out, err := wrong.run(t, container.ReadinessProbe.Exec.Command...); err == nil {
		t.Errorf("the readiness probe passed with a wrong Erlang cookie: the node does not use the Secret's cookie\n%s", out)
	}

	// Exactly the seed's queues, durable, as Celery declares them.
	queues := srv.list(t, "list_queues", "name", "durable")
	var gotQueues []string
	for _, q := range queues {
		gotQueues = append(gotQueues, fmt.Sprintf("%v durable=%v", q["name"], q["durable"]))
	}
	sort.Strings(gotQueues)
	assertEqualStrings(t, "queues", gotQueues, []string{"analytics durable=true", "notifications durable=true", "parser durable=true"})
	if t.Failed() {
		t.Logf("what the node logged about definitions:\n%s", srv.grepLog("definition"))
	}

	// The direct exchange "celery", durable, beside RabbitMQ's own.
	var celery []string
	for _, x := range srv.list(t, "list_exchanges", "name", "type", "durable") {
		if x["name"] == CeleryExchange {
			celery = append(celery, fmt.Sprintf("%v durable=%v", x["type"], x["durable"]))
		}
	}
	assertEqualStrings(t, "exchange celery", celery, []string{"direct durable=true"})

	// Each queue bound to it with its routing key (the default exchange's
	// implicit bindings aside).
	var bindings []string
	for _, b := range srv.list(t, "list_bindings", "source_name", "destination_name", "routing_key") {
		if b["source_name"] == CeleryExchange {
			bindings = append(bindings, fmt.Sprintf("%v -> %v", b["routing_key"], b["destination_name"]))
		}
	}
	sort.Strings(bindings)
	assertEqualStrings(t, "bindings of celery", bindings, []string{
		"analytics -> analytics", "notifications -> notifications", "parser -> parser",
	})

	// Only the platform's user: definitions replace the default guest.
	var users []string
	for _, u := range srv.list(t, "list_users") {
		users = append(users, fmt.Sprint(u["user"]))
	}
	assertEqualStrings(t, "users", users, []string{BrokerUser})
	var perms []string
	for _, pm := range srv.list(t, "list_permissions", "-p", "/") {
		perms = append(perms, fmt.Sprintf("%v %v %v %v", pm["user"], pm["configure"], pm["write"], pm["read"]))
	}
	assertEqualStrings(t, "permissions on /", perms, []string{BrokerUser + " .* .* .*"})

	// The hash in the Secret matches the password, and only it.
	if out, err := srv.ctl(t, "authenticate_user", BrokerUser, password); err != nil {
		t.Errorf("authenticate_user %s <password> failed: the password hash in users.json does not match the password: %v\n%s", BrokerUser, err, out)
	}
	if out, err := srv.ctl(t, "authenticate_user", BrokerUser, password+"x"); err == nil {
		t.Errorf("authenticate_user with a wrong password succeeded:\n%s", out)
	}
}

// TestRabbitMQDefinitionsDirectoryHoldsOnlyDefinitions needs no server:
// RabbitMQ imports every entry of the load_definitions directory and gives
// up at the first that is not a readable file, so in the pod (laid out as
// the kubelet would) that directory must hold queues.json and users.json and
// nothing else; the kubelet's "..data" entries of a volume mounted there
// left the broker without its vhost, user and queues.
func TestRabbitMQDefinitionsDirectoryHoldsOnlyDefinitions(t *testing.T) {
	p := withSeedQueues(samplePlatform())
	children := brokerChildren(p, Credentials{})
	cm := find[*corev1.ConfigMap](t, children, BrokerName(p))
	sts := find[*appsv1.StatefulSet](t, children, BrokerName(p))
	root := t.TempDir()
	podFilesystem(t, root, sts, statefulContainer(t, sts, "rabbitmq"), children)
	dir := filepath.Join(root, rabbitDefinitionsDir(t, cm.Data[RabbitConfKey]))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the pod has no definitions directory: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name()+" "+e.Type().String())
	}
	assertEqualStrings(t, "entries of the definitions directory", names, []string{
		QueueDefinitionsKey + " " + fs.FileMode(0).String(), UserDefinitionsKey + " " + fs.FileMode(0).String(),
	})
}

// rabbitMQ is the Debian install the test drives.
type rabbitMQ struct {
	server, ctl string
	uid, gid    int
}

// requireRabbitMQ finds rabbitmq-server and rabbitmqctl and the rabbitmq
// user they drop to. Debian's scripts run only as root or rabbitmq.
func requireRabbitMQ(t *testing.T) rabbitMQ {
	t.Helper()
	server, err := testutil.LookSbin("rabbitmq-server")
	if err != nil {
		testutil.MissingTool(t, "rabbitmq-server (Debian package rabbitmq-server)", err)
	}
	ctl, err := testutil.LookSbin("rabbitmqctl")
	if err != nil {
		testutil.MissingTool(t, "rabbitmqctl (Debian package rabbitmq-server)", err)
	}
	u, err := user.Lookup("rabbitmq")
	if err != nil {
		testutil.MissingTool(t, "the rabbitmq user (Debian package rabbitmq-server)", err)
	}
	if os.Geteuid() != 0 {
		testutil.MissingTool(t, "root, to run Debian's rabbitmq-server as the rabbitmq user", fmt.Errorf("euid %d", os.Geteuid()))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return rabbitMQ{server: server, ctl: ctl, uid: uid, gid: gid}
}

// rabbitTempDir is a temp dir the rabbitmq user can reach (t.TempDir's
// parents are 0700 root), removed when the test ends.
func rabbitTempDir(t *testing.T, rmq rabbitMQ) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rabbitmq-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, rmq.uid, rmq.gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rabbitServer is a running node.
type rabbitServer struct {
	rmq  rabbitMQ
	node string
	env  []string
	root string
}

// startRabbit boots a node with env and waits, at most rabbitBootTimeout,
// for its AMQP listener, which RabbitMQ opens once the definitions are in.
// The node is stopped (rabbitmqctl stop, then SIGKILL to its process group)
// when the test ends.
func startRabbit(t *testing.T, rmq rabbitMQ, root, node string, env map[string]string, port int) *rabbitServer {
	t.Helper()
	srv := &rabbitServer{rmq: rmq, node: node, env: os.Environ(), root: root}
	for k, v := range env {
		srv.env = append(srv.env, k+"="+v)
	}
	cmd := exec.Command(rmq.server)
	cmd.Env = srv.env
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: the script's su, sh and beam.smp all end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting rabbitmq-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { srv.stop(t, cmd.Process.Pid, exited, out, env["ERL_EPMD_PORT"]) })

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(rabbitBootTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RabbitMQ did not listen on %s within %v\n%s", addr, rabbitBootTimeout, srv.logs(out))
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("rabbitmq-server exited during boot (%v)\n%s", err, srv.logs(out))
		case <-tick.C:
		}
	}
	if out, err := srv.ctl(t, "await_startup"); err != nil {
		t.Fatalf("rabbitmqctl await_startup: %v\n%s", err, out)
	}
	t.Logf("RabbitMQ %s booted and imported its definitions in %v", node, time.Since(start).Round(time.Millisecond))
	return srv
}

// ctl runs rabbitmqctl -n <node> -q args, bounded by a minute.
func (s *rabbitServer) ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return s.run(t, append([]string{s.rmq.ctl, "-n", s.node, "-q"}, args...)...)
}

// run runs a command in the node's environment, bounded by a minute; a
// bare RabbitMQ CLI name is looked up in sbin too.
func (s *rabbitServer) run(t *testing.T, argv ...string) (string, error) {
	t.Helper()
	bin := argv[0]
	if !strings.Contains(bin, "/") {
		path, err := testutil.LookSbin(bin)
		if err != nil {
			return "", err
		}
		bin = path
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// list runs a rabbitmqctl list command with the JSON formatter.
func (s *rabbitServer) list(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out, err := s.ctl(t, append(args, "--formatter", "json")...)
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("rabbitmqctl %s: not JSON (%v):\n%s", strings.Join(args, " "), err, out)
	}
	return rows
}

// stop ends the node: rabbitmqctl stop, then SIGKILL to the process group
// when it is still there after 30 s; then its private epmd.
func (s *rabbitServer) stop(t *testing.T, pgid int, exited chan error, out *testutil.SyncBuffer, epmdPort string) {
	t.Helper()
	start := time.Now()
	if ctlOut, err := s.ctl(t, "stop"); err != nil {
		t.Logf("rabbitmqctl stop: %v\n%s", err, ctlOut)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("rabbitmq-server still running 30 s after rabbitmqctl stop; killing it\n%s", s.logs(out))
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	// beam.smp and its helpers share the group; nothing may outlive the test.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if epmd, err := exec.LookPath("epmd"); err == nil && epmdPort != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = exec.CommandContext(ctx, epmd, "-port", epmdPort, "-kill").Run()
	}
	t.Logf("RabbitMQ stopped in %v", time.Since(start).Round(time.Millisecond))
}

// logs are the script's output and the node's log files.
func (s *rabbitServer) logs(out *testutil.SyncBuffer) string {
	var b strings.Builder
	b.WriteString("--- rabbitmq-server output ---\n" + out.String())
	files, _ := filepath.Glob(filepath.Join(s.root, "log", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		lines := strings.Split(string(data), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", filepath.Base(f), strings.Join(lines, "\n"))
	}
	return b.String()
}

// grepLog is the lines of the node's log files that contain word.
func (s *rabbitServer) grepLog(word string) string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(s.root, "log", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(strings.ToLower(line), word) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// podFilesystem lays out under root what the container sees at its mount
// paths: ConfigMap, Secret and projected volumes as the kubelet's atomic
// writer does (timestamped dir, ..data symlink, a symlink per key), a subPath
// mount as the single file, other volumes as empty directories.
func podFilesystem(t *testing.T, root string, sts *appsv1.StatefulSet, c corev1.Container, objs []client.Object) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, pvc := range sts.Spec.VolumeClaimTemplates {
		volumes[pvc.Name] = corev1.Volume{Name: pvc.Name}
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("container %s mounts volume %q, which the pod does not have", c.Name, m.Name)
		}
		files, atomic := volumeFiles(t, sts.Namespace, v, objs)
		target := filepath.Join(root, m.MountPath)
		switch {
		case m.SubPath != "":
			f, ok := files[m.SubPath]
			if !ok {
				t.Fatalf("mount %s: volume %s has no %q", m.MountPath, m.Name, m.SubPath)
			}
			writeTestFile(t, target, f.content, f.mode)
		case atomic:
			atomicWrite(t, target, files)
		default:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type volumeFile struct {
	content string
	mode    os.FileMode
}

// volumeFiles are the files of a ConfigMap, Secret or projected volume, by
// path; atomic is false for other volumes (empty directories).
func volumeFiles(t *testing.T, namespace string, v corev1.Volume, objs []client.Object) (map[string]volumeFile, bool) {
	t.Helper()
	files := map[string]volumeFile{}
	add := func(data map[string]string, items []corev1.KeyToPath, mode *int32, what string) {
		m := os.FileMode(0o644)
		if mode != nil {
			m = os.FileMode(*mode)
		}
		if len(items) == 0 {
			for k, val := range data {
				files[k] = volumeFile{val, m}
			}
			return
		}
		for _, it := range items {
			val, ok := data[it.Key]
			if !ok {
				t.Fatalf("volume %s: %s has no key %q", v.Name, what, it.Key)
			}
			im := m
			if it.Mode != nil {
				im = os.FileMode(*it.Mode)
			}
			files[it.Path] = volumeFile{val, im}
		}
	}
	configMap := func(name string) map[string]string {
		for _, o := range objs {
			if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == name && cm.Namespace == namespace {
				return cm.Data
			}
		}
		t.Fatalf("volume %s: no ConfigMap %s among the children", v.Name, name)
		return nil
	}
	secret := func(name string) map[string]string {
		for _, o := range objs {
			if s, ok := o.(*corev1.Secret); ok && s.Name == name && s.Namespace == namespace {
				out := map[string]string{}
				for k, val := range s.Data {
					out[k] = string(val)
				}
				for k, val := range s.StringData {
					out[k] = val
				}
				return out
			}
		}
		t.Fatalf("volume %s: no Secret %s among the children", v.Name, name)
		return nil
	}
	switch s := v.VolumeSource; {
	case s.ConfigMap != nil:
		add(configMap(s.ConfigMap.Name), s.ConfigMap.Items, s.ConfigMap.DefaultMode, "ConfigMap "+s.ConfigMap.Name)
	case s.Secret != nil:
		add(secret(s.Secret.SecretName), s.Secret.Items, s.Secret.DefaultMode, "Secret "+s.Secret.SecretName)
	case s.Projected != nil:
		for _, src := range s.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				add(configMap(src.ConfigMap.Name), src.ConfigMap.Items, s.Projected.DefaultMode, "ConfigMap "+src.ConfigMap.Name)
			case src.Secret != nil:
				add(secret(src.Secret.Name), src.Secret.Items, s.Projected.DefaultMode, "Secret "+src.Secret.Name)
			default:
				t.Fatalf("volume %s: projected source %+v is not simulated", v.Name, src)
			}
		}
	default:
		return nil, false
	}
	return files, true
}

// atomicWrite is the kubelet's AtomicWriter layout: the files in a
// timestamped hidden directory, "..data" pointing at it, and each top-level
// entry a symlink through "..data".
func atomicWrite(t *testing.T, dir string, files map[string]volumeFile) {
	t.Helper()
	ts := "..2026_01_02_03_04_05.123456789"
	top := map[string]bool{}
	for path, f := range files {
		writeTestFile(t, filepath.Join(dir, ts, path), f.content, f.mode)
		top[strings.SplitN(path, "/", 2)[0]] = true
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range top {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// writeThrough replaces a file's content, following a symlink as a write in
// the pod would.
func writeThrough(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// chownTree gives root and everything under it to uid:gid.
func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rabbitDefinitionsDir is the load_definitions path of a rabbitmq.conf.
func rabbitDefinitionsDir(t *testing.T, conf string) string {
	t.Helper()
	for line := range strings.SplitSeq(conf, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "load_definitions" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("rabbitmq.conf has no load_definitions:\n%s", conf)
	return ""
}

// assertPluginsExist: every plugin of an enabled_plugins file ships with the
// installed RabbitMQ.
func assertPluginsExist(t *testing.T, enabled string) {
	t.Helper()
	list := strings.TrimSpace(enabled)
	if !strings.HasPrefix(list, "[") || !strings.HasSuffix(list, "].") {
		t.Fatalf("enabled_plugins is not an Erlang list term: %q", enabled)
	}
	dirs, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins")
	if len(dirs) == 0 {
		t.Logf("no RabbitMQ plugins directory found; not checking %s", list)
		return
	}
	for name := range strings.SplitSeq(strings.TrimSuffix(strings.TrimPrefix(list, "["), "]."), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if found, _ := filepath.Glob(filepath.Join(dirs[0], name+"-*")); len(found) == 0 {
			t.Errorf("enabled_plugins names %q, which RabbitMQ does not ship", name)
		}
	}
}

func assertEqualStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// freePort is a TCP port free on every address right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
