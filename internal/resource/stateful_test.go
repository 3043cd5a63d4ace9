package resource

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/sharding"
)

// credentialsFor resolves every generated value of p to a distinct,
// recognisable string, as the controller would with random ones, so a test
// can trace each value to where it ends up.
func credentialsFor(p *platformv1.ParserPlatform) Credentials {
	c := Credentials{}
	for _, k := range GeneratedKeys(p) {
		sum := sha256.Sum256([]byte(p.Name + "/" + k.Secret + "/" + k.Key))
		c[k] = "Cr3d" + hex.EncodeToString(sum[:])[:24]
	}
	return c
}

// redisBrokerPlatform is the sample with Redis as the Celery broker.
func redisBrokerPlatform() *platformv1.ParserPlatform {
	p := samplePlatform()
	p.Spec.Queues.Broker.Type = platformv1.BrokerRedis
	return p
}

// byKey indexes children by "Kind/name".
func childrenByKey(objs []client.Object) map[string]client.Object {
	out := map[string]client.Object{}
	for _, o := range objs {
		out[kindOf(o)+"/"+o.GetName()] = o
	}
	return out
}

// statefulComponents are the components of the stateful tier.
var statefulComponents = map[string]bool{
	ComponentDatabase: true, ComponentCache: true, ComponentBroker: true, ComponentWorker: true,
}

// TestStatefulChildrenHaveContractNames checks docs/architecture.md
// "Children" for the stateful tier of platform vk: every child under its
// documented name, with the five labels, its component and the controller
// reference, and no stateful child that the document does not name.
func TestStatefulChildrenHaveContractNames(t *testing.T) {
	p := samplePlatform()
	children := childrenByKey(Children(p, credentialsFor(p)))
	want := map[string]string{ // "Kind/name" -> component
		"ConfigMap/vk-shard-map": ComponentDatabase,
	}
	for i := range 4 {
		db := fmt.Sprintf("vk-db-%d", i)
		want["StatefulSet/"+db] = ComponentDatabase
		want["Service/"+db] = ComponentDatabase
		want["Secret/"+db+"-credentials"] = ComponentDatabase
	}
	for _, kind := range []string{"StatefulSet", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} {
		want[kind+"/vk-cache"] = ComponentCache
		want[kind+"/vk-broker"] = ComponentBroker
	}
	want["Service/vk-cache-headless"] = ComponentCache
	want["Service/vk-broker-headless"] = ComponentBroker
	want["Secret/vk-broker-users"] = ComponentBroker // users.json and the operator's management API user
	for _, q := range []string{"parser", "analytics", "notifications"} {
		for _, kind := range []string{"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"} {
			want[kind+"/vk-worker-"+q] = ComponentWorker
		}
	}
	policies := []string{"default-deny", "lb", "gateway", "database", "cache", "metrics", "broker",
		"service-auth", "service-comments", "service-parser", "service-analytics"}
	for _, np := range policies {
		want["NetworkPolicy/vk-"+np] = "network-policy"
	}

	for _, key := range slices.Sorted(maps.Keys(want)) {
		o, ok := children[key]
		if !ok {
			t.Errorf("missing child %s", key)
			continue
		}
		assertSpecLabels(t, key, p, o.GetLabels())
		if got := o.GetLabels()[LabelComponent]; got != want[key] {
			t.Errorf("%s: component %q, want %q", key, got, want[key])
		}
		owner := metav1.GetControllerOf(o)
		if owner == nil || !reflect.DeepEqual(*owner, OwnerReference(p)) || len(o.GetOwnerReferences()) != 1 {
			t.Errorf("%s: owner references %+v, want only the controller reference to the platform", key, o.GetOwnerReferences())
		}
		if o.GetNamespace() != p.Namespace {
			t.Errorf("%s: namespace %q, want %q", key, o.GetNamespace(), p.Namespace)
		}
	}
	for key, o := range children {
		if _, named := want[key]; !named && (statefulComponents[o.GetLabels()[LabelComponent]] || kindOf(o) == "NetworkPolicy") {
			t.Errorf("unexpected child %s (component %s)", key, o.GetLabels()[LabelComponent])
		}
	}
}

// TestStatefulSetsKeepTheirData checks every StatefulSet: PVCs retained on
// scale-down and deletion, one data volume from a labelled template that
// the container mounts, a headless governing Service, and its replicas.
func TestStatefulSetsKeepTheirData(t *testing.T) {
	for name, tc := range map[string]struct {
		p    *platformv1.ParserPlatform
		want map[string]int32 // StatefulSet -> replicas
	}{
		"rabbitmq": {samplePlatform(), map[string]int32{
			"vk-db-0": 1, "vk-db-1": 1, "vk-db-2": 1, "vk-db-3": 1, "vk-cache": 6, "vk-broker": 1,
		}},
		"redis broker, bigger cache": {func() *platformv1.ParserPlatform {
			p := redisBrokerPlatform()
			p.Spec.Cache.Masters, p.Spec.Cache.ReplicasPerMaster = 4, ptr.To[int32](2)
			return p
		}(), map[string]int32{
			"vk-db-0": 1, "vk-db-1": 1, "vk-db-2": 1, "vk-db-3": 1, "vk-cache": 12, "vk-broker": 1,
		}},
	} {
		t.Run(name, func(t *testing.T) {
			children := Children(tc.p, credentialsFor(tc.p))
			objs := childrenByKey(children)
			got := map[string]int32{}
			for _, o := range children {
				sts, ok := o.(*appsv1.StatefulSet)
				if !ok {
					continue
				}
				got[sts.Name] = ptr.Deref(sts.Spec.Replicas, -1)
				assertStatefulSet(t, tc.p, sts, objs)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("StatefulSet replicas %v, want %v", got, tc.want)
			}
		})
	}
}

func assertStatefulSet(t *testing.T, p *platformv1.ParserPlatform, sts *appsv1.StatefulSet, objs map[string]client.Object) {
	t.Helper()
	retain := appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if r := sts.Spec.PersistentVolumeClaimRetentionPolicy; r == nil || r.WhenDeleted != retain || r.WhenScaled != retain {
		t.Errorf("%s: PVC retention %+v, want Retain/Retain", sts.Name, r)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("%s: %d volume claim templates, want 1", sts.Name, len(sts.Spec.VolumeClaimTemplates))
	}
	vct := sts.Spec.VolumeClaimTemplates[0]
	// The controller finds (and with deletionPolicy Delete, deletes) the PVCs
	// by the instance label, which the StatefulSet controller copies from here.
	assertSpecLabels(t, sts.Name+" volume claim template", p, vct.Labels)
	if !slices.Equal(vct.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("%s: access modes %v, want ReadWriteOnce", sts.Name, vct.Spec.AccessModes)
	}
	mounted := false
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, m := range c.VolumeMounts {
			mounted = mounted || m.Name == vct.Name
		}
	}
	if !mounted {
		t.Errorf("%s: no container mounts the volume claim template %q", sts.Name, vct.Name)
	}
	svc, ok := objs["Service/"+sts.Spec.ServiceName].(*corev1.Service)
	if !ok {
		t.Fatalf("%s: governing Service %q is not among the children", sts.Name, sts.Spec.ServiceName)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("%s: governing Service %s has clusterIP %q, want None (headless)", sts.Name, svc.Name, svc.Spec.ClusterIP)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("%s: governing Service %s does not select its pods", sts.Name, svc.Name)
	}
}

// TestStatefulStorageFromSpec: each tier's volume size and storage class
// come from its spec, with the API defaults (README.md, "The ParserPlatform
// resource").
func TestStatefulStorageFromSpec(t *testing.T) {
	type storage struct {
		size  string
		class *string
	}
	for _, tc := range []struct {
		name   string
		change func(*platformv1.ParserPlatform)
		want   map[string]storage // StatefulSet -> volume
	}{{
		name:   "defaults",
		change: func(*platformv1.ParserPlatform) {},
		want: map[string]storage{
			"vk-db-0": {"10Gi", nil}, "vk-db-3": {"10Gi", nil}, "vk-cache": {"2Gi", nil}, "vk-broker": {"2Gi", nil},
		},
	}, {
		name: "from the spec",
		change: func(p *platformv1.ParserPlatform) {
			p.Spec.Database.Storage = platformv1.StorageSpec{Size: ptr.To(apiresource.MustParse("50Gi")), StorageClassName: ptr.To("fast-ssd")}
			p.Spec.Cache.Storage = platformv1.StorageSpec{Size: ptr.To(apiresource.MustParse("5Gi")), StorageClassName: ptr.To("standard")}
			p.Spec.Queues.Broker.Storage = platformv1.StorageSpec{Size: ptr.To(apiresource.MustParse("3Gi"))}
		},
		want: map[string]storage{
			"vk-db-0": {"50Gi", ptr.To("fast-ssd")}, "vk-db-3": {"50Gi", ptr.To("fast-ssd")},
			"vk-cache": {"5Gi", ptr.To("standard")}, "vk-broker": {"3Gi", nil},
		},
	}, {
		name: "empty storage class passed through (static provisioning)",
		change: func(p *platformv1.ParserPlatform) {
			p.Spec.Database.Storage.StorageClassName = ptr.To("")
		},
		want: map[string]storage{"vk-db-1": {"10Gi", ptr.To("")}, "vk-cache": {"2Gi", nil}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			tc.change(p)
			children := Children(p, credentialsFor(p))
			for name, want := range tc.want {
				vct := find[*appsv1.StatefulSet](t, children, name).Spec.VolumeClaimTemplates[0]
				got := vct.Spec.Resources.Requests[corev1.ResourceStorage]
				if got.Cmp(apiresource.MustParse(want.size)) != 0 {
					t.Errorf("%s: volume size %s, want %s", name, got.String(), want.size)
				}
				if !equalStringPtr(vct.Spec.StorageClassName, want.class) {
					t.Errorf("%s: storageClassName %v, want %v", name, showStringPtr(vct.Spec.StorageClassName), showStringPtr(want.class))
				}
			}
		})
	}
}

func equalStringPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func showStringPtr(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *s)
}

func TestCacheReplicasAreMastersTimesReplicas(t *testing.T) {
	for _, tc := range []struct {
		masters int32
		perM    *int32
		want    int32
	}{
		{3, ptr.To[int32](1), 6},
		{3, ptr.To[int32](0), 3},
		{5, ptr.To[int32](2), 15},
		{3, nil, 6}, // replicasPerMaster defaults to 1
		{0, nil, 6}, // masters defaults to 3
		{100, ptr.To[int32](5), 600},
	} {
		p := samplePlatform()
		p.Spec.Cache.Masters, p.Spec.Cache.ReplicasPerMaster = tc.masters, tc.perM
		sts := find[*appsv1.StatefulSet](t, Children(p, credentialsFor(p)), "vk-cache")
		if got := ptr.Deref(sts.Spec.Replicas, -1); got != tc.want || CacheReplicas(p) != tc.want {
			t.Errorf("masters %d, replicasPerMaster %v: StatefulSet replicas %d, CacheReplicas %d, want %d",
				tc.masters, ptr.Deref(tc.perM, -1), got, CacheReplicas(p), tc.want)
		}
	}
}

// TestHeadlessAndClientServices: the governing Services are headless and
// publish not-ready pods (cluster members find each other before they are
// ready); the client Services of the cache and broker get a cluster IP.
func TestHeadlessAndClientServices(t *testing.T) {
	p := samplePlatform()
	children := Children(p, credentialsFor(p))
	for name, headless := range map[string]bool{
		"vk-db-0": true, "vk-db-1": true, "vk-db-2": true, "vk-db-3": true,
		"vk-cache-headless": true, "vk-broker-headless": true, "vk-cache": false, "vk-broker": false,
	} {
		svc := find[*corev1.Service](t, children, name)
		if got := svc.Spec.ClusterIP == corev1.ClusterIPNone; got != headless {
			t.Errorf("Service %s: clusterIP %q, headless=%v, want %v", name, svc.Spec.ClusterIP, got, headless)
		}
		if headless && !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: headless but does not publish not-ready addresses", name)
		}
	}
	for name, ports := range map[string][]int32{
		"vk-db-0": {PostgresPort}, "vk-cache-headless": {RedisPort, RedisClusterBus}, "vk-cache": {RedisPort},
		"vk-broker": {AMQPPort, RabbitManagement},
	} {
		var got []int32
		for _, port := range find[*corev1.Service](t, children, name).Spec.Ports {
			got = append(got, port.Port)
		}
		if !slices.Equal(got, ports) {
			t.Errorf("Service %s: ports %v, want %v", name, got, ports)
		}
	}
}

// TestShardMapListsEveryShard: the shard map parses with the sharding
// package the services use, and lists every shard at its headless Service,
// with its credentials Secret.
func TestShardMapListsEveryShard(t *testing.T) {
	for _, shards := range []int32{1, 4, 64} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			p := samplePlatform()
			p.Spec.Database.Shards = shards
			children := Children(p, credentialsFor(p))
			objs := childrenByKey(children)
			cm := find[*corev1.ConfigMap](t, children, "vk-shard-map")
			if len(cm.Data) != 1 || cm.Data[sharding.ConfigMapKey] == "" {
				t.Fatalf("shard map data keys %v, want only %q", slices.Collect(maps.Keys(cm.Data)), sharding.ConfigMapKey)
			}
			m, err := sharding.Parse([]byte(cm.Data[sharding.ConfigMapKey]))
			if err != nil {
				t.Fatalf("the shard map does not parse: %v", err)
			}
			if len(m.Shards) != int(shards) {
				t.Fatalf("%d shards in the map, want %d", len(m.Shards), shards)
			}
			databases := 0
			for _, o := range children {
				if _, ok := o.(*appsv1.StatefulSet); ok && o.GetLabels()[LabelComponent] == ComponentDatabase {
					databases++
				}
			}
			if databases != int(shards) {
				t.Errorf("%d database StatefulSets, want %d", databases, shards)
			}
			for i, s := range m.Shards {
				name := fmt.Sprintf("vk-db-%d", i)
				svc, ok := objs["Service/"+name].(*corev1.Service)
				sts, _ := objs["StatefulSet/"+name].(*appsv1.StatefulSet)
				if !ok || sts == nil {
					t.Fatalf("shard %d: no Service and StatefulSet %s", i, name)
				}
				if s.Index != i || s.Host != name+".parser.svc" || s.Port != int(PostgresPort) || s.Database != DatabaseName {
					t.Errorf("shard %d: %+v, want index %d at %s.parser.svc:%d database %s", i, s, i, name, PostgresPort, DatabaseName)
				}
				if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Ports[0].Port != int32(s.Port) ||
					!labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
					t.Errorf("shard %d: Service %s is not the headless Service of the shard's pods on port %d", i, name, s.Port)
				}
				sec, ok := objs["Secret/"+s.SecretName].(*corev1.Secret)
				if s.SecretName != name+"-credentials" || !ok {
					t.Fatalf("shard %d: secretName %q, want %s-credentials among the children", i, s.SecretName, name)
				}
				if string(sec.Data[KeyDatabase]) != s.Database || string(sec.Data[KeyUsername]) != DatabaseUser {
					t.Errorf("shard %d: Secret %s database/username %q/%q, want %q/%q", i, sec.Name,
						sec.Data[KeyDatabase], sec.Data[KeyUsername], s.Database, DatabaseUser)
				}
			}
		})
	}
}

// TestStatefulNamesFitForLongPlatform: with names long enough to be
// shortened, the StatefulSets keep room for their pod and revision suffixes,
// and the shard map, the governing Services and the app env still point at
// children that exist.
func TestStatefulNamesFitForLongPlatform(t *testing.T) {
	p := longPlatform()
	p.Spec.Queues.Queues[0].Name = "q" + strings.Repeat("z", 29)
	children := Children(p, credentialsFor(p))
	objs := childrenByKey(children)
	for key, o := range objs {
		if errs := validation.IsDNS1035Label(o.GetName()); len(errs) > 0 {
			t.Errorf("%s: %v", key, errs)
		}
		if sts, ok := o.(*appsv1.StatefulSet); ok {
			if len(sts.Name) > MaxStatefulSetNameLength {
				t.Errorf("%s: %d characters, want at most %d", key, len(sts.Name), MaxStatefulSetNameLength)
			}
			assertStatefulSet(t, p, sts, objs)
		}
	}
	m, err := sharding.Parse([]byte(find[*corev1.ConfigMap](t, children, ShardMapName(p)).Data[ShardMapKey]))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range m.Shards {
		svc := strings.TrimSuffix(s.Host, "."+p.Namespace+".svc")
		if _, ok := objs["Service/"+svc]; !ok {
			t.Errorf("shard %d: host %s is not a Service among the children", s.Index, s.Host)
		}
		if _, ok := objs["Secret/"+s.SecretName]; !ok {
			t.Errorf("shard %d: secret %s is not among the children", s.Index, s.SecretName)
		}
		if _, ok := objs["StatefulSet/"+svc]; !ok {
			t.Errorf("shard %d: no StatefulSet named like its Service %s", s.Index, svc)
		}
	}
	for name, tmpl := range podTemplates(t, children) {
		if appComponents[tmpl.Labels[LabelComponent]] {
			assertAppEnvRefsExist(t, name, tmpl, objs)
		}
	}
}

// assertAppEnvRefsExist: every Secret, ConfigMap and Service an app pod
// names is among the children.
func assertAppEnvRefsExist(t *testing.T, name string, tmpl *corev1.PodTemplateSpec, objs map[string]client.Object) {
	t.Helper()
	for _, e := range tmpl.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if _, ok := objs["Secret/"+e.ValueFrom.SecretKeyRef.Name]; !ok {
				t.Errorf("%s: %s refers to Secret %s, not among the children", name, e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
		}
		if e.Name == "CACHE_NODES" {
			host := strings.Split(e.Value, ".")[0]
			if _, ok := objs["Service/"+host]; !ok {
				t.Errorf("%s: CACHE_NODES %s is not a Service among the children", name, e.Value)
			}
		}
	}
	for _, v := range tmpl.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			if _, ok := objs["ConfigMap/"+v.ConfigMap.Name]; !ok {
				t.Errorf("%s: volume %s mounts ConfigMap %s, not among the children", name, v.Name, v.ConfigMap.Name)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					if _, ok := objs["Secret/"+src.Secret.Name]; !ok {
						t.Errorf("%s: volume %s projects Secret %s, not among the children", name, v.Name, src.Secret.Name)
					}
				}
			}
		}
	}
}

// TestGoldenShardMap pins the sample's shard map byte for byte: services in
// any language read it, so its format changes only deliberately.
func TestGoldenShardMap(t *testing.T) {
	assertGolden(t, "shard-map.json.golden", ShardMapConfigMap(samplePlatform()).Data[ShardMapKey])
}

// TestSecretsHoldTheResolvedCredentials: every generated value lands in the
// Secret it names, exactly as resolved; every Secret is made of them.
func TestSecretsHoldTheResolvedCredentials(t *testing.T) {
	for name, p := range map[string]*platformv1.ParserPlatform{"rabbitmq": samplePlatform(), "redis broker": redisBrokerPlatform()} {
		t.Run(name, func(t *testing.T) {
			creds := credentialsFor(p)
			children := Children(p, creds)
			generated := map[string]bool{}
			for _, k := range GeneratedKeys(p) {
				generated[k.Secret] = true
				sec := find[*corev1.Secret](t, children, k.Secret)
				if got := string(sec.Data[k.Key]); got != creds[k] {
					t.Errorf("Secret %s key %s = %q, want the resolved %q", k.Secret, k.Key, got, creds[k])
				}
			}
			for _, o := range children {
				if sec, ok := o.(*corev1.Secret); ok && !generated[sec.Name] {
					t.Errorf("Secret %s holds no generated value: the controller would not resolve its credentials", sec.Name)
				}
			}
			// Values derived from a password embed exactly that password.
			for i := range ShardCount(p) {
				sec := find[*corev1.Secret](t, children, ShardSecretName(p, i))
				want := fmt.Sprintf("postgresql://parser:%s@vk-db-%d.parser.svc:5432/parser", sec.Data[KeyPassword], i)
				if got := string(sec.Data[KeyURI]); got != want {
					t.Errorf("Secret %s uri %q, want %q", sec.Name, got, want)
				}
			}
			cache := find[*corev1.Secret](t, children, "vk-cache")
			if !strings.Contains(string(cache.Data[RedisAuthConfKey]), fmt.Sprintf("requirepass %q", cache.Data[KeyPassword])) {
				t.Errorf("Secret vk-cache %s does not require its password", RedisAuthConfKey)
			}
			broker := find[*corev1.Secret](t, children, "vk-broker")
			if !strings.Contains(string(broker.Data[KeyBrokerURL]), ":"+string(broker.Data[KeyPassword])+"@vk-broker.parser.svc:") {
				t.Errorf("Secret vk-broker url %q does not carry its password", broker.Data[KeyBrokerURL])
			}
		})
	}
}

// TestCredentialsNeverLeaveSecrets serialises every child but the Secrets
// (ConfigMaps, pod templates with their env, command, args and
// annotations, ...) and looks for every generated value in it.
func TestCredentialsNeverLeaveSecrets(t *testing.T) {
	for name, p := range map[string]*platformv1.ParserPlatform{"rabbitmq": samplePlatform(), "redis broker": redisBrokerPlatform()} {
		t.Run(name, func(t *testing.T) {
			creds := credentialsFor(p)
			if len(creds) < ShardCount(p)+2 {
				t.Fatalf("only %d generated values: the scan would look for too little", len(creds))
			}
			if found := leaks(t, Children(p, creds), creds); len(found) > 0 {
				t.Errorf("credentials outside Secrets:\n  %s", strings.Join(found, "\n  "))
			}
		})
	}
	// The control: a password put into an env value or a ConfigMap is found.
	p := samplePlatform()
	creds := credentialsFor(p)
	children := Children(p, creds)
	password := creds.Get(CacheName(p), KeyPassword)
	worker := find[*appsv1.Deployment](t, children, "vk-worker-parser")
	worker.Spec.Template.Spec.Containers[0].Env = append(worker.Spec.Template.Spec.Containers[0].Env,
		corev1.EnvVar{Name: "CACHE_PASSWORD_INLINE", Value: password})
	find[*corev1.ConfigMap](t, children, "vk-shard-map").Data["leak"] = "password=" + creds.Get(ShardSecretName(p, 2), KeyPassword)
	if found := leaks(t, children, creds); len(found) != 2 {
		t.Errorf("the scan found %v, want the env value and the ConfigMap entry", found)
	}
}

func leaks(t *testing.T, children []client.Object, creds Credentials) []string {
	t.Helper()
	var out []string
	for _, o := range children {
		if _, ok := o.(*corev1.Secret); ok {
			continue
		}
		text, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("marshalling %s/%s: %v", kindOf(o), o.GetName(), err)
		}
		for k, v := range creds {
			if strings.Contains(string(text), v) {
				out = append(out, fmt.Sprintf("%s/%s holds %s/%s", kindOf(o), o.GetName(), k.Secret, k.Key))
			}
		}
	}
	return out
}

// TestAppContainersGetThePlatform: services, the gateway and the workers get
// the shard map, every shard's credentials, the cache and the broker, with
// secrets by reference only (README.md, "What the operator creates": "App
// containers (services, gateway, workers) get ...").
func TestAppContainersGetThePlatform(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      *platformv1.ParserPlatform
		apps   int
		broker bool
	}{
		{"queues", samplePlatform(), 4 + 1 + 3, true},
		{"no queues", func() *platformv1.ParserPlatform { p := samplePlatform(); p.Spec.Queues = nil; return p }(), 4 + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			children := Children(tc.p, credentialsFor(tc.p))
			objs := childrenByKey(children)
			apps := 0
			for name, tmpl := range podTemplates(t, children) {
				if !appComponents[tmpl.Labels[LabelComponent]] {
					if env := envOf(t, name, tmpl.Spec.Containers[0]); env["CELERY_BROKER_URL"] != nil {
						t.Errorf("%s is not an app but gets CELERY_BROKER_URL", name)
					}
					continue
				}
				apps++
				assertAppEnv(t, name, tmpl, objs, tc.broker)
			}
			if apps != tc.apps {
				t.Errorf("%d app pod templates, want %d", apps, tc.apps)
			}
		})
	}
}

func envOf(t *testing.T, what string, c corev1.Container) map[string]*corev1.EnvVar {
	t.Helper()
	out := map[string]*corev1.EnvVar{}
	for i, e := range c.Env {
		if out[e.Name] != nil {
			t.Errorf("%s: %s set twice", what, e.Name)
		}
		out[e.Name] = &c.Env[i]
	}
	return out
}

func assertAppEnv(t *testing.T, name string, tmpl *corev1.PodTemplateSpec, objs map[string]client.Object, broker bool) {
	t.Helper()
	c := tmpl.Spec.Containers[0]
	env := envOf(t, name, c)
	secretRef := func(variable, secretName, key string) {
		t.Helper()
		e := env[variable]
		if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != secretName || e.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("%s: %s = %+v, want a secretKeyRef to %s/%s", name, variable, e, secretName, key)
			return
		}
		sec, ok := objs["Secret/"+secretName].(*corev1.Secret)
		if !ok || sec.Data[key] == nil {
			t.Errorf("%s: %s refers to %s/%s, which no child Secret holds", name, variable, secretName, key)
		}
	}
	if e := env["INSTANCE_ID"]; e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("%s: INSTANCE_ID = %+v, want the pod name", name, e)
	}
	if e := env["CACHE_NODES"]; e == nil || e.Value != "vk-cache.parser.svc:6379" {
		t.Errorf("%s: CACHE_NODES = %+v, want vk-cache.parser.svc:6379", name, e)
	} else if svc, ok := objs["Service/vk-cache"].(*corev1.Service); !ok || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Errorf("%s: CACHE_NODES names vk-cache, which is not a client Service among the children", name)
	}
	secretRef("CACHE_PASSWORD", "vk-cache", KeyPassword)
	if broker {
		secretRef("CELERY_BROKER_URL", "vk-broker", KeyBrokerURL)
	} else if env["CELERY_BROKER_URL"] != nil {
		t.Errorf("%s: CELERY_BROKER_URL set without queues", name)
	}
	// The shard map file is in a mount of the shard map ConfigMap.
	e := env["SHARD_MAP_FILE"]
	if e == nil || e.Value != ShardMapMountDir+"/"+ShardMapKey {
		t.Errorf("%s: SHARD_MAP_FILE = %+v, want %s/%s", name, e, ShardMapMountDir, ShardMapKey)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range tmpl.Spec.Volumes {
		volumes[v.Name] = v
	}
	mountOf := func(dir string) *corev1.Volume {
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir {
				v := volumes[m.Name]
				return &v
			}
		}
		return nil
	}
	if v := mountOf(ShardMapMountDir); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != "vk-shard-map" {
		t.Errorf("%s: %s is not a mount of ConfigMap vk-shard-map", name, ShardMapMountDir)
	}
	// Every shard's credentials, as files, from the shards' Secrets.
	v := mountOf(DBCredentialsDir)
	if v == nil || v.Projected == nil {
		t.Fatalf("%s: no projected volume at %s", name, DBCredentialsDir)
	}
	var secrets []string
	for _, src := range v.Projected.Sources {
		if src.Secret != nil {
			secrets = append(secrets, src.Secret.Name)
		}
	}
	if want := []string{"vk-db-0-credentials", "vk-db-1-credentials", "vk-db-2-credentials", "vk-db-3-credentials"}; !slices.Equal(secrets, want) {
		t.Errorf("%s: %s projects %v, want %v", name, DBCredentialsDir, secrets, want)
	}
}

// TestWorkersRunCelery: one Deployment per queue running
// `celery -A <app> worker -Q <queue> --concurrency <n>`, with time for a
// warm shutdown, an HPA and a PDB, and no Service (workers take no traffic).
func TestWorkersRunCelery(t *testing.T) {
	p := samplePlatform()
	p.Spec.Queues.Workers.App = "vk.celery_app"
	p.Spec.Queues.Queues[1].Concurrency = 16
	p.Spec.Queues.Queues[2].Concurrency = 0 // the CRD default, 4
	children := Children(p, credentialsFor(p))
	objs := childrenByKey(children)
	for queue, concurrency := range map[string]string{"parser": "4", "analytics": "16", "notifications": "4"} {
		name := "vk-worker-" + queue
		d := find[*appsv1.Deployment](t, children, name)
		spec := d.Spec.Template.Spec
		c := spec.Containers[0]
		want := []string{"celery", "-A", "vk.celery_app", "worker", "-Q", queue, "--concurrency", concurrency}
		if got := append(slices.Clone(c.Command), c.Args...); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("%s runs %q, want it to start with %q", name, got, want)
		}
		if c.Image != p.Spec.Queues.Workers.Image {
			t.Errorf("%s: image %q, want %q", name, c.Image, p.Spec.Queues.Workers.Image)
		}
		if g := ptr.Deref(spec.TerminationGracePeriodSeconds, 30); g < 60 {
			t.Errorf("%s: termination grace period %ds, want >= 60s for a warm shutdown", name, g)
		}
		if _, ok := objs["HorizontalPodAutoscaler/"+name].(*autoscalingv2.HorizontalPodAutoscaler); !ok {
			t.Errorf("%s: no HPA", name)
		}
		if _, ok := objs["PodDisruptionBudget/"+name].(*policyv1.PodDisruptionBudget); !ok {
			t.Errorf("%s: no PDB", name)
		}
		if _, ok := objs["Service/"+name]; ok {
			t.Errorf("%s: has a Service, but workers take no traffic", name)
		}
	}
}

// TestQueuesDecideBrokerAndWorkers: one worker Deployment per queue, and a
// broker (with its Secret values and NetworkPolicy) only when there are
// queues.
func TestQueuesDecideBrokerAndWorkers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*platformv1.ParserPlatform)
		workers []string
	}{
		{"sample", func(*platformv1.ParserPlatform) {}, []string{"vk-worker-analytics", "vk-worker-notifications", "vk-worker-parser"}},
		{"queue added", func(p *platformv1.ParserPlatform) {
			p.Spec.Queues.Queues = append(p.Spec.Queues.Queues, platformv1.QueueSpec{Name: "reports"})
		}, []string{"vk-worker-analytics", "vk-worker-notifications", "vk-worker-parser", "vk-worker-reports"}},
		{"queue removed", func(p *platformv1.ParserPlatform) {
			p.Spec.Queues.Queues = slices.Delete(p.Spec.Queues.Queues, 1, 2)
		}, []string{"vk-worker-notifications", "vk-worker-parser"}},
		{"queues nil", func(p *platformv1.ParserPlatform) { p.Spec.Queues = nil }, nil},
		{"queues empty", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Queues = nil }, nil},
		{"queues empty list", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Queues = []platformv1.QueueSpec{} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			tc.change(p)
			children := Children(p, credentialsFor(p))
			var workers []string
			broker := map[string]bool{}
			for _, o := range children {
				switch o.GetLabels()[LabelComponent] {
				case ComponentWorker:
					if _, ok := o.(*appsv1.Deployment); ok {
						workers = append(workers, o.GetName())
					}
				case ComponentBroker:
					broker[kindOf(o)+"/"+o.GetName()] = true
				}
				if np, ok := o.(*networkingv1.NetworkPolicy); ok && np.Name == "vk-broker" {
					broker["NetworkPolicy/vk-broker"] = true
				}
			}
			slices.Sort(workers)
			if !slices.Equal(workers, tc.workers) {
				t.Errorf("worker Deployments %v, want %v", workers, tc.workers)
			}
			wantBroker := len(tc.workers) > 0
			for _, key := range []string{"StatefulSet/vk-broker", "Secret/vk-broker", "Service/vk-broker", "NetworkPolicy/vk-broker"} {
				if broker[key] != wantBroker {
					t.Errorf("%s present=%v, want %v", key, broker[key], wantBroker)
				}
			}
			if !wantBroker && len(broker) > 0 {
				t.Errorf("broker children without queues: %v", slices.Sorted(maps.Keys(broker)))
			}
			brokerKeys := 0
			for _, k := range GeneratedKeys(p) {
				if k.Secret == "vk-broker" {
					brokerKeys++
				}
			}
			if (brokerKeys > 0) != wantBroker {
				t.Errorf("%d generated broker values, want some only with queues", brokerKeys)
			}
		})
	}
}

// TestBrokerType: RabbitMQ by default (amqp:// URL, Erlang cookie), Redis
// when asked (a redis StatefulSet and a redis:// URL).
func TestBrokerType(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         *platformv1.ParserPlatform
		image     string
		port      int32
		urlPrefix string
		cookie    bool
	}{
		{"rabbitmq", samplePlatform(), platformv1.DefaultRabbitMQImage, AMQPPort, "amqp://parser:", true},
		{"redis", redisBrokerPlatform(), platformv1.DefaultRedisImage, RedisPort, "redis://:", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := credentialsFor(tc.p)
			children := Children(tc.p, creds)
			c := find[*appsv1.StatefulSet](t, children, "vk-broker").Spec.Template.Spec.Containers[0]
			if c.Image != tc.image {
				t.Errorf("broker image %q, want %q", c.Image, tc.image)
			}
			if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == tc.port }) {
				t.Errorf("broker container ports %+v lack %d", c.Ports, tc.port)
			}
			sec := find[*corev1.Secret](t, children, "vk-broker")
			password := creds.Get("vk-broker", KeyPassword)
			wantURL := fmt.Sprintf("%s%s@vk-broker.parser.svc:%d/", tc.urlPrefix, password, tc.port)
			if got := string(sec.Data[KeyBrokerURL]); !strings.HasPrefix(got, wantURL) {
				t.Errorf("broker url %q, want it to start with %q", got, wantURL)
			}
			if _, ok := sec.Data[KeyErlangCookie]; ok != tc.cookie {
				t.Errorf("Erlang cookie in the Secret=%v, want %v", ok, tc.cookie)
			}
			svc := find[*corev1.Service](t, children, "vk-broker")
			if svc.Spec.Ports[0].Port != tc.port {
				t.Errorf("broker Service port %d, want %d", svc.Spec.Ports[0].Port, tc.port)
			}
		})
	}
}

// TestAppConfigHash: services, the gateway and the workers read the same
// configuration (registry and shard map) and carry the same hash of it; it
// changes with that configuration and with nothing else.
func TestAppConfigHash(t *testing.T) {
	appHash := func(p *platformv1.ParserPlatform) string {
		t.Helper()
		hashes := map[string]string{}
		components := map[string]bool{}
		for name, tmpl := range podTemplates(t, Children(p, credentialsFor(p))) {
			if appComponents[tmpl.Labels[LabelComponent]] {
				hashes[name] = tmpl.Annotations[AnnotationConfigHash]
				components[tmpl.Labels[LabelComponent]] = true
			}
		}
		distinct := slices.Compact(slices.Sorted(maps.Values(hashes)))
		if len(distinct) != 1 || distinct[0] == "" {
			t.Fatalf("app config hashes %v, want one non-empty hash shared by all", hashes)
		}
		if hasQueues(p) && !components[ComponentWorker] {
			t.Fatal("no worker among the app pod templates")
		}
		if want := ConfigHash(RegistryConfigMap(p).Data, ShardMapConfigMap(p).Data, credentialsFor(p).Digest(appReadKeys(p)...)); distinct[0] != want {
			t.Errorf("app config hash %s, want %s (registry, shard map and generated values)", distinct[0], want)
		}
		return distinct[0]
	}
	base := appHash(samplePlatform())
	for _, tc := range []struct {
		name   string
		change func(*platformv1.ParserPlatform)
		rolls  bool
	}{
		{"service added: the registry changes", func(p *platformv1.ParserPlatform) {
			p.Spec.Services = append(p.Spec.Services, platformv1.ServiceSpec{Name: "search", Image: "search:1", Port: 8005})
		}, true},
		{"service port changed: the registry changes", func(p *platformv1.ParserPlatform) { p.Spec.Services[0].Port = 9001 }, true},
		{"shard count changed (the CRD refuses it): the shard map changes", func(p *platformv1.ParserPlatform) { p.Spec.Database.Shards = 8 }, true},
		{"worker concurrency changed", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Queues[0].Concurrency = 12 }, false},
		{"queue added", func(p *platformv1.ParserPlatform) {
			p.Spec.Queues.Queues = append(p.Spec.Queues.Queues, platformv1.QueueSpec{Name: "reports"})
		}, false},
		{"cache resized", func(p *platformv1.ParserPlatform) { p.Spec.Cache.Masters = 6 }, false},
		{"broker type changed", func(p *platformv1.ParserPlatform) { p.Spec.Queues.Broker.Type = platformv1.BrokerRedis }, false},
		{"database storage changed", func(p *platformv1.ParserPlatform) {
			p.Spec.Database.Storage.Size = ptr.To(apiresource.MustParse("20Gi"))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			tc.change(p)
			if got := appHash(p); (got != base) != tc.rolls {
				t.Errorf("app config hash %s -> %s, rolled=%v, want %v", base, got, got != base, tc.rolls)
			}
		})
	}
}

// TestStatefulPodTemplatesMeetPodSecurityRestricted runs the Pod Security
// evaluator of podsecurity_test.go on the broker variants the sample does
// not cover (Redis, and no broker at all), and makes sure the walk reaches
// every StatefulSet.
func TestStatefulPodTemplatesMeetPodSecurityRestricted(t *testing.T) {
	noQueues := samplePlatform()
	noQueues.Spec.Queues = nil
	for variant, tc := range map[string]struct {
		p    *platformv1.ParserPlatform
		want []string
	}{
		"rabbitmq":  {samplePlatform(), []string{"StatefulSet/vk-db-0", "StatefulSet/vk-db-3", "StatefulSet/vk-cache", "StatefulSet/vk-broker", "Deployment/vk-worker-parser"}},
		"redis":     {redisBrokerPlatform(), []string{"StatefulSet/vk-db-0", "StatefulSet/vk-cache", "StatefulSet/vk-broker", "Deployment/vk-worker-parser"}},
		"no queues": {noQueues, []string{"StatefulSet/vk-db-0", "StatefulSet/vk-cache"}},
	} {
		templates := podTemplates(t, Children(tc.p, credentialsFor(tc.p)))
		for _, name := range tc.want {
			if templates[name] == nil {
				t.Errorf("%s: no pod template %s", variant, name)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(templates)) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				if v := violations(t, templates[name]); len(v) > 0 {
					t.Errorf("violates Pod Security %q:\n  %s", restricted.Level, strings.Join(v, "\n  "))
				}
			})
		}
	}
}
