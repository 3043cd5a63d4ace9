//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/vkparser/parser-operator/internal/resource"
)

// The smoke specs prove the harness itself: what the operator's e2e specs
// will rely on works for real, and would fail without the component that
// provides it (Pod Security admission, the scheduler and kwok, the garbage
// collector, the PVC stages, ServiceAccount token signing, the redis
// backer).
var _ = Describe("The simulated cluster", Ordered, func() {
	const ns = "smoke"

	BeforeAll(func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
		Expect(err).NotTo(HaveOccurred())
	})

	It("refuses a pod that breaks Pod Security restricted", func(ctx SpecContext) {
		out, err := kubectl(ctx, "", "run", "root", "-n", ns, "--image=busybox", "--restart=Never")
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring(`violates PodSecurity "restricted`))
	})

	It("runs a Deployment's pods Ready on pod IPs, and garbage-collects them with it", func(ctx SpecContext) {
		_, err := kubectl(ctx, deploymentYAML, "apply", "-n", ns, "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Eventually(readyPods).WithContext(ctx).WithArguments(ns, "app=web").Should(HaveLen(3))
		pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		Expect(err).NotTo(HaveOccurred())
		_, podNet, err := net.ParseCIDR(cluster.PodCIDR)
		Expect(err).NotTo(HaveOccurred())
		nodes := map[string]bool{}
		for _, p := range pods.Items {
			Expect(podNet.Contains(net.ParseIP(p.Status.PodIP))).To(BeTrue(), "pod IP %s outside %s", p.Status.PodIP, cluster.PodCIDR)
			nodes[p.Spec.NodeName] = true
		}
		Expect(len(nodes)).To(BeNumerically(">", 1), "the scheduler spreads replicas over the fake nodes")
		Eventually(func(g Gomega) {
			d, err := clients.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.ReadyReplicas).To(BeEquivalentTo(3))
		}).WithContext(ctx).Should(Succeed())

		_, err = kubectl(ctx, "", "delete", "deployment", "web", "-n", ns, "--wait=false")
		Expect(err).NotTo(HaveOccurred())
		Eventually(podNames).WithContext(ctx).WithArguments(ns, "app=web").Should(BeEmpty())
		Eventually(func(g Gomega) {
			rs, err := clients.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rs.Items).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
	})

	It("binds a StatefulSet's PVCs, runs its pods, and keeps the PVCs when it goes", func(ctx SpecContext) {
		_, err := kubectl(ctx, statefulSetYAML, "apply", "-n", ns, "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Eventually(readyPods).WithContext(ctx).WithArguments(ns, "app=db").Should(ConsistOf("db-0", "db-1"))
		Eventually(func(g Gomega) {
			pvcs, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pvcs.Items).To(HaveLen(2))
			for _, pvc := range pvcs.Items {
				g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound), pvc.Name)
				g.Expect(ptr.Deref(pvc.Spec.StorageClassName, "")).To(Equal("kwok-volume"), "the default StorageClass")
			}
		}).WithContext(ctx).Should(Succeed())

		_, err = kubectl(ctx, "", "delete", "statefulset", "db", "-n", ns, "--wait=false")
		Expect(err).NotTo(HaveOccurred())
		Eventually(podNames).WithContext(ctx).WithArguments(ns, "app=db").Should(BeEmpty())
		pvcs, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pvcs.Items).To(HaveLen(2), "a StatefulSet's PVCs outlive it")

		// Deleting the claims releases and deletes their volumes.
		_, err = kubectl(ctx, "", "delete", "pvc", "-n", ns, "-l", "app=db", "--wait=false")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pvs, err := clients.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			for _, pv := range pvs.Items {
				g.Expect(pv.Spec.ClaimRef).NotTo(HaveField("Namespace", ns), pv.Name)
			}
		}).WithContext(ctx).Should(Succeed())
	})

	It("signs ServiceAccount tokens the API server accepts", func(ctx SpecContext) {
		var sa *corev1.ServiceAccount
		Eventually(func() error { // the controller manager creates it
			var err error
			sa, err = clients.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).WithContext(ctx).Should(Succeed())
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(cluster.KubeconfigFor(ctx, ns, sa.Name, kubeconfig)).To(Succeed())
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		Expect(err).NotTo(HaveOccurred())
		asSA, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		review, err := asSA.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.UserInfo.Username).To(Equal("system:serviceaccount:" + ns + ":default"))
		_, err = asSA.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "RBAC applies to the ServiceAccount: %v", err)
	})

	Context("with a real redis-server behind a redis pod", func() {
		const password = `p@ss "word" \ with quotes`

		BeforeAll(func(ctx SpecContext) {
			conf := resource.RenderRedisConf(resource.RedisConfOptions{
				Platform: "vk", Namespace: ns, Port: 6379, DataDir: "/data",
				AuthConf: "/etc/redis/auth/" + resource.RedisAuthConfKey, MaxmemoryBytes: 64 << 20,
			})
			_, err := clients.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "vk-cache"},
				Data:       map[string]string{resource.RedisConfKey: conf},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			_, err = clients.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "vk-cache"},
				StringData: map[string]string{"password": password, resource.RedisAuthConfKey: resource.RenderRedisAuthConf(password)},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		})

		It("starts it on the pod IP with the rendered config, sets the pod Ready, and stops it with the pod", func(ctx SpecContext) {
			pod, err := clients.CoreV1().Pods(ns).Create(ctx, cachePod("vk-cache-0", "vk-cache"), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(readyPods).WithContext(ctx).WithArguments(ns, "app=cache").Should(ConsistOf("vk-cache-0"))
			pod, err = clients.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			addr := net.JoinHostPort(pod.Status.PodIP, "6379")

			noAuth := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
			DeferCleanup(noAuth.Close)
			Expect(noAuth.Ping(ctx).Err()).To(MatchError(ContainSubstring("NOAUTH")))
			rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, DisableIdentity: true})
			DeferCleanup(rdb.Close)
			Expect(rdb.Ping(ctx).Val()).To(Equal("PONG"))
			Expect(rdb.ConfigGet(ctx, "cluster-announce-hostname").Val()).To(
				HaveKeyWithValue("cluster-announce-hostname", "vk-cache-0.vk-cache-headless."+ns+".svc"),
				"$(POD_NAME) expanded as a kubelet does")
			Expect(rdb.ConfigGet(ctx, "cluster-enabled").Val()).To(HaveKeyWithValue("cluster-enabled", "yes"))
			Expect(rdb.ConfigGet(ctx, "bind").Val()).To(HaveKeyWithValue("bind", pod.Status.PodIP))

			Expect(clients.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{})).To(Succeed())
			Eventually(func() error {
				conn, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					_ = conn.Close()
					return errors.New("redis-server still listens on " + addr)
				}
				return nil
			}).WithContext(ctx).Should(Succeed())
		})

		It("shows a pod whose redis-server cannot start as not Ready, in CrashLoopBackOff", func(ctx SpecContext) {
			_, err := clients.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "broken"},
				Data:       map[string]string{resource.RedisConfKey: "no-such-directive yes\n"},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			pod := cachePod("broken-0", "broken")
			pod.Labels["app"] = "broken"
			_, err = clients.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(func(g Gomega) {
				p, err := clients.CoreV1().Pods(ns).Get(ctx, "broken-0", metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
				g.Expect(isReady(p)).To(BeFalse())
				g.Expect(p.Status.ContainerStatuses).To(ConsistOf(And(
					HaveField("Ready", false),
					HaveField("RestartCount", BeNumerically(">=", 1)),
					HaveField("State.Waiting.Reason", "CrashLoopBackOff"),
				)))
			}).WithContext(ctx).Should(Succeed())
			Expect(clients.CoreV1().Pods(ns).Delete(ctx, "broken-0", metav1.DeleteOptions{})).To(Succeed())
		})

		It("keeps a node's identity on its PVC when the StatefulSet recreates the pod", func(ctx SpecContext) {
			_, err := kubectl(ctx, cacheStatefulSetYAML, "apply", "-n", ns, "-f", "-")
			Expect(err).NotTo(HaveOccurred())
			Eventually(readyPods).WithContext(ctx).WithArguments(ns, "app=cache-sts").Should(ConsistOf("cache-0"))
			myID := func(ctx context.Context) (string, error) {
				p, err := clients.CoreV1().Pods(ns).Get(ctx, "cache-0", metav1.GetOptions{})
				if err != nil {
					return "", err
				}
				rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(p.Status.PodIP, "6379"),
					Password: password, DisableIdentity: true, MaxRetries: -1})
				defer func() { _ = rdb.Close() }()
				return rdb.ClusterMyID(ctx).Result()
			}
			var before string
			Eventually(func() (err error) { before, err = myID(ctx); return err }).WithContext(ctx).Should(Succeed())
			old, err := clients.CoreV1().Pods(ns).Get(ctx, "cache-0", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())

			Expect(clients.CoreV1().Pods(ns).Delete(ctx, "cache-0", metav1.DeleteOptions{})).To(Succeed())
			Eventually(func(g Gomega) {
				p, err := clients.CoreV1().Pods(ns).Get(ctx, "cache-0", metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.UID).NotTo(Equal(old.UID), "a new pod")
				g.Expect(isReady(p)).To(BeTrue())
			}).WithContext(ctx).Should(Succeed())
			Eventually(myID).WithContext(ctx).Should(Equal(before), "nodes.conf on the PVC keeps the node ID")
		})
	})
})

// readyPods are the names of the pods matching selector that are Running
// and Ready.
func readyPods(ctx context.Context, ns, selector string) ([]string, error) {
	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && isReady(&p) && p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

func podNames(ctx context.Context, ns, selector string) ([]string, error) {
	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names, nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cachePod is shaped like a pod of the operator's cache StatefulSet:
// redis-server on the ConfigMap's redis.conf, the Secret's auth.conf
// included, the node announcing its DNS name, restricted-compliant.
func cachePod(name, config string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"app": "cache", "app.kubernetes.io/component": "cache",
		}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](999),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "redis", Image: "redis:7.2-alpine",
				Command: []string{"redis-server", "/etc/redis/redis.conf",
					"--cluster-announce-hostname", "$(POD_NAME).vk-cache-headless.$(POD_NAMESPACE).svc"},
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					{Name: "REDISCLI_AUTH", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "vk-cache"}, Key: "password"}}},
				},
				Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "data", MountPath: "/data"},
					{Name: "config", MountPath: "/etc/redis/redis.conf", SubPath: resource.RedisConfKey, ReadOnly: true},
					{Name: "auth", MountPath: "/etc/redis/auth", ReadOnly: true},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: config}}}},
				{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: "vk-cache", Items: []corev1.KeyToPath{{Key: resource.RedisAuthConfKey, Path: resource.RedisAuthConfKey}}}}},
			},
		},
	}
}

// restrictedPod is the pod-level part every smoke workload shares.
const restrictedPod = `
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        seccompProfile: {type: RuntimeDefault}`

const restrictedContainer = `
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}`

var deploymentYAML = fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:%s
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: nginxinc/nginx-unprivileged:1.27-alpine%s
`, restrictedPod, restrictedContainer)

var statefulSetYAML = fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {app: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:%s
      containers:
      - name: db
        image: postgres:16-alpine%s
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data, labels: {app: db}}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, restrictedPod, restrictedContainer)

// cacheStatefulSetYAML is one Redis Cluster node whose data (nodes.conf)
// lives on a PVC, as the operator's cache does.
var cacheStatefulSetYAML = fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache}
spec:
  serviceName: vk-cache-headless
  replicas: 1
  selector: {matchLabels: {app: cache-sts}}
  template:
    metadata: {labels: {app: cache-sts, app.kubernetes.io/component: cache}}
    spec:%s
      containers:
      - name: redis
        image: redis:7.2-alpine
        command: [redis-server, /etc/redis/redis.conf, --cluster-announce-hostname, "$(POD_NAME).vk-cache-headless.$(POD_NAMESPACE).svc"]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        ports: [{name: redis, containerPort: 6379}]%s
        volumeMounts:
        - {name: data, mountPath: /data}
        - {name: config, mountPath: /etc/redis/redis.conf, subPath: redis.conf, readOnly: true}
        - {name: auth, mountPath: /etc/redis/auth, readOnly: true}
      volumes:
      - {name: config, configMap: {name: vk-cache}}
      - {name: auth, secret: {secretName: vk-cache, items: [{key: auth.conf, path: auth.conf}]}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, restrictedPod, restrictedContainer)
