//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	amqp "github.com/rabbitmq/amqp091-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/sharding"
)

// The data-safety scenarios: each one writes data through the real servers
// behind the pods (PostgreSQL, RabbitMQ, redis-server), does to the
// platform what a user or the cluster does (delete and apply it, delete a
// Secret or a pod, roll the pods, edit the spec), and counts what is
// still there. They run inside the operator's Ordered container
// (operator_test.go), while the operator runs as a process with the
// chart's ServiceAccount; each scenario has a namespace of its own
// (Pod Security restricted) and prints its counts (report entries).
func dataSafetySpecs(operator func() *operatorProcess) {
	Context("data safety", Ordered, func() {
		const (
			dbNS, db = "ds-db", "ds" // scenarios a, b
			mqNS, mq = "ds-mq", "mq" // scenarios c, d, e
			users    = 2000
			messages = 300
			// dsWait bounds the waits on the operator and the servers:
			// a 3-node RabbitMQ boots in ~30 s on 2 busy cores.
			dsWait = 4 * time.Minute
		)
		var (
			alive                func()
			getPlatform          func(context.Context, string, string) (*platformv1.ParserPlatform, error)
			waitReady            func(context.Context, string, string, types.UID) *platformv1.ParserPlatform
			apply, deleteAndWait func(context.Context, string, string)
		)

		BeforeAll(func(ctx SpecContext) {
			s := newScenario(operator, dsWait)
			alive, getPlatform, waitReady, apply, deleteAndWait = s.alive, s.getPlatform, s.waitReady, s.apply, s.deleteAndWait
			createNamespaces(ctx, dbNS, mqNS)
		})

		AfterEach(func(ctx SpecContext) {
			dumpOnFailure(ctx, []string{dbNS, mqNS}, []string{"get", "pods,statefulsets,pvc,secrets", "-o", "wide"},
				[]string{"get", "events", "--field-selector", "type=Warning,involvedObject.kind=ParserPlatform"})
		})

		Context("PostgreSQL shards", Ordered, func() {
			var (
				manifest string
				uid      types.UID
				creds    map[int]shardCredentials // as the app pods see them
				written  map[int]int              // rows per shard
				pvcUIDs  map[string]types.UID
			)

			It("a: keeps every row, and the credentials that open them, across kubectl delete and kubectl apply (Retain)", func(ctx SpecContext) {
				manifest = dsPlatformYAML(db, dsOptions{shards: 3})
				By("kubectl apply: a platform of 3 shards")
				apply(ctx, dbNS, manifest)
				begin := time.Now()
				p := waitReady(ctx, dbNS, db, "")
				uid = p.UID
				AddReportEntry("a: 3-shard platform Ready after", time.Since(begin).Round(100*time.Millisecond).String())

				By("reading the shards' credentials as an app pod does: the projected files under DB_CREDENTIALS_DIR")
				creds = appPodCredentials(ctx, dbNS, db+"-auth", 3)

				By(fmt.Sprintf("writing %d users, each to the shard md5(key) mod 3 routes it to (internal/sharding)", users))
				written = map[int]int{}
				rows := map[int][][]any{}
				for id := range users {
					key := sharding.UserKey(int64(id))
					shard := sharding.ShardFor(key, 3)
					rows[shard] = append(rows[shard], []any{int64(id), key})
					written[shard]++
				}
				for shard := range 3 {
					Expect(withShard(ctx, dbNS, creds[shard], func(conn *pgx.Conn) error {
						if _, err := conn.Exec(ctx, "CREATE TABLE users (id bigint PRIMARY KEY, key text NOT NULL)"); err != nil {
							return err
						}
						n, err := conn.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "key"}, pgx.CopyFromRows(rows[shard]))
						if err == nil && int(n) != len(rows[shard]) {
							err = fmt.Errorf("copied %d of %d rows", n, len(rows[shard]))
						}
						return err
					})).To(Succeed(), "shard %d", shard)
				}
				Expect(shardCounts(ctx, dbNS, creds)).To(Equal(written))
				Expect(written).To(HaveLen(3), "every shard got rows")
				report("a: rows written per shard", "%v (total %d)", written, users)
				Expect(withShard(ctx, dbNS, shardCredentials{User: creds[0].User, Password: "not-the-password", Database: creds[0].Database, URI: creds[0].URI, Index: 0},
					func(*pgx.Conn) error { return nil })).To(MatchError(ContainSubstring("password authentication failed")),
					"the server checks passwords: the counts below prove the Secret's password, not a trusted address")

				pvcUIDs = dataPVCs(ctx, dbNS)
				secrets := secretData(ctx, dbNS, dataSecretNames(db, 3))

				By("kubectl delete pp (deletionPolicy Retain, the default); the garbage collector takes the children")
				deleteAndWait(ctx, dbNS, db)
				Expect(dataPVCs(ctx, dbNS)).To(Equal(pvcUIDs), "every PVC kept, the same claims")
				for name, data := range secrets {
					s, err := clients.CoreV1().Secrets(dbNS).Get(ctx, name, metav1.GetOptions{})
					Expect(err).NotTo(HaveOccurred(), "Secret %s kept with its volumes", name)
					Expect(s.OwnerReferences).To(BeEmpty(), name)
					Expect(s.Annotations).To(HaveKeyWithValue(resource.AnnotationRetainedFor, db), name)
					Expect(s.Data).To(Equal(data), name)
				}
				report("a: kept after kubectl delete", "%d PVCs, %d credentials Secrets (retained-for=%s)", len(pvcUIDs), len(secrets), db)

				By("kubectl apply of the same manifest: the new platform adopts the Secrets and the volumes")
				apply(ctx, dbNS, manifest)
				begin = time.Now()
				p = waitReady(ctx, dbNS, db, uid)
				uid = p.UID
				AddReportEntry("a: platform Ready again after", time.Since(begin).Round(100*time.Millisecond).String())
				for name, data := range secrets {
					s, err := clients.CoreV1().Secrets(dbNS).Get(ctx, name, metav1.GetOptions{})
					Expect(err).NotTo(HaveOccurred())
					Expect(s.Data).To(Equal(data), "%s: the same values", name)
					Expect(metav1.GetControllerOf(s)).To(HaveValue(HaveField("UID", uid)), "%s adopted", name)
					Expect(s.Annotations).NotTo(HaveKey(resource.AnnotationRetainedFor), name)
				}
				Expect(appPodCredentials(ctx, dbNS, db+"-auth", 3)).To(Equal(creds), "the app pods see the same credentials")
				Expect(dataPVCs(ctx, dbNS)).To(Equal(pvcUIDs))
				verified := shardCounts(ctx, dbNS, creds)
				Expect(verified).To(Equal(written), "every row is there, on its shard")
				Expect(routedCorrectly(ctx, dbNS, creds, 3)).To(Succeed())
				report("a: rows verified per shard after delete + apply", "%v; lost %d", verified, lost(written, verified))
			})

			It("a: makes no new password when a credentials Secret is deleted by hand: CredentialsMissing, the rows still open with the old one", func(ctx SpecContext) {
				name := resource.ShardSecretName(&platformv1.ParserPlatform{ObjectMeta: metav1.ObjectMeta{Name: db}}, 1)
				backup, err := clients.CoreV1().Secrets(dbNS).Get(ctx, name, metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				sts, err := clients.AppsV1().StatefulSets(dbNS).Get(ctx, db+"-db-1", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				podUID := podUIDOf(ctx, dbNS, db+"-db-1-0")

				By("kubectl delete secret " + name)
				_, err = kubectl(ctx, "", "delete", "secret", name, "-n", dbNS)
				Expect(err).NotTo(HaveOccurred())
				Eventually(func(g Gomega) {
					alive()
					p, err := getPlatform(ctx, dbNS, db)
					g.Expect(err).NotTo(HaveOccurred())
					c := meta.FindStatusCondition(p.Status.Conditions, "DatabaseReady")
					g.Expect(c).NotTo(BeNil())
					g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
					g.Expect(c.Reason).To(Equal("CredentialsMissing"))
					g.Expect(c.Message).To(ContainSubstring(name))
					g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, "Degraded")).To(BeTrue())
					GinkgoWriter.Printf("DatabaseReady=False CredentialsMissing: %s\n", c.Message)
				}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
				Eventually(func(g Gomega) {
					events, err := clients.CoreV1().Events(dbNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + db + ",type=Warning"})
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(events.Items).To(ContainElement(And(HaveField("Reason", "CredentialsMissing"), HaveField("Message", ContainSubstring(name)))))
				}).WithContext(ctx).Should(Succeed())

				By("no new password appears; the shard's StatefulSet and pod are left alone")
				Consistently(func(g Gomega) {
					_, err := clients.CoreV1().Secrets(dbNS).Get(ctx, name, metav1.GetOptions{})
					g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Secret was made again: %v", err)
				}).WithContext(ctx).WithTimeout(5 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
				after, err := clients.AppsV1().StatefulSets(dbNS).Get(ctx, db+"-db-1", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				Expect(after.Generation).To(Equal(sts.Generation), "the StatefulSet reading the Secret is not touched")
				Expect(podUIDOf(ctx, dbNS, db+"-db-1-0")).To(Equal(podUID), "nor its pod")
				n, err := shardCount(ctx, dbNS, creds[1])
				Expect(err).NotTo(HaveOccurred())
				Expect(n).To(Equal(written[1]))
				report("a: shard 1 without its Secret", "%d/%d rows read with the old password; no new password made", n, written[1])

				By("restoring the Secret from its backup (kubectl get -o yaml): DatabaseReady comes back")
				backup.APIVersion, backup.Kind = "v1", "Secret"
				backup.ResourceVersion, backup.UID, backup.CreationTimestamp, backup.ManagedFields = "", "", metav1.Time{}, nil
				data, err := yaml.Marshal(backup)
				Expect(err).NotTo(HaveOccurred())
				_, err = kubectl(ctx, string(data), "create", "-n", dbNS, "-f", "-")
				Expect(err).NotTo(HaveOccurred())
				waitReady(ctx, dbNS, db, "")
				Expect(shardCounts(ctx, dbNS, creds)).To(Equal(written))
			})

			It("b: keeps every PVC when deletionPolicy goes Delete -> paused: true -> Retain before kubectl delete", func(ctx SpecContext) {
				before := dataPVCs(ctx, dbNS)
				Expect(before).To(Equal(pvcUIDs))
				patch := func(p string) {
					_, err := kubectl(ctx, "", "patch", "pp", db, "-n", dbNS, "--type=merge", "-p", p)
					Expect(err).NotTo(HaveOccurred())
				}
				By("deletionPolicy: Delete, seen by the operator")
				patch(`{"spec":{"deletionPolicy":"Delete"}}`)
				waitReady(ctx, dbNS, db, "")
				By("paused: true, then deletionPolicy: Retain while the operator reconciles nothing")
				patch(`{"spec":{"paused":true}}`)
				Eventually(func(g Gomega) {
					alive()
					p, err := getPlatform(ctx, dbNS, db)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, "Paused")).To(BeTrue())
				}).WithContext(ctx).Should(Succeed())
				patch(`{"spec":{"deletionPolicy":"Retain"}}`)
				By("kubectl delete pp")
				deleteAndWait(ctx, dbNS, db)
				after := dataPVCs(ctx, dbNS)
				Expect(after).To(Equal(before), "every PVC kept, the same claims")
				for name, pvcUID := range after {
					pvc, err := clients.CoreV1().PersistentVolumeClaims(dbNS).Get(ctx, name, metav1.GetOptions{})
					Expect(err).NotTo(HaveOccurred())
					Expect(pvc.UID).To(Equal(pvcUID))
					Expect(pvc.DeletionTimestamp).To(BeNil(), name)
				}
				report("b: PVCs after Delete -> paused -> Retain -> kubectl delete", "%d before, %d after, %d lost", len(before), len(after), len(before)-len(after))
			})

			It("b: deletes the PVCs when the policy at deletion is Delete (the control), after the rows were there once more", func(ctx SpecContext) {
				By("kubectl apply with deletionPolicy: Delete: it adopts the retained Secrets and volumes")
				apply(ctx, dbNS, dsPlatformYAML(db, dsOptions{shards: 3, deletionPolicy: "Delete"}))
				waitReady(ctx, dbNS, db, uid)
				verified := shardCounts(ctx, dbNS, creds)
				Expect(verified).To(Equal(written))
				report("b: rows verified per shard on the re-created platform", "%v; lost %d", verified, lost(written, verified))
				deleteAndWait(ctx, dbNS, db)
				Eventually(func() map[string]types.UID { return dataPVCs(ctx, dbNS) }).WithContext(ctx).Should(BeEmpty())
				report("b: PVCs after kubectl delete with deletionPolicy Delete", "%d before, 0 after", len(pvcUIDs))
			})
		})

		Context("RabbitMQ broker and Redis cache", Ordered, func() {
			var (
				manifest string
				pods     []string
				password string
			)
			mqOptions := dsOptions{shards: 1, brokerReplicas: 3, queues: []string{"parser", "notifications"}}

			It("c: forms one 3-node RabbitMQ cluster and keeps every persistent message while each pod is deleted in turn and the broker rolls", func(ctx SpecContext) {
				manifest = dsPlatformYAML(mq, mqOptions)
				apply(ctx, mqNS, manifest)
				begin := time.Now()
				waitReady(ctx, mqNS, mq, "")
				AddReportEntry("c: platform with a 3-replica broker Ready after", time.Since(begin).Round(100*time.Millisecond).String())
				pods = []string{mq + "-broker-0", mq + "-broker-1", mq + "-broker-2"}
				s, err := clients.CoreV1().Secrets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				password = string(s.Data["password"])
				brokerURL := string(s.Data["url"])

				sts, err := clients.AppsV1().StatefulSets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				Expect(sts.Spec.Template.Spec.SecurityContext.FSGroup).NotTo(BeNil(), "the runtime applies fsGroup to the volumes")
				if dataMountPath(sts) == "/var/lib/rabbitmq" {
					Fail("the broker's PVC is at HOME (/var/lib/rabbitmq), where the Erlang cookie is: fsGroup makes it group-readable at the next pod start and the node crash-loops (the runtime spec shows it)")
				}
				Expect(sts.Spec.Template.Spec.InitContainers).NotTo(BeEmpty(), "the cookie is copied 0600 by an init container")
				GinkgoWriter.Printf("broker layout: PVC at %s, init containers %s\n", dataMountPath(sts), sts.Spec.Template.Spec.InitContainers[0].Name)
				Expect(rabbitRunningNodes(ctx, mqNS, pods[0])).To(HaveLen(3))

				By(fmt.Sprintf("publishing %d persistent messages to the queue parser through the celery exchange, with publisher confirms", messages))
				acked, err := amqpPublish(ctx, brokerURL, podIP(ctx, mqNS, pods[0]), resource.CeleryExchange, "parser", "c", messages)
				Expect(err).NotTo(HaveOccurred())
				Expect(acked).To(Equal(messages))
				mgmt := managementAPI(ctx, mqNS, pods[0], password)
				Eventually(mgmt.messages).WithContext(ctx).WithArguments("parser").Should(Equal(messages))
				node, err := mgmt.queueNode(ctx, "parser")
				Expect(err).NotTo(HaveOccurred())
				report("c: messages published and confirmed", "%d to parser (on %s)", acked, node)

				for i, pod := range pods {
					By("kubectl delete pod " + pod)
					old := podUIDOf(ctx, mqNS, pod)
					start := time.Now()
					_, err := kubectl(ctx, "", "delete", "pod", pod, "-n", mqNS, "--wait=false")
					Expect(err).NotTo(HaveOccurred())
					waitReadyPod(ctx, mqNS, pod, old)
					Eventually(rabbitRunningNodes).WithContext(ctx).WithArguments(mqNS, pod).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(HaveLen(3))
					// The management API's counts of a queue whose node just
					// came back lag its stats interval (5 s): 0 until then.
					other := managementAPI(ctx, mqNS, pods[(i+1)%3], password)
					Eventually(other.messages).WithContext(ctx).WithArguments("parser").WithTimeout(time.Minute).WithPolling(time.Second).Should(Equal(messages))
					n, err := other.messages(ctx, "parser")
					Expect(err).NotTo(HaveOccurred())
					report("c: after deleting "+pod, "back and rejoined in %s; parser holds %d/%d", time.Since(start).Round(100*time.Millisecond), n, messages)
				}

				By("a change that rolls the broker pods: queues.broker.resources")
				start := time.Now()
				rolled := mqOptions
				rolled.brokerCPU = "150m"
				manifest = dsPlatformYAML(mq, rolled)
				before := map[string]types.UID{}
				for _, pod := range pods {
					before[pod] = podUIDOf(ctx, mqNS, pod)
				}
				gen := stsGeneration(ctx, mqNS, mq+"-broker")
				apply(ctx, mqNS, manifest)
				waitRolledOut(ctx, mqNS, mq+"-broker", 3, gen)
				for _, pod := range pods {
					Expect(podUIDOf(ctx, mqNS, pod)).NotTo(Equal(before[pod]), "%s was replaced", pod)
				}
				Eventually(rabbitRunningNodes).WithContext(ctx).WithArguments(mqNS, pods[0]).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(HaveLen(3))
				waitReady(ctx, mqNS, mq, "")
				report("c: broker rolled (3 pods replaced)", "in %s", time.Since(start).Round(100*time.Millisecond))

				By(fmt.Sprintf("scraping rabbitmq_prometheus on port %d of every broker pod: a queue-depth series per declared queue", resource.RabbitPrometheusPort))
				Eventually(func(g Gomega) {
					var ips []string
					for _, pod := range pods {
						ips = append(ips, podIP(ctx, mqNS, pod))
					}
					depth, err := rabbitQueueDepths(ctx, ips...)
					g.Expect(err).NotTo(HaveOccurred())
					for _, q := range mqOptions.queues {
						g.Expect(depth).To(HaveKey(q), "a %s series for queue %s", resource.MetricRabbitReady, q)
					}
					g.Expect(depth["parser"]).To(BeEquivalentTo(messages), "the published messages show in the series")
					report("c: rabbitmq_queue_messages_ready on :15692", "%v", depth)
				}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())

				By("consuming the queue parser and counting")
				got, err := amqpDrain(ctx, brokerURL, podIP(ctx, mqNS, pods[1]), "parser")
				Expect(err).NotTo(HaveOccurred())
				missing := 0
				for i := range messages {
					if !got[fmt.Sprintf("c-%d", i)] {
						missing++
					}
				}
				report("c: messages consumed after 3 pod deletions and a rollout", "%d distinct of %d published; %d lost", len(got), messages, missing)
				Expect(missing).To(BeZero())
				Expect(got).To(HaveLen(messages))
			})

			It("d: refuses a broker scale-in and a broker type switch at kubectl apply, saying why", func(ctx SpecContext) {
				fewer := mqOptions
				fewer.brokerReplicas = 1
				out, err := kubectl(ctx, dsPlatformYAML(mq, fewer), "apply", "-n", mqNS, "-f", "-")
				Expect(err).To(HaveOccurred())
				Expect(out).To(ContainSubstring("queues.broker.replicas cannot be lowered"))
				report("d: broker.replicas 3 -> 1", "%s", firstLine(out))
				redis := mqOptions
				redis.brokerType = "redis"
				out, err = kubectl(ctx, dsPlatformYAML(mq, redis), "apply", "-n", mqNS, "-f", "-")
				Expect(err).To(HaveOccurred())
				Expect(out).To(ContainSubstring("queues.broker.type cannot change"))
				report("d: broker.type rabbitmq -> redis", "%s", firstLine(out))
				sts, err := clients.AppsV1().StatefulSets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				Expect(ptr.Deref(sts.Spec.Replicas, 0)).To(BeEquivalentTo(3))
			})

			It("d: keeps a queue removed from the spec while it holds messages, and reports it", func(ctx SpecContext) {
				const held = 120
				s, err := clients.CoreV1().Secrets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				acked, err := amqpPublish(ctx, string(s.Data["url"]), podIP(ctx, mqNS, pods[0]), resource.CeleryExchange, "notifications", "d", held)
				Expect(err).NotTo(HaveOccurred())
				Expect(acked).To(Equal(held))
				mgmt := managementAPI(ctx, mqNS, pods[0], password)
				Eventually(mgmt.messages).WithContext(ctx).WithArguments("notifications").Should(Equal(held))

				By("kubectl apply without the queue notifications")
				fewer := mqOptions
				fewer.brokerCPU = "150m"
				fewer.queues = []string{"parser"}
				apply(ctx, mqNS, dsPlatformYAML(mq, fewer))
				var said string
				Eventually(func(g Gomega) {
					alive()
					p, err := getPlatform(ctx, mqNS, mq)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
					var msgs []string
					for _, c := range p.Status.Conditions {
						if strings.Contains(c.Message, "notifications") {
							msgs = append(msgs, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
						}
					}
					g.Expect(msgs).NotTo(BeEmpty(), "a condition names the kept queue")
					said = strings.Join(msgs, " | ")
					events, err := clients.CoreV1().Events(mqNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + mq + ",type=Warning"})
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(events.Items).To(ContainElement(And(HaveField("Reason", "QueueRemovalRefused"), HaveField("Message", ContainSubstring("notifications")))))
				}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
				GinkgoWriter.Printf("status: %s\n", said)
				Consistently(mgmt.messages).WithContext(ctx).WithArguments("notifications").WithTimeout(3 * time.Second).Should(Equal(held))
				_, err = clients.AppsV1().Deployments(mqNS).Get(ctx, mq+"-worker-notifications", metav1.GetOptions{})
				Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the queue's worker goes with the spec: %v", err)
				got, err := amqpDrain(ctx, string(s.Data["url"]), podIP(ctx, mqNS, pods[2]), "notifications")
				Expect(err).NotTo(HaveOccurred())
				report("d: removed queue notifications", "%d messages before the removal, %d consumed after it; %d lost", held, len(got), held-len(got))
				Expect(got).To(HaveLen(held))
			})

			It("e: reads back every cache key acknowledged before a cache rollout, written through a Redis Cluster client while it rolls", func(ctx SpecContext) {
				s, err := clients.CoreV1().Secrets(mqNS).Get(ctx, mq+"-cache", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				cachePassword := string(s.Data["password"])
				selector := "app.kubernetes.io/instance=" + mq + ",app.kubernetes.io/name=cache"
				seed := fmt.Sprintf("%s-cache-0.%s-cache-headless.%s.svc:6379", mq, mq, mqNS)
				rc := cacheClusterClient(mqNS, selector, seed, cachePassword)
				DeferCleanup(rc.Close)

				By("a writer: SET key_<n> through the cluster client, as fast as acknowledged")
				var (
					mu    sync.Mutex
					acked []int
					errs  atomic.Int64
				)
				writerCtx, stopWriter := context.WithCancel(ctx)
				writerDone := make(chan struct{})
				go func() {
					defer GinkgoRecover()
					defer close(writerDone)
					for n := 0; writerCtx.Err() == nil; n++ {
						wctx, cancel := context.WithTimeout(writerCtx, 2*time.Second)
						err := rc.Set(wctx, fmt.Sprintf("key_%d", n), n, 0).Err()
						cancel()
						if err != nil {
							errs.Add(1)
							time.Sleep(50 * time.Millisecond)
							continue
						}
						mu.Lock()
						acked = append(acked, n)
						mu.Unlock()
					}
				}()
				DeferCleanup(func() { stopWriter(); <-writerDone })
				Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }).WithContext(ctx).Should(BeNumerically(">=", 500))

				By("a change that rolls the cache StatefulSet: cache.resources")
				start := time.Now()
				mu.Lock()
				beforeRollout := len(acked)
				mu.Unlock()
				rolled := mqOptions
				rolled.brokerCPU = "150m"
				rolled.queues = []string{"parser"}
				rolled.cacheCPU = "150m"
				gen := stsGeneration(ctx, mqNS, mq+"-cache")
				apply(ctx, mqNS, dsPlatformYAML(mq, rolled))
				waitRolledOut(ctx, mqNS, mq+"-cache", 6, gen)
				waitReady(ctx, mqNS, mq, "")
				stopWriter()
				<-writerDone
				rollout := time.Since(start).Round(100 * time.Millisecond)

				By("reading every acknowledged key back")
				mu.Lock()
				all := append([]int(nil), acked...)
				mu.Unlock()
				reader := cacheClusterClient(mqNS, selector, seed, cachePassword)
				DeferCleanup(reader.Close)
				lostBefore, lostDuring := 0, 0
				for i, n := range all {
					v, err := reader.Get(ctx, fmt.Sprintf("key_%d", n)).Int()
					if err == nil && v == n {
						continue
					}
					if i < beforeRollout {
						lostBefore++
					} else {
						lostDuring++
					}
				}
				report("e: cache keys across a rollout of 6 pods", "%d acknowledged before the rollout, %d lost; %d acknowledged during it (%d writes refused meanwhile), %d lost; rollout %s",
					beforeRollout, lostBefore, len(all)-beforeRollout, errs.Load(), lostDuring, rollout)
				Expect(lostBefore).To(BeZero(), "keys acknowledged before the rollout")
				Expect(lostDuring).To(BeZero(), "keys acknowledged during the rollout")
			})

			It("c: keeps the broker's credentials and messages across kubectl delete and kubectl apply (Retain): the three nodes come back together from their PVCs", func(ctx SpecContext) {
				const kept = 50
				s, err := clients.CoreV1().Secrets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				acked, err := amqpPublish(ctx, string(s.Data["url"]), podIP(ctx, mqNS, pods[0]), resource.CeleryExchange, "parser", "f", kept)
				Expect(err).NotTo(HaveOccurred())
				Expect(acked).To(Equal(kept))
				Eventually(managementAPI(ctx, mqNS, pods[0], password).messages).WithContext(ctx).WithArguments("parser").Should(Equal(kept))
				pvcs := dataPVCs(ctx, mqNS)
				p, err := getPlatform(ctx, mqNS, mq)
				Expect(err).NotTo(HaveOccurred())

				By("kubectl delete pp (Retain): the broker Secret stays with the PVCs")
				deleteAndWait(ctx, mqNS, mq)
				Expect(dataPVCs(ctx, mqNS)).To(Equal(pvcs))
				retained, err := clients.CoreV1().Secrets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred(), "the broker Secret (password, Erlang cookie) is kept")
				Expect(retained.OwnerReferences).To(BeEmpty())
				Expect(retained.Annotations).To(HaveKeyWithValue(resource.AnnotationRetainedFor, mq))
				Expect(retained.Data).To(Equal(s.Data))

				By("kubectl apply of the same manifest")
				rolled := mqOptions
				rolled.brokerCPU, rolled.cacheCPU, rolled.queues = "150m", "150m", []string{"parser"}
				apply(ctx, mqNS, dsPlatformYAML(mq, rolled))
				start := time.Now()
				waitReady(ctx, mqNS, mq, p.UID)
				Eventually(rabbitRunningNodes).WithContext(ctx).WithArguments(mqNS, pods[0]).WithTimeout(2 * time.Minute).WithPolling(2 * time.Second).Should(HaveLen(3))
				again, err := clients.CoreV1().Secrets(mqNS).Get(ctx, mq+"-broker", metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				Expect(again.Data).To(Equal(s.Data), "the same password and cookie")
				got, err := amqpDrain(ctx, string(s.Data["url"]), podIP(ctx, mqNS, pods[1]), "parser")
				Expect(err).NotTo(HaveOccurred())
				report("c: broker across kubectl delete + apply", "Ready again in %s; %d messages published before, %d consumed after; %d lost",
					time.Since(start).Round(100*time.Millisecond), kept, len(got), kept-len(got))
				Expect(got).To(HaveLen(kept))
			})
		})
	})
}

// report prints a count to the spec's log and as a report entry, so it
// can be quoted from the suite's output.
func report(name, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	GinkgoWriter.Printf("%s: %s\n", name, msg)
	AddReportEntry(name, msg)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// dsOptions are what the scenarios vary on their platform.
type dsOptions struct {
	shards         int
	deletionPolicy string // "" is the default, Retain
	brokerReplicas int    // 0: no queues, no broker
	brokerType     string
	brokerCPU      string
	cacheCPU       string
	queues         []string
	backup         string // spec.backup, a YAML flow mapping
	restore        string // spec.database.restore, a YAML flow mapping
}

// dsPlatformYAML is a small platform: one service, no autoscaling, a
// 3-master cache with a replica each, the given shards, and a RabbitMQ
// broker when brokerReplicas > 0.
func dsPlatformYAML(name string, o dsOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: platform.vkparser.io/v1alpha1
kind: ParserPlatform
metadata: {name: %s}
spec:
`, name)
	if o.deletionPolicy != "" {
		fmt.Fprintf(&b, "  deletionPolicy: %s\n", o.deletionPolicy)
	}
	fmt.Fprintf(&b, `  autoscaling: {enabled: false}
  services:
  - {name: auth, image: registry.example.com/vk-parser/auth:1.4.0, port: 8001, replicas: 1}
  gateway: {image: registry.example.com/vk-parser/gateway:1.4.0, port: 8080, replicas: 1}
  loadBalancer: {image: nginxinc/nginx-unprivileged:1.27-alpine, replicas: 1, port: 80, serviceType: ClusterIP}
  database: {shards: %d, image: postgres:16-alpine, storage: {size: 1Gi}%s}
  cache:
    masters: 3
    replicasPerMaster: 1
    image: redis:7.2-alpine
    storage: {size: 1Gi}
`, o.shards, flowField("restore", o.restore))
	if o.backup != "" {
		fmt.Fprintf(&b, "  backup: %s\n", o.backup)
	}
	if o.cacheCPU != "" {
		fmt.Fprintf(&b, "    resources: {requests: {cpu: %s}}\n", o.cacheCPU)
	}
	if o.brokerReplicas > 0 {
		typ := o.brokerType
		if typ == "" {
			typ = "rabbitmq"
		}
		fmt.Fprintf(&b, `  queues:
    broker:
      type: %s
      image: rabbitmq:3.13-management-alpine
      replicas: %d
`, typ, o.brokerReplicas)
		if o.brokerCPU != "" {
			fmt.Fprintf(&b, "      resources: {requests: {cpu: %s}}\n", o.brokerCPU)
		}
		b.WriteString("    workers: {image: registry.example.com/vk-parser/worker:1.4.0, app: vk_parser}\n    queues:\n")
		for _, q := range o.queues {
			fmt.Fprintf(&b, "    - {name: %s, routingKey: %s, tasks: [%s.tasks.run]}\n", q, q, q)
		}
	}
	return b.String()
}

// flowField is ", key: value" in a flow mapping, "" for no value.
func flowField(key, value string) string {
	if value == "" {
		return ""
	}
	return ", " + key + ": " + value
}

// shardCredentials are the files of one shard under DB_CREDENTIALS_DIR.
type shardCredentials struct {
	Index                         int
	User, Password, Database, URI string
}

// appPodCredentials reads the shards' credentials as the kubelet would
// project them into a pod of the Deployment: the volume mounted at
// $DB_CREDENTIALS_DIR, each Secret's items at their paths
// (shard-<i>/{username,password,database,uri}).
func appPodCredentials(ctx context.Context, ns, deployment string, shards int) map[int]shardCredentials {
	GinkgoHelper()
	d, err := clients.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	spec := d.Spec.Template.Spec
	Expect(spec.Containers).NotTo(BeEmpty())
	c := spec.Containers[0]
	dir := ""
	for _, e := range c.Env {
		if e.Name == "DB_CREDENTIALS_DIR" {
			dir = e.Value
		}
	}
	Expect(dir).NotTo(BeEmpty(), "%s has DB_CREDENTIALS_DIR", deployment)
	volume := ""
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) {
			volume = m.Name
		}
	}
	Expect(volume).NotTo(BeEmpty(), "a volume is mounted at %s", dir)
	files := map[string]string{}
	for _, v := range spec.Volumes {
		if v.Name != volume {
			continue
		}
		Expect(v.Projected).NotTo(BeNil(), "the credentials volume is projected")
		for _, src := range v.Projected.Sources {
			Expect(src.Secret).NotTo(BeNil())
			s, err := clients.CoreV1().Secrets(ns).Get(ctx, src.Secret.Name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			for _, it := range src.Secret.Items {
				Expect(s.Data).To(HaveKey(it.Key), "Secret %s", s.Name)
				files[it.Path] = string(s.Data[it.Key])
			}
		}
	}
	out := map[int]shardCredentials{}
	for i := range shards {
		dir := fmt.Sprintf("shard-%d/", i)
		for _, f := range []string{"username", "password", "database", "uri"} {
			Expect(files).To(HaveKey(dir+f), "%s%s under %s", dir, f, dir)
		}
		out[i] = shardCredentials{Index: i, User: files[dir+"username"], Password: files[dir+"password"],
			Database: files[dir+"database"], URI: files[dir+"uri"]}
	}
	return out
}

// serviceAddress is what cluster DNS answers for a headless Service: the
// IP of a pod it selects (Ready, or any with publishNotReadyAddresses).
// There is no DNS server here, and EndpointSlices cannot hold the pods'
// loopback IPs (the API server refuses 127.0.0.0/8 addresses).
func serviceAddress(ctx context.Context, ns, host string) (string, error) {
	name, rest, _ := strings.Cut(host, ".")
	if !strings.HasPrefix(rest, ns+".") {
		return "", fmt.Errorf("%s is not a Service of namespace %s", host, ns)
	}
	svc, err := clients.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Selector) == 0 {
		return "", fmt.Errorf("Service %s is not headless with a selector", host)
	}
	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil && (svc.Spec.PublishNotReadyAddresses || podIsReady(&p)) {
			return p.Status.PodIP, nil
		}
	}
	return "", fmt.Errorf("Service %s selects no ready pod with an IP", host)
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// withShard connects to a shard as an app does, from its credentials
// files: the uri (host, port, database), user and password as given, the
// host resolved as DNS would, from an address of the pod range (so the
// server checks the password as for another pod).
func withShard(ctx context.Context, ns string, sc shardCredentials, f func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(sc.URI + "?sslmode=disable&connect_timeout=5")
	if err != nil {
		return err
	}
	cfg.User, cfg.Password, cfg.Database = sc.User, sc.Password, sc.Database
	var addr string
	err = retryFor(ctx, 30*time.Second, func() error {
		var err error
		addr, err = serviceAddress(ctx, ns, cfg.Host)
		return err
	})
	if err != nil {
		return err
	}
	cfg.Host = addr
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: clientIP()}, Timeout: 5 * time.Second}
	cfg.DialFunc = dialer.DialContext
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	return f(conn)
}

func shardCount(ctx context.Context, ns string, sc shardCredentials) (int, error) {
	var n int
	err := withShard(ctx, ns, sc, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n)
	})
	return n, err
}

// shardCounts counts the rows of every shard.
func shardCounts(ctx context.Context, ns string, creds map[int]shardCredentials) map[int]int {
	GinkgoHelper()
	out := map[int]int{}
	for i, sc := range creds {
		n, err := shardCount(ctx, ns, sc)
		Expect(err).NotTo(HaveOccurred(), "shard %d", i)
		out[i] = n
	}
	return out
}

// routedCorrectly: every row of a shard is a key routed to it.
func routedCorrectly(ctx context.Context, ns string, creds map[int]shardCredentials, shards int) error {
	for i, sc := range creds {
		err := withShard(ctx, ns, sc, func(conn *pgx.Conn) error {
			rows, err := conn.Query(ctx, "SELECT key FROM users")
			if err != nil {
				return err
			}
			keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, k := range keys {
				if s := sharding.ShardFor(k, shards); s != i {
					return fmt.Errorf("%s is on shard %d, routed to %d", k, i, s)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rabbitQueueDepths sums rabbitmq_queue_messages_ready per queue over the
// broker pods' rabbitmq_prometheus endpoints (/metrics, as the PodMonitor
// scrapes it): each node reports the queues it leads, so the cluster's
// queues are the union of its nodes', as Prometheus sums them.
func rabbitQueueDepths(ctx context.Context, ips ...string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, ip := range ips {
		if err := addQueueDepths(ctx, ip, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func addQueueDepths(ctx context.Context, ip string, out map[string]float64) error {
	url := fmt.Sprintf("http://%s/metrics", net.JoinHostPort(ip, strconv.Itoa(int(resource.RabbitPrometheusPort))))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	series := regexp.MustCompile(`(?m)^` + resource.MetricRabbitReady + `\{[^}]*queue="([^"]+)"[^}]*\} ([0-9.e+]+)$`)
	for _, m := range series.FindAllStringSubmatch(string(body), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return err
		}
		out[m[1]] += v
	}
	return nil
}

func lost(written, verified map[int]int) int {
	n := 0
	for i, w := range written {
		n += max(w-verified[i], 0)
	}
	return n
}

// dataSecretNames are the credentials Secrets a platform keeps with its
// volumes (no broker).
func dataSecretNames(name string, shards int) []string {
	p := &platformv1.ParserPlatform{ObjectMeta: metav1.ObjectMeta{Name: name}}
	out := []string{resource.CacheName(p)}
	for i := range shards {
		out = append(out, resource.ShardSecretName(p, i))
	}
	return out
}

func secretData(ctx context.Context, ns string, names []string) map[string]map[string][]byte {
	GinkgoHelper()
	out := map[string]map[string][]byte{}
	for _, name := range names {
		s, err := clients.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		out[name] = s.Data
	}
	return out
}

// dataPVCs are the namespace's PVCs, name -> UID.
func dataPVCs(ctx context.Context, ns string) map[string]types.UID {
	GinkgoHelper()
	pvcs, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	out := map[string]types.UID{}
	for _, pvc := range pvcs.Items {
		if pvc.DeletionTimestamp == nil {
			out[pvc.Name] = pvc.UID
		}
	}
	return out
}

func podUIDOf(ctx context.Context, ns, name string) types.UID {
	GinkgoHelper()
	pod, err := clients.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return pod.UID
}

// stsGeneration is the StatefulSet's generation now.
func stsGeneration(ctx context.Context, ns, name string) int64 {
	GinkgoHelper()
	s, err := clients.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return s.Generation
}

// waitRolledOut waits until the operator has changed the StatefulSet (a
// generation past after) and it runs that revision on every replica, all
// Ready.
func waitRolledOut(ctx context.Context, ns, name string, replicas int32, after int64) {
	GinkgoHelper()
	pr := &progress{start: time.Now()}
	Eventually(func(g Gomega) {
		s, err := clients.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Generation).To(BeNumerically(">", after), "the operator changed %s", name)
		st := s.Status
		pr.report("%s: updated %d, ready %d of %d", name, st.UpdatedReplicas, st.ReadyReplicas, replicas)
		g.Expect(st.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(st.UpdateRevision).NotTo(BeEmpty())
		g.Expect(st.CurrentRevision).To(Equal(st.UpdateRevision))
		g.Expect(st.UpdatedReplicas).To(Equal(replicas))
		g.Expect(st.ReadyReplicas).To(Equal(replicas))
		g.Expect(isRolled(s)).To(BeTrue())
	}).WithContext(ctx).WithTimeout(5 * time.Minute).WithPolling(time.Second).Should(Succeed())
}

func isRolled(s *appsv1.StatefulSet) bool {
	return s.Status.UpdatedReplicas == ptr.Deref(s.Spec.Replicas, 1)
}

// rabbitRunningNodes is running_nodes of rabbitmqctl cluster_status in the
// pod (its own CLI and environment).
func rabbitRunningNodes(ctx context.Context, ns, pod string) ([]string, error) {
	out, err := cluster.Exec(ctx, ns, pod, time.Minute, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	i := strings.Index(out, "{")
	if i < 0 {
		return nil, fmt.Errorf("no JSON: %s", out)
	}
	var status struct {
		RunningNodes []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(out[i:]), &status); err != nil {
		return nil, err
	}
	sort.Strings(status.RunningNodes)
	return status.RunningNodes, nil
}

// amqpDial connects as a worker does, with the broker URL of the Secret,
// to the pod at ip (no DNS here), from an address of the pod range.
func amqpDial(brokerURL, ip string) (*amqp.Connection, error) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, err
	}
	u.Host = net.JoinHostPort(ip, u.Port())
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: clientIP()}, Timeout: 5 * time.Second}
	return amqp.DialConfig(u.String(), amqp.Config{
		Heartbeat: 10 * time.Second,
		Dial: func(network, addr string) (net.Conn, error) {
			return dialer.Dial(network, addr)
		},
	})
}

// amqpPublish publishes n persistent messages "<prefix>-<i>" to exchange
// with routingKey, mandatory, each confirmed by the broker before the next;
// it returns how many were confirmed.
func amqpPublish(ctx context.Context, brokerURL, ip, exchange, routingKey, prefix string, n int) (int, error) {
	conn, err := amqpDial(brokerURL, ip)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	returned := ch.NotifyReturn(make(chan amqp.Return, n))
	acked := 0
	for i := range n {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		dc, err := ch.PublishWithDeferredConfirmWithContext(pctx, exchange, routingKey, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "text/plain", Body: []byte(fmt.Sprintf("%s-%d", prefix, i)),
		})
		if err == nil {
			var ok bool
			ok, err = dc.WaitContext(pctx)
			if err == nil && !ok {
				err = fmt.Errorf("message %d nacked", i)
			}
		}
		cancel()
		if err != nil {
			return acked, err
		}
		select {
		case r := <-returned:
			return acked, fmt.Errorf("message %d returned unroutable: %s", i, r.ReplyText)
		default:
		}
		acked++
	}
	return acked, nil
}

// amqpDrain takes every message of the queue (basic.get, acknowledged)
// until it is empty, and returns the distinct bodies.
func amqpDrain(ctx context.Context, brokerURL, ip, queue string) (map[string]bool, error) {
	got := map[string]bool{}
	err := retryFor(ctx, time.Minute, func() error {
		conn, err := amqpDial(brokerURL, ip)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		for ctx.Err() == nil {
			d, ok, err := ch.Get(queue, false)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			got[string(d.Body)] = true
			if err := d.Ack(false); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
	return got, err
}

// retryFor calls f until it succeeds or d has passed.
func retryFor(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
