package resource

import (
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// The UID and GID app containers run as. Pod Security "restricted" needs a
// non-root user; a numeric one lets the kubelet verify it even when the image
// names its user by name.
const (
	AppUID int64 = 10001
	// NginxUID is the user nginxinc/nginx-unprivileged images are built for.
	NginxUID int64 = 101
)

// Paths where app containers find the configuration the operator writes.
const (
	RegistryMountPath = "/etc/vk-parser/registry"
	RegistryFileKey   = "services.json"
	tmpVolumeName     = "tmp"
)

// Default requests: an HPA utilisation target is a percentage of the request,
// so a container without one could never be autoscaled.
var (
	DefaultCPURequest    = apiresource.MustParse("100m")
	DefaultMemoryRequest = apiresource.MustParse("128Mi")
)

// withDefaultRequests returns r with CPU and memory requests filled in where
// the user gave none (and no limit either, which the API server would copy).
func withDefaultRequests(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	out := *r.DeepCopy()
	if out.Requests == nil {
		out.Requests = corev1.ResourceList{}
	}
	for name, def := range map[corev1.ResourceName]apiresource.Quantity{
		corev1.ResourceCPU:    DefaultCPURequest,
		corev1.ResourceMemory: DefaultMemoryRequest,
	} {
		if _, ok := out.Requests[name]; ok {
			continue
		}
		if limit, ok := out.Limits[name]; ok {
			out.Requests[name] = limit
			continue
		}
		out.Requests[name] = def
	}
	return out
}

// restrictedPodSecurityContext satisfies Pod Security "restricted" at the pod
// level: non-root, the runtime's default seccomp profile.
func restrictedPodSecurityContext(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To(uid),
		RunAsGroup:     ptr.To(uid),
		FSGroup:        ptr.To(uid),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// restrictedContainerSecurityContext satisfies "restricted" at the container
// level and makes the root file system read-only; writable paths are
// emptyDirs.
func restrictedContainerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// instanceEnv is what every app container gets: INSTANCE_ID is the pod name,
// from the downward API, so that each replica has its own instance id, as
// each backend of the services had in their Docker Compose setup.
func instanceEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		fieldEnv("INSTANCE_ID", "metadata.name"),
		fieldEnv("POD_NAMESPACE", "metadata.namespace"),
	}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: path},
	}}
}

// configMapVolume mounts a ConfigMap read-only.
func configMapVolume(volumeName, configMapName string) corev1.Volume {
	return corev1.Volume{Name: volumeName, VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMapName}},
	}}
}

// tmpVolume is the writable scratch space a read-only root file system needs.
func tmpVolume() corev1.Volume {
	return corev1.Volume{Name: tmpVolumeName, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(apiresource.MustParse("256Mi"))},
	}}
}

// spreadAcrossNodes asks the scheduler to spread a workload's pods over
// nodes, without refusing to schedule when it cannot.
func spreadAcrossNodes(selector map[string]string) []corev1.TopologySpreadConstraint {
	return []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       corev1.LabelHostname,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector:     labelSelector(selector),
	}}
}
