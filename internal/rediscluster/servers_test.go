package rediscluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// The real-server tests run Debian's redis-server 7.0 on the cache's own
// redis.conf (internal/resource.RenderRedisConf, with the data dir and the
// auth file moved to a temp dir per node; no maxmemory, so nothing is
// evicted and every lost key is the operator's fault), plus the pod's
// --cluster-announce-hostname and a loopback bind.
//
// Addressing mirrors the pods': every node announces a hostname that does
// not resolve (cache-<i>.test, as pods announce cache-<i>.<headless>.<ns>.svc,
// which the operator cannot resolve without cluster DNS), with its own
// port on 127.0.0.1. The executor reaches nodes only through the test's
// Resolver (hostname:port -> 127.0.0.1:port), and the test's ClusterClient
// follows MOVED/ASK redirections (which name the hostname, as
// cluster-preferred-endpoint-type hostname makes them) through the same
// mapping in its Dialer. Redis itself gossips and replicates by IP.

const (
	testPassword = `s3cret "quoted" $pw`
	// serverWait bounds each wait on a redis-server, which starts in
	// milliseconds.
	serverWait = 15 * time.Second
)

// servers is a set of redis-server pods of one test: pod i answers at
// cache-<i>.test:<port i>.
type servers struct {
	t    testing.TB
	bin  string
	pods []*pod
}

type pod struct {
	addr   string
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan error
	out    *testutil.SyncBuffer
}

func newServers(t testing.TB) *servers {
	return &servers{t: t, bin: testutil.RequireRedisServer(t)}
}

// start starts pods until there are n, in parallel.
func (s *servers) start(n int) {
	s.t.Helper()
	var wg sync.WaitGroup
	for i := len(s.pods); i < n; i++ {
		p := &pod{port: testutil.FreeRedisPort(s.t), dir: s.t.TempDir()}
		p.addr = fmt.Sprintf("cache-%d.test:%d", i, p.port)
		s.pods = append(s.pods, p)
		wg.Go(func() { s.run(p, i) })
	}
	wg.Wait()
	if s.t.Failed() {
		s.t.FailNow()
	}
}

func (s *servers) run(p *pod, i int) {
	conf := filepath.Join(p.dir, "redis.conf")
	auth := filepath.Join(p.dir, resource.RedisAuthConfKey)
	// Called from goroutines: report with Errorf, never FailNow.
	for path, content := range map[string]string{
		auth: resource.RenderRedisAuthConf(testPassword),
		conf: resource.RenderRedisConf(resource.RedisConfOptions{
			Platform: "vk", Namespace: "test", Port: int32(p.port), DataDir: p.dir, AuthConf: auth,
		}),
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			s.t.Errorf("writing %s: %v", path, err)
			return
		}
	}
	p.cmd = exec.Command(s.bin, conf, "--bind", "127.0.0.1",
		"--cluster-announce-hostname", fmt.Sprintf("cache-%d.test", i))
	p.out = &testutil.SyncBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		s.t.Errorf("starting redis-server: %v", err)
		return
	}
	p.exited = make(chan error, 1)
	cmd, exited := p.cmd, p.exited
	go func() { exited <- cmd.Wait() }()
	s.t.Cleanup(func() { stopServer(cmd, exited) })
	deadline := time.Now().Add(serverWait)
	for {
		conn, err := net.DialTimeout("tcp", local(p.port), time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Errorf("redis-server on %d did not listen within %v: %v\n%s", p.port, serverWait, err, p.out)
			return
		}
		select {
		case err := <-exited:
			exited <- err
			s.t.Errorf("redis-server on %d exited (%v):\n%s", p.port, err, p.out)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop stops pods [from, len) (a StatefulSet scaled in) and forgets them.
func (s *servers) stop(from int) {
	for _, p := range s.pods[from:] {
		stopServer(p.cmd, p.exited)
	}
	s.pods = s.pods[:from]
}

// restart stops every pod and starts it again on the same port and data
// dir: its nodes.conf, not its keys (the cache persists none), survives.
func (s *servers) restart() {
	s.t.Helper()
	for _, p := range s.pods {
		stopServer(p.cmd, p.exited)
	}
	var wg sync.WaitGroup
	for i, p := range s.pods {
		wg.Go(func() { s.run(p, i) })
	}
	wg.Wait()
	if s.t.Failed() {
		s.t.FailNow()
	}
}

func stopServer(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
	case <-time.After(serverWait):
		_ = cmd.Process.Kill()
	}
}

func (s *servers) addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s.pods[i].addr
	}
	return out
}

// resolver maps cache-<i>.test:<port> to 127.0.0.1:<port>, and refuses
// anything else: the executor must never dial an address it was not given.
func (s *servers) resolver() Resolver {
	return ResolverFunc(func(_ context.Context, addr string) (string, error) { return resolveTest(addr) })
}

func resolveTest(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !strings.HasPrefix(host, "cache-") || !strings.HasSuffix(host, ".test") {
		return "", fmt.Errorf("no pod has the address %q", addr)
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}

// clusterClient is what an app uses: a go-redis ClusterClient that starts
// from pod 0 and dials the hostnames it is redirected to through the test's
// mapping. redirects counts the MOVED and ASK replies its nodes sent.
func clusterClient(t testing.TB, seed string) (*redis.ClusterClient, *redirects) {
	red := &redirects{}
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:           []string{seed},
		Password:        testPassword,
		DisableIdentity: true,
		// As the operator's Connector: no DNS lookup of the hostnames.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target, err := resolveTest(addr)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		},
	})
	cc.OnNewNode(func(c *redis.Client) { c.AddHook(red) })
	t.Cleanup(func() { _ = cc.Close() })
	return cc, red
}

// redirects counts redirections as a client sees them, one node at a time.
type redirects struct {
	mu         sync.Mutex
	moved, ask int
}

func (r *redirects) count(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "MOVED "):
		r.moved++
	case strings.HasPrefix(msg, "ASK "):
		r.ask++
	}
}

func (r *redirects) get() (moved, ask int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.moved, r.ask
}

func (r *redirects) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *redirects) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd) // cmd.Err() is set only after the hooks
		r.count(err)
		return err
	}
}

func (r *redirects) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			r.count(c.Err())
		}
		return err
	}
}

func local(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
