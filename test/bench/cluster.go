package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// operatorUser is who the operator (and the plain client loop) runs as: a
// service account identity, bound to config/rbac/role.yaml only. So RBAC is
// the one the operator ships with, and API Priority and Fairness treats it as
// it would in a cluster (the "service-accounts" flow schema, workload-low);
// system:masters would be exempt and could never see a 429.
var operatorUser = envtest.User{
	Name:   "system:serviceaccount:parser-operator-system:parser-operator-controller-manager",
	Groups: []string{"system:serviceaccounts", "system:serviceaccounts:parser-operator-system", "system:authenticated"},
}

// cluster is the benchmark's control plane: kube-apiserver and etcd from the
// envtest binaries, with the ParserPlatform CRD installed.
type cluster struct {
	env *envtest.Environment
	// admin is system:masters: kubectl (the user's baseline) and the
	// benchmark's own reads and setup.
	admin           *rest.Config
	adminKubeconfig string
	// operator is operatorUser: the operator process and the plain loop.
	operator           *rest.Config
	operatorKubeconfig string
	adminClient        client.Client
	operatorClient     client.Client
	kube               kubernetes.Interface
	// ownWrites counts the benchmark's own write requests, to subtract them
	// from the API server's counts.
	ownWrites *writeCounter
}

func startCluster(ctx context.Context, work, crds, rbac, serviceRange string) (*cluster, error) {
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceRange)
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c := &cluster{env: env, ownWrites: &writeCounter{counts: map[string]int{}}}
	if err := c.setUp(ctx, work, rbac); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) setUp(ctx context.Context, work, rbac string) error {
	var err error
	if c.admin, c.adminKubeconfig, err = c.addUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, filepath.Join(work, "admin.kubeconfig")); err != nil {
		return err
	}
	if c.operator, c.operatorKubeconfig, err = c.addUser(operatorUser, filepath.Join(work, "operator.kubeconfig")); err != nil {
		return err
	}
	if c.adminClient, err = c.newClient(c.admin); err != nil {
		return err
	}
	if c.operatorClient, err = c.newClient(c.operator); err != nil {
		return err
	}
	if c.kube, err = kubernetes.NewForConfig(unthrottled(c.admin)); err != nil {
		return err
	}
	return c.bindOperatorRole(ctx, rbac)
}

func (c *cluster) addUser(u envtest.User, path string) (*rest.Config, string, error) {
	user, err := c.env.ControlPlane.AddUser(u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("adding user %s: %w", u.Name, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, "", err
	}
	return user.Config(), path, nil
}

// unthrottled lifts client-go's client-side rate limit: the benchmark's
// clients must never be the bottleneck.
func unthrottled(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.QPS, out.Burst = -1, 0
	out.UserAgent = "parser-operator-bench"
	return out
}

func (c *cluster) newClient(cfg *rest.Config) (client.Client, error) {
	counted := unthrottled(cfg)
	counted.Wrap(c.ownWrites.wrap)
	return client.New(counted, client.Options{Scheme: scheme})
}

// bindOperatorRole installs the operator's generated ClusterRole and binds
// operatorUser to it, as config/default does for the service account.
func (c *cluster) bindOperatorRole(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(data, []byte("---\n")), role); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "parser-operator-bench"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: operatorUser.Name}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := c.adminClient.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	return nil
}

func (c *cluster) createNamespaces(ctx context.Context, names ...string) error {
	for _, ns := range names {
		if err := c.adminClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return nil
}

func (c *cluster) stop() {
	if err := c.env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: stopping the control plane:", err)
	}
}

// apiserverMetrics scrapes the API server's own /metrics as admin.
func (c *cluster) apiserverMetrics(ctx context.Context) (families, error) {
	body, err := c.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").
		SetHeader("Accept", "text/plain;version=0.0.4").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scraping the API server's metrics: %w", err)
	}
	return parseMetrics(bytes.NewReader(body))
}

// writeVerbs are what apiserver_request_total calls a write.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// writeKey names a row of apiserver_request_total for writes:
// "VERB group/resource[/subresource] code".
type writes map[string]float64

// apiserverWrites reads the API server's write counters.
func (c *cluster) apiserverWrites(ctx context.Context) (writes, error) {
	f, err := c.apiserverMetrics(ctx)
	if err != nil {
		return nil, err
	}
	out := writes{}
	if mf, ok := f["apiserver_request_total"]; ok {
		for _, m := range mf.GetMetric() {
			l := labelsOf(m)
			if !writeVerbs[l["verb"]] {
				continue
			}
			out[writeRow(l["verb"], l["group"], l["resource"], l["subresource"], l["code"])] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

func writeRow(verb, group, resource, subresource, code string) string {
	r := resource
	if group != "" {
		r = group + "/" + resource
	}
	if subresource != "" {
		r += "/" + subresource
	}
	return fmt.Sprintf("%s %s %s", verb, r, code)
}

// minus is the writes made since earlier.
func (w writes) minus(earlier writes) writes {
	out := writes{}
	for k, v := range w {
		if d := v - earlier[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// apiServerInternal is what the API server writes by itself: its identity
// lease (every 10 s), and the IPAddress object it makes for every ClusterIP
// it allocates (as much for the plain loop's Services as for the
// operator's). The operator never writes leases (leader election is off)
// nor IPAddresses.
func apiServerInternal(row string) bool {
	return strings.Contains(row, " coordination.k8s.io/leases ") || strings.Contains(row, " networking.k8s.io/ipaddresses ")
}

// operatorWrites are the writes left once the benchmark's own (counted by
// its client) and the API server's internal ones are taken out.
func (w writes) operatorWrites(own map[string]int) (total float64, rows []string) {
	left := writes{}
	for k, v := range w {
		if !apiServerInternal(k) {
			left[k] = v
		}
	}
	for verbResource, n := range own {
		// The benchmark's requests succeed with 201 (create); take them
		// from any code of that verb and resource, largest first.
		for _, code := range []string{"201", "200", "409"} {
			k := verbResource + " " + code
			take := min(left[k], float64(n))
			left[k] -= take
			n -= int(take)
		}
	}
	for k, v := range left {
		if v > 0 {
			total += v
			rows = append(rows, fmt.Sprintf("%s: %.0f", k, v))
		}
	}
	sort.Strings(rows)
	return total, rows
}

// writeCounter counts the requests of the benchmark's clients that write,
// by "VERB group/resource".
type writeCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet {
			w.mu.Lock()
			w.counts[requestRow(req)]++
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// snapshot copies the counts so far.
func (w *writeCounter) snapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.counts))
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

// since is the counts made after an earlier snapshot.
func (w *writeCounter) since(earlier map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range w.snapshot() {
		if d := v - earlier[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// requestRow turns a request path into the "VERB group/resource" of
// apiserver_request_total: /api/v1/namespaces/x/configmaps -> "POST configmaps",
// /apis/platform.vkparser.io/v1alpha1/namespaces/x/parserplatforms ->
// "POST platform.vkparser.io/parserplatforms", .../deployments/d/status ->
// "PUT apps/deployments/status".
func requestRow(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	group, rest := "", parts
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, rest = parts[1], parts[3:]
	}
	if len(rest) >= 2 && rest[0] == "namespaces" && len(rest) > 2 {
		rest = rest[2:]
	}
	resource := ""
	if len(rest) > 0 {
		resource = rest[0]
	}
	if len(rest) > 2 { // <resource>/<name>/<subresource>: status updates
		resource += "/" + rest[2]
	}
	if group != "" {
		resource = group + "/" + resource
	}
	verb := req.Method
	if verb == http.MethodPatch && req.Header.Get("Content-Type") == "application/apply-patch+yaml" {
		verb = "APPLY"
	}
	return verb + " " + resource
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
