package resource

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// appWorkload is what a service, the gateway and a queue worker have in
// common: a stateless Deployment of one app container, maybe behind a
// Service, maybe scaled by an HPA. Each part of the spec is turned into one,
// and the same four builders make its children.
type appWorkload struct {
	platform    *platformv1.ParserPlatform
	name        string // identity inside the platform: "auth", "gateway", ...
	component   string
	image       string
	port        int32 // 0: no Service, no port
	command     []string
	args        []string
	env         []corev1.EnvVar
	resources   corev1.ResourceRequirements
	replicas    *int32 // used when autoscaling is off
	autoscaling platformv1.EffectiveAutoscaling
	config      appConfig // what the platform provides it
	gracePeriod *int64
}

func (w *appWorkload) childName() string { return Name(w.platform.Name, w.name) }

func (w *appWorkload) labels() map[string]string { return Labels(w.platform, w.name, w.component) }

func (w *appWorkload) meta() metav1.ObjectMeta {
	return objectMeta(w.platform, w.childName(), w.name, w.component)
}

// defaultReplicas is the CRD's default replicas of a component: 2 for
// services and the gateway, 1 for everything else (queue workers). A platform
// that never went through the API server (the render subcommand, unit tests)
// must get the same Deployment as one that did.
func defaultReplicas(component string) int32 {
	switch component {
	case ComponentService, ComponentGateway:
		return 2
	default:
		return 1
	}
}

// Replicas a new Deployment starts with: the HPA's minimum when one owns the
// workload (the operator never writes replicas back afterwards), else the spec.
func (w *appWorkload) initialReplicas() *int32 {
	if w.autoscaling.Enabled {
		return ptr.To(w.autoscaling.MinReplicas)
	}
	return ptr.To(ptr.Deref(w.replicas, defaultReplicas(w.component)))
}

func (w *appWorkload) Deployment() *appsv1.Deployment {
	selector := SelectorLabels(w.platform, w.name)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: w.meta(),
		Spec: appsv1.DeploymentSpec{
			Replicas: w.initialReplicas(),
			Selector: labelSelector(selector),
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				// Never go below the current capacity during a rollout.
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("25%")),
				},
			},
			Template: w.podTemplate(selector),
		},
	}
}

func (w *appWorkload) podTemplate(selector map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      w.labels(),
			Annotations: map[string]string{AnnotationConfigHash: w.config.hash},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:            ServiceAccountName(w.platform),
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext:               restrictedPodSecurityContext(AppUID),
			TerminationGracePeriodSeconds: w.gracePeriod,
			TopologySpreadConstraints:     spreadAcrossNodes(selector),
			Containers:                    []corev1.Container{w.container()},
			Volumes:                       append(slicesClone(w.config.volumes), tmpVolume()),
		},
	}
}

func (w *appWorkload) container() corev1.Container {
	c := corev1.Container{
		Name:            w.name,
		Image:           w.image,
		Command:         w.command,
		Args:            w.args,
		Env:             append(append(instanceEnv(), w.platformEnv()...), w.env...),
		Resources:       withDefaultRequests(w.resources),
		SecurityContext: restrictedContainerSecurityContext(),
		VolumeMounts:    append(slicesClone(w.config.mounts), corev1.VolumeMount{Name: tmpVolumeName, MountPath: "/tmp"}),
		Ports: []corev1.ContainerPort{{
			Name: "metrics", ContainerPort: w.platform.Spec.MetricsPort(), Protocol: corev1.ProtocolTCP,
		}},
	}
	if w.port != 0 {
		c.Ports = append([]corev1.ContainerPort{{Name: "http", ContainerPort: w.port, Protocol: corev1.ProtocolTCP}}, c.Ports...)
		probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")},
		}, PeriodSeconds: 10}
		c.ReadinessProbe = probe
		c.LivenessProbe = probe.DeepCopy()
		c.LivenessProbe.InitialDelaySeconds = 15
	}
	return c
}

// platformEnv points the app at what the platform provides it.
func (w *appWorkload) platformEnv() []corev1.EnvVar {
	env := slicesClone(w.config.env)
	if w.port != 0 {
		env = append(env, corev1.EnvVar{Name: "PORT", Value: itoa(w.port)})
	}
	return env
}

func (w *appWorkload) Service() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: w.meta(),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: SelectorLabels(w.platform, w.name),
			Ports: []corev1.ServicePort{
				{Name: "http", Port: w.port, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Port: w.platform.Spec.MetricsPort(), TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// HPA scales the Deployment on CPU and, unless turned off, memory, with the
// scale-down stabilisation window of the spec and a cautious scale-down policy
// (half the pods a minute at most) against flapping.
func (w *appWorkload) HPA() *autoscalingv2.HorizontalPodAutoscaler {
	a := w.autoscaling
	metrics := []autoscalingv2.MetricSpec{utilisationMetric(corev1.ResourceCPU, a.TargetCPUUtilization)}
	if a.TargetMemoryUtilization > 0 {
		metrics = append(metrics, utilisationMetric(corev1.ResourceMemory, a.TargetMemoryUtilization))
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: w.meta(),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1", Kind: "Deployment", Name: w.childName(),
			},
			MinReplicas: ptr.To(a.MinReplicas),
			MaxReplicas: a.MaxReplicas,
			Metrics:     metrics,
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To(a.ScaleDownStabilizationSeconds),
					SelectPolicy:               ptr.To(autoscalingv2.MinChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PercentScalingPolicy, Value: 50, PeriodSeconds: 60},
						{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60},
					},
				},
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](0),
					SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 30},
						{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 30},
					},
				},
			},
		},
	}
}

func utilisationMetric(name corev1.ResourceName, percent int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name: name,
			Target: autoscalingv2.MetricTarget{
				Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(percent),
			},
		},
	}
}

// PDB lets voluntary disruptions (node drains) take one pod at a time; with
// maxUnavailable rather than minAvailable a single-replica workload can still
// be drained.
func (w *appWorkload) PDB() *policyv1.PodDisruptionBudget {
	return podDisruptionBudget(w.meta(), SelectorLabels(w.platform, w.name))
}

func podDisruptionBudget(meta metav1.ObjectMeta, selector map[string]string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta,
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       labelSelector(selector),
		},
	}
}

func labelSelector(l map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: l}
}
