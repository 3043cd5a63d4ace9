package resource

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// dataVolumeName is the volume claim template of every stateful component.
const dataVolumeName = "data"

// statefulWorkload is what the shards, the cache and the broker have in
// common: a StatefulSet with one data volume per pod, behind a headless
// Service that gives each pod a stable DNS name.
type statefulWorkload struct {
	platform    *platformv1.ParserPlatform
	name        string // identity inside the platform: "db-0", "cache", "broker"
	component   string
	replicas    int32
	serviceName string // the governing headless Service
	storage     platformv1.StorageSpec
	defaultSize string
	uid         int64 // the image's own non-root user
	gracePeriod int64
	configHash  string
	container   corev1.Container
	sidecars    []corev1.Container // exporters: restricted, like the container
	volumes     []corev1.Volume
}

// StatefulSet builds the workload. PVCs are retained when the StatefulSet is
// scaled down or deleted: only the operator deletes data volumes, and only
// when the platform's deletionPolicy says so.
func (s *statefulWorkload) StatefulSet() *appsv1.StatefulSet {
	selector := SelectorLabels(s.platform, s.name)
	c := s.container
	c.SecurityContext = restrictedContainerSecurityContext()
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: tmpVolumeName, MountPath: "/tmp"})
	meta := objectMeta(s.platform, StatefulSetName(s.platform.Name, s.name), s.name, s.component)
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta,
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(s.replicas),
			Selector:            labelSelector(selector),
			ServiceName:         s.serviceName,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      Labels(s.platform, s.name, s.component),
					Annotations: map[string]string{AnnotationConfigHash: s.configHash},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName:            ServiceAccountName(s.platform),
					AutomountServiceAccountToken:  ptr.To(false),
					SecurityContext:               restrictedPodSecurityContext(s.uid),
					TerminationGracePeriodSeconds: ptr.To(s.gracePeriod),
					TopologySpreadConstraints:     spreadAcrossNodes(selector),
					Containers:                    append([]corev1.Container{c}, restrictedSidecars(s.sidecars)...),
					Volumes:                       append(slicesClone(s.volumes), tmpVolume()),
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{s.volumeClaimTemplate()},
		},
	}
}

// volumeClaimTemplate carries the platform's labels, so the PVCs the
// StatefulSet controller makes from it can be found (and, with
// deletionPolicy Delete, deleted) by the operator.
func (s *statefulWorkload) volumeClaimTemplate() corev1.PersistentVolumeClaim {
	size := apiresource.MustParse(s.defaultSize)
	if s.storage.Size != nil {
		size = *s.storage.Size
	}
	return corev1.PersistentVolumeClaim{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   dataVolumeName,
			Labels: Labels(s.platform, s.name, s.component),
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: s.storage.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

// headlessService gives each pod of a StatefulSet a DNS name
// (<pod>.<service>.<namespace>.svc).
func headlessService(p *platformv1.ParserPlatform, serviceName, name, component string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(p, serviceName, name, component),
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: corev1.ClusterIPNone,
			Selector:  SelectorLabels(p, name),
			Ports:     ports,
			// Cluster members must find each other before they are ready.
			PublishNotReadyAddresses: true,
		},
	}
}

// secret builds an Opaque Secret of the platform.
func secret(p *platformv1.ParserPlatform, secretName, name, component string, data map[string]string) *corev1.Secret {
	bytes := make(map[string][]byte, len(data))
	for k, v := range data {
		bytes[k] = []byte(v)
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(p, secretName, name, component),
		Type:       corev1.SecretTypeOpaque,
		Data:       bytes,
	}
}

func secretEnv(name, secretName, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secretName}, Key: key,
	}}}
}

func servicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstrFromString(name), Protocol: corev1.ProtocolTCP}
}

func intstrFromString(s string) intstr.IntOrString { return intstr.FromString(s) }
