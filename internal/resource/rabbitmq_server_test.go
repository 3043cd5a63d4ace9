package resource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/rabbitmq"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// The RabbitMQ tests boot Debian's rabbitmq-server (3.10 on Erlang 25) on
// the broker's files laid out as the kubelet lays them out in the pod, with
// the pod's init container run first, and ask it what it imported: the
// definitions must declare what Celery declares for the sample's queues, and
// create the one user, whose password hash only the right password matches.
// The node and its CLI run as the rabbitmq user with the pod's HOME, so the
// Erlang cookie they use is the file the init container wrote, as in the
// pod (Debian's wrapper scripts would reset HOME to /var/lib/rabbitmq).

// rabbitBootTimeout bounds the boot; RabbitMQ starts in about 5 s here.
const rabbitBootTimeout = 60 * time.Second

// TestGoldenQueueDefinitions pins queues.json for the sample's queues.
func TestGoldenQueueDefinitions(t *testing.T) {
	assertGolden(t, "queues.json.golden", RenderQueueDefinitions(withSeedQueues(samplePlatform())))
}

// TestGoldenRabbitConf pins the broker's rabbitmq.conf for a 3-node broker:
// listeners, definitions, console-only logging, cluster members.
func TestGoldenRabbitConf(t *testing.T) {
	p := withSeedQueues(samplePlatform())
	p.Spec.Queues.Broker.Replicas = 3
	cm := find[*corev1.ConfigMap](t, brokerChildren(p, Credentials{}), BrokerName(p))
	assertGolden(t, "rabbitmq.conf.golden", cm.Data[RabbitConfKey])
}

// Credentials shaped like generated ones.
const (
	testBrokerPassword = "Cr3d9f8e7d6c5b4a39281706f5e4d3c2"
	testBrokerCookie   = "Cr3dCookie0123456789abcdefABCDEF"
	// testOperatorPassword is the operator's management API user's.
	testOperatorPassword = "Cr3dOperat0r0123456789abcdefABCD"
)

// brokerPod is a broker pod's file system under root, with its node running.
type brokerPod struct {
	srv       *rabbitServer
	root      string
	container corev1.Container
	env       map[string]string // the container's literal env
	amqpPort  int
	mgmtPort  int // 0 without the management plugin
	promPort  int // 0 without rabbitmq_prometheus
	children  []client.Object
}

// inPod maps a path of the container to the test's file system.
func (b *brokerPod) inPod(path string) string { return filepath.Join(b.root, path) }

// bootBrokerPod lays out the pod (every mount of the init container and the
// broker container), runs the init container's command as the pod's user,
// and boots the node on the ConfigMap's rabbitmq.conf with only the
// definitions directory and the ports moved (and no cluster members: this
// node runs alone). With management, the management plugin listens on a
// free port of 127.0.0.1; else no plugin starts, and the ones the pod
// enables must at least exist.
func bootBrokerPod(t *testing.T, rmq rabbitMQ, p *platformv1.ParserPlatform, management bool) *brokerPod {
	t.Helper()
	return bootBrokerPodWith(t, rmq, p, brokerBoot{management: management})
}

// brokerBoot are the choices of bootBrokerPodWith.
type brokerBoot struct {
	management bool
	node       string // the node name; "" for a new one
	// dataVolume, when set, is the directory the pod's PVC mount gets (the
	// volume of an earlier pod), instead of a fresh empty one.
	dataVolume string
	// mnesiaBase, when set, replaces the pod's RABBITMQ_MNESIA_BASE (a path
	// of the test's file system).
	mnesiaBase string
	// prometheus enables rabbitmq_prometheus on a free port of 127.0.0.1
	// (its settings come from the pod's advanced.config, which every boot
	// reads, plugin or not).
	prometheus bool
}

func bootBrokerPodWith(t *testing.T, rmq rabbitMQ, p *platformv1.ParserPlatform, opts brokerBoot) *brokerPod {
	t.Helper()
	children := brokerChildren(p, Credentials{
		{Secret: BrokerName(p), Key: KeyPassword}:                    testBrokerPassword,
		{Secret: BrokerName(p), Key: KeyErlangCookie}:                testBrokerCookie,
		{Secret: BrokerUsersSecretName(p), Key: KeyOperatorPassword}: testOperatorPassword,
	})
	cm := find[*corev1.ConfigMap](t, children, BrokerName(p))
	sts := find[*appsv1.StatefulSet](t, children, BrokerName(p))
	b := &brokerPod{root: rabbitTempDir(t, rmq), container: statefulContainer(t, sts, "rabbitmq"), env: map[string]string{}, children: children}
	for _, e := range b.container.Env {
		b.env[e.Name] = e.Value
	}
	if len(sts.Spec.Template.Spec.InitContainers) != 1 {
		t.Fatalf("broker pod has %d init containers, want the cookie's one", len(sts.Spec.Template.Spec.InitContainers))
	}
	init := sts.Spec.Template.Spec.InitContainers[0]
	podFilesystem(t, b.root, sts, init, children)
	podFilesystem(t, b.root, sts, b.container, children)
	if opts.dataVolume != "" {
		target := b.inPod(mountPathOf(t, b.container, dataVolumeName))
		if err := os.Remove(target); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(opts.dataVolume, target); err != nil {
			t.Fatal(err)
		}
	}

	defsDir := rabbitDefinitionsDir(t, cm.Data[RabbitConfKey])
	if cm.Data[RabbitConfKey] != RenderRabbitConf(defsDir, AMQPPort, rabbitNodes(p)...) {
		t.Fatalf("the ConfigMap's rabbitmq.conf is not RenderRabbitConf(%q, %d, nodes)", defsDir, AMQPPort)
	}
	confFile := b.env["RABBITMQ_CONFIG_FILE"] + ".conf"
	if _, err := os.Stat(b.inPod(confFile)); err != nil {
		t.Fatalf("RABBITMQ_CONFIG_FILE=%s: the pod has no %s: %v", b.env["RABBITMQ_CONFIG_FILE"], confFile, err)
	}
	b.amqpPort = freePort(t)
	conf := RenderRabbitConf(b.inPod(defsDir), int32(b.amqpPort))
	pluginsFile := b.env["RABBITMQ_ENABLED_PLUGINS_FILE"]
	assertPluginsExist(t, readFile(t, b.inPod(pluginsFile)))
	var plugins []string
	if opts.management {
		b.mgmtPort = freePort(t)
		conf += fmt.Sprintf("management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %d\n", b.mgmtPort)
		plugins = append(plugins, "rabbitmq_management")
	}
	if opts.prometheus {
		b.promPort = freePort(t)
		conf += fmt.Sprintf("prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = %d\n", b.promPort)
		plugins = append(plugins, "rabbitmq_prometheus")
	}
	writeThrough(t, b.inPod(pluginsFile), "["+strings.Join(plugins, ",")+"].\n")
	writeThrough(t, b.inPod(confFile), conf)
	// The kubelet gives the volumes to the pod's fsGroup before any
	// container starts; then the init container runs.
	chownTree(t, b.root, rmq.uid, rmq.gid)
	runInitContainer(t, rmq, b.root, init)

	distPort, epmdPort := freePort(t), freePort(t)
	node := opts.node
	if node == "" {
		node = "t" + randomHex(t, 4) + "@localhost"
	}
	mnesiaBase := b.inPod(b.env["RABBITMQ_MNESIA_BASE"])
	if opts.mnesiaBase != "" {
		mnesiaBase = opts.mnesiaBase
	}
	b.srv = startRabbit(t, rmq, b.root, node, map[string]string{
		"HOME":                          b.inPod(b.env["HOME"]),
		"RABBITMQ_CONFIG_FILE":          b.inPod(b.env["RABBITMQ_CONFIG_FILE"]),
		"RABBITMQ_ENABLED_PLUGINS_FILE": b.inPod(pluginsFile),
		"RABBITMQ_ADVANCED_CONFIG_FILE": b.inPod(b.env["RABBITMQ_ADVANCED_CONFIG_FILE"]),
		"RABBITMQ_MNESIA_BASE":          mnesiaBase,
		"RABBITMQ_LOG_BASE":             filepath.Join(b.root, "log"),
		"RABBITMQ_UPGRADE_LOG":          b.env["RABBITMQ_UPGRADE_LOG"],
		"RABBITMQ_NODENAME":             node,
		"RABBITMQ_DIST_PORT":            strconv.Itoa(distPort),
		// A private epmd, stopped with the node: the test leaves no daemon.
		"ERL_EPMD_PORT": strconv.Itoa(epmdPort),
	}, b.amqpPort, b.mgmtPort)
	return b
}

// mountPathOf is where the container mounts the volume.
func mountPathOf(t *testing.T, c corev1.Container, volume string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	t.Fatalf("container %s does not mount volume %s", c.Name, volume)
	return ""
}

// runInitContainer runs an init container's command as the pod's user, its
// mount paths rebased under root.
func runInitContainer(t *testing.T, rmq rabbitMQ, root string, c corev1.Container) {
	t.Helper()
	mounts := make([]string, 0, len(c.VolumeMounts))
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	// Longest first, so /var/lib/rabbitmq/x is not rebased as /var/lib/rabbitmq.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	argv := make([]string, len(c.Command))
	for i, arg := range c.Command {
		for _, m := range mounts {
			arg = strings.ReplaceAll(arg, m+"/", filepath.Join(root, m)+"/")
		}
		argv[i] = arg
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: rmq.credential()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init container %s %q: %v\n%s", c.Name, argv, err, out)
	}
}

// TestRabbitMQDefinitionsOnRealServer boots RabbitMQ on the broker pod and
// checks the cookie file, the console logging, the queues, the exchange,
// the bindings, the user and its password, and the pod's probes.
func TestRabbitMQDefinitionsOnRealServer(t *testing.T) {
	rmq := requireRabbitMQ(t)
	b := bootBrokerPod(t, rmq, withSeedQueues(samplePlatform()), false)
	srv := b.srv

	// The cookie the node and the CLI read: the Secret's, owner-only, in
	// HOME (an emptyDir), not on the data volume.
	cookiePath := b.inPod(b.env["HOME"] + "/.erlang.cookie")
	info, err := os.Stat(cookiePath)
	if err != nil {
		t.Fatalf("the init container wrote no cookie in HOME: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("cookie mode %v, want 0600", info.Mode().Perm())
	}
	if got := readFile(t, cookiePath); got != testBrokerCookie {
		t.Errorf("cookie file holds %q, want the Secret's", got)
	}
	for _, e := range b.container.Env {
		if e.Name == "RABBITMQ_ERLANG_COOKIE" {
			t.Error("the broker still gets RABBITMQ_ERLANG_COOKIE: the cookie file is the only source")
		}
	}

	// Logs go to the console, and no log file is written.
	if !strings.Contains(srv.out.String(), "Server startup complete") {
		t.Errorf("the node logged nothing to its console:\n%s", srv.out.String())
	}
	if files, _ := filepath.Glob(filepath.Join(b.root, "log", "*.log")); len(files) > 0 {
		t.Errorf("the node wrote log files %v; log.file = false should keep it to the console", files)
	}

	// The pod's probes, run as the kubelet runs them: in the container's
	// environment, whose HOME holds the cookie.
	for name, probe := range map[string]*corev1.Probe{"readiness": b.container.ReadinessProbe, "liveness": b.container.LivenessProbe} {
		if probe == nil || probe.Exec == nil || len(probe.Exec.Command) == 0 {
			t.Errorf("%s probe is not an exec probe: %+v", name, probe)
			continue
		}
		if out, err := srv.run(t, nil, probe.Exec.Command...); err != nil {
			t.Errorf("%s probe %q fails on a healthy node: %v\n%s", name, probe.Exec.Command, err, out)
		}
	}
	// The controls: with another cookie the CLI is refused, so the probe
	// above really authenticated with the Secret's cookie; and the Secret's
	// cookie with group access, as the kubelet's fsGroup leaves a file on a
	// volume at every mount, is refused by Erlang itself: why the cookie is
	// copied into HOME at each pod start.
	for _, tc := range []struct {
		name, cookie string
		mode         os.FileMode
		want         string
	}{
		{"wrong cookie", "NotTheCookie0123456789", 0o600, ""},
		{"group-readable cookie", testBrokerCookie, 0o660, "owner"},
	} {
		home := filepath.Join(b.root, "control-"+strings.ReplaceAll(tc.name, " ", "-"))
		writeTestFile(t, filepath.Join(home, ".erlang.cookie"), tc.cookie, tc.mode)
		chownTree(t, home, rmq.uid, rmq.gid)
		if err := os.Chmod(filepath.Join(home, ".erlang.cookie"), tc.mode); err != nil {
			t.Fatal(err)
		}
		out, err := srv.run(t, []string{"HOME=" + home}, b.container.ReadinessProbe.Exec.Command...)
		if err == nil {
			t.Errorf("%s: the readiness probe passed\n%s", tc.name, out)
		} else if !strings.Contains(out, tc.want) {
			t.Errorf("%s: the probe failed, but not for the cookie (want %q in the output):\n%s", tc.name, tc.want, out)
		}
	}

	// Exactly the sample's queues, durable, as Celery declares them.
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
	assertEqualStrings(t, "bindings of celery", celeryBindings(t, srv), []string{
		"analytics -> analytics", "notifications -> notifications", "parser -> parser",
	})

	// Only the platform's users: definitions replace the default guest.
	// The applications' user has no tag (no management API); the
	// operator's has the policymaker tag its queue record needs.
	var users []string
	for _, u := range srv.list(t, "list_users") {
		users = append(users, fmt.Sprintf("%v %v", u["user"], u["tags"]))
	}
	slices.Sort(users)
	assertEqualStrings(t, "users and tags", users, []string{BrokerUser + " []", BrokerOperatorUser + " [" + BrokerOperatorTag + "]"})
	var perms []string
	for _, pm := range srv.list(t, "list_permissions", "-p", "/") {
		perms = append(perms, fmt.Sprintf("%v %v %v %v", pm["user"], pm["configure"], pm["write"], pm["read"]))
	}
	slices.Sort(perms)
	assertEqualStrings(t, "permissions on /", perms, []string{BrokerUser + " .* .* .*", BrokerOperatorUser + " .* .* .*"})

	// The hash in the Secret matches the password, and only it.
	if out, err := srv.ctl(t, "authenticate_user", BrokerUser, testBrokerPassword); err != nil {
		t.Errorf("authenticate_user %s <password> failed: the password hash in users.json does not match the password: %v\n%s", BrokerUser, err, out)
	}
	if out, err := srv.ctl(t, "authenticate_user", BrokerUser, testBrokerPassword+"x"); err == nil {
		t.Errorf("authenticate_user with a wrong password succeeded:\n%s", out)
	}
}

// celeryBindings are the bindings of the exchange celery, "key -> queue", sorted.
func celeryBindings(t *testing.T, srv *rabbitServer) []string {
	t.Helper()
	var bindings []string
	for _, b := range srv.list(t, "list_bindings", "source_name", "destination_name", "routing_key") {
		if b["source_name"] == CeleryExchange {
			bindings = append(bindings, fmt.Sprintf("%v -> %v", b["routing_key"], b["destination_name"]))
		}
	}
	sort.Strings(bindings)
	return bindings
}

// TestRabbitMQDataSurvivesTheLayoutChange: a broker of the earlier layout
// (the PVC at HOME, the database at <PVC>/mnesia/<node>) restarted on this
// one (the PVC at HOME/mnesia) finds its queues and every message where it
// left them: nothing is moved, and a new broker would not see an empty
// database where the old one kept its tasks.
func TestRabbitMQDataSurvivesTheLayoutChange(t *testing.T) {
	rmq := requireRabbitMQ(t)
	p := withSeedQueues(samplePlatform())
	node := "t" + randomHex(t, 4) + "@localhost"
	pvc := rabbitTempDir(t, rmq)
	// Before: the image's default base, HOME/mnesia, with the PVC at HOME.
	before := bootBrokerPodWith(t, rmq, p, brokerBoot{node: node, mnesiaBase: filepath.Join(pvc, "mnesia")})
	conn, err := amqp.Dial(fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", BrokerUser, testBrokerPassword, before.amqpPort))
	if err != nil {
		t.Fatalf("AMQP: %v", err)
	}
	(&amqpBroker{t: t, conn: conn}).publish("parser", brokerMessages)
	_ = conn.Close()
	before.srv.shutdown()
	chownTree(t, pvc, rmq.uid, rmq.gid)

	// After: the same volume mounted where this layout mounts it.
	after := bootBrokerPodWith(t, rmq, p, brokerBoot{node: node, dataVolume: pvc})
	conn, err = amqp.Dial(fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", BrokerUser, testBrokerPassword, after.amqpPort))
	if err != nil {
		t.Fatalf("AMQP: %v", err)
	}
	defer func() { _ = conn.Close() }()
	got := (&amqpBroker{t: t, conn: conn}).count("parser")
	if got != brokerMessages {
		t.Errorf("after the layout change queue parser holds %d messages, want the %d published before", got, brokerMessages)
	}
	t.Logf("layout change: parser published %d before, counted %d after, lost %d", brokerMessages, got, brokerMessages-got)
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
	bin      string // /usr/lib/rabbitmq/bin: the scripts without Debian's su wrapper
	uid, gid int
}

func (r rabbitMQ) credential() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: []uint32{uint32(r.gid)}}
}

// requireRabbitMQ finds RabbitMQ's scripts and the rabbitmq user the node
// runs as; only root can start processes as that user.
func requireRabbitMQ(t *testing.T) rabbitMQ {
	t.Helper()
	if _, err := testutil.LookSbin("rabbitmq-server"); err != nil {
		testutil.MissingTool(t, "rabbitmq-server (Debian package rabbitmq-server)", err)
	}
	const bin = "/usr/lib/rabbitmq/bin"
	for _, name := range []string{"rabbitmq-server", "rabbitmqctl", "rabbitmq-diagnostics"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			testutil.MissingTool(t, name+" in "+bin+" (Debian package rabbitmq-server)", err)
		}
	}
	u, err := user.Lookup("rabbitmq")
	if err != nil {
		testutil.MissingTool(t, "the rabbitmq user (Debian package rabbitmq-server)", err)
	}
	if os.Geteuid() != 0 {
		testutil.MissingTool(t, "root, to run rabbitmq-server as the rabbitmq user", fmt.Errorf("euid %d", os.Geteuid()))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return rabbitMQ{bin: bin, uid: uid, gid: gid}
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
	out  *testutil.SyncBuffer // the node's console
	// shutdown stops the node now; the test's cleanup calls it too.
	shutdown func()
}

// startRabbit boots a node as the rabbitmq user with env and waits, at most
// rabbitBootTimeout, for its AMQP listener (RabbitMQ opens it once the
// definitions are in) and, when mgmtPort is not 0, its management API. The
// node is stopped (rabbitmqctl stop, then SIGKILL to its process group)
// when the test ends.
func startRabbit(t *testing.T, rmq rabbitMQ, root, node string, env map[string]string, port, mgmtPort int) *rabbitServer {
	t.Helper()
	srv := &rabbitServer{rmq: rmq, node: node, env: os.Environ(), root: root, out: &testutil.SyncBuffer{}}
	for k, v := range env {
		srv.env = append(srv.env, k+"="+v)
	}
	cmd := exec.Command(filepath.Join(rmq.bin, "rabbitmq-server"))
	cmd.Env = srv.env
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = srv.out, srv.out
	// Its own process group: the script, sh and beam.smp all end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: rmq.credential()}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting rabbitmq-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	srv.shutdown = func() { once.Do(func() { srv.stop(t, cmd.Process.Pid, exited, env["ERL_EPMD_PORT"]) }) }
	t.Cleanup(srv.shutdown)

	ports := []int{port}
	if mgmtPort != 0 {
		ports = append(ports, mgmtPort)
	}
	deadline := time.Now().Add(rabbitBootTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for _, p := range ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		for {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				_ = conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("RabbitMQ did not listen on %s within %v\n%s", addr, rabbitBootTimeout, srv.logs())
			}
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("rabbitmq-server exited during boot (%v)\n%s", err, srv.logs())
			case <-tick.C:
			}
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
	return s.run(t, nil, append([]string{"rabbitmqctl", "-n", s.node, "-q"}, args...)...)
}

// run runs a command as the rabbitmq user in the node's environment (plus
// extraEnv), bounded by a minute; a bare RabbitMQ CLI name is one of
// RabbitMQ's own scripts.
func (s *rabbitServer) run(t *testing.T, extraEnv []string, argv ...string) (string, error) {
	t.Helper()
	bin := argv[0]
	if !strings.Contains(bin, "/") {
		bin = filepath.Join(s.rmq.bin, bin)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Env = append(append([]string{}, s.env...), extraEnv...)
	// The probes' node: the pod's RABBITMQ_NODENAME is its DNS name, here
	// the test's node.
	cmd.Env = append(cmd.Env, "RABBITMQ_NODENAME="+s.node)
	cmd.Dir = s.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.rmq.credential()}
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
func (s *rabbitServer) stop(t *testing.T, pgid int, exited chan error, epmdPort string) {
	t.Helper()
	start := time.Now()
	if ctlOut, err := s.ctl(t, "stop"); err != nil {
		t.Logf("rabbitmqctl stop: %v\n%s", err, ctlOut)
	}
	select {
	case <-exited: //nolint:errcheck // stopping it on purpose: its exit error is expected.
	case <-time.After(30 * time.Second):
		t.Errorf("rabbitmq-server still running 30 s after rabbitmqctl stop; killing it\n%s", s.logs())
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited //nolint:errcheck // stopping it on purpose: its exit error is expected.
	}
	// beam.smp and its helpers share the group; nothing may outlive the test.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if epmd, err := exec.LookPath("epmd"); err == nil && epmdPort != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, epmd, "-port", epmdPort, "-kill")
		cmd.Env = append(os.Environ(), "ERL_EPMD_PORT="+epmdPort)
		_ = cmd.Run()
	}
	t.Logf("RabbitMQ stopped in %v", time.Since(start).Round(time.Millisecond))
}

// logs are the node's console and its log files, if any.
func (s *rabbitServer) logs() string {
	var b strings.Builder
	b.WriteString("--- rabbitmq-server console ---\n" + s.out.String())
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

// grepLog is the lines of the node's console that contain word.
func (s *rabbitServer) grepLog(word string) string {
	var out []string
	for line := range strings.SplitSeq(s.out.String(), "\n") {
		if strings.Contains(strings.ToLower(line), word) {
			out = append(out, line)
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

// brokerMessages is how many messages the queue-change test publishes to
// each queue.
const brokerMessages = 200

// TestRabbitMQQueueChangesOnRealServer drives internal/rabbitmq (planner and
// client) against a node booted from the pod's files with its management
// API on, and counts messages over AMQP at every step: a routing key change
// moves the binding and keeps the messages, a removed queue that holds
// messages is kept and reported, once drained it is deleted, and queues and
// bindings the operator did not declare are never touched.
func TestRabbitMQQueueChangesOnRealServer(t *testing.T) {
	rmq := requireRabbitMQ(t)
	p := withSeedQueues(samplePlatform())
	b := bootBrokerPod(t, rmq, p, true)
	ctx := t.Context()
	mgmt := rabbitmq.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(b.mgmtPort)), BrokerOperatorUser, testOperatorPassword, 10*time.Second)
	defer mgmt.Close()
	if err := mgmt.Ping(ctx); err != nil {
		t.Fatalf("management API: %v", err)
	}
	amqpConn, err := amqp.Dial(fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", BrokerUser, testBrokerPassword, b.amqpPort))
	if err != nil {
		t.Fatalf("AMQP: %v", err)
	}
	defer func() { _ = amqpConn.Close() }()
	broker := &amqpBroker{t: t, conn: amqpConn}

	// The boot import declared the sample's queues: the first sync adopts
	// them (records them) and calls nothing else.
	res := syncQueues(t, mgmt, p)
	if len(res.Done) != 0 || len(res.Kept) != 0 {
		t.Fatalf("first sync on a freshly imported broker did %v, kept %v; want nothing", res.Done, res.Kept)
	}
	// What the operator must never touch: a queue a user declared, with
	// messages, one without, and a binding a user added to a spec queue.
	broker.declare("scratch", "scratch-key")
	broker.declare("empty-by-hand", "empty-key")
	broker.bind("parser", "by-hand")
	for _, q := range QueueBindings(p) {
		broker.publish(q.RoutingKey, brokerMessages)
	}
	broker.publish("scratch-key", brokerMessages)
	for _, q := range []string{"parser", "analytics", "notifications", "scratch"} {
		broker.expectCount(q, brokerMessages)
	}

	// (a) The routing key of parser changes: the new key routes to it, the
	// old one no longer does, its messages stay.
	p.Spec.Queues.Queues[0].RoutingKey = "parser.v2"
	res = syncQueues(t, mgmt, p)
	assertEqualStrings(t, "steps of the routing key change", stepStrings(res.Done), []string{
		`bind queue parser with routing key "parser.v2"`, `unbind queue parser from routing key "parser"`,
	})
	broker.expectCount("parser", brokerMessages)
	broker.publish("parser.v2", 10)
	broker.expectCount("parser", brokerMessages+10)
	if returned := broker.publish("parser", 10); returned != 10 {
		t.Errorf("%d of 10 messages with the old key were unroutable, want 10", returned)
	}
	broker.expectCount("parser", brokerMessages+10)
	t.Logf("(a) routing key change: parser published %d+10, counted %d, lost 0", brokerMessages, broker.count("parser"))

	// (b) analytics leaves the spec while it holds messages: kept with its
	// binding, reported with its count, every message still there.
	p.Spec.Queues.Queues = slices.DeleteFunc(p.Spec.Queues.Queues, func(q platformv1.QueueSpec) bool { return q.Name == "analytics" })
	want := fmt.Sprintf("queue analytics was removed from spec.queues but still holds %d messages: add it back to drain it, or purge it by hand", brokerMessages)
	res = eventuallySync(t, mgmt, p, func(r rabbitmq.Result) bool {
		return len(r.Kept) == 1 && r.Kept[0].String() == want
	})
	if len(res.Done) != 0 {
		t.Errorf("sync with a removed, non-empty queue did %v", res.Done)
	}
	broker.expectCount("analytics", brokerMessages)
	t.Logf("(b) removed queue kept: analytics published %d, counted %d, lost 0; reported %q", brokerMessages, broker.count("analytics"), res.Kept[0])
	// The broker's own guard, which the plan's deletions go through: a
	// queue that is not empty is refused whatever the statistics say.
	if deleted, err := mgmt.DeleteQueueIfIdle(ctx, RabbitVhost, "analytics"); err != nil || deleted {
		t.Fatalf("DeleteQueueIfIdle on a queue with %d messages: deleted=%v err=%v", brokerMessages, deleted, err)
	}
	broker.expectCount("analytics", brokerMessages)

	// (c) Drained, it goes at the next sync that sees it empty.
	consumed := broker.drain("analytics")
	if consumed != brokerMessages {
		t.Errorf("drained %d messages from analytics, want %d", consumed, brokerMessages)
	}
	res = eventuallySync(t, mgmt, p, func(r rabbitmq.Result) bool { return len(r.Kept) == 0 })
	assertEqualStrings(t, "steps once analytics is empty", stepStrings(res.Done), []string{
		"delete queue analytics (removed from spec.queues, empty, no consumer)",
	})
	if broker.exists("analytics") {
		t.Error("analytics still exists after the sync that deleted it")
	}
	t.Logf("(c) drained queue deleted: analytics consumed %d of %d, lost 0", consumed, brokerMessages)

	// (d) What the operator did not declare is as it was.
	broker.expectCount("scratch", brokerMessages)
	if !broker.exists("empty-by-hand") {
		t.Error("the empty queue a user declared was deleted")
	}
	assertEqualStrings(t, "bindings of celery at the end", celeryBindings(t, b.srv), []string{
		"by-hand -> parser", "empty-key -> empty-by-hand", "notifications -> notifications", "parser.v2 -> parser", "scratch-key -> scratch",
	})
	broker.expectCount("notifications", brokerMessages)
	t.Logf("(d) untouched: scratch %d of %d, notifications %d of %d, empty-by-hand kept", broker.count("scratch"), brokerMessages, broker.count("notifications"), brokerMessages)

	// In line now: a sync calls nothing.
	if res := syncQueues(t, mgmt, p); len(res.Done) != 0 || len(res.Kept) != 0 {
		t.Errorf("sync of a broker in line did %v, kept %v", res.Done, res.Kept)
	}
}

// desiredQueues is what the controller asks internal/rabbitmq for.
func desiredQueues(p *platformv1.ParserPlatform) rabbitmq.Desired {
	d := rabbitmq.Desired{Vhost: RabbitVhost, Exchange: CeleryExchange}
	for _, q := range QueueBindings(p) {
		d.Queues = append(d.Queues, rabbitmq.QueueBinding{Queue: q.Queue, RoutingKey: q.RoutingKey})
	}
	return d
}

func syncQueues(t *testing.T, m rabbitmq.Management, p *platformv1.ParserPlatform) rabbitmq.Result {
	t.Helper()
	res, err := rabbitmq.Sync(t.Context(), m, desiredQueues(p), nil)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// eventuallySync syncs until done(result), at most 30 s: the broker's queue
// statistics (what the plan reads) are at most collect_statistics_interval
// (5 s) old. Every intermediate result must be safe, which the caller's
// counts check.
func eventuallySync(t *testing.T, m rabbitmq.Management, p *platformv1.ParserPlatform, done func(rabbitmq.Result) bool) rabbitmq.Result {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := syncQueues(t, m, p)
		if done(res) {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync did not reach the expected result within 30 s; last: done %v, kept %v", res.Done, res.Kept)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func stepStrings(steps []rabbitmq.Step) []string {
	out := []string{}
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

// amqpBroker publishes and counts over AMQP, as Celery and its workers do.
type amqpBroker struct {
	t    *testing.T
	conn *amqp.Connection
}

func (a *amqpBroker) channel() *amqp.Channel {
	a.t.Helper()
	ch, err := a.conn.Channel()
	if err != nil {
		a.t.Fatalf("AMQP channel: %v", err)
	}
	return ch
}

func (a *amqpBroker) declare(queue, key string) {
	a.t.Helper()
	ch := a.channel()
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		a.t.Fatalf("declaring %s: %v", queue, err)
	}
	if err := ch.QueueBind(queue, key, CeleryExchange, false, nil); err != nil {
		a.t.Fatalf("binding %s: %v", queue, err)
	}
}

func (a *amqpBroker) bind(queue, key string) {
	a.t.Helper()
	ch := a.channel()
	defer func() { _ = ch.Close() }()
	if err := ch.QueueBind(queue, key, CeleryExchange, false, nil); err != nil {
		a.t.Fatalf("binding %s: %v", queue, err)
	}
}

// publish sends n persistent messages to the exchange celery with key,
// mandatory and confirmed, and returns how many came back unroutable.
func (a *amqpBroker) publish(key string, n int) int {
	a.t.Helper()
	ch := a.channel()
	defer func() { _ = ch.Close() }()
	if err := ch.Confirm(false); err != nil {
		a.t.Fatalf("confirm mode: %v", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, n))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, n))
	for i := range n {
		err := ch.PublishWithContext(a.t.Context(), CeleryExchange, key, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: fmt.Appendf(nil, `{"n":%d}`, i),
		})
		if err != nil {
			a.t.Fatalf("publishing to %s: %v", key, err)
		}
	}
	for range n {
		select {
		case c := <-confirms:
			if !c.Ack {
				a.t.Fatalf("the broker nacked message %d to %s", c.DeliveryTag, key)
			}
		case <-time.After(30 * time.Second):
			a.t.Fatalf("no confirm for messages to %s within 30 s", key)
		}
	}
	// A return precedes its confirm on the channel.
	return len(returns)
}

// count is the queue's message count from a passive declare: exact, unlike
// the management statistics.
func (a *amqpBroker) count(queue string) int {
	a.t.Helper()
	ch := a.channel()
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		a.t.Fatalf("queue %s: %v", queue, err)
	}
	return q.Messages
}

func (a *amqpBroker) expectCount(queue string, want int) {
	a.t.Helper()
	if got := a.count(queue); got != want {
		a.t.Errorf("queue %s holds %d messages, want %d", queue, got, want)
	}
}

// exists tells by a passive declare, which closes the channel when not.
func (a *amqpBroker) exists(queue string) bool {
	a.t.Helper()
	ch := a.channel()
	defer func() { _ = ch.Close() }()
	_, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		return false
	}
	if err != nil {
		a.t.Fatalf("queue %s: %v", queue, err)
	}
	return true
}

// drain consumes and acknowledges every message of the queue, as a worker
// would, and returns how many there were.
func (a *amqpBroker) drain(queue string) int {
	a.t.Helper()
	ch := a.channel()
	defer func() { _ = ch.Close() }()
	n := 0
	for {
		msg, ok, err := ch.Get(queue, false)
		if err != nil {
			a.t.Fatalf("consuming %s: %v", queue, err)
		}
		if !ok {
			return n
		}
		if err := msg.Ack(false); err != nil {
			a.t.Fatalf("acknowledging a message of %s: %v", queue, err)
		}
		n++
	}
}

// TestBrokerConfigHash: the broker rolls when what it reads only at boot
// changes (rabbitmq.conf, the cookie, the user's password), never for a
// queue edit, which the operator applies live; secret values reach the pod
// template only through the hash.
func TestBrokerConfigHash(t *testing.T) {
	hash := func(p *platformv1.ParserPlatform, password, cookie string) string {
		t.Helper()
		children := brokerChildren(p, Credentials{
			{Secret: BrokerName(p), Key: KeyPassword}:     password,
			{Secret: BrokerName(p), Key: KeyErlangCookie}: cookie,
		})
		sts := find[*appsv1.StatefulSet](t, children, BrokerName(p))
		h := sts.Spec.Template.Annotations[AnnotationConfigHash]
		text, err := json.Marshal(sts)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(text), password) || strings.Contains(string(text), cookie) {
			t.Error("the broker's StatefulSet holds the password or the cookie in plain")
		}
		return h
	}
	base := hash(withSeedQueues(samplePlatform()), testBrokerPassword, testBrokerCookie)
	for _, tc := range []struct {
		name             string
		change           func(*platformv1.ParserPlatform)
		password, cookie string
		rolls            bool
	}{
		{"nothing changed", func(*platformv1.ParserPlatform) {}, testBrokerPassword, testBrokerCookie, false},
		{"queue added", func(p *platformv1.ParserPlatform) {
			p.Spec.Queues.Queues = append(p.Spec.Queues.Queues, platformv1.QueueSpec{Name: "reports"})
		}, testBrokerPassword, testBrokerCookie, false},
		{"queue removed", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Queues = p.Spec.Queues.Queues[:1] }, testBrokerPassword, testBrokerCookie, false},
		{"routing key changed", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Queues[0].RoutingKey = "parse.v2" }, testBrokerPassword, testBrokerCookie, false},
		{"Erlang cookie changed", func(*platformv1.ParserPlatform) {}, testBrokerPassword, testBrokerCookie + "x", true},
		{"password changed (users.json)", func(*platformv1.ParserPlatform) {}, testBrokerPassword + "x", testBrokerCookie, true},
		{"cluster members changed (rabbitmq.conf)", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Broker.Replicas = 3 }, testBrokerPassword, testBrokerCookie, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := withSeedQueues(samplePlatform())
			tc.change(p)
			if got := hash(p, tc.password, tc.cookie); (got != base) != tc.rolls {
				t.Errorf("broker config hash %s -> %s: rolled=%v, want %v", base, got, got != base, tc.rolls)
			}
		})
	}
}
