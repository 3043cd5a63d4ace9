package resource

import (
	"strconv"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

const registryVolumeName = "registry"

// ServiceAccountName is the account every pod of the platform runs as. It
// gets no API token: the platform's apps do not talk to Kubernetes.
func ServiceAccountName(p *platformv1.ParserPlatform) string { return Name(p.Name) }

// ServiceAccount is the platform pods' identity.
func ServiceAccount(p *platformv1.ParserPlatform) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   objectMeta(p, ServiceAccountName(p), "platform", "platform"),
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// serviceWorkloads are the spec's services followed by the gateway: both read
// the registry and are scaled the same way.
func serviceWorkloads(p *platformv1.ParserPlatform) []*appWorkload {
	registryHash := ConfigHash(RegistryConfigMap(p).Data)
	mounts := []corev1.VolumeMount{{Name: registryVolumeName, MountPath: RegistryMountPath, ReadOnly: true}}
	volumes := []corev1.Volume{configMapVolume(registryVolumeName, RegistryName(p))}

	var out []*appWorkload
	for i := range p.Spec.Services {
		s := &p.Spec.Services[i]
		out = append(out, &appWorkload{
			platform: p, name: s.Name, component: ComponentService,
			image: s.Image, port: s.Port, env: s.Env, resources: s.Resources, replicas: s.Replicas,
			autoscaling: p.Spec.AutoscalingFor(s.Autoscaling),
			configHash:  registryHash, volumes: volumes, mounts: mounts,
		})
	}
	g := &p.Spec.Gateway
	out = append(out, &appWorkload{
		platform: p, name: "gateway", component: ComponentGateway,
		image: g.Image, port: p.Spec.GatewayPort(), env: g.Env, resources: g.Resources, replicas: g.Replicas,
		autoscaling: p.Spec.AutoscalingFor(g.Autoscaling),
		configHash:  registryHash, volumes: volumes, mounts: mounts,
	})
	return out
}

// appChildren are the children of app workloads in dependency order:
// Services, then Deployments, then HPAs and PDBs.
func appChildren(workloads []*appWorkload) []client.Object {
	var services, deployments, rest []client.Object
	for _, w := range workloads {
		if w.port != 0 {
			services = append(services, w.Service())
		}
		deployments = append(deployments, w.Deployment())
		if w.autoscaling.Enabled {
			rest = append(rest, w.HPA())
		}
		rest = append(rest, w.PDB())
	}
	return slices.Concat(services, deployments, rest)
}

// Children is every child of the platform that the stateless tier needs, in
// the order they are created: identity and configuration first, then the
// Services the workloads are reached by, then the workloads, then what acts on
// the workloads (HPAs, PDBs).
func Children(p *platformv1.ParserPlatform) []client.Object {
	return slices.Concat(
		[]client.Object{ServiceAccount(p), RegistryConfigMap(p), LoadBalancerConfigMap(p)},
		appChildren(serviceWorkloads(p)),
		loadBalancerChildren(p),
	)
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func slicesClone[T any](s []T) []T { return slices.Clone(s) }
