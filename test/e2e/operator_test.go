//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// The operator's e2e: installed the way a user installs it (helm install,
// kubectl apply -f config/samples/), run with exactly the RBAC its chart
// grants, on the simulated cluster, where the cache pods are real
// redis-servers the operator forms into a Redis Cluster. One platform goes
// through its whole life: Ready, scaled, deleted; then the chart goes.
var _ = Describe("The operator installed with its Helm chart", Ordered, func() {
	const (
		// Not the README's release name, and a nameOverride: the platforms'
		// NetworkPolicies must admit the operator whatever the release is
		// called and whatever app.kubernetes.io/name says (a spec below
		// judges the live policies); test/install checks that the default
		// values render what kustomize installs. Every object of the release
		// is found by its labels or its Deployment, never by a guessed name.
		release      = "platform-ops"
		nameOverride = "vk-operator"
		// defaultName is the chart's name: app.kubernetes.io/name of the
		// operator's pods under default values, which impostors wear below.
		defaultName = "parser-operator"
		operatorNS  = "parser-operator-system"
		leaseName   = "parser-operator.platform.vkparser.io"
		ns          = "parser"
		name        = "vk"
		// cacheSelector selects the platform's cache pods (by the labels of
		// docs/architecture.md, "Children").
		cacheSelector = "app.kubernetes.io/instance=" + name + ",app.kubernetes.io/name=cache"
		// longWait bounds the waits on the operator: forming or resharding
		// the Redis Cluster takes tens of seconds here.
		longWait = 4 * time.Minute
	)
	var (
		h   *helmCLI
		bin string
		op  *operatorProcess
		rec *metricsRecorder
		// recorderCtx ends the scraper when the container ends
		recorderCtx context.Context
		platform    client.Client
		// set once the chart is installed
		saName         string
		deploymentArgs []string
		// the release's Deployment, the selector of its pods and the
		// ClusterRoles bound to its ServiceAccount
		deploymentName   string
		operatorSelector string
		clusterRoles     []string
		// the platform's UID and creation time
		uid       types.UID
		appliedAt time.Time
	)

	getPlatform := func(ctx context.Context) (*platformv1.ParserPlatform, error) {
		p := &platformv1.ParserPlatform{}
		return p, platform.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)
	}
	// alive stops an Eventually at once when the operator has died.
	alive := func() {
		if err := op.exited(); err != nil {
			StopTrying(err.Error()).Now()
		}
	}
	cachePassword := func(ctx context.Context) string {
		s, err := clients.CoreV1().Secrets(ns).Get(ctx, name+"-cache", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Data).To(HaveKey("password"))
		return string(s.Data["password"])
	}
	// readyAt waits until the platform is Ready for its current generation
	// with the cache as want, printing the Ready condition as it changes.
	readyAt := func(ctx context.Context, want platformv1.CacheClusterStatus) {
		pr := &progress{start: time.Now()}
		Eventually(func(g Gomega) {
			alive()
			p, err := getPlatform(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			ready := meta.FindStatusCondition(p.Status.Conditions, "Ready")
			if ready != nil {
				pr.report("Ready=%s %s: %s; cache %+v", ready.Status, ready.Reason, ready.Message, ptr.Deref(p.Status.Cache, platformv1.CacheClusterStatus{}))
			}
			g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation), "status of the current spec")
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: %s", ready.Reason, ready.Message)
			g.Expect(p.Status.Cache).To(HaveValue(Equal(want)))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed())
	}

	BeforeAll(func(ctx SpecContext) {
		scheme := runtime.NewScheme()
		Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
		Expect(platformv1.AddToScheme(scheme)).To(Succeed())
		var err error
		platform, err = client.New(cluster.Config, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())

		By("building the operator (go build ./cmd) and finding helm (hack/tool.sh helm)")
		start := time.Now()
		dir := GinkgoT().TempDir()
		bin, err = buildOperator(ctx, dir)
		Expect(err).NotTo(HaveOccurred())
		// The operator's image in the Job pods it creates holds this binary.
		Expect(cluster.UseOperatorBinary(bin)).To(Succeed())
		h, err = findHelm(ctx, filepath.Join(dir, "helm"))
		Expect(err).NotTo(HaveOccurred())
		out, err := h.run(ctx, "version", "--short")
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("operator and %s ready in %s\n", strings.TrimSpace(out), time.Since(start).Round(100*time.Millisecond))

		// Whatever happens, the operator and the scraper of its metrics stop
		// with this container (a DeferCleanup in an It runs after that It).
		var stopRecorder context.CancelFunc
		recorderCtx, stopRecorder = context.WithCancel(context.Background())
		DeferCleanup(func() {
			stopRecorder()
			if op != nil {
				op.stop()
			}
		})
	}, NodeTimeout(15*time.Minute)) // a machine's first run builds helm

	AfterEach(func(ctx SpecContext) {
		if !CurrentSpecReport().Failed() {
			return
		}
		if op != nil {
			GinkgoWriter.Printf("\n--- last lines of the operator's log (%s):\n%s\n", op.log, op.tail(40))
		}
		for _, args := range [][]string{
			{"get", "parserplatforms", "-A", "-o", "wide"},
			{"get", "parserplatform", name, "-n", ns, "-o", "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\\n\"}{end}"},
			{"get", "pods,statefulsets,deployments", "-n", ns, "-o", "wide"},
		} {
			out, _ := kubectl(ctx, "", args...)
			GinkgoWriter.Printf("\n--- kubectl %s\n%s\n", strings.Join(args, " "), out)
		}
	})

	It("installs with helm install, and its Deployment becomes Available", func(ctx SpecContext) {
		// The operator's own namespace enforces Pod Security restricted, as
		// the chart's notes ask: the API server admits its pod only if it
		// runs non-root, read-only root file system, no privilege escalation.
		By("kubectl create namespace " + operatorNS + ", labelled pod-security.kubernetes.io/enforce=restricted")
		_, err := kubectl(ctx, "", "create", "namespace", operatorNS)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "label", "namespace", operatorNS, "pod-security.kubernetes.io/enforce=restricted")
		Expect(err).NotTo(HaveOccurred())

		By("helm install " + release + " charts/parser-operator --namespace " + operatorNS + " --set nameOverride=" + nameOverride)
		out, err := h.run(ctx, "install", release, "charts/parser-operator", "--namespace", operatorNS, "--set", "nameOverride="+nameOverride)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Println(out)

		By("finding the release's Deployment by its labels")
		ds, err := clients.AppsV1().Deployments(operatorNS).List(ctx, metav1.ListOptions{
			LabelSelector: "app.kubernetes.io/instance=" + release + ",control-plane=controller-manager"})
		Expect(err).NotTo(HaveOccurred())
		Expect(ds.Items).To(HaveLen(1))
		deploymentName = ds.Items[0].Name
		Expect(deploymentName).To(ContainSubstring(nameOverride), "the nameOverride named the objects")
		podLabels := ds.Items[0].Spec.Template.Labels
		Expect(podLabels).To(HaveKeyWithValue("app.kubernetes.io/name", nameOverride))
		Expect(podLabels).To(HaveKeyWithValue(resource.OperatorPodLabel, resource.OperatorPodLabelValue))
		sel, err := metav1.LabelSelectorAsSelector(ds.Items[0].Spec.Selector)
		Expect(err).NotTo(HaveOccurred())
		operatorSelector = sel.String()
		GinkgoWriter.Printf("Deployment %s, pods %v\n", deploymentName, podLabels)

		By("waiting for the operator's Deployment to be Available (its pod is kwok's: Ready with no container)")
		var d *appsv1.Deployment
		Eventually(func(g Gomega) {
			var err error
			d, err = clients.AppsV1().Deployments(operatorNS).Get(ctx, deploymentName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.Conditions).To(ContainElement(And(
				HaveField("Type", appsv1.DeploymentAvailable), HaveField("Status", corev1.ConditionTrue))))
			g.Expect(d.Status.ReadyReplicas).To(Equal(ptr.Deref(d.Spec.Replicas, 1)))
		}).WithContext(ctx).Should(Succeed())
		Expect(readyPods(ctx, operatorNS, "control-plane=controller-manager")).To(HaveLen(int(ptr.Deref(d.Spec.Replicas, 1))))
		Expect(readyPods(ctx, operatorNS, operatorSelector)).To(HaveLen(int(ptr.Deref(d.Spec.Replicas, 1))))

		saName = d.Spec.Template.Spec.ServiceAccountName
		Expect(saName).To(ContainSubstring(nameOverride), "the operator runs as the release's own ServiceAccount")
		c := d.Spec.Template.Spec.Containers
		Expect(c[0].SecurityContext).NotTo(BeNil())
		Expect(ptr.Deref(c[0].SecurityContext.ReadOnlyRootFilesystem, false)).To(BeTrue(), "read-only root file system")
		Expect(ptr.Deref(d.Spec.Template.Spec.SecurityContext.RunAsNonRoot, false) ||
			ptr.Deref(c[0].SecurityContext.RunAsNonRoot, false)).To(BeTrue(), "non-root")
		Expect(c).To(HaveLen(1))
		// In its pod the operator finds its image on its own pod (the image
		// of its backup Jobs); beside the cluster it is told.
		deploymentArgs = append(slices.Clone(c[0].Args), "--operator-image="+c[0].Image)
		GinkgoWriter.Printf("ServiceAccount %s; container args %q\n", saName, deploymentArgs)
		Expect(deploymentArgs).To(ContainElement("--leader-elect"), "leader election is on by default")
	})

	It("grants its ServiceAccount no wildcard, escalate, bind or impersonate", func(ctx SpecContext) {
		subject := rbacv1.Subject{Kind: "ServiceAccount", Name: saName, Namespace: operatorNS}
		var roles []string
		check := func(where string, rules []rbacv1.PolicyRule) {
			for _, r := range rules {
				for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.NonResourceURLs, r.ResourceNames} {
					Expect(list).NotTo(ContainElement(ContainSubstring("*")), "%s: %+v", where, r)
				}
				Expect(r.Verbs).NotTo(ContainElement(BeElementOf("escalate", "bind", "impersonate")), "%s: %+v", where, r)
			}
		}
		crbs, err := clients.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, b := range crbs.Items {
			if slices.Contains(b.Subjects, subject) {
				Expect(b.RoleRef.Kind).To(Equal("ClusterRole"))
				cr, err := clients.RbacV1().ClusterRoles().Get(ctx, b.RoleRef.Name, metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				check("ClusterRole "+cr.Name, cr.Rules)
				roles = append(roles, "ClusterRole/"+cr.Name)
				if cr.Labels["app.kubernetes.io/instance"] == release {
					clusterRoles = append(clusterRoles, cr.Name)
				}
			}
		}
		rbs, err := clients.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, b := range rbs.Items {
			if !slices.Contains(b.Subjects, subject) {
				continue
			}
			if b.RoleRef.Kind == "ClusterRole" {
				cr, err := clients.RbacV1().ClusterRoles().Get(ctx, b.RoleRef.Name, metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				check("ClusterRole "+cr.Name, cr.Rules)
			} else {
				r, err := clients.RbacV1().Roles(b.Namespace).Get(ctx, b.RoleRef.Name, metav1.GetOptions{})
				Expect(err).NotTo(HaveOccurred())
				check("Role "+b.Namespace+"/"+r.Name, r.Rules)
			}
			roles = append(roles, b.RoleRef.Kind+"/"+b.RoleRef.Name+" in "+b.Namespace)
		}
		GinkgoWriter.Printf("the chart binds %s to %v\n", saName, roles)
		Expect(roles).NotTo(BeEmpty())
		Expect(clusterRoles).NotTo(BeEmpty(), "the release's ClusterRoles, which helm uninstall removes")

		By("asking the API server, as the ServiceAccount, what it may do")
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(cluster.KubeconfigFor(ctx, operatorNS, saName, kubeconfig)).To(Succeed())
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		Expect(err).NotTo(HaveOccurred())
		asSA, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		can := func(a authorizationv1.ResourceAttributes) bool {
			r, err := asSA.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return r.Status.Allowed
		}
		for _, a := range []authorizationv1.ResourceAttributes{
			{Verb: "watch", Group: "platform.vkparser.io", Resource: "parserplatforms"},
			{Verb: "patch", Group: "platform.vkparser.io", Resource: "parserplatforms", Subresource: "status", Namespace: ns},
			{Verb: "create", Group: "apps", Resource: "statefulsets", Namespace: ns},
			{Verb: "list", Resource: "pods", Namespace: ns},
			{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: operatorNS},
		} {
			Expect(can(a)).To(BeTrue(), "the operator needs %+v", a)
		}
		for _, a := range []authorizationv1.ResourceAttributes{
			{Verb: "create", Resource: "pods", Namespace: ns},
			{Verb: "delete", Group: "platform.vkparser.io", Resource: "parserplatforms", Namespace: ns},
			{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: ns},
			{Verb: "list", Resource: "nodes"},
			{Verb: "delete", Resource: "namespaces"},
			{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
			{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
			{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: ns},
			{Verb: "impersonate", Resource: "users"},
			{Verb: "impersonate", Resource: "serviceaccounts", Namespace: ns},
		} {
			Expect(can(a)).To(BeFalse(), "the operator does not need %+v", a)
		}
	})

	It("runs beside the cluster as the chart's ServiceAccount, with its Deployment's args, and leads", func(ctx SpecContext) {
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "operator.kubeconfig")
		Expect(cluster.KubeconfigFor(ctx, operatorNS, saName, kubeconfig)).To(Succeed())
		port, err := freePort()
		Expect(err).NotTo(HaveOccurred())
		args := operatorArgs(deploymentArgs, operatorNS, port)
		logPath := filepath.Join(cluster.Dir, "logs", "operator.log") // kept with the cluster's logs on failure
		By(fmt.Sprintf("starting %s %s (log %s)", filepath.Base(bin), strings.Join(args, " "), logPath))
		op, err = startOperator(bin, args, kubeconfig, logPath)
		Expect(err).NotTo(HaveOccurred())

		By("scraping the metrics endpoint from now on, before the platform exists")
		rec = newMetricsRecorder(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		Eventually(func() error { alive(); _, err := rec.scrape(ctx); return err }).WithContext(ctx).Should(Succeed())
		go rec.run(recorderCtx, 200*time.Millisecond)

		By("waiting for it to take the Lease " + operatorNS + "/" + leaseName)
		Eventually(func(g Gomega) {
			alive()
			l, err := clients.CoordinationV1().Leases(operatorNS).Get(ctx, leaseName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ptr.Deref(l.Spec.HolderIdentity, "")).NotTo(BeEmpty())
			GinkgoWriter.Printf("Lease held by %s\n", *l.Spec.HolderIdentity)
		}).WithContext(ctx).Should(Succeed())
		Eventually(op.tail).WithArguments(200).WithContext(ctx).Should(ContainSubstring("Starting workers"))
	})

	It("brings config/samples/ to Ready in a namespace enforcing Pod Security restricted", func(ctx SpecContext) {
		By("kubectl create namespace " + ns + ", labelled pod-security.kubernetes.io/enforce=restricted")
		_, err := kubectl(ctx, "", "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
		Expect(err).NotTo(HaveOccurred())

		By("kubectl apply -f config/samples/")
		out, err := kubectl(ctx, "", "apply", "-n", ns, "-f", filepath.Join(repoRoot(), "config", "samples")+"/")
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Print(out)
		appliedAt = time.Now()
		p, err := getPlatform(ctx)
		Expect(err).NotTo(HaveOccurred())
		uid = p.UID

		By("waiting for Ready=True (the operator forms the Redis Cluster on the real redis-servers)")
		readyAt(ctx, platformv1.CacheClusterStatus{Masters: 3, Nodes: 6, SlotsAssigned: 16384, OpenSlots: 0})
		took := time.Since(appliedAt).Round(100 * time.Millisecond)
		AddReportEntry("sample platform Ready after", took.String())
		GinkgoWriter.Printf("Ready %s after kubectl apply\n", took)

		p, err = getPlatform(ctx)
		Expect(err).NotTo(HaveOccurred())
		for _, c := range []string{"ServicesReady", "LoadBalancerReady", "DatabaseReady", "CacheReady", "QueuesReady"} {
			Expect(meta.IsStatusConditionTrue(p.Status.Conditions, c)).To(BeTrue(), "%s: %+v", c, meta.FindStatusCondition(p.Status.Conditions, c))
		}
		Expect(meta.IsStatusConditionFalse(p.Status.Conditions, "Degraded")).To(BeTrue())
		Expect(p.Status.Shards).To(BeEquivalentTo(4))

		By("checking every pod is Running and Ready, as many as the components ask for")
		desired := int32(0)
		for _, c := range p.Status.Components {
			Expect(c.ReadyReplicas).To(Equal(c.DesiredReplicas), "component %s", c.Name)
			desired += c.DesiredReplicas
		}
		pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(int(desired)))
		for _, pod := range pods.Items {
			Expect(pod.Status.Phase).To(Equal(corev1.PodRunning), pod.Name)
			Expect(isReady(&pod)).To(BeTrue(), pod.Name)
		}
		GinkgoWriter.Printf("%d pods Running and Ready over %d components, admitted under Pod Security restricted\n", len(pods.Items), len(p.Status.Components))
	})

	It("has formed a Redis Cluster: CLUSTER INFO on every backing redis-server says cluster_state:ok", func(ctx SpecContext) {
		password := cachePassword(ctx)
		ips, err := podIPs(ctx, ns, cacheSelector)
		Expect(err).NotTo(HaveOccurred())
		Expect(ips).To(HaveLen(6))
		for pod, ip := range ips {
			info, err := clusterInfo(ctx, ip, password)
			Expect(err).NotTo(HaveOccurred())
			GinkgoWriter.Printf("%s (%s): cluster_state:%s slots_assigned:%s known_nodes:%s size:%s\n", pod, ip,
				info["cluster_state"], info["cluster_slots_assigned"], info["cluster_known_nodes"], info["cluster_size"])
			Expect(info).To(HaveKeyWithValue("cluster_state", "ok"), pod)
			Expect(info).To(HaveKeyWithValue("cluster_slots_assigned", "16384"), pod)
			Expect(info).To(HaveKeyWithValue("cluster_known_nodes", "6"), pod)
			Expect(info).To(HaveKeyWithValue("cluster_size", "3"), pod)
		}
	})

	// The policies are stored, not enforced, here: the upstream engine
	// judges them (netpol_live_test.go) on what the API server holds, the
	// operator's pods as the release made them under its own names.
	It("lets exactly the operator's pods into the cache and the broker: the live NetworkPolicies, judged by the upstream engine", func(ctx SpecContext) {
		operators := livePods(ctx, operatorNS, operatorSelector)
		Expect(operators[0].Labels).NotTo(HaveKeyWithValue("app.kubernetes.io/name", defaultName), "the release is not the default one")
		const impostorNS = "np-impostor"
		By("creating impostors: in " + impostorNS + " one with the labels of a default install (app.kubernetes.io/name=" + defaultName +
			") and one with every label of the operator's pod, in " + ns + " another of those, in " + operatorNS + " one of the first kind")
		_, err := kubectl(ctx, "", "create", "namespace", impostorNS)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, err := kubectl(ctx, "", "delete", "namespace", impostorNS, "--wait=false")
			Expect(err).NotTo(HaveOccurred())
		})
		// The labels of the chart's pods under default values (release
		// parser-operator): what the policies used to trust.
		defaultInstall := map[string]string{"app.kubernetes.io/name": defaultName, "app.kubernetes.io/instance": defaultName, "control-plane": "controller-manager"}
		impostors := createImpostors(ctx,
			impostor{impostorNS, "default-name", defaultInstall},
			impostor{impostorNS, "operator-label", operators[0].Labels},
			impostor{ns, "operator-label", operators[0].Labels},
			impostor{operatorNS, "default-name", defaultInstall},
		)

		By("reading every NetworkPolicy and namespace, and the pods, from the API server")
		live, err := readLiveNetwork(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(live.policies).To(ContainElements(ns+"/"+name+"-cache", ns+"/"+name+"-broker"))
		cache := livePods(ctx, ns, cacheSelector)
		Expect(cache).To(HaveLen(6))
		broker := livePods(ctx, ns, "app.kubernetes.io/instance="+name+","+resource.LabelComponent+"="+resource.ComponentBroker)
		platformPods := livePods(ctx, ns, "app.kubernetes.io/instance="+name+","+resource.LabelPartOf+"="+resource.PartOf)
		notCache := podsWhere(platformPods, func(p *corev1.Pod) bool { return p.Labels[resource.LabelComponent] != resource.ComponentCache })
		apps := podsWhere(notCache, func(p *corev1.Pod) bool {
			return slices.Contains([]string{resource.ComponentService, resource.ComponentWorker}, p.Labels[resource.LabelComponent])
		})
		others := podsWhere(notCache, func(p *corev1.Pod) bool {
			return !slices.Contains([]string{resource.ComponentService, resource.ComponentWorker}, p.Labels[resource.LabelComponent])
		})
		GinkgoWriter.Printf("%d NetworkPolicies in %d namespaces; %d operator pod(s), %d cache pods, %d broker pods, %d other platform pods (%d apps), %d impostors\n",
			len(live.policies), len(live.nsLabels), len(operators), len(cache), len(broker), len(notCache), len(apps), len(impostors))

		var tally policyTally
		redis, bus := []int32{resource.RedisPort}, []int32{resource.RedisClusterBus}
		By("(a) the operator's pods reach the cache on the Redis port and the broker's management API, nothing of the cluster bus")
		tally.expect(live, "operator -> cache, Redis port", operators, cache, redis, true)
		tally.expect(live, "operator -> broker, management API", operators, broker, []int32{resource.RabbitManagement}, true)
		tally.expect(live, "operator -> cache, cluster bus", operators, cache, bus, false)
		By("(b) the impostors are refused: the default name, the operator's label outside the operator's namespace")
		tally.expect(live, "impostors -> cache, Redis port and cluster bus", impostors, cache, append(slices.Clone(redis), bus...), false)
		tally.expect(live, "impostors -> broker, management API", impostors, broker, []int32{resource.RabbitManagement}, false)
		By("(c) the platform's other pods: none on the cluster bus; on the Redis port the apps only")
		tally.expect(live, "platform pods but the cache's -> cache, cluster bus", notCache, cache, bus, false)
		tally.expect(live, "apps (services, workers) -> cache, Redis port", apps, cache, redis, true)
		tally.expect(live, "other platform pods -> cache, Redis port", others, cache, redis, false)
		tally.expect(live, "cache -> cache, Redis port and cluster bus", cache, cache, append(slices.Clone(redis), bus...), true)
		GinkgoWriter.Println(tally.String())
		AddReportEntry("live NetworkPolicies judged", fmt.Sprintf("%d pod/port pairs (%d allowed, %d refused)", tally.allowed+tally.refused, tally.allowed, tally.refused))
	})

	It("shows the print columns in kubectl get pp", func(ctx SpecContext) {
		out, err := kubectl(ctx, "", "get", "pp", "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Print(out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(2))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "SHARDS", "CACHE", "AGE"}))
		row := strings.Fields(lines[1])
		Expect(row).To(HaveLen(5))
		Expect(row[:4]).To(Equal([]string{name, "True", "4", "3"}))
	})

	It("exposes metrics that moved as the platform became Ready", func(ctx SpecContext) {
		vk := map[string]string{"namespace": ns, "platform": name}
		with := func(kv ...string) map[string]string {
			m := map[string]string{"namespace": ns, "platform": name}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		// A scrape now, after Ready, into the history too.
		Eventually(func(g Gomega) {
			history, _, _ := rec.recorded()
			g.Expect(history).NotTo(BeEmpty())
			v, ok := history[len(history)-1].value("parser_operator_platform_condition", with("condition", "Ready"))
			g.Expect(ok).To(BeTrue())
			g.Expect(v).To(Equal(1.0))
		}).WithContext(ctx).Should(Succeed())
		history, scrapes, _ := rec.recorded()
		GinkgoWriter.Printf("%d scrapes, %d distinct\n", scrapes, len(history))

		By("parser_operator_platform_condition{condition=\"Ready\"}: 0, then 1")
		firstZero, firstOne := -1, -1
		for i, s := range history {
			v, ok := s.value("parser_operator_platform_condition", with("condition", "Ready"))
			if !ok {
				continue
			}
			if v == 0 && firstZero < 0 {
				firstZero = i
			}
			if v == 1 && firstZero >= 0 && firstOne < 0 {
				firstOne = i
			}
		}
		Expect(firstZero).To(BeNumerically(">=", 0), "no scrape saw the platform not Ready")
		Expect(firstOne).To(BeNumerically(">", firstZero), "no scrape saw it Ready after not Ready")
		GinkgoWriter.Printf("Ready gauge 0 at +%s, 1 at +%s (after kubectl apply)\n",
			history[firstZero].at.Sub(appliedAt).Round(100*time.Millisecond), history[firstOne].at.Sub(appliedAt).Round(100*time.Millisecond))

		By("parser_operator_component_replicas{state=\"ready\"}: rising to the desired replicas")
		var rising []string
		minReady, last := -1.0, -1.0
		for _, s := range history[:firstOne+1] {
			total, n := s.sum("parser_operator_component_replicas", with("state", "ready"))
			if n == 0 {
				continue
			}
			if minReady < 0 || total < minReady {
				minReady = total
			}
			if total != last {
				rising = append(rising, fmt.Sprintf("%g (+%s)", total, s.at.Sub(appliedAt).Round(100*time.Millisecond)))
				last = total
			}
		}
		GinkgoWriter.Printf("ready replicas, all components: %s\n", strings.Join(rising, " -> "))
		final := history[len(history)-1]
		ready, nReady := final.sum("parser_operator_component_replicas", with("state", "ready"))
		desired, nDesired := final.sum("parser_operator_component_replicas", with("state", "desired"))
		Expect(nReady).To(BeNumerically(">", 10), "a series per component")
		Expect(nDesired).To(Equal(nReady))
		Expect(ready).To(Equal(desired))
		Expect(minReady).To(BeNumerically("<", ready), "ready replicas rose during the run")
		for _, c := range []string{"cache", "broker", "db-0", "gateway", "lb", "auth", "worker-parser"} {
			r, ok := final.value("parser_operator_component_replicas", with("component", c, "state", "ready"))
			Expect(ok).To(BeTrue(), "component %s", c)
			d, _ := final.value("parser_operator_component_replicas", with("component", c, "state", "desired"))
			Expect(r).To(And(Equal(d), BeNumerically(">", 0)), "component %s", c)
		}

		By("parser_operator_child_actions_total > 0, shards 4, cache topology steps taken")
		actions, n := final.sum("parser_operator_child_actions_total", vk)
		Expect(n).To(BeNumerically(">", 0))
		Expect(actions).To(BeNumerically(">", 0))
		shards, ok := final.value("parser_operator_platform_shards", vk)
		Expect(ok).To(BeTrue())
		Expect(shards).To(Equal(4.0))
		steps, _ := final.sum("parser_operator_cache_topology_steps_total", vk)
		Expect(steps).To(BeNumerically(">", 0), "the operator formed the cluster itself")
		GinkgoWriter.Printf("child actions %g, cache topology steps %g\n", actions, steps)
	})

	It("dials neither the cache nor the broker for its children's status churn, and reconciles use their settled answers", func(ctx SpecContext) {
		checks := func(server, result string) float64 {
			GinkgoHelper()
			s, err := rec.scrape(ctx)
			Expect(err).NotTo(HaveOccurred())
			v, _ := s.value("parser_operator_server_checks_total", map[string]string{"server": server, "result": result})
			return v
		}
		before := map[string]float64{}
		for _, k := range []string{"cache/dialed", "cache/recalled", "broker/dialed", "broker/recalled"} {
			server, result, _ := strings.Cut(k, "/")
			before[k] = checks(server, result)
		}
		const rounds = 8
		By(fmt.Sprintf("rewriting every HPA's status %d times with new current metrics, as an HPA controller with metrics does", rounds))
		hpas, err := clients.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(hpas.Items).NotTo(BeEmpty())
		for round := range rounds {
			for _, h := range hpas.Items {
				Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
					cur, err := clients.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, h.Name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					cur.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType,
						Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU,
							Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To(int32(20 + 7*round))}}}}
					_, err = clients.AutoscalingV2().HorizontalPodAutoscalers(ns).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
					return err
				})).To(Succeed())
			}
			time.Sleep(500 * time.Millisecond)
		}
		By("three reconciles woken on purpose (an annotation of the platform): they use the settled answers")
		for i := range 3 {
			_, err := kubectl(ctx, "", "annotate", "pp", name, "-n", ns, "--overwrite", fmt.Sprintf("e2e.vkparser.io/wake=%d", i))
			Expect(err).NotTo(HaveOccurred())
			time.Sleep(time.Second)
		}
		Eventually(func() float64 { return checks("cache", "recalled") - before["cache/recalled"] }).WithContext(ctx).
			Should(BeNumerically(">=", 3), "the woken reconciles used the cache's settled answer")
		delta := map[string]float64{}
		for k, v := range before {
			server, result, _ := strings.Cut(k, "/")
			delta[k] = checks(server, result) - v
		}
		GinkgoWriter.Printf("during %d rounds of HPA status churn (%d HPAs): %v\n", rounds, len(hpas.Items), delta)
		AddReportEntry("status churn: server checks", fmt.Sprint(delta))
		// The churn itself wakes no reconcile (statuschurn.go); at most the
		// periodic recheck (every 2 minutes) may fall in the window.
		Expect(delta["cache/dialed"]).To(BeNumerically("<=", 1), "Redis dialed for status events")
		Expect(delta["broker/dialed"]).To(BeNumerically("<=", 1), "the management API dialed for status events")
	})

	It("scales the cache to 4 masters and back to 3, shrinking the StatefulSet only after the slots moved", func(ctx SpecContext) {
		password := cachePassword(ctx)
		seed := fmt.Sprintf("%s-cache-0.%s-cache-headless.%s.svc:6379", name, name, ns)
		const keys = 300
		By(fmt.Sprintf("writing %d keys through a Redis Cluster client", keys))
		rc := cacheClusterClient(ns, cacheSelector, seed, password)
		DeferCleanup(rc.Close)
		for i := range keys {
			Expect(rc.Set(ctx, fmt.Sprintf("user_%d", i), i, 0).Err()).To(Succeed())
		}
		allKeys := func(ctx context.Context) error {
			c := cacheClusterClient(ns, cacheSelector, seed, password)
			defer func() { _ = c.Close() }()
			for i := range keys {
				v, err := c.Get(ctx, fmt.Sprintf("user_%d", i)).Int()
				if err != nil || v != i {
					return fmt.Errorf("user_%d = %d, %w", i, v, err)
				}
			}
			return nil
		}
		patchMasters := func(n int) {
			_, err := kubectl(ctx, "", "patch", "pp", name, "-n", ns, "--type=merge", "-p", fmt.Sprintf(`{"spec":{"cache":{"masters":%d}}}`, n))
			Expect(err).NotTo(HaveOccurred())
		}
		stsReplicas := func(ctx context.Context) (int32, error) {
			s, err := clients.AppsV1().StatefulSets(ns).Get(ctx, name+"-cache", metav1.GetOptions{})
			if err != nil {
				return 0, err
			}
			return ptr.Deref(s.Spec.Replicas, 0), nil
		}

		By("kubectl patch: cache.masters 3 -> 4")
		start := time.Now()
		patchMasters(4)
		readyAt(ctx, platformv1.CacheClusterStatus{Masters: 4, Nodes: 8, SlotsAssigned: 16384, OpenSlots: 0})
		AddReportEntry("cache scale-out 3 -> 4 masters", time.Since(start).Round(100*time.Millisecond).String())
		Expect(stsReplicas(ctx)).To(BeEquivalentTo(8))
		Expect(readyPods(ctx, ns, cacheSelector)).To(HaveLen(8))
		ips, err := podIPs(ctx, ns, cacheSelector)
		Expect(err).NotTo(HaveOccurred())
		for pod, ip := range ips {
			info, err := clusterInfo(ctx, ip, password)
			Expect(err).NotTo(HaveOccurred())
			Expect(info).To(And(HaveKeyWithValue("cluster_state", "ok"), HaveKeyWithValue("cluster_size", "4"),
				HaveKeyWithValue("cluster_known_nodes", "8")), pod)
		}
		Eventually(allKeys).WithContext(ctx).Should(Succeed(), "the keys moved with their slots")

		By("kubectl patch: cache.masters 4 -> 3, watching the StatefulSet")
		ip0 := ips[name+"-cache-0"] // stays through the scale-in
		Expect(ip0).NotTo(BeEmpty())
		sts, err := clients.AppsV1().StatefulSets(ns).Get(ctx, name+"-cache", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		w, err := clients.AppsV1().StatefulSets(ns).Watch(ctx, metav1.ListOptions{
			FieldSelector: "metadata.name=" + name + "-cache", ResourceVersion: sts.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(w.Stop)
		type shrink struct {
			replicas int32
			view     clusterView
			err      error
		}
		shrunk := make(chan shrink, 1)
		go func() {
			defer GinkgoRecover()
			for ev := range w.ResultChan() {
				s, ok := ev.Object.(*appsv1.StatefulSet)
				if !ok || ev.Type != watch.Modified || ptr.Deref(s.Spec.Replicas, 0) >= 8 {
					continue
				}
				// The moment the StatefulSet is told to shrink, what does
				// the cluster look like? The leaving masters must have
				// given away their slots and been forgotten already.
				v, err := clusterNodes(ctx, ip0, password)
				shrunk <- shrink{replicas: ptr.Deref(s.Spec.Replicas, 0), view: v, err: err}
				return
			}
		}()
		start = time.Now()
		patchMasters(3)
		readyAt(ctx, platformv1.CacheClusterStatus{Masters: 3, Nodes: 6, SlotsAssigned: 16384, OpenSlots: 0})
		AddReportEntry("cache scale-in 4 -> 3 masters", time.Since(start).Round(100*time.Millisecond).String())
		var s shrink
		Eventually(shrunk).WithContext(ctx).Should(Receive(&s))
		Expect(s.err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("StatefulSet told to shrink to %d pods when the cluster had %+v\n", s.replicas, s.view)
		Expect(s.replicas).To(BeEquivalentTo(6))
		Expect(s.view).To(Equal(clusterView{nodes: 6, mastersWithSlots: 3}))

		Eventually(func(g Gomega) {
			g.Expect(stsReplicas(ctx)).To(BeEquivalentTo(6))
			g.Expect(podNames(ctx, ns, cacheSelector)).To(HaveLen(6))
		}).WithContext(ctx).Should(Succeed())
		ips, err = podIPs(ctx, ns, cacheSelector)
		Expect(err).NotTo(HaveOccurred())
		for pod, ip := range ips {
			info, err := clusterInfo(ctx, ip, password)
			Expect(err).NotTo(HaveOccurred())
			Expect(info).To(And(HaveKeyWithValue("cluster_state", "ok"), HaveKeyWithValue("cluster_size", "3"),
				HaveKeyWithValue("cluster_known_nodes", "6")), pod)
		}
		Eventually(allKeys).WithContext(ctx).Should(Succeed(), "no key lost in the scale-in")
		out, err := kubectl(ctx, "", "get", "pp", "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Print(out)
	})

	// The data-safety scenarios (datasafety_test.go), on platforms of their
	// own, while this operator runs; the next spec checks its log for them too.
	dataSafetySpecs(func() *operatorProcess { return op })
	// The backup scenarios (backup_test.go): the operator's Jobs run for
	// real, against a real S3 server.
	backupSpecs(func() *operatorProcess { return op })

	It("needed no permission beyond the chart's: no request of the operator was forbidden", func() {
		Expect(op.exited()).To(Succeed())
		data, err := os.ReadFile(op.log)
		Expect(err).NotTo(HaveOccurred())
		errorsByMsg := map[string]int{}
		lines := strings.Split(string(data), "\n")
		for _, line := range lines {
			// A namespace being deleted refuses new objects with a 403
			// too; that is not a missing permission.
			if !strings.Contains(line, "because it is being terminated") {
				Expect(strings.ToLower(line)).NotTo(ContainSubstring("forbidden"))
			}
			if strings.Contains(line, `"level":"error"`) {
				msg, _, _ := strings.Cut(line[strings.Index(line, `"msg":`)+1:], `","`)
				errorsByMsg[msg]++
			}
		}
		// Not a failure (a conflict retried is normal), but worth seeing in CI.
		GinkgoWriter.Printf("operator log: %d lines; error lines by message: %v\n", len(lines), errorsByMsg)
	})

	It("hands over to a second operator when the leader is killed, and the second finishes a change made meanwhile", func(ctx SpecContext) {
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "standby.kubeconfig")
		Expect(cluster.KubeconfigFor(ctx, operatorNS, saName, kubeconfig)).To(Succeed())
		port, err := freePort()
		Expect(err).NotTo(HaveOccurred())
		logPath := filepath.Join(cluster.Dir, "logs", "operator-standby.log")
		By("starting a second operator with the same args and ServiceAccount (log " + logPath + ")")
		standby, err := startOperator(bin, operatorArgs(deploymentArgs, operatorNS, port), kubeconfig, logPath)
		Expect(err).NotTo(HaveOccurred())
		// No cleanup here: it becomes the operator of the next specs (the
		// uninstall spec stops it; the parent-death signal kills it with the suite).

		By("it waits: it tries the Lease and never gets it while the leader runs")
		Eventually(standby.tail).WithArguments(200).WithContext(ctx).Should(ContainSubstring("Attempting to acquire leader lease"))
		Consistently(standby.tail).WithArguments(200).WithTimeout(3 * time.Second).ShouldNot(ContainSubstring("Successfully acquired lease"))
		Expect(standby.tail(200)).NotTo(ContainSubstring("Created child"))

		By("SIGKILL the leader (it cannot release the Lease), then change the spec")
		Expect(syscall.Kill(-op.cmd.Process.Pid, syscall.SIGKILL)).To(Succeed())
		<-op.done
		killed := time.Now()
		_, err = kubectl(ctx, "", "patch", "pp", name, "-n", ns, "--type", "merge",
			"-p", `{"spec":{"gateway":{"image":"registry.example.com/vk-parser/gateway:1.5.0"}}}`)
		Expect(err).NotTo(HaveOccurred())

		By("the second operator takes the Lease once it expires and rolls the change out")
		op = standby
		Eventually(func(g Gomega) {
			alive()
			d, err := clients.AppsV1().Deployments(ns).Get(ctx, name+"-gateway", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.example.com/vk-parser/gateway:1.5.0"))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		Expect(standby.tail(500)).To(ContainSubstring("Successfully acquired lease"))
		GinkgoWriter.Printf("the change was rolled out %s after the leader was killed\n", time.Since(killed).Round(time.Second))
		readyAt(ctx, platformv1.CacheClusterStatus{Nodes: 6, Masters: 3, SlotsAssigned: 16384})

		// Later specs scrape the operator that now leads.
		rec = newMetricsRecorder(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	})

	It("lets the garbage collector remove every child of a deleted platform, and keeps its data volumes", func(ctx SpecContext) {
		children, err := ownedChildren(ctx, ns, uid)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("%d children: %v\n", len(children), kindsOf(children))
		Expect(kindsOf(children)).To(ContainElements("Deployment", "StatefulSet", "Service", "ConfigMap", "Secret",
			"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"))
		Expect(children).To(ContainElements("StatefulSet/vk-cache", "StatefulSet/vk-db-3", "StatefulSet/vk-broker",
			"Deployment/vk-gateway", "ConfigMap/vk-shard-map", "Secret/vk-db-0-credentials"))
		pvcs, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		data := map[string]types.UID{}
		for _, pvc := range pvcs.Items {
			data[pvc.Name] = pvc.UID
		}
		var comps []string
		for n := range data {
			switch {
			case strings.Contains(n, "-vk-db-"):
				comps = append(comps, "db")
			case strings.Contains(n, "-vk-cache-"):
				comps = append(comps, "cache")
			case strings.Contains(n, "-vk-broker-"):
				comps = append(comps, "broker")
			}
		}
		Expect(comps).To(HaveLen(len(data)), "every PVC is a shard's, the cache's or the broker's: %v", data)
		Expect(comps).To(ContainElements("db", "cache", "broker"))
		GinkgoWriter.Printf("%d data PVCs\n", len(data))

		By("kubectl delete pp " + name + " (deletionPolicy Retain, the default)")
		start := time.Now()
		_, err = kubectl(ctx, "", "delete", "pp", name, "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		pr := &progress{start: start}
		Eventually(func(g Gomega) {
			left, err := ownedChildren(ctx, ns, uid)
			g.Expect(err).NotTo(HaveOccurred())
			pods, err := podNames(ctx, ns, "")
			g.Expect(err).NotTo(HaveOccurred())
			pr.report("%d children and %d pods left", len(left), len(pods))
			g.Expect(left).To(BeEmpty())
			g.Expect(pods).To(BeEmpty())
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
		AddReportEntry("garbage collection of the platform's children", time.Since(start).Round(100*time.Millisecond).String())

		By("checking the data PVCs are still there, Bound, owned by nobody")
		pvcs, err = clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pvcs.Items).To(HaveLen(len(data)))
		for _, pvc := range pvcs.Items {
			Expect(data).To(HaveKeyWithValue(pvc.Name, pvc.UID), "the same claim")
			Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound), pvc.Name)
			Expect(pvc.DeletionTimestamp).To(BeNil(), pvc.Name)
			Expect(pvc.OwnerReferences).To(BeEmpty(), pvc.Name)
		}

		By("checking the operator forgot the platform's metrics")
		Eventually(func(g Gomega) {
			s, err := rec.scrape(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.matching("parser_operator_platform_condition", map[string]string{"platform": name})).To(BeEmpty())
			g.Expect(s.matching("parser_operator_component_replicas", map[string]string{"platform": name})).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
	})

	It("helm uninstall removes the operator and leaves the CRD, the remaining platforms and their data", func(ctx SpecContext) {
		By("applying a second, paused platform, which must survive the uninstall")
		sample, err := os.ReadFile(filepath.Join(repoRoot(), "config", "samples", "platform_v1alpha1_parserplatform.yaml"))
		Expect(err).NotTo(HaveOccurred())
		kept := strings.Replace(string(sample), "name: vk\n", "name: kept\n", 1)
		kept = strings.Replace(kept, "spec:\n", "spec:\n  paused: true\n", 1)
		_, err = kubectl(ctx, kept, "apply", "-n", ns, "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			alive()
			p := &platformv1.ParserPlatform{}
			g.Expect(platform.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kept"}, p)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, "Paused")).To(BeTrue(), "the operator saw it")
		}).WithContext(ctx).Should(Succeed())
		pvcsBefore, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("stopping the operator process (helm uninstall deletes its Deployment)")
		op.stop()
		Eventually(func(g Gomega) {
			l, err := clients.CoordinationV1().Leases(operatorNS).Get(ctx, leaseName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ptr.Deref(l.Spec.HolderIdentity, "")).To(BeEmpty(), "released on SIGTERM")
		}).WithContext(ctx).Should(Succeed())

		By("helm uninstall " + release)
		out, err := h.run(ctx, "uninstall", release, "--namespace", operatorNS)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Println(out)
		Eventually(func(g Gomega) {
			_, err := clients.AppsV1().Deployments(operatorNS).Get(ctx, deploymentName, metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Deployment: %v", err)
			_, err = clients.CoreV1().ServiceAccounts(operatorNS).Get(ctx, saName, metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ServiceAccount: %v", err)
			for _, cr := range clusterRoles {
				_, err = clients.RbacV1().ClusterRoles().Get(ctx, cr, metav1.GetOptions{})
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ClusterRole %s: %v", cr, err)
			}
			g.Expect(podNames(ctx, operatorNS, "control-plane=controller-manager")).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
		out, err = h.run(ctx, "list", "--all-namespaces", "--short")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(out)).To(BeEmpty(), "no release left")

		By("checking the CRD, the platform and the data volumes are all still there")
		out, err = kubectl(ctx, "", "get", "crd", "parserplatforms.platform.vkparser.io", "-o", "jsonpath={.metadata.annotations.helm\\.sh/resource-policy}")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal("keep"))
		out, err = kubectl(ctx, "", "get", "pp", "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Print(out)
		Expect(out).To(MatchRegexp(`(?m)^kept\s`))
		pvcs, err := clients.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pvcs.Items).To(HaveLen(len(pvcsBefore.Items)))
		Expect(pvcs.Items).NotTo(BeEmpty())
		for _, pvc := range pvcs.Items {
			Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound), pvc.Name)
		}
	})
})
