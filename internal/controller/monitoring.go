package controller

import (
	"context"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// monitoringKind is one Prometheus Operator kind a platform gets while its
// CRD is served and spec.monitoring.serviceMonitor is not disabled.
type monitoringKind struct {
	crd   string
	build func(*platformv1.ParserPlatform) *unstructured.Unstructured
	// does says what the object does, for the Monitoring condition.
	does string
}

// monitoringKinds are the platform's scrape configurations and alerts.
var monitoringKinds = []monitoringKind{
	{ServiceMonitorCRD, resource.ServiceMonitor, "scrapes the metrics port of every Service"},
	{resource.PodMonitorCRD, resource.PodMonitor, "scrapes the workers, the exporters and RabbitMQ"},
	{resource.PrometheusRuleCRD, resource.PrometheusRule, "holds the platform's alerts"},
}

// watchedCRDs are the CRDs whose arrival or removal changes what every
// platform gets: the monitoring kinds' and KEDA's.
func watchedCRDs() []string {
	out := []string{resource.ScaledObjectCRD, resource.TriggerAuthenticationCRD}
	for _, k := range monitoringKinds {
		out = append(out, k.crd)
	}
	return out
}

// reconcileMonitoring creates the platform's ServiceMonitor, PodMonitor and
// PrometheusRule, each while the API server serves its kind and the spec
// wants them, deletes them when the spec no longer does, and never fails
// the reconcile for a missing CRD: the Monitoring condition says what
// happened.
func (r *ParserPlatformReconciler) reconcileMonitoring(ctx context.Context, p *platformv1.ParserPlatform) reconcileResult {
	mode := p.Spec.Monitoring.ServiceMonitor
	var served, missing []monitoringKind
	for _, k := range monitoringKinds {
		ok, err := r.crdServed(ctx, k.crd)
		if err != nil {
			return reconcileResult{errs: []error{err}}
		}
		if ok {
			served = append(served, k)
		} else {
			missing = append(missing, k)
		}
	}
	if mode == platformv1.ServiceMonitorDisabled {
		for _, k := range served {
			if err := r.deleteMonitoringObject(ctx, p, k); err != nil {
				return reconcileResult{errs: []error{err}}
			}
		}
		return monitoring(metav1.ConditionFalse, "Disabled", "spec.monitoring.serviceMonitor is disabled: no ServiceMonitor, PodMonitor or PrometheusRule")
	}
	if len(served) == 0 || served[0].crd != ServiceMonitorCRD {
		res := monitoring(metav1.ConditionFalse, "CRDNotInstalled",
			"the ServiceMonitor CRD ("+ServiceMonitorCRD+") is not installed; the platform gets one as soon as it is")
		if mode == platformv1.ServiceMonitorEnabled {
			// Asked for explicitly: a missing CRD is a problem, not a choice.
			res.refusals = []string{"spec.monitoring.serviceMonitor is enabled but " + ServiceMonitorCRD + " is not installed"}
		}
		if len(served) == 0 {
			return res
		}
		// The rest is written anyway: alerts without the ServiceMonitor
		// still watch the exporters.
		out, _ := r.applyMonitoring(ctx, p, served)
		out.merge(res)
		return out
	}
	res, objs := r.applyMonitoring(ctx, p, served)
	if len(res.errs)+len(res.refusals) == 0 {
		var parts []string
		for i, k := range served {
			parts = append(parts, fmt.Sprintf("%s %s %s", objs[i].GetObjectKind().GroupVersionKind().Kind, objs[i].GetName(), k.does))
		}
		msg := strings.Join(parts, "; ")
		for _, k := range missing {
			msg += "; not installed: " + k.crd
		}
		res.monitoring = monitoringCondition(metav1.ConditionTrue, "ServiceMonitorCreated", msg)
	}
	return res
}

// applyMonitoring writes the objects of kinds and returns them, in order.
func (r *ParserPlatformReconciler) applyMonitoring(ctx context.Context, p *platformv1.ParserPlatform, kinds []monitoringKind) (reconcileResult, []client.Object) {
	objs := make([]client.Object, 0, len(kinds))
	for _, k := range kinds {
		objs = append(objs, k.build(p))
	}
	return r.applyChildren(ctx, p, objs), objs
}

// crdServed tells whether a CRD is installed, from the watched CRDs'
// metadata in the cache. (API discovery through the REST mapper would keep
// answering yes after the CRD is deleted.)
func (r *ParserPlatformReconciler) crdServed(ctx context.Context, name string) (bool, error) {
	present, deleting, err := r.crdState(ctx, name)
	// Being deleted: the API server is deleting its objects.
	return present && !deleting, err
}

// crdState says whether a CRD exists and whether it is being deleted.
func (r *ParserPlatformReconciler) crdState(ctx context.Context, name string) (present, deleting bool, err error) {
	crd := crdMetadata()
	err = r.Get(ctx, client.ObjectKey{Name: name}, crd)
	if apierrors.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("looking for the CRD %s: %w", name, err)
	}
	return true, !crd.DeletionTimestamp.IsZero(), nil
}

func (r *ParserPlatformReconciler) deleteMonitoringObject(ctx context.Context, p *platformv1.ParserPlatform, k monitoringKind) error {
	obj := k.build(p)
	live := newEmpty(obj)
	err := r.Get(ctx, client.ObjectKeyFromObject(obj), live)
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

// crdMetadata is a watched CRD, as metadata only: the operator needs to
// know that it exists, not its schema.
func crdMetadata() *metav1.PartialObjectMetadata {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	return crd
}

// allPlatforms enqueues every platform: a watched CRD affects them all.
func (r *ParserPlatformReconciler) allPlatforms(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &platformv1.ParserPlatformList{}
	if err := r.List(ctx, list); err != nil {
		logf.FromContext(ctx).Error(err, "listing platforms after a change of a watched CRD")
		return nil
	}
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
	}
	return requests
}
