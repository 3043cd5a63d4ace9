package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/test/e2e/simcluster"
)

// migrationWindow is the migration phase: on a simulated cluster whose
// cache pods run real redis-servers, Scaling platforms' caches scale out
// from 3 to 4 masters at once, each holding KeysPerCache keys, while
// another platform's spec changes every trickle period: how long that
// platform's changes take to reach its child while the migrations run, and
// that no key is lost.
type migrationWindow struct {
	Scaling, KeysPerCache int
	// Period is how often the other platform's spec changes.
	Period time.Duration
	// Caches are the scaling platforms' figures.
	Caches []cacheMigration
	// Took is from the scale-out patches until every scaling cache had 4
	// masters, no open slot and Ready.
	Took time.Duration
	// The steady platform's changes.
	changeTimes
}

type cacheMigration struct {
	Platform              string
	KeysBefore, KeysAfter int64
	Took                  time.Duration
}

// migrationPlatform is a small platform whose cache is what matters: 3
// masters without replicas, one service whose image the trickle changes.
const migrationPlatform = `apiVersion: platform.vkparser.io/v1alpha1
kind: ParserPlatform
metadata: {name: %s, namespace: %s}
spec:
  autoscaling: {enabled: false}
  services:
  - {name: auth, image: registry.example.com/vk-parser/auth:1.4.0, port: 8001, replicas: 1}
  gateway: {image: registry.example.com/vk-parser/gateway:1.4.0, port: 8080, replicas: 1}
  loadBalancer: {image: nginxinc/nginx-unprivileged:1.27-alpine, replicas: 1, port: 80, serviceType: ClusterIP}
  database: {shards: 1, image: postgres:16-alpine, storage: {size: 1Gi}}
  cache:
    masters: 3
    replicasPerMaster: 0
    image: redis:7.2-alpine
    storage: {size: 1Gi}
`

// steadyService is the service of migrationPlatform whose image the
// migration phase changes on the platform that does not scale.
var steadyService = service{name: "auth", image: "registry.example.com/vk-parser/auth:1.4.0"}

func steadyDeployment(p *platformSpec) types.NamespacedName {
	return types.NamespacedName{Namespace: p.namespace, Name: resource.Name(p.name, steadyService.name)}
}

// migration runs the migration phase on a simulated cluster of its own.
func (e *env) migration(ctx context.Context) (err error) {
	if e.o.migrationKeys <= 0 {
		return nil
	}
	w := &e.res.Migration
	w.Scaling, w.KeysPerCache, w.Period = 3, e.o.migrationKeys, e.o.tricklePeriod
	progress("migration: starting a simulated cluster (real redis-servers behind cache pods)")
	sc, err := simcluster.Start(ctx, simcluster.Options{RedisAnnounceIP: true, NoPostgres: true, NoRabbitMQ: true, NoJobs: true})
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := sc.Stop(); err == nil {
			err = stopErr
		}
	}()
	if out, err := e.kubectlOn(ctx, sc.Kubeconfig, "apply", "--server-side", "-f", e.o.crds); err != nil {
		return fmt.Errorf("installing the CRDs: %w: %s", err, out)
	}
	c, err := client.New(sc.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	op, err := startOperator(ctx, e.bin, sc.Kubeconfig, filepath.Join(e.work, "operator-migration.log"), strings.Fields(e.o.operatorArgs), e.o.operatorEnv())
	if err != nil {
		return err
	}
	defer op.stop()
	names := []string{"mig-0", "mig-1", "mig-2", "mig-steady"}
	if err := createMigrationPlatforms(ctx, c, names, e.o.timeout); err != nil {
		return err
	}
	scaling, steady := names[:w.Scaling], &platformSpec{name: "vk", namespace: names[w.Scaling]}
	if err := e.fillCaches(ctx, c, scaling); err != nil {
		return err
	}
	watch, err := watchImages(ctx, sc.Config)
	if err != nil {
		return err
	}
	defer watch.stop()
	m0, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	if err := e.scaleOutWhileChanging(ctx, c, watch, scaling, steady); err != nil {
		return err
	}
	return e.migrationFigures(ctx, c, op, m0, watch, scaling, steady)
}

// createMigrationPlatforms creates one platform "vk" in each namespace and
// waits until each is Ready with a 3-master cache.
func createMigrationPlatforms(ctx context.Context, c client.Client, namespaces []string, timeout time.Duration) error {
	for _, ns := range namespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
		p := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(fmt.Appendf(nil, migrationPlatform, "vk", ns), &p.Object); err != nil {
			return err
		}
		if err := c.Create(ctx, p); err != nil {
			return fmt.Errorf("creating platform %s/vk: %w", ns, err)
		}
	}
	progress("migration: waiting for %d platforms to be Ready (3-master caches)", len(namespaces))
	for _, ns := range namespaces {
		if err := waitCache(ctx, c, ns, 3, timeout); err != nil {
			return err
		}
	}
	return nil
}

// fillCaches writes the phase's keys into each scaling platform's cache
// and counts them.
func (e *env) fillCaches(ctx context.Context, c client.Client, scaling []string) error {
	w := &e.res.Migration
	for _, ns := range scaling {
		progress("migration: writing %d keys into %s/vk's cache", w.KeysPerCache, ns)
		if err := writeKeys(ctx, c, ns, w.KeysPerCache); err != nil {
			return fmt.Errorf("%s: %w", ns, err)
		}
		n, err := countKeys(ctx, c, ns)
		if err != nil {
			return err
		}
		w.Caches = append(w.Caches, cacheMigration{Platform: ns + "/vk", KeysBefore: n})
	}
	return nil
}

// scaleOutWhileChanging patches the scaling platforms to 4 masters and,
// until all of them are there, changes the steady platform's service image
// every trickle period.
func (e *env) scaleOutWhileChanging(ctx context.Context, c client.Client, watch *imageWatch, scaling []string, steady *platformSpec) error {
	w := &e.res.Migration
	progress("migration: scaling %d caches 3 -> 4 masters while %s/vk's spec changes every %s", len(scaling), steady.namespace, w.Period)
	start := time.Now()
	for _, ns := range scaling {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cache":{"masters":4}}}`))
		if err := c.Patch(ctx, &platformv1.ParserPlatform{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vk"}}, patch); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- e.waitScaledOut(ctx, c, scaling, start) }()
	deployment := steadyDeployment(steady)
	for i := 0; ; i++ {
		select {
		case err := <-done:
			w.Took = time.Since(start)
			return err
		case <-time.After(w.Period):
		}
		// One change at a time: the next would replace this one in the
		// Deployment before it is seen, and a slow change would go
		// uncounted.
		if err := watch.waitReached(ctx, deployment, e.o.timeout); err != nil {
			return err
		}
		image := fmt.Sprintf("%s-migration.%d", steadyService.image, i)
		watch.expect(deployment, image)
		if err := setServiceImage(ctx, c, steady, image); err != nil {
			return err
		}
		w.Changes++
	}
}

// waitScaledOut waits for every scaling cache to reach 4 masters and
// records when each did.
func (e *env) waitScaledOut(ctx context.Context, c client.Client, scaling []string, start time.Time) error {
	errs := make([]error, len(scaling))
	var wg sync.WaitGroup
	for i, ns := range scaling {
		wg.Go(func() {
			errs[i] = waitCache(ctx, c, ns, 4, e.o.timeout)
			e.res.Migration.Caches[i].Took = time.Since(start) // each goroutine its own element
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (e *env) migrationFigures(ctx context.Context, c client.Client, op *operatorProcess, m0 families, watch *imageWatch,
	scaling []string, steady *platformSpec) error {
	w := &e.res.Migration
	if err := watch.waitReached(ctx, steadyDeployment(steady), e.o.timeout); err != nil {
		return err
	}
	m1, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	w.record(watch, m0, m1)
	for i, ns := range scaling {
		n, err := countKeys(ctx, c, ns)
		if err != nil {
			return err
		}
		w.Caches[i].KeysAfter = n
		if n != w.Caches[i].KeysBefore {
			return fmt.Errorf("%s/vk's cache held %d keys before its migration and %d after", ns, w.Caches[i].KeysBefore, n)
		}
	}
	progress("migration: %d caches scaled out in %s, 0 keys lost; %d of %d changes of the steady platform reached its child, p50 %s p99 %s",
		len(scaling), seconds(w.Took), w.Reached, w.Changes, seconds(w.ChangeToChildP50), seconds(w.ChangeToChildP99))
	return nil
}

// waitCache waits until the platform is Ready for its current generation
// with masters masters holding every slot and none open.
func waitCache(ctx context.Context, c client.Client, ns string, masters int32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p := &platformv1.ParserPlatform{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vk"}, p); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(p.Status.Conditions, "Ready")
		if ready != nil && ready.Status == metav1.ConditionTrue && p.Status.ObservedGeneration == p.Generation &&
			p.Status.Cache != nil && p.Status.Cache.Masters == masters && p.Status.Cache.SlotsAssigned == 16384 && p.Status.Cache.OpenSlots == 0 {
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s/vk: the cache did not reach %d masters in %s", ns, masters, timeout)
}

// cacheClient is a Redis Cluster client of a platform's cache as an
// application uses it; the nodes announce their pod IPs (RedisAnnounceIP).
func cacheClient(ctx context.Context, c client.Client, ns string) (*redis.ClusterClient, error) {
	p := &platformv1.ParserPlatform{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vk"}}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: resource.CacheName(p)}, secret); err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: resource.CacheName(p) + "-0"}, pod); err != nil {
		return nil, err
	}
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:    []string{net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(resource.RedisPort))},
		Password: string(secret.Data[resource.KeyPassword]), DisableIdentity: true, Protocol: 2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}), nil
}

// writeKeys writes n keys into a platform's cache, 1,000 to a pipeline.
func writeKeys(ctx context.Context, c client.Client, ns string, n int) error {
	cc, err := cacheClient(ctx, c, ns)
	if err != nil {
		return err
	}
	defer func() { _ = cc.Close() }()
	const batch = 1000
	for from := 0; from < n; from += batch {
		_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := from; i < min(from+batch, n); i++ {
				p.Set(ctx, fmt.Sprintf("bench:%d", i), i, 0)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// countKeys sums DBSIZE over the masters of a platform's cache, as a
// client that has just connected sees them.
func countKeys(ctx context.Context, c client.Client, ns string) (int64, error) {
	cc, err := cacheClient(ctx, c, ns)
	if err != nil {
		return 0, err
	}
	defer func() { _ = cc.Close() }()
	var mu sync.Mutex
	var total int64
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu.Lock()
		total += n
		mu.Unlock()
		return err
	})
	return total, err
}

// kubectlOn runs kubectl against another cluster than the benchmark's.
func (e *env) kubectlOn(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *results) printMigration(p func(string, ...any)) {
	w := r.Migration
	if len(w.Caches) == 0 {
		return
	}
	p("### Migration: %d caches scale out 3 -> 4 masters (%d keys each, real redis-servers) while another platform's spec changes every %s", w.Scaling, w.KeysPerCache, seconds(w.Period))
	p("")
	p("| measure | value | target |")
	p("|---|---|---|")
	for _, c := range w.Caches {
		p("| %s: keys before / after, time to 4 masters and Ready | %d / %d, %s | none lost: %s |", c.Platform, c.KeysBefore, c.KeysAfter, seconds(c.Took), verdict(c.KeysBefore == c.KeysAfter))
	}
	p("| the other platform's changes that reached their Deployment | %d of %d | all |", w.Reached, w.Changes)
	p("| its change to child, p50 / p99 | %s / %s | p99 < 2 s: %s |", seconds(w.ChangeToChildP50), seconds(w.ChangeToChildP99), verdict(w.ChangeToChildP99 < 2*time.Second))
	p("| work-queue wait p50 / p99 | %s / %s | |", secondsF(w.QueueWaitP50), secondsF(w.QueueWaitP99))
	p("")
}
