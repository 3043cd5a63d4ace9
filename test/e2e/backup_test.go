//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/backup/s3test"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/sharding"
)

// The backup scenarios: a platform's shards, filled through the real
// PostgreSQL servers behind their pods, are backed up by the operator's
// Jobs (whose containers the harness runs for real: pg_dump on the shard,
// the operator's binary uploading) to a real S3 server (versitygw, built
// by hack/tool.sh), and restored into a new platform in another namespace
// after the first was deleted with its volumes. Every row is counted and
// checksummed per shard before and after.
func backupSpecs(operator func() *operatorProcess) {
	Context("backups and restore", Ordered, func() {
		const (
			srcNS, src = "bk-src", "src"
			dstNS, dst = "bk-dst", "dst"
			shards     = 3
			users      = 10000
			// bkWait bounds a backup or a restore of the test data (each
			// ~10 s here) with the Job pods' scheduling and back-off.
			bkWait = 3 * time.Minute
		)
		var (
			s       *scenario
			store   *s3test.Server
			written map[int]shardRows // per shard, before the backup
			set     string            // the on-demand backup's set
			dumps   []platformv1.BackupShardStatus
		)
		storeSecret := "object-store"
		objectStore := func(prefix string) string {
			return fmt.Sprintf("{endpoint: %q, bucket: %s, prefix: %s, region: us-east-1, secretRef: {name: %s}}",
				store.Endpoint, store.Bucket, prefix, storeSecret)
		}
		backupSpec := func(schedule string, retain int) string {
			return fmt.Sprintf("{schedule: %q, retain: %d, objectStore: %s}", schedule, retain, objectStore("e2e"))
		}
		restoreSpec := func(setID string) string {
			return fmt.Sprintf("{backupSet: %s, sourcePlatform: %s, sourceNamespace: %s, objectStore: %s}", setID, src, srcNS, objectStore("e2e"))
		}
		getBackup := func(ctx context.Context, ns, name string) (*platformv1.ParserPlatformBackup, error) {
			b := &platformv1.ParserPlatformBackup{}
			return b, s.pc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b)
		}
		// waitBackup waits for the backup's phase to be terminal and returns it.
		waitBackup := func(ctx context.Context, ns, name string) *platformv1.ParserPlatformBackup {
			GinkgoHelper()
			var b *platformv1.ParserPlatformBackup
			Eventually(func(g Gomega) {
				s.alive()
				var err error
				b, err = getBackup(ctx, ns, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(b.Status.Phase).To(BeElementOf(platformv1.BackupCompleted, platformv1.BackupFailed), "%s: %s", b.Status.Phase, b.Status.Message)
			}).WithContext(ctx).WithTimeout(bkWait).WithPolling(time.Second).Should(Succeed())
			return b
		}
		restoredCondition := func(ctx context.Context, ns, name string) *metav1.Condition {
			p, err := s.getPlatform(ctx, ns, name)
			if err != nil {
				return nil
			}
			return meta.FindStatusCondition(p.Status.Conditions, "Restored")
		}
		storeSets := func(ctx context.Context, ns, name string) []backup.SetInfo {
			GinkgoHelper()
			st, err := backup.NewStore(store.ObjectStore("e2e"))
			Expect(err).NotTo(HaveOccurred())
			sets, err := st.ListSets(ctx, backup.Platform{Namespace: ns, Name: name})
			Expect(err).NotTo(HaveOccurred())
			return sets
		}

		BeforeAll(func(ctx SpecContext) {
			s = newScenario(operator, 4*time.Minute)
			By("starting a real S3 server: versitygw, built by hack/tool.sh versitygw")
			store = s3test.Start(GinkgoTB())
			createNamespaces(ctx, srcNS, dstNS)
			for _, ns := range []string{srcNS, dstNS} {
				_, err := clients.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: storeSecret},
					StringData: map[string]string{backup.AccessKeyIDKey: s3test.AccessKeyID, backup.SecretAccessKeyKey: s3test.SecretAccessKey},
				}, metav1.CreateOptions{})
				Expect(err).NotTo(HaveOccurred())
			}
		})

		AfterEach(func(ctx SpecContext) {
			dumpOnFailure(ctx, []string{srcNS, dstNS}, []string{"get", "ppbackup,jobs,pods", "-o", "wide"},
				[]string{"get", "ppbackup", "-o", `jsonpath={range .items[*]}{.metadata.name}: {.status.phase} {.status.message}{"\n"}{end}`})
		})

		It("backs up every shard of a 3-shard platform to S3 with an on-demand ParserPlatformBackup", func(ctx SpecContext) {
			By("kubectl apply: a platform of 3 shards, deletionPolicy Delete, spec.backup naming the S3 server")
			s.apply(ctx, srcNS, dsPlatformYAML(src, dsOptions{shards: shards, deletionPolicy: "Delete", backup: backupSpec("@every 24h", 2)}))
			s.waitReady(ctx, srcNS, src, "")
			creds := appPodCredentials(ctx, srcNS, src+"-auth", shards)

			By(fmt.Sprintf("writing %d users, each to the shard md5(key) mod %d routes it to", users, shards))
			rows := map[int][][]any{}
			for id := range users {
				key := sharding.UserKey(int64(id))
				shard := sharding.ShardFor(key, shards)
				rows[shard] = append(rows[shard], []any{int64(id), key})
			}
			for shard := range shards {
				Expect(withShard(ctx, srcNS, creds[shard], func(conn *pgx.Conn) error {
					if _, err := conn.Exec(ctx, "CREATE TABLE users (id bigint PRIMARY KEY, key text NOT NULL)"); err != nil {
						return err
					}
					_, err := conn.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "key"}, pgx.CopyFromRows(rows[shard]))
					return err
				})).To(Succeed(), "shard %d", shard)
			}
			written = shardSums(ctx, srcNS, creds)
			total := 0
			for shard := range shards {
				Expect(written[shard].count).To(Equal(len(rows[shard])), "shard %d", shard)
				total += written[shard].count
			}
			Expect(total).To(Equal(users))
			report("backup: rows written per shard", "%s (total %d)", describeRows(written), total)

			By("kubectl create -f: a ParserPlatformBackup of the platform")
			begin := time.Now()
			out, err := kubectl(ctx, fmt.Sprintf(`apiVersion: platform.vkparser.io/v1alpha1
kind: ParserPlatformBackup
metadata: {name: before-disaster, namespace: %s}
spec: {platform: %s}
`, srcNS, src), "create", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), out)
			b := waitBackup(ctx, srcNS, "before-disaster")
			Expect(b.Status.Phase).To(Equal(platformv1.BackupCompleted), b.Status.Message)
			took := time.Since(begin)
			set, dumps = b.Status.BackupSet, b.Status.Shards
			Expect(dumps).To(HaveLen(shards))
			var size int64
			for i, d := range dumps {
				Expect(d.Index).To(BeEquivalentTo(i))
				Expect(d.Object).To(ContainSubstring(set))
				Expect(d.Size).To(BeNumerically(">", 0))
				Expect(d.Checksum).To(MatchRegexp("^sha256:[0-9a-f]{64}$"))
				Expect(d.LSN).NotTo(BeEmpty(), "the position the dump is consistent at")
				size += d.Size
			}
			sets := storeSets(ctx, srcNS, src)
			Expect(sets).To(ContainElement(And(HaveField("ID", set), HaveField("Complete", true))))
			report("backup: on-demand set", "%s Completed in %s: %d shards, %d bytes of dumps, in bucket %s of versitygw",
				set, took.Round(100*time.Millisecond), len(dumps), size, store.Bucket)
			out, _ = kubectl(ctx, "", "get", "ppbackup", "-n", srcNS)
			GinkgoWriter.Print(out)

			Eventually(func(g Gomega) {
				p, err := s.getPlatform(ctx, srcNS, src)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Status.Backup).NotTo(BeNil())
				g.Expect(p.Status.Backup.LastCompletedSet).To(Equal(set))
				g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, "BackupReady")).To(BeTrue())
			}).WithContext(ctx).Should(Succeed())
		})

		It("restores the set into a new platform in another namespace after the first was deleted with its volumes", func(ctx SpecContext) {
			By("kubectl delete pp (deletionPolicy Delete): the shards' volumes go")
			s.deleteAndWait(ctx, srcNS, src)
			Eventually(func() ([]string, error) { return pvcNames(ctx, srcNS) }).WithContext(ctx).Should(BeEmpty())

			By("kubectl apply: a platform in " + dstNS + " with database.restore: latest of " + srcNS + "/" + src)
			begin := time.Now()
			s.apply(ctx, dstNS, dsPlatformYAML(dst, dsOptions{shards: shards, deletionPolicy: "Delete", restore: restoreSpec("latest"),
				backup: backupSpec("@every 24h", 2)}))
			var restoredAt time.Time
			Eventually(func(g Gomega) {
				s.alive()
				c := restoredCondition(ctx, dstNS, dst)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
				restoredAt = c.LastTransitionTime.Time
			}).WithContext(ctx).WithTimeout(bkWait).WithPolling(time.Second).Should(Succeed())
			took := time.Since(begin)
			p := s.waitReady(ctx, dstNS, dst, "")
			Expect(p.Status.Restore).NotTo(BeNil())
			Expect(p.Status.Restore.BackupSet).To(Equal(set), "latest is the on-demand set")

			By("reading the new platform's own credentials as its app pods do, and counting every shard")
			creds := appPodCredentials(ctx, dstNS, dst+"-auth", shards)
			restored := shardSums(ctx, dstNS, creds)
			Expect(restored).To(Equal(written), "every row back, on its shard, the same checksum")
			Expect(routedCorrectly(ctx, dstNS, creds, shards)).To(Succeed())
			d, err := clients.AppsV1().Deployments(dstNS).Get(ctx, dst+"-auth", metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(d.CreationTimestamp.Time).NotTo(BeTemporally("<", restoredAt.Truncate(time.Second)),
				"no service started before its shards were filled")
			report("restore: rows per shard in the new platform", "%s; lost %d; Restored after %s (apply to condition)",
				describeRows(restored), lostRows(written, restored), took.Round(100*time.Millisecond))
		})

		It("refuses a set whose object has one byte changed, naming it, and a set of another shard count; nothing else starts", func(ctx SpecContext) {
			By("changing one byte of shard 1's dump in the S3 server's files")
			path := store.ObjectPath(dumps[1].Object)
			data, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			data[len(data)/2] ^= 0x01
			Expect(os.WriteFile(path, data, 0o644)).To(Succeed())

			By("kubectl apply: platforms restoring that set, one with 3 shards, one with 2")
			s.apply(ctx, dstNS, dsPlatformYAML("corrupt", dsOptions{shards: shards, deletionPolicy: "Delete", restore: restoreSpec(set)}))
			s.apply(ctx, dstNS, dsPlatformYAML("reshard", dsOptions{shards: 2, deletionPolicy: "Delete", restore: restoreSpec(set)}))
			for name, want := range map[string]string{"corrupt": dumps[1].Object, "reshard": "has 3 shards but spec.database.shards is 2"} {
				Eventually(func(g Gomega) {
					s.alive()
					c := restoredCondition(ctx, dstNS, name)
					g.Expect(c).NotTo(BeNil())
					g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
					g.Expect(c.Message).To(ContainSubstring(want), c.Reason)
					report("restore refused: "+name, "%s: %s", c.Reason, firstLine(c.Message))
				}).WithContext(ctx).WithTimeout(bkWait).WithPolling(time.Second).Should(Succeed())
				_, err := clients.AppsV1().Deployments(dstNS).Get(ctx, name+"-auth", metav1.GetOptions{})
				Expect(err).To(HaveOccurred(), "%s: no service Deployment", name)
			}
			for _, name := range []string{"corrupt", "reshard"} {
				out, err := kubectl(ctx, "", "delete", "pp", name, "-n", dstNS, "--wait=false")
				Expect(err).NotTo(HaveOccurred(), out)
			}
		})

		It("backs up on its schedule, keeps exactly retain sets, and a set taken while a shard is down is Failed, the next Completed", func(ctx SpecContext) {
			scheduled := func(ctx context.Context) []platformv1.ParserPlatformBackup {
				list := &platformv1.ParserPlatformBackupList{}
				Expect(s.pc.List(ctx, list, client.InNamespace(dstNS), client.MatchingLabels{"platform.vkparser.io/scheduled": "true"})).To(Succeed())
				return list.Items
			}
			waitPhase := func(phase platformv1.BackupPhase, after time.Time) platformv1.ParserPlatformBackup {
				GinkgoHelper()
				var found platformv1.ParserPlatformBackup
				Eventually(func(g Gomega) {
					s.alive()
					for _, b := range scheduled(ctx) {
						if b.Status.Phase == phase && !b.CreationTimestamp.Time.Before(after.Truncate(time.Second)) {
							found = b
							return
						}
					}
					g.Expect(false).To(BeTrue(), "no scheduled backup %s yet", phase)
				}).WithContext(ctx).WithTimeout(bkWait).WithPolling(time.Second).Should(Succeed())
				return found
			}
			By("spec.backup.schedule: @every 20s, retain: 2")
			begin := time.Now()
			_, err := kubectl(ctx, "", "patch", "pp", dst, "-n", dstNS, "--type=merge", "-p", `{"spec":{"backup":{"schedule":"@every 20s"}}}`)
			Expect(err).NotTo(HaveOccurred())
			first := waitPhase(platformv1.BackupCompleted, begin)
			report("schedule: first scheduled set", "%s Completed %s after the schedule was set", first.Status.BackupSet, time.Since(begin).Round(time.Second))

			By("stopping shard 1's PostgreSQL (the pod stays, not Ready)")
			shardPod := resource.ShardStatefulSetName(&platformv1.ParserPlatform{ObjectMeta: metav1.ObjectMeta{Name: dst}}, 1) + "-0"
			down := time.Now()
			Expect(cluster.StopServer(ctx, dstNS, shardPod)).To(Succeed())
			failed := waitPhase(platformv1.BackupFailed, down)
			Expect(failed.Status.Message).To(ContainSubstring("shard 1"))
			report("schedule: set taken while shard 1 was down", "%s Failed: %s", failed.Name, firstLine(failed.Status.Message))

			By("starting it again: the next scheduled set is Completed")
			up := time.Now()
			Expect(cluster.StartServer(dstNS, shardPod)).To(Succeed())
			next := waitPhase(platformv1.BackupCompleted, up)
			third := waitPhase(platformv1.BackupCompleted, next.CreationTimestamp.Add(time.Second))
			report("schedule: after shard 1 was back", "%s and %s Completed", next.Status.BackupSet, third.Status.BackupSet)

			By("stopping the schedule; retention has kept exactly 2 complete sets of the platform")
			_, err = kubectl(ctx, "", "patch", "pp", dst, "-n", dstNS, "--type=merge", "-p", `{"spec":{"backup":{"schedule":"@every 24h"}}}`)
			Expect(err).NotTo(HaveOccurred())
			Eventually(func(g Gomega) {
				var complete []string
				for _, set := range storeSets(ctx, dstNS, dst) {
					if set.Complete {
						complete = append(complete, set.ID)
					}
				}
				g.Expect(complete).To(HaveLen(2), "complete sets in the store: %v", complete)
				g.Expect(complete).To(ContainElement(third.Status.BackupSet), "the newest is kept")
				report("schedule: complete sets in the store (retain 2)", "%v", complete)
			}).WithContext(ctx).WithTimeout(bkWait).WithPolling(2 * time.Second).Should(Succeed())
		})
	})
}

// shardRows is what a shard holds: its rows and a checksum of them all.
type shardRows struct {
	count int
	sum   string
}

// shardSums counts and checksums the users of every shard (md5 of the
// rows in id order).
func shardSums(ctx context.Context, ns string, creds map[int]shardCredentials) map[int]shardRows {
	GinkgoHelper()
	out := map[int]shardRows{}
	for i, sc := range creds {
		var r shardRows
		Expect(withShard(ctx, ns, sc, func(conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT count(*), md5(coalesce(string_agg(id::text || ':' || key, ',' ORDER BY id), '')) FROM users").Scan(&r.count, &r.sum)
		})).To(Succeed(), "shard %d", i)
		out[i] = r
	}
	return out
}

func describeRows(rows map[int]shardRows) string {
	var parts []string
	for i := range len(rows) {
		parts = append(parts, fmt.Sprintf("shard %d: %d rows (md5 %s)", i, rows[i].count, rows[i].sum[:12]))
	}
	return strings.Join(parts, ", ")
}

func lostRows(written, verified map[int]shardRows) int {
	n := 0
	for i, w := range written {
		n += max(w.count-verified[i].count, 0)
	}
	return n
}

func pvcNames(ctx context.Context, ns string) ([]string, error) {
	list, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	return names, nil
}
