package resource

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// These tests run the real redis-server (Debian's 7.0) on the configuration
// the builders render, changed only where it names a path inside the
// container: the cache's redis.conf through RedisConfOptions, the broker's by
// rewriting the paths of its volume mounts. A Redis that refuses a directive,
// or reads it differently from what the builder meant, fails them.

// redisTestTimeout bounds every wait on a redis-server, which starts in
// milliseconds.
const redisTestTimeout = 15 * time.Second

// TestGoldenRedisConf pins the cache's redis.conf of the sample platform.
func TestGoldenRedisConf(t *testing.T) {
	assertGolden(t, "redis.conf.golden", RenderRedisConf(cacheConfOptions(samplePlatform())))
}

// TestRedisCacheConfOnRealServer starts redis-server on the cache's
// redis.conf, with the pod's own arguments, and checks what a cluster node of
// the platform must be: password required, cluster mode with nodes.conf on
// the data volume, hostname endpoints, an LRU cache without persistence.
func TestRedisCacheConfOnRealServer(t *testing.T) {
	bin := testutil.RequireRedisServer(t)
	p := samplePlatform()
	// A password with the characters a config file must quote: the one in
	// the Secret must be the one Redis asks for, byte for byte.
	const password = `Cr3d "quoted" back\slash $HOME 'single' #hash`
	children := cacheChildren(p, Credentials{{Secret: CacheName(p), Key: KeyPassword}: password})
	cm := find[*corev1.ConfigMap](t, children, CacheName(p))
	sec := find[*corev1.Secret](t, children, CacheName(p))
	container := statefulContainer(t, find[*appsv1.StatefulSet](t, children, CacheName(p)), "redis")

	// The conf under test is the ConfigMap's, with the data dir and the auth
	// file moved to temp dirs and nothing else changed.
	dataDir, authDir := t.TempDir(), t.TempDir()
	o := cacheConfOptions(p)
	o.DataDir, o.AuthConf = dataDir, filepath.Join(authDir, RedisAuthConfKey)
	conf := RenderRedisConf(o)
	back := strings.NewReplacer(o.AuthConf, redisAuthDir+"/"+RedisAuthConfKey, dataDir, redisDataDir).Replace(conf)
	if back != cm.Data[RedisConfKey] {
		t.Fatalf("the conf under test is not the ConfigMap's with only its paths moved:\n%s", lineDiff(cm.Data[RedisConfKey], back))
	}
	writeTestFile(t, o.AuthConf, string(sec.Data[RedisAuthConfKey]), 0o400)

	// The pod's command: redis-server <the mounted conf> <flags>. Its flags
	// run as they are, with $(POD_NAME) expanded as the kubelet would.
	confMount := redisConfigDir + "/" + RedisConfKey
	if len(container.Command) < 2 || container.Command[0] != "redis-server" || container.Command[1] != confMount {
		t.Fatalf("cache container command = %q, want redis-server %s <flags>", container.Command, confMount)
	}
	assertMounted(t, container, confMount, "config")
	podName := CacheName(p) + "-0"
	flags := expandPodName(container.Command[2:], podName)
	hostname := podName + "." + CacheHeadlessName(p) + "." + p.Namespace + ".svc"
	if i := slices.Index(flags, "--cluster-announce-hostname"); i < 0 || i+1 >= len(flags) || flags[i+1] != hostname {
		t.Fatalf("cache flags %q do not announce the pod's DNS name %q", flags, hostname)
	}

	start := time.Now()
	srv := startRedis(t, bin, conf, flags...)
	t.Logf("redis-server answered %v after start", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), redisTestTimeout)
	defer cancel()

	assertRedisAuth(ctx, t, srv, password)
	assertRedisProbes(ctx, t, srv, container, children, podName)
	rdb := srv.client(t, password)

	info, err := rdb.ClusterInfo(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER INFO: %v", err)
	}
	if got := clusterField(info, "cluster_state"); got != "fail" {
		t.Errorf("cluster_state before any slot is assigned = %q, want fail", got)
	}
	if got, err := rdb.Info(ctx, "cluster").Result(); err != nil || !strings.Contains(got, "cluster_enabled:1") {
		t.Errorf("INFO cluster = %q (%v), want cluster_enabled:1", got, err)
	}

	assertRedisConfig(ctx, t, rdb, map[string]string{
		"maxmemory-policy":                "allkeys-lru",
		"maxmemory":                       strconv.FormatInt(o.MaxmemoryBytes, 10),
		"cluster-preferred-endpoint-type": "hostname",
		"cluster-announce-hostname":       hostname,
		"cluster-enabled":                 "yes",
		"cluster-config-file":             filepath.Join(dataDir, "nodes.conf"),
		"cluster-require-full-coverage":   "no",
		"cluster-node-timeout":            "5000",
		"dir":                             dataDir,
		"save":                            "",
		"appendonly":                      "yes",
		"appendfsync":                     "everysec",
		"requirepass":                     password,
		"masterauth":                      password,
	})
	if o.MaxmemoryBytes <= 0 {
		t.Errorf("the sample platform's cache has maxmemory %d: with no limit Redis never evicts, and allkeys-lru does nothing", o.MaxmemoryBytes)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nodes.conf")); err != nil {
		t.Errorf("nodes.conf is not on the data volume: %v", err)
	}

	// What the operator will do to form the cluster: with every slot
	// assigned, the node serves keys and tells clients its DNS name.
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE 0 16383: %v", err)
	}
	pollUntil(ctx, t, "cluster_state:ok", func() (bool, string) {
		info, err := rdb.ClusterInfo(ctx).Result()
		return err == nil && clusterField(info, "cluster_state") == "ok", fmt.Sprint(info, err)
	})
	if err := rdb.Set(ctx, "user_42", `{"name":"test"}`, time.Hour).Err(); err != nil {
		t.Errorf("SET on the formed one-node cluster: %v", err)
	}
	if got, err := rdb.Get(ctx, "user_42").Result(); err != nil || got != `{"name":"test"}` {
		t.Errorf("GET = %q, %v", got, err)
	}
	slots, err := rdb.ClusterSlots(ctx).Result() //nolint:staticcheck // SA1019: the test checks the CLUSTER SLOTS reply itself, which older clients still use.
	if err != nil || len(slots) != 1 || len(slots[0].Nodes) != 1 {
		t.Fatalf("CLUSTER SLOTS = %+v, %v; want one range on one node", slots, err)
	}
	if want := net.JoinHostPort(hostname, strconv.Itoa(srv.port)); slots[0].Nodes[0].Addr != want {
		t.Errorf("CLUSTER SLOTS sends clients to %q, want the pod's DNS name %q", slots[0].Nodes[0].Addr, want)
	}
	nodes, err := os.ReadFile(filepath.Join(dataDir, "nodes.conf"))
	if err != nil || !strings.Contains(string(nodes), ","+hostname+" ") || !strings.Contains(string(nodes), "0-16383") {
		t.Errorf("nodes.conf does not keep the hostname and the slots across restarts (%v):\n%s", err, nodes)
	}
}

// TestRedisCacheRestartKeepsKeys restarts a cache node on its data volume,
// as a rollout or a node drain does: every key written before is there
// after. With persistence off the node came back empty, and its replica
// then resynchronised from it and lost its copy too.
func TestRedisCacheRestartKeepsKeys(t *testing.T) {
	bin := testutil.RequireRedisServer(t)
	p := samplePlatform()
	const password = "restart-test-password"
	sec := find[*corev1.Secret](t, cacheChildren(p, Credentials{{Secret: CacheName(p), Key: KeyPassword}: password}), CacheName(p))
	dataDir, authDir := t.TempDir(), t.TempDir()
	o := cacheConfOptions(p)
	o.DataDir, o.AuthConf = dataDir, filepath.Join(authDir, RedisAuthConfKey)
	writeTestFile(t, o.AuthConf, string(sec.Data[RedisAuthConfKey]), 0o400)
	conf := RenderRedisConf(o)
	ctx, cancel := context.WithTimeout(t.Context(), 2*redisTestTimeout)
	defer cancel()

	srv := startRedis(t, bin, conf)
	rdb := srv.client(t, password)
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	pollUntil(ctx, t, "cluster_state:ok", func() (bool, string) {
		info, err := rdb.ClusterInfo(ctx).Result()
		return err == nil && clusterField(info, "cluster_state") == "ok", fmt.Sprint(info, err)
	})
	const keys = 5000
	pipe := rdb.Pipeline()
	for i := range keys {
		pipe.Set(ctx, "user_"+strconv.Itoa(i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing %d keys: %v", keys, err)
	}
	srv.stop()

	again := startRedis(t, bin, conf).client(t, password)
	pollUntil(ctx, t, "the node to load its keys and serve its slots", func() (bool, string) {
		n, err := again.DBSize(ctx).Result()
		info, infoErr := again.ClusterInfo(ctx).Result()
		return err == nil && n == keys && clusterField(info, "cluster_state") == "ok",
			fmt.Sprintf("DBSIZE = %d, %v; %v %v", n, err, clusterField(info, "cluster_state"), infoErr)
	})
	for _, i := range []int{0, keys / 2, keys - 1} {
		if got, err := again.Get(ctx, "user_"+strconv.Itoa(i)).Int(); err != nil || got != i {
			t.Errorf("GET user_%d after the restart = %d, %v", i, got, err)
		}
	}
	t.Logf("%d keys written before the restart, %d read after it, 0 lost", keys, keys)
}

// TestRedisBrokerConfOnRealServer starts redis-server on the Redis broker's
// redis.conf, its container paths moved to temp dirs, and checks it asks for
// the password, keeps the queues on disk and never evicts a task; and that
// the broker URL workers get from the Secret logs in.
func TestRedisBrokerConfOnRealServer(t *testing.T) {
	bin := testutil.RequireRedisServer(t)
	p := withSeedQueues(samplePlatform())
	p.Spec.Queues.Broker.Type = platformv1.BrokerRedis
	// URL delimiters in the password: the broker URL must escape them.
	const password = "Cr3d/Br0ker:p@ss#1?%20"
	children := brokerChildren(p, Credentials{{Secret: BrokerName(p), Key: KeyPassword}: password})
	cm := find[*corev1.ConfigMap](t, children, BrokerName(p))
	sec := find[*corev1.Secret](t, children, BrokerName(p))
	container := statefulContainer(t, find[*appsv1.StatefulSet](t, children, BrokerName(p)), "redis")

	confMount := redisConfigDir + "/" + RedisConfKey
	if len(container.Command) < 2 || container.Command[0] != "redis-server" || container.Command[1] != confMount {
		t.Fatalf("broker container command = %q, want redis-server %s", container.Command, confMount)
	}
	assertMounted(t, container, confMount, "config")
	root := t.TempDir()
	conf, moved := moveMountedPaths(t, cm.Data[RedisConfKey], container, root, confMount)
	dataDir := filepath.Join(root, dataVolumeName)
	for _, want := range []string{dataVolumeName, "auth"} {
		if !moved[want] {
			t.Errorf("the broker's redis.conf uses no path of the %q volume:\n%s", want, cm.Data[RedisConfKey])
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(root, "auth", RedisAuthConfKey), string(sec.Data[RedisAuthConfKey]), 0o400)

	start := time.Now()
	srv := startRedis(t, bin, conf, container.Command[2:]...)
	t.Logf("redis-server answered %v after start", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), redisTestTimeout)
	defer cancel()

	assertRedisAuth(ctx, t, srv, password)
	assertRedisProbes(ctx, t, srv, container, children, BrokerName(p)+"-0")
	rdb := srv.client(t, password)
	assertRedisConfig(ctx, t, rdb, map[string]string{
		"appendonly":       "yes",
		"maxmemory-policy": "noeviction",
		"cluster-enabled":  "no",
		"dir":              dataDir,
		"requirepass":      password,
	})
	if err := rdb.LPush(ctx, "parser", "task").Err(); err != nil {
		t.Errorf("LPUSH to the parser queue: %v", err)
	}
	pollUntil(ctx, t, "the append-only file on the data volume", func() (bool, string) {
		entries, _ := os.ReadDir(dataDir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return slices.Index(names, "appendonlydir") >= 0, fmt.Sprint(names)
	})

	// The URL in the Secret is what Celery connects with.
	opt, err := redis.ParseURL(string(sec.Data[KeyBrokerURL]))
	if err != nil {
		t.Fatalf("the broker URL in the Secret does not parse: %v", err)
	}
	if host, port, _ := net.SplitHostPort(opt.Addr); host != BrokerName(p)+"."+p.Namespace+".svc" || port != strconv.Itoa(int(RedisPort)) {
		t.Errorf("broker URL points at %s, want the broker Service on %d", opt.Addr, RedisPort)
	}
	opt.Addr, opt.MaxRetries = srv.addr(), -1
	viaURL := redis.NewClient(opt)
	t.Cleanup(func() { _ = viaURL.Close() })
	if got, err := viaURL.RPop(ctx, "parser").Result(); err != nil || got != "task" {
		t.Errorf("with the broker URL's credentials, RPOP parser = %q, %v", got, err)
	}
}

// TestRedisAuthConfQuotingOnRealServer: whatever the password, the auth file
// the Secret carries must make Redis require exactly that password.
func TestRedisAuthConfQuotingOnRealServer(t *testing.T) {
	bin := testutil.RequireRedisServer(t)
	for name, password := range map[string]string{
		"generated":         "Cr3d0a1b2c3d4e5f6a7b8c9d0e1f2",
		"quotes and escape": `a"b'c\d\\e\"f`,
		"shell and comment": "$(id) `id` # ; |",
		"spaces":            " leading and trailing ",
		"utf-8":             "пароль-密码-é",
		"control bytes":     "tab\there\nnewline\r\x01\x7f",
		"non-printable":     "nbsp\u00a0zwsp\u200b",
		"invalid utf-8":     "\xff\xfe",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			auth := filepath.Join(dir, RedisAuthConfKey)
			writeTestFile(t, auth, RenderRedisAuthConf(password), 0o400)
			srv := startRedis(t, bin, "dir "+dir+"\nsave \"\"\ninclude "+auth+"\n")
			ctx, cancel := context.WithTimeout(t.Context(), redisTestTimeout)
			defer cancel()
			rdb := srv.client(t, password)
			got, err := rdb.ConfigGet(ctx, "requirepass").Result()
			if err != nil {
				t.Fatalf("the password did not log in: %v\n--- auth file ---\n%s--- redis-server ---\n%s", err, RenderRedisAuthConf(password), srv.log())
			}
			if got["requirepass"] != password {
				t.Errorf("requirepass = %q, want %q", got["requirepass"], password)
			}
		})
	}
}

// redisServer is a redis-server the test started; it is stopped when the
// test ends.
type redisServer struct {
	port int
	out  *testutil.SyncBuffer
	// stop ends the server (SIGTERM, as a kubelet does); it is safe to call
	// more than once.
	stop func()
}

func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }
func (s *redisServer) log() string  { return s.out.String() }

// client is a go-redis client of the server, without retries so a refusal
// surfaces at once; it is closed when the test ends.
func (s *redisServer) client(t *testing.T, password string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), Password: password, MaxRetries: -1, DialTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startRedis writes conf to a temp file and runs `redis-server <file>
// <flags> --port <free port>`, whose cluster bus port (port+10000) is free
// too. It returns once the server accepts connections.
func startRedis(t *testing.T, bin, conf string, flags ...string) *redisServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "redis.conf")
	writeTestFile(t, path, conf, 0o600)
	port := testutil.FreeRedisPort(t)
	args := append(append([]string{path}, flags...), "--port", strconv.Itoa(port))
	cmd := exec.Command(bin, args...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := sync.OnceFunc(func() { stopProcess(t, cmd.Process, exited, 10*time.Second, out) })
	t.Cleanup(stop)

	srv := &redisServer{port: port, out: out, stop: stop}
	deadline := time.Now().Add(redisTestTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", srv.addr(), time.Second)
		if err == nil {
			_ = conn.Close()
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s within %v: %v\n%s", srv.addr(), redisTestTimeout, err, out)
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("redis-server exited before listening (%v): %s\n--- redis.conf ---\n%s", err, out, conf)
		case <-tick.C:
		}
	}
}

// stopProcess ends a server the test started: SIGTERM, then SIGKILL when it
// has not exited within grace.
func stopProcess(t *testing.T, p *os.Process, exited chan error, grace time.Duration, out *testutil.SyncBuffer) {
	t.Helper()
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited: //nolint:errcheck // stopping it on purpose: its exit error is expected.
	case <-time.After(grace):
		t.Errorf("pid %d did not stop within %v of SIGTERM; killing it\n%s", p.Pid, grace, out)
		_ = p.Kill()
		<-exited //nolint:errcheck // stopping it on purpose: its exit error is expected.
	}
}

// assertRedisAuth: without a password every command is refused, a wrong one
// is refused, and AUTH with the right one opens the connection.
func assertRedisAuth(ctx context.Context, t *testing.T, srv *redisServer, password string) {
	t.Helper()
	anon := srv.client(t, "")
	for _, cmd := range [][]any{{"PING"}, {"CLUSTER", "INFO"}, {"GET", "user_1"}} {
		if err := anon.Do(ctx, cmd...).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Errorf("unauthenticated %v: err = %v, want NOAUTH", cmd, err)
		}
	}
	conn := anon.EphemeralConn()
	defer func() { _ = conn.Close() }()
	if err := conn.Auth(ctx, password+"x").Err(); err == nil {
		t.Errorf("AUTH with a wrong password succeeded")
	}
	if got, err := conn.Auth(ctx, password).Result(); err != nil || got != "OK" {
		t.Fatalf("AUTH <password> = %q, %v\n%s", got, err, srv.log())
	}
	if err := conn.Ping(ctx).Err(); err != nil {
		t.Errorf("PING after AUTH: %v", err)
	}
}

// assertRedisProbes runs the container's readiness and liveness probes as
// the kubelet would, in the container's environment (REDISCLI_AUTH from the
// Secret), against the test server: only the port is the test's. Without
// the password in the environment the same probe must fail.
func assertRedisProbes(ctx context.Context, t *testing.T, srv *redisServer, c corev1.Container, objs []client.Object, podName string) {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		testutil.MissingTool(t, "redis-cli (Debian package redis-tools)", err)
	}
	env := containerEnv(t, c, objs, podName)
	run := func(argv []string, env []string) error {
		port := strconv.Itoa(int(RedisPort))
		args := make([]string, len(argv))
		for i, a := range argv {
			args[i] = strings.ReplaceAll(a, "-p "+port, "-p "+strconv.Itoa(srv.port))
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		return cmd.Run()
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe == nil || probe.Exec == nil || len(probe.Exec.Command) == 0 {
			t.Errorf("%s probe of %s is not an exec probe: %+v", name, c.Name, probe)
			continue
		}
		if !strings.Contains(strings.Join(probe.Exec.Command, " "), "-p "+strconv.Itoa(int(RedisPort))) {
			t.Fatalf("%s probe %q does not name the port %d this test replaces", name, probe.Exec.Command, RedisPort)
		}
		if err := run(probe.Exec.Command, env); err != nil {
			t.Errorf("%s probe %q fails on a healthy server: %v", name, probe.Exec.Command, err)
		}
		var noAuth []string
		for _, e := range env {
			if !strings.HasPrefix(e, "REDISCLI_AUTH=") {
				noAuth = append(noAuth, e)
			}
		}
		if err := run(probe.Exec.Command, noAuth); err == nil {
			t.Errorf("%s probe %q passes without the password: it would not notice a server that refuses the platform's clients", name, probe.Exec.Command)
		}
	}
}

// containerEnv is the environment the kubelet gives c: plain values, Secret
// keys from objs, metadata.name as podName; PATH from the test.
func containerEnv(t *testing.T, c corev1.Container, objs []client.Object, podName string) []string {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			sec := find[*corev1.Secret](t, objs, ref.Name)
			v, ok := sec.Data[ref.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
			}
			env = append(env, e.Name+"="+string(v))
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+podName)
		default:
			t.Fatalf("env %s: source %+v is not simulated", e.Name, e.ValueFrom)
		}
	}
	return env
}

// assertRedisConfig compares CONFIG GET of each parameter with want.
func assertRedisConfig(ctx context.Context, t *testing.T, rdb *redis.Client, want map[string]string) {
	t.Helper()
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		got, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			t.Errorf("CONFIG GET %s: %v", name, err)
			continue
		}
		if v, ok := got[name]; !ok || v != want[name] {
			t.Errorf("CONFIG GET %s = %q (present %v), want %q", name, v, ok, want[name])
		}
	}
}

// pollUntil polls cond until it holds or ctx ends.
func pollUntil(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		case <-tick.C:
		}
	}
}

// clusterField is one "name:value" line of CLUSTER INFO.
func clusterField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// moveMountedPaths rewrites every absolute path in conf that lies under one
// of the container's volume mounts (but skip, the conf file's own mount) to
// the same place under root/<volume name>. It fails on an absolute path no
// mount covers: in the pod, with a read-only root file system, that path
// would not be there or not be writable. It returns the volumes it moved.
func moveMountedPaths(t *testing.T, conf string, c corev1.Container, root, skip string) (string, map[string]bool) {
	t.Helper()
	moved := map[string]bool{}
	var out []string
	for line := range strings.SplitSeq(conf, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			out = append(out, line)
			continue
		}
		for i, f := range fields[1:] {
			if !strings.HasPrefix(f, "/") {
				continue
			}
			m := volumeMountOf(c, f, skip)
			if m == nil {
				t.Fatalf("redis.conf line %q names %s, which no volume of the container holds", line, f)
			}
			fields[i+1] = filepath.Join(root, m.Name, strings.TrimPrefix(f, m.MountPath))
			moved[m.Name] = true
		}
		out = append(out, strings.Join(fields, " "))
	}
	return strings.Join(out, "\n"), moved
}

// volumeMountOf is the volume mount that holds path, the deepest one.
func volumeMountOf(c corev1.Container, path, skip string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == skip {
			continue
		}
		if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			if best == nil || len(m.MountPath) > len(best.MountPath) {
				best = &c.VolumeMounts[i]
			}
		}
	}
	return best
}

// assertMounted: path is mounted from the volume named volume ("" for not
// mounted at all).
func assertMounted(t *testing.T, c corev1.Container, path, volume string) {
	t.Helper()
	got := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			got = m.Name
		}
	}
	if got != volume {
		t.Fatalf("container %s mounts %s from volume %q, want %q", c.Name, path, got, volume)
	}
}

func statefulContainer(t *testing.T, sts *appsv1.StatefulSet, name string) corev1.Container {
	t.Helper()
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("StatefulSet %s has no container %q", sts.Name, name)
	return corev1.Container{}
}

// expandPodName does the kubelet's $(POD_NAME) substitution in args.
func expandPodName(args []string, pod string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "$(POD_NAME)", pod)
	}
	return out
}

func writeTestFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// lineDiff lists the lines of b that differ from a.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d: want %q, got %q", i+1, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// withSeedQueues adds the sample's Celery tier (config/samples): queues parser,
// analytics and notifications, each with its routing key and task route.
func withSeedQueues(p *platformv1.ParserPlatform) *platformv1.ParserPlatform {
	p.Spec.Queues = &platformv1.QueuesSpec{
		Workers: platformv1.WorkersSpec{Image: "registry.example.com/vk-parser/worker:1.4.0", App: "vk_parser"},
		Queues: []platformv1.QueueSpec{
			{Name: "parser", RoutingKey: "parser", Tasks: []string{"parser.tasks.parse_comments"}, Concurrency: 4},
			{Name: "analytics", RoutingKey: "analytics", Tasks: []string{"analytics.tasks.process_data"}},
			{Name: "notifications", RoutingKey: "notifications", Tasks: []string{"notifications.tasks.send_email"}},
		},
	}
	return p
}
