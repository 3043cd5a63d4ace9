package simcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/jackc/pgx/v5"

	"github.com/vkparser/parser-operator/internal/testutil"
)

// The server tests run the runtime's kinds on real servers without a
// cluster: the API is a fake clientset holding the pod's Secrets and PVCs,
// the pod is handed to the runtime as kwok would have made it Running.

// testRuntime is a runtime on a fake API with objs, and a free pod range.
func testRuntime(t *testing.T, objs ...kruntime.Object) (*runtime, func(n int) string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the runtime mounts volumes in mount namespaces: root only")
	}
	if err := requireSandboxTools(); err != nil {
		testutil.MissingTool(t, "util-linux", err)
	}
	cidr, unlock, err := lockPodCIDR()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	dir := t.TempDir()
	c := &Cluster{Dir: dir, Client: fake.NewClientset(objs...), log: testLog{t}}
	rt := &runtime{
		c: c, root: filepath.Join(dir, "runtime"), logDir: filepath.Join(dir, "logs"),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		pods:  map[string]*podRun{},
	}
	rt.lister = corelisters.NewPodLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}))
	rt.services = corelisters.NewServiceLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}))
	t.Cleanup(func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		for key, r := range rt.pods {
			rt.teardown(key, r)
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(rt.logDir, "*.log"))
			for _, l := range logs {
				t.Logf("%s:\n%s", l, tail(l, 30))
			}
		}
	})
	base := strings.TrimSuffix(cidr, "0.0/16")
	return rt, func(n int) string { return fmt.Sprintf("%s0.%d", base, n) }
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// runPod starts the pod's container as sync would, and waits until its
// probe passes.
func runPod(t *testing.T, rt *runtime, kind serverKind, pod *corev1.Pod, timeout time.Duration) *podRun {
	t.Helper()
	ctx := t.Context()
	key := pod.Namespace + "/" + pod.Name
	rt.mu.Lock()
	r, err := rt.newPodRun(ctx, key, pod, kind)
	if err == nil {
		rt.pods[key] = r
		var wait time.Duration
		if wait, err = rt.runInitContainers(ctx, r); err == nil && wait > 0 {
			err = fmt.Errorf("an init container failed")
		}
	}
	if err == nil {
		_, err = rt.startContainer(ctx, r)
	}
	rt.mu.Unlock()
	if err != nil {
		t.Fatalf("starting %s: %v", key, err)
	}
	deadline := time.Now().Add(timeout)
	for !r.probeOK.Load() {
		if done, exitErr := r.proc.exited(); done {
			t.Fatalf("%s exited (%v):\n%s", key, exitErr, tail(r.proc.log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", key, timeout, tail(r.proc.log, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return r
}

// stopPod tears the pod down and waits until its server is gone.
func stopPod(rt *runtime, r *podRun) {
	rt.mu.Lock()
	rt.teardown(r.key, r)
	rt.mu.Unlock()
	rt.stopWG.Wait()
}

// shardPod is shaped like the operator's shard pod (internal/resource's
// shardWorkload): env from the credentials Secret, PGDATA in a
// subdirectory of the PVC, a run emptyDir, fsGroup 70, exec probe on
// 127.0.0.1, read-only root file system.
func shardPod(uid, ip string) *corev1.Pod {
	secretEnv := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "db-0-credentials"}, Key: key}}}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "parser", UID: types.UID(uid)},
		Spec: corev1.PodSpec{
			Hostname: "db-0", Subdomain: "db-0",
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr[int64](70), RunAsGroup: ptr[int64](70), FSGroup: ptr[int64](70), RunAsNonRoot: ptr(true)},
			Containers: []corev1.Container{{
				Name: "postgres", Image: "postgres:16-alpine",
				Env: []corev1.EnvVar{secretEnv("POSTGRES_USER", "username"), secretEnv("POSTGRES_PASSWORD", "password"), secretEnv("POSTGRES_DB", "database"),
					{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"}},
				Ports: []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
					Command: []string{"sh", "-c", `exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"`}}}, TimeoutSeconds: 5},
				SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false)},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"},
					{Name: "run", MountPath: "/var/run/postgresql"}, {Name: "tmp", MountPath: "/tmp"}},
			}},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}},
				{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

// TestPostgresPodOnRealServer: the shard pod's PostgreSQL initializes its
// empty PGDATA from the Secret, answers with its password over TCP on the
// pod IP, keeps its rows on the PVC across pods, and a later pod on the
// same PVC skips initdb: the password changed in the Secret does not log
// in, the old one still does.
func TestPostgresPodOnRealServer(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-0-credentials", Namespace: "parser"},
		Data: map[string][]byte{"username": []byte("parser"), "password": []byte("first-Pa$$word"), "database": []byte("parser")}}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-db-0", Namespace: "parser", UID: "pvc-1"}}
	rt, podIP := testRuntime(t, secret, pvc)
	kind, err := newPostgresKind(rt.c)
	if err != nil {
		testutil.MissingTool(t, "PostgreSQL 15 (Debian's postgresql)", err)
	}
	// The client stands for another pod: its address is in the pod range,
	// not the machine's 127.0.0.1, which pg_hba.conf trusts.
	client := podIP(250)
	psql := func(r *podRun, password, sql string) (string, error) {
		return pgQuery(t.Context(), client, r.ip, "parser", password, "parser", sql)
	}

	begin := time.Now()
	r := runPod(t, rt, kind, shardPod("pod-1", podIP(10)), 2*time.Minute)
	t.Logf("first pod (initdb) ready in %s", time.Since(begin).Round(100*time.Millisecond))
	for _, sql := range []string{"CREATE TABLE t (n int)", "INSERT INTO t SELECT generate_series(1, 3)"} {
		if _, err := psql(r, "first-Pa$$word", sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if out, err := psql(r, "first-Pa$$word", "SELECT count(*) FROM t"); err != nil || out != "3" {
		t.Fatalf("psql with the Secret's password: %q, %v", out, err)
	}
	if out, err := psql(r, "wrong", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("a wrong password over TCP: %q, %v (want password authentication failed)", out, err)
	}
	pgdata := filepath.Join(rt.root, "pvcs", "parser", "data-db-0-pvc-1", "pgdata")
	if st, err := os.Stat(pgdata); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("PGDATA on the PVC: %v, %v (want 0700)", st.Mode(), err)
	}
	stopPod(rt, r)

	// The Secret's password changes; the next pod finds a database.
	secret.Data["password"] = []byte("second-password")
	if _, err := rt.c.Client.CoreV1().Secrets("parser").Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	r = runPod(t, rt, kind, shardPod("pod-2", podIP(11)), time.Minute)
	t.Logf("second pod (existing PGDATA) ready in %s", time.Since(begin).Round(100*time.Millisecond))
	if out, err := psql(r, "first-Pa$$word", "SELECT count(*) FROM t"); err != nil || out != "3" {
		t.Errorf("the old password on the kept PGDATA: %q, %v (want the 3 rows)", out, err)
	}
	if out, err := psql(r, "second-password", "SELECT 1"); err == nil {
		t.Errorf("the Secret's new password logged in (%q): initdb ran on a non-empty PGDATA", out)
	}
	if !strings.Contains(tail(r.proc.log, 50), "Skipping initialization") {
		t.Errorf("the entrypoint did not skip initialization:\n%s", tail(r.proc.log, 20))
	}
}

// pgQuery runs one query over TCP from the address from and returns the
// first column of the first row as text (a statement that is no SELECT
// just runs).
func pgQuery(ctx context.Context, from, host, user, password, db, sql string) (string, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 user=%s dbname=%s connect_timeout=5 sslmode=disable", host, user, db))
	if err != nil {
		return "", err
	}
	cfg.Password = password
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	cfg.DialFunc = dialer.DialContext
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if !strings.HasPrefix(sql, "SELECT") {
		_, err := conn.Exec(ctx, sql)
		return "", err
	}
	var out any
	if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil {
		return "", err
	}
	return fmt.Sprint(out), nil
}
