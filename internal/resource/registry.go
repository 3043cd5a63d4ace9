package resource

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// RegistryName is the service registry ConfigMap's name.
func RegistryName(p *platformv1.ParserPlatform) string { return Name(p.Name, "registry") }

// RegistryConfigMap is the services' ServiceRegistry (docs/architecture.md,
// "Services") as data: services.json maps each service name to its in-cluster
// URL, and the gateway finds services in it. Every service and the gateway
// mount it.
func RegistryConfigMap(p *platformv1.ParserPlatform) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(p, RegistryName(p), "registry", ComponentRegistry),
		Data:       map[string]string{RegistryFileKey: RenderRegistry(p)},
	}
}

// RenderRegistry renders services.json: {"services": {"auth": "http://...", ...}}
// with keys sorted, so the same spec always gives the same bytes (and hash).
func RenderRegistry(p *platformv1.ParserPlatform) string {
	services := map[string]string{}
	for _, s := range p.Spec.Services {
		services[s.Name] = ServiceURL(p, s.Name, s.Port)
	}
	doc := struct {
		Gateway  string            `json:"gateway"`
		Services map[string]string `json:"services"`
	}{Gateway: ServiceURL(p, gatewayName, p.Spec.GatewayPort()), Services: services}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil { // maps of strings always marshal
		panic(err)
	}
	return string(out) + "\n"
}

// ServiceURL is how pods reach a workload's Service: its namespace-qualified
// DNS name, which resolves without depending on the cluster domain.
func ServiceURL(p *platformv1.ParserPlatform, name string, port int32) string {
	return fmt.Sprintf("http://%s:%d", ServiceHost(p, name), port)
}

// ServiceHost is the DNS name of a workload's Service.
func ServiceHost(p *platformv1.ParserPlatform, name string) string {
	return fmt.Sprintf("%s.%s.svc", Name(p.Name, name), p.Namespace)
}
