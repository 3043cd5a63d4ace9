package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// observe reads the children's own status from the cache: what the status
// package turns into conditions.
func (r *ParserPlatformReconciler) observe(ctx context.Context, p *platformv1.ParserPlatform) (status.Observed, error) {
	o := status.Observed{Generation: p.Generation, Paused: p.Spec.Paused}
	var errs []error
	for _, ref := range resource.Workloads(p) {
		w, err := r.observeWorkload(ctx, p.Namespace, ref)
		errs = append(errs, err, o.Add(ref.Area, w))
	}
	address, err := r.loadBalancerAddress(ctx, p)
	o.LoadBalancerAddress = address
	return o, errors.Join(append(errs, err)...)
}

// observeWorkload reads one workload of the registry.
func (r *ParserPlatformReconciler) observeWorkload(ctx context.Context, namespace string, ref resource.WorkloadRef) (status.Workload, error) {
	if ref.Kind == "StatefulSet" {
		return r.observeStatefulSet(ctx, namespace, ref.Component, ref.Name)
	}
	return r.observeDeployment(ctx, namespace, ref.Component, ref.Name)
}

func (r *ParserPlatformReconciler) observeDeployment(ctx context.Context, namespace, component, name string) (status.Workload, error) {
	d := &appsv1.Deployment{}
	w := status.Workload{Name: component, Kind: "Deployment"}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d)
	if apierrors.IsNotFound(err) {
		return w, nil
	}
	if err != nil {
		return w, fmt.Errorf("reading Deployment %s: %w", name, err)
	}
	w.Found = true
	w.Generation, w.ObservedGeneration = d.Generation, d.Status.ObservedGeneration
	w.Desired = ptr.Deref(d.Spec.Replicas, 1)
	w.Updated, w.Ready, w.Available = d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			w.Stalled = true
		}
	}
	return w, nil
}

func (r *ParserPlatformReconciler) observeStatefulSet(ctx context.Context, namespace, component, name string) (status.Workload, error) {
	s := &appsv1.StatefulSet{}
	w := status.Workload{Name: component, Kind: "StatefulSet"}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return w, nil
	}
	if err != nil {
		return w, fmt.Errorf("reading StatefulSet %s: %w", name, err)
	}
	w.Found = true
	w.Generation, w.ObservedGeneration = s.Generation, s.Status.ObservedGeneration
	w.Desired = ptr.Deref(s.Spec.Replicas, 1)
	w.Updated, w.Ready, w.Available = s.Status.UpdatedReplicas, s.Status.ReadyReplicas, s.Status.AvailableReplicas
	return w, nil
}

// loadBalancerAddress is the external address of a LoadBalancer Service once
// the cloud gives one, else the cluster IP and port.
func (r *ParserPlatformReconciler) loadBalancerAddress(ctx context.Context, p *platformv1.ParserPlatform) (string, error) {
	svc := &corev1.Service{}
	err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: resource.Name(p.Name, "lb")}, svc)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the load balancer Service: %w", err)
	}
	port := ""
	if len(svc.Spec.Ports) > 0 {
		port = ":" + strconv.Itoa(int(svc.Spec.Ports[0].Port))
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			return ing.IP + port, nil
		}
		if ing.Hostname != "" {
			return ing.Hostname + port, nil
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return "", nil
	}
	return svc.Spec.ClusterIP + port, nil
}

func metaExtract(list client.ObjectList) ([]client.Object, error) {
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, 0, len(items))
	for _, item := range items {
		out = append(out, item.(client.Object))
	}
	return out, nil
}

func isControlledBy(obj client.Object, p *platformv1.ParserPlatform) bool {
	return metav1.IsControlledBy(obj, p)
}

func controllerOptions(maxConcurrentReconciles int) controller.Options {
	if maxConcurrentReconciles < 1 {
		maxConcurrentReconciles = 1
	}
	return controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles}
}
