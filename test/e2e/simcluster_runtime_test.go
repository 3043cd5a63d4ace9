//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// The runtime specs prove the real servers behind postgres and rabbitmq
// pods (simcluster/runtime.go): a pod is Ready when its own probe passes
// on a real server, its data lives on its PVC across pods, and the
// kubelet's rules (fsGroup, init containers, restarts) apply, so the
// product's bugs show as they would on a real cluster.
var _ = Describe("The process runtime", Ordered, func() {
	const ns = "runtime"

	BeforeAll(func(ctx SpecContext) {
		_, err := kubectl(ctx, "", "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
		Expect(err).NotTo(HaveOccurred())
	})

	It("runs a shard-shaped postgres pod on PostgreSQL: Ready from its probe, rows kept on its PVC, initdb only once", func(ctx SpecContext) {
		_, err := kubectl(ctx, postgresYAML("first-Pa55word"), "apply", "-n", ns, "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		begin := time.Now()
		uid := waitReadyPod(ctx, ns, "pg-0", "")
		AddReportEntry("postgres pod Ready (initdb) after", time.Since(begin).Round(100*time.Millisecond).String())

		Expect(pgExec(ctx, ns, "pg-0", "first-Pa55word", "CREATE TABLE t (n int)")).To(Succeed())
		Expect(pgExec(ctx, ns, "pg-0", "first-Pa55word", "INSERT INTO t SELECT generate_series(1, 5)")).To(Succeed())
		Expect(pgCount(ctx, ns, "pg-0", "first-Pa55word")).To(Equal(5))
		Expect(pgExec(ctx, ns, "pg-0", "wrong", "SELECT 1")).To(MatchError(ContainSubstring("password authentication failed")))

		By("a new pod on the same PVC has the rows")
		Expect(clients.CoreV1().Pods(ns).Delete(ctx, "pg-0", metav1.DeleteOptions{})).To(Succeed())
		begin = time.Now()
		uid = waitReadyPod(ctx, ns, "pg-0", uid)
		AddReportEntry("postgres pod Ready (existing PGDATA) after", time.Since(begin).Round(100*time.Millisecond).String())
		Expect(pgCount(ctx, ns, "pg-0", "first-Pa55word")).To(Equal(5))

		By("a changed Secret does not change the password of an initialized PGDATA")
		_, err = kubectl(ctx, postgresYAML("second-Pa55word"), "apply", "-n", ns, "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(clients.CoreV1().Pods(ns).Delete(ctx, "pg-0", metav1.DeleteOptions{})).To(Succeed())
		waitReadyPod(ctx, ns, "pg-0", uid)
		Expect(pgCount(ctx, ns, "pg-0", "first-Pa55word")).To(Equal(5), "the old password still logs in")
		Expect(pgExec(ctx, ns, "pg-0", "second-Pa55word", "SELECT 1")).To(MatchError(ContainSubstring("password authentication failed")),
			"the new password does not: the entrypoint skips initdb on a non-empty PGDATA")
	})

	It("forms one RabbitMQ cluster of the product's 3-replica broker; durable messages survive a pod; the cookie and fsGroup decide a restart", func(ctx SpecContext) {
		p, password := brokerPlatform(ns)
		Expect(applyBroker(ctx, p, password)).To(Succeed())
		sts := brokerStatefulSet(p, password)
		begin := time.Now()
		pods := []string{resource.BrokerName(p) + "-0", resource.BrokerName(p) + "-1", resource.BrokerName(p) + "-2"}
		uids := map[string]types.UID{}
		for _, pod := range pods {
			uids[pod] = waitReadyPod(ctx, ns, pod, "")
		}
		AddReportEntry("RabbitMQ: 3 broker pods Ready after", time.Since(begin).Round(100*time.Millisecond).String())

		By("rabbitmqctl cluster_status, with the pod's own CLI environment, lists 3 running nodes")
		Eventually(func(g Gomega) {
			out, err := cluster.Exec(ctx, ns, pods[0], time.Minute, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
			g.Expect(err).NotTo(HaveOccurred(), out)
			var status struct {
				RunningNodes []string `json:"running_nodes"`
			}
			g.Expect(json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &status)).To(Succeed(), out)
			g.Expect(status.RunningNodes).To(HaveLen(3))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		AddReportEntry("RabbitMQ: one 3-node cluster after", time.Since(begin).Round(100*time.Millisecond).String())

		By("persistent messages on the durable queue parser")
		mgmt := managementAPI(ctx, ns, pods[0], password)
		for i := range 5 {
			Expect(mgmt.publish(ctx, "parser", fmt.Sprintf("m%d", i))).To(Succeed())
		}
		Eventually(mgmt.messages).WithContext(ctx).WithArguments("parser").Should(Equal(5))
		host, err := mgmt.queueNode(ctx, "parser")
		Expect(err).NotTo(HaveOccurred())

		// The data volume's mount path decides what a restarted node does:
		// on /var/lib/rabbitmq (HOME) the Erlang cookie Erlang wrote there
		// is on the PVC, and fsGroup gives it group rw at the next pod
		// start; Erlang refuses a cookie that is not owner-only, and the
		// node crash-loops. With the cookie on an emptyDir, copied in 0600
		// by an init container, and the PVC on /var/lib/rabbitmq/mnesia
		// (the cluster-operator layout), the node comes back. This spec
		// flips from the first branch to the second when the product's
		// layout changes.
		if dataMountPath(sts) == "/var/lib/rabbitmq" {
			victim := pods[1]
			if strings.Contains(host, victim) {
				victim = pods[2]
			}
			By("deleting " + victim + ", which does not host the queue: it crash-loops on its cookie (product bug: PVC at HOME)")
			Expect(clients.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{})).To(Succeed())
			Eventually(func(g Gomega) {
				pod, err := clients.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.UID).NotTo(Equal(uids[victim]))
				st := containerStatus(pod, "rabbitmq")
				g.Expect(st).NotTo(BeNil())
				g.Expect(st.RestartCount).To(BeNumerically(">=", 1))
				g.Expect(st.State.Waiting).NotTo(BeNil())
				g.Expect(st.State.Waiting.Reason).To(Equal("CrashLoopBackOff"))
			}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
			log := readLog(fmt.Sprintf("rabbitmq-%s-%s.log", ns, victim))
			Expect(log).To(ContainSubstring("must be accessible by owner only"))
			Eventually(mgmt.messages).WithContext(ctx).WithArguments("parser").Should(Equal(5))
			return
		}
		victim := pods[0]
		for _, pod := range pods {
			if strings.Contains(host, pod) {
				victim = pod
			}
		}
		By("deleting " + victim + ", which hosts the queue: it comes back Ready with the messages")
		Expect(clients.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{})).To(Succeed())
		waitReadyPod(ctx, ns, victim, uids[victim])
		other := pods[0]
		if other == victim {
			other = pods[1]
		}
		mgmt = managementAPI(ctx, ns, other, password)
		Eventually(mgmt.messages).WithContext(ctx).WithArguments("parser").WithTimeout(2 * time.Minute).Should(Equal(5))
	})
})

// waitReadyPod waits until the pod exists with another UID than old and
// is Ready, and returns its UID.
func waitReadyPod(ctx context.Context, ns, name string, old types.UID) types.UID {
	GinkgoHelper()
	var uid types.UID
	Eventually(func(g Gomega) {
		pod, err := clients.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.UID).NotTo(Equal(old))
		ready := false
		for _, c := range pod.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		g.Expect(ready).To(BeTrue(), "pod %s not Ready: %+v", name, pod.Status.ContainerStatuses)
		uid = pod.UID
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	return uid
}

func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func podIP(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	pod, err := clients.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return pod.Status.PodIP
}

// clientIP stands for another pod of the cluster: an address of the pod
// range that kwok does not hand out early. Connections from the machine's
// 127.0.0.1 would match pg_hba.conf's loopback trust.
func clientIP() net.IP {
	_, pods, err := net.ParseCIDR(cluster.PodCIDR)
	Expect(err).NotTo(HaveOccurred())
	ip := pods.IP.To4()
	return net.IPv4(ip[0], ip[1], 255, 254)
}

func pgConnect(ctx context.Context, ns, pod, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 user=parser dbname=parser connect_timeout=5 sslmode=disable", podIP(ctx, ns, pod)))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: clientIP()}, Timeout: 5 * time.Second}
	cfg.DialFunc = dialer.DialContext
	return pgx.ConnectConfig(ctx, cfg)
}

func pgExec(ctx context.Context, ns, pod, password, sql string) error {
	conn, err := pgConnect(ctx, ns, pod, password)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

func pgCount(ctx context.Context, ns, pod, password string) (int, error) {
	conn, err := pgConnect(ctx, ns, pod, password)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n)
	return n, err
}

// postgresYAML is a 1-replica StatefulSet shaped like the product's shard
// (internal/resource/database.go), its Secret and headless Service.
func postgresYAML(password string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: pg-credentials}
stringData: {username: parser, password: %q, database: parser}
---
apiVersion: v1
kind: Service
metadata: {name: pg}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: pg}
  ports: [{name: postgres, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg}
spec:
  serviceName: pg
  replicas: 1
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 70
        runAsGroup: 70
        fsGroup: 70
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: postgres
        image: postgres:16-alpine
        env:
        - {name: POSTGRES_USER, valueFrom: {secretKeyRef: {name: pg-credentials, key: username}}}
        - {name: POSTGRES_PASSWORD, valueFrom: {secretKeyRef: {name: pg-credentials, key: password}}}
        - {name: POSTGRES_DB, valueFrom: {secretKeyRef: {name: pg-credentials, key: database}}}
        - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
        ports: [{name: postgres, containerPort: 5432}]
        readinessProbe:
          exec: {command: [sh, -c, 'exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"']}
          periodSeconds: 10
          timeoutSeconds: 5
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: data, mountPath: /var/lib/postgresql/data}
        - {name: run, mountPath: /var/run/postgresql}
        - {name: tmp, mountPath: /tmp}
      volumes:
      - {name: run, emptyDir: {}}
      - {name: tmp, emptyDir: {}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`, password)
}

// brokerPlatform is a platform whose broker is RabbitMQ with 3 replicas
// and one queue, and the broker's password.
func brokerPlatform(ns string) (*platformv1.ParserPlatform, string) {
	return &platformv1.ParserPlatform{
		TypeMeta:   metav1.TypeMeta{APIVersion: platformv1.GroupVersion.String(), Kind: "ParserPlatform"},
		ObjectMeta: metav1.ObjectMeta{Name: "vk", Namespace: ns, UID: "5d9a6f3e-8f5c-4d53-9a7e-2f4c6b1e0a11"},
		Spec: platformv1.ParserPlatformSpec{
			Queues: &platformv1.QueuesSpec{
				Broker:  platformv1.BrokerSpec{Type: platformv1.BrokerRabbitMQ, Image: "rabbitmq:3.13-management-alpine", Replicas: 3},
				Workers: platformv1.WorkersSpec{Image: "registry.example.com/vk-parser/worker:1.4.0", App: "vk_parser"},
				Queues:  []platformv1.QueueSpec{{Name: "parser", RoutingKey: "parser"}},
			},
		},
	}, "Br0kerPassw0rd0123456789abcdef"
}

func brokerCredentials(p *platformv1.ParserPlatform, password string) resource.Credentials {
	return resource.Credentials{
		{Secret: resource.BrokerName(p), Key: resource.KeyPassword}:     password,
		{Secret: resource.BrokerName(p), Key: resource.KeyErlangCookie}: "ErlangCookie0123456789abcdefABCDEF",
		// The operator's management API user (the applications' has no
		// management rights): managementAPI signs in with it.
		{Secret: resource.BrokerUsersSecretName(p), Key: resource.KeyOperatorPassword}: "Operat0rPassw0rd0123456789abcdef",
	}
}

// brokerObjects are the broker's children as the product builds them.
func brokerObjects(p *platformv1.ParserPlatform, password string) []any {
	var out []any
	for _, obj := range resource.Children(p, brokerCredentials(p, password)) {
		name := obj.GetName()
		if name == resource.BrokerName(p) || name == resource.BrokerHeadlessName(p) || name == resource.BrokerUsersSecretName(p) {
			obj.SetOwnerReferences(nil) // no ParserPlatform object here
			out = append(out, obj)
		}
	}
	return out
}

func brokerStatefulSet(p *platformv1.ParserPlatform, password string) *appsv1.StatefulSet {
	for _, obj := range brokerObjects(p, password) {
		if sts, ok := obj.(*appsv1.StatefulSet); ok {
			return sts
		}
	}
	Fail("the product builds no broker StatefulSet")
	return nil
}

// applyBroker applies the broker's children (and the ServiceAccount its
// pods run as) with kubectl.
func applyBroker(ctx context.Context, p *platformv1.ParserPlatform, password string) error {
	docs := []string{fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: %s}\n", resource.ServiceAccountName(p))}
	for _, obj := range brokerObjects(p, password) {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		docs = append(docs, string(data))
	}
	out, err := kubectl(ctx, strings.Join(docs, "---\n"), "apply", "-n", p.Namespace, "-f", "-")
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// dataMountPath is where the broker container mounts its PVC.
func dataMountPath(sts *appsv1.StatefulSet) string {
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.Name == "data" {
				return m.MountPath
			}
		}
	}
	return ""
}

func readLog(name string) string {
	data, err := os.ReadFile(cluster.Dir + "/logs/" + name)
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

// rabbitAPI is RabbitMQ's management API on a broker pod.
type rabbitAPI struct {
	base, user, password string
}

// managementAPI signs in as the operator's broker user, with the password
// of Secret <platform>-broker-users (the platform read from the
// pod's instance label): the applications' user, whose password callers
// hold (the last argument, unused), has no management rights.
func managementAPI(ctx context.Context, ns, pod, _ string) *rabbitAPI {
	GinkgoHelper()
	got, err := clients.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	platform := &platformv1.ParserPlatform{ObjectMeta: metav1.ObjectMeta{Name: got.Labels[resource.LabelInstance], Namespace: ns}}
	s, err := clients.CoreV1().Secrets(ns).Get(ctx, resource.BrokerUsersSecretName(platform), metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred(), "the operator's broker user's Secret")
	return &rabbitAPI{base: "http://" + net.JoinHostPort(got.Status.PodIP, "15672"),
		user: resource.BrokerOperatorUser, password: string(s.Data[resource.KeyOperatorPassword])}
}

func (a *rabbitAPI) do(ctx context.Context, method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = strings.NewReader(string(data))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	req.SetBasicAuth(a.user, a.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// publish sends a persistent message through the default exchange.
func (a *rabbitAPI) publish(ctx context.Context, queue, payload string) error {
	var routed struct {
		Routed bool `json:"routed"`
	}
	err := a.do(ctx, http.MethodPost, "/api/exchanges/%2F/amq.default/publish", map[string]any{
		"properties": map[string]any{"delivery_mode": 2}, "routing_key": queue, "payload": payload, "payload_encoding": "string",
	}, &routed)
	if err == nil && !routed.Routed {
		err = fmt.Errorf("message to %s not routed", queue)
	}
	return err
}

func (a *rabbitAPI) queue(ctx context.Context, name string) (map[string]any, error) {
	var q map[string]any
	err := a.do(ctx, http.MethodGet, "/api/queues/%2F/"+url.PathEscape(name), nil, &q)
	return q, err
}

func (a *rabbitAPI) messages(ctx context.Context, name string) (int, error) {
	q, err := a.queue(ctx, name)
	if err != nil {
		return 0, err
	}
	n, _ := q["messages"].(float64)
	return int(n), nil
}

func (a *rabbitAPI) queueNode(ctx context.Context, name string) (string, error) {
	q, err := a.queue(ctx, name)
	if err != nil {
		return "", err
	}
	node, _ := q["node"].(string)
	return node, nil
}
