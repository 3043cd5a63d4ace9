package resource

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// longPlatform has names long enough to be shortened, so the tests below
// catch a builder that names a Service one way and refers to it another.
func longPlatform() *platformv1.ParserPlatform {
	p := samplePlatform()
	p.Name = "p" + strings.Repeat("x", 44)
	p.Spec.Services[0].Name = "s" + strings.Repeat("y", 29)
	return p
}

// serviceAddresses are the "<name>.<namespace>.svc:<http port>" of the child Services.
func serviceAddresses(objs []client.Object) map[string]bool {
	out := map[string]bool{}
	for _, o := range objs {
		if s, ok := o.(*corev1.Service); ok {
			for _, port := range s.Spec.Ports {
				if port.Name == "http" {
					out[fmt.Sprintf("%s.%s.svc:%d", s.Name, s.Namespace, port.Port)] = true
				}
			}
		}
	}
	return out
}

// TestRegistryPointsAtServices: every URL in services.json is the address of
// a Service among the children, and every service of the spec is listed.
func TestRegistryPointsAtServices(t *testing.T) {
	for name, p := range map[string]*platformv1.ParserPlatform{"sample": samplePlatform(), "long names": longPlatform()} {
		t.Run(name, func(t *testing.T) {
			addresses := serviceAddresses(Children(p, testCredentials))
			var doc struct {
				Gateway  string            `json:"gateway"`
				Services map[string]string `json:"services"`
			}
			if err := json.Unmarshal([]byte(RenderRegistry(p)), &doc); err != nil {
				t.Fatalf("services.json is not JSON: %v", err)
			}
			if len(doc.Services) != len(p.Spec.Services) {
				t.Errorf("registry lists %d services, the spec %d", len(doc.Services), len(p.Spec.Services))
			}
			check := func(what, raw string) {
				u, err := url.Parse(raw)
				if err != nil || u.Scheme != "http" {
					t.Errorf("%s: %q is not an http URL", what, raw)
					return
				}
				if !addresses[u.Host] {
					t.Errorf("%s: %s is no Service's address; Services: %v", what, u.Host, keysOf(addresses))
				}
			}
			check("gateway", doc.Gateway)
			for _, s := range p.Spec.Services {
				raw, ok := doc.Services[s.Name]
				if !ok {
					t.Errorf("service %s is not in the registry", s.Name)
					continue
				}
				check(s.Name, raw)
			}
		})
	}
}

// TestLoadBalancerRunsTheGeneratedConf: nginx is started on the mounted
// nginx.conf, listens on the port its container and Service use, and proxies
// to the gateway's Service.
func TestLoadBalancerRunsTheGeneratedConf(t *testing.T) {
	for name, p := range map[string]*platformv1.ParserPlatform{"sample": samplePlatform(), "long names": longPlatform()} {
		t.Run(name, func(t *testing.T) {
			children := Children(p, testCredentials)
			conf := RenderNginxConf(p)
			d := find[*appsv1.Deployment](t, children, Name(p.Name, "lb"))
			spec := d.Spec.Template.Spec
			// nginx first; the exporter sidecar (monitoring_exporters.go) after it.
			if len(spec.Containers) == 0 || spec.Containers[0].Name != "nginx" {
				t.Fatalf("containers %v, want nginx first", spec.Containers)
			}
			c := spec.Containers[0]

			// -c <file>: the file must be the ConfigMap's nginx.conf key, mounted.
			confPath := ""
			for i, arg := range c.Command {
				if arg == "-c" && i+1 < len(c.Command) {
					confPath = c.Command[i+1]
				}
			}
			var mounted bool
			for _, m := range c.VolumeMounts {
				for _, v := range spec.Volumes {
					if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == LoadBalancerConfigName(p) &&
						confPath == m.MountPath+"/"+NginxConfKey {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Errorf("nginx runs %q (command %v), which is not %s of ConfigMap %s as mounted", confPath, c.Command, NginxConfKey, LoadBalancerConfigName(p))
			}

			listen := regexp.MustCompile(`(?m)^\s*listen\s+(\d+);`).FindStringSubmatch(conf)
			if listen == nil || len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != listen[1] {
				t.Errorf("nginx.conf listens on %v, the container exposes %+v", listen, c.Ports)
			}

			upstream := regexp.MustCompile(`(?m)^\s*server\s+(\S+:\d+)\s`).FindStringSubmatch(conf)
			if upstream == nil || !serviceAddresses(children)[upstream[1]] {
				t.Errorf("nginx.conf proxies to %v, which is no Service's address", upstream)
			} else if want := ServiceHost(p, "gateway"); !strings.HasPrefix(upstream[1], want+":") {
				t.Errorf("nginx.conf proxies to %s, want the gateway %s", upstream[1], want)
			}
		})
	}
}
