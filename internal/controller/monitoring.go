package controller

import (
	"context"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// ServiceMonitorCRD is the name of the Prometheus Operator's CRD; the
// operator watches it, so a platform gets its ServiceMonitor as soon as the
// CRD is installed.
const ServiceMonitorCRD = "servicemonitors.monitoring.coreos.com"

// reconcileServiceMonitor creates the platform's ServiceMonitor when the
// spec wants one and the API server serves the kind, deletes it when the
// spec no longer wants it, and never fails the reconcile for its absence:
// the Monitoring condition says what happened.
func (r *ParserPlatformReconciler) reconcileServiceMonitor(ctx context.Context, p *platformv1.ParserPlatform) reconcileResult {
	mode := p.Spec.Monitoring.ServiceMonitor
	available, err := r.serviceMonitorServed(ctx)
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	switch {
	case mode == platformv1.ServiceMonitorDisabled:
		if available {
			if err := r.deleteServiceMonitor(ctx, p); err != nil {
				return reconcileResult{errs: []error{err}}
			}
		}
		return monitoring(metav1.ConditionFalse, "Disabled", "spec.monitoring.serviceMonitor is disabled")
	case !available:
		res := monitoring(metav1.ConditionFalse, "CRDNotInstalled",
			"the ServiceMonitor CRD ("+ServiceMonitorCRD+") is not installed; the platform gets one as soon as it is")
		if mode == platformv1.ServiceMonitorEnabled {
			// Asked for explicitly: a missing CRD is a problem, not a choice.
			res.refusals = []string{"spec.monitoring.serviceMonitor is enabled but " + ServiceMonitorCRD + " is not installed"}
		}
		return res
	}
	res := r.applyChildren(ctx, p, []client.Object{resource.ServiceMonitor(p)})
	if len(res.errs)+len(res.refusals) == 0 {
		res.monitoring = monitoringCondition(metav1.ConditionTrue, "ServiceMonitorCreated",
			"ServiceMonitor "+resource.Name(p.Name)+" scrapes the metrics port of every Service")
	}
	return res
}

// serviceMonitorServed tells whether the ServiceMonitor CRD is installed,
// from the watched CRD's metadata in the cache. (API discovery through the
// REST mapper would keep answering yes after the CRD is deleted.)
func (r *ParserPlatformReconciler) serviceMonitorServed(ctx context.Context) (bool, error) {
	err := r.Get(ctx, client.ObjectKey{Name: ServiceMonitorCRD}, serviceMonitorCRDMetadata())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking for the ServiceMonitor CRD: %w", err)
	}
	return true, nil
}

func (r *ParserPlatformReconciler) deleteServiceMonitor(ctx context.Context, p *platformv1.ParserPlatform) error {
	sm := resource.ServiceMonitor(p)
	live := newEmpty(sm)
	err := r.Get(ctx, client.ObjectKeyFromObject(sm), live)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !isControlledBy(live, p) {
		return nil
	}
	return client.IgnoreNotFound(r.Delete(ctx, live))
}

func monitoring(s metav1.ConditionStatus, reason, msg string) reconcileResult {
	return reconcileResult{monitoring: monitoringCondition(s, reason, msg)}
}

func monitoringCondition(s metav1.ConditionStatus, reason, msg string) *metav1.Condition {
	return &metav1.Condition{Type: status.TypeMonitoring, Status: s, Reason: reason, Message: msg}
}

// serviceMonitorCRDMetadata is the watched CRD, as metadata only: the
// operator needs to know that it exists, not its schema.
func serviceMonitorCRDMetadata() *metav1.PartialObjectMetadata {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	return crd
}

// allPlatforms enqueues every platform: the CRD affects them all.
func (r *ParserPlatformReconciler) allPlatforms(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &platformv1.ParserPlatformList{}
	if err := r.List(ctx, list); err != nil {
		logf.FromContext(ctx).Error(err, "listing platforms after a ServiceMonitor CRD change")
		return nil
	}
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
	}
	return requests
}
