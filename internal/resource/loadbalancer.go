package resource

import (
	"bytes"
	_ "embed"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

const (
	// NginxConfKey is the nginx.conf key of the load balancer's ConfigMap.
	NginxConfKey = "nginx.conf"
	// NginxListenPort is where nginx listens inside the pod: unprivileged, so
	// it runs as a non-root user.
	NginxListenPort   int32 = 8080
	nginxConfigDir          = "/etc/nginx/operator"
	nginxConfigVolume       = "config"
	lbName                  = "lb"
)

//go:embed nginx.conf.tmpl
var nginxConfTemplateText string

var nginxConfTemplate = template.Must(template.New("nginx.conf").Parse(nginxConfTemplateText))

// LoadBalancerConfigName is the name of the ConfigMap holding nginx.conf.
func LoadBalancerConfigName(p *platformv1.ParserPlatform) string {
	return Name(p.Name, lbName, "config")
}

// RenderNginxConf renders the load balancer's nginx.conf: nginx in front of
// the gateway's Service, with health and status endpoints, writing only to
// /tmp so the root file system can stay read-only.
func RenderNginxConf(p *platformv1.ParserPlatform) string {
	var buf bytes.Buffer
	err := nginxConfTemplate.Execute(&buf, map[string]any{
		"Platform":    p.Name,
		"Namespace":   p.Namespace,
		"GatewayHost": ServiceHost(p, gatewayName),
		"GatewayPort": p.Spec.GatewayPort(),
		"ListenPort":  NginxListenPort,
	})
	if err != nil { // the template is fixed and its inputs are plain values
		panic(err)
	}
	return buf.String()
}

// LoadBalancerConfigMap holds the generated nginx.conf.
func LoadBalancerConfigMap(p *platformv1.ParserPlatform) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(p, LoadBalancerConfigName(p), lbName, ComponentLoadBalancer),
		Data:       map[string]string{NginxConfKey: RenderNginxConf(p)},
	}
}

func loadBalancerChildren(p *platformv1.ParserPlatform) []client.Object {
	meta := objectMeta(p, Name(p.Name, lbName), lbName, ComponentLoadBalancer)
	return []client.Object{
		loadBalancerService(p, meta),
		loadBalancerDeployment(p, meta),
		podDisruptionBudget(meta, SelectorLabels(p, lbName)),
	}
}

func loadBalancerService(p *platformv1.ParserPlatform, meta metav1.ObjectMeta) *corev1.Service {
	lb := p.Spec.LoadBalancer
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceType(orString(string(lb.ServiceType), string(corev1.ServiceTypeLoadBalancer))),
			Selector: SelectorLabels(p, lbName),
			Ports: []corev1.ServicePort{{
				Name: "http", Port: orInt32(lb.Port, 80), TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

func loadBalancerDeployment(p *platformv1.ParserPlatform, meta metav1.ObjectMeta) *appsv1.Deployment {
	lb := p.Spec.LoadBalancer
	selector := SelectorLabels(p, lbName)
	health := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "/healthz", Port: intstr.FromString("http"),
	}}, PeriodSeconds: 10}
	container := corev1.Container{
		Name:  "nginx",
		Image: orString(lb.Image, "nginxinc/nginx-unprivileged:1.27-alpine"),
		// Run nginx directly: the image's entrypoint scripts rewrite files
		// under /etc/nginx, which the read-only root file system forbids.
		Command:         []string{"nginx", "-c", nginxConfigDir + "/" + NginxConfKey, "-g", "daemon off;"},
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: NginxListenPort, Protocol: corev1.ProtocolTCP}},
		Resources:       withDefaultRequests(lb.Resources),
		SecurityContext: restrictedContainerSecurityContext(),
		ReadinessProbe:  health,
		LivenessProbe:   health.DeepCopy(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: nginxConfigVolume, MountPath: nginxConfigDir, ReadOnly: true},
			{Name: tmpVolumeName, MountPath: "/tmp"},
		},
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(orInt32(lb.Replicas, 2)),
			Selector: labelSelector(selector),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      Labels(p, lbName, ComponentLoadBalancer),
					Annotations: map[string]string{AnnotationConfigHash: ConfigHash(LoadBalancerConfigMap(p).Data)},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName:           ServiceAccountName(p),
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext:              restrictedPodSecurityContext(NginxUID),
					TopologySpreadConstraints:    spreadAcrossNodes(selector),
					Containers:                   append([]corev1.Container{container}, restrictedSidecars(nginxExporter(p))...),
					Volumes: []corev1.Volume{
						configMapVolume(nginxConfigVolume, LoadBalancerConfigName(p)),
						tmpVolume(),
					},
				},
			},
		},
	}
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func orInt32(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}
