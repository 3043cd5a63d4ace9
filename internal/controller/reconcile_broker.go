package controller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/rabbitmq"
	"github.com/vkparser/parser-operator/internal/resource"
)

const (
	// brokerRequestTimeout bounds each call to the management API: a broker
	// that does not answer must not hold a reconcile worker.
	brokerRequestTimeout = 3 * time.Second
	// brokerSyncTimeout bounds one reconcile's whole pass over the queues.
	brokerSyncTimeout = 30 * time.Second
	// brokerRetryInterval is how soon a broker not reached yet (pods
	// starting, management API not up) is tried again.
	brokerRetryInterval = 15 * time.Second
	// brokerKeptRetryInterval is how often a removed queue that still
	// holds messages is looked at again: it drains or is purged by hand,
	// and the broker sends the operator no event when it does.
	brokerKeptRetryInterval = time.Minute
)

// Reasons of the broker's queue state, for the QueuesReady condition.
const (
	ReasonQueuesInLine        = "QueuesDeclared"
	ReasonBrokerNotReached    = "BrokerNotReached"
	ReasonBrokerRequestFailed = "BrokerRequestFailed"
	ReasonQueueRemovalRefused = "QueueRemovalRefused"
)

// brokerOutcome is what the queue reconcile tells the status.
type brokerOutcome struct {
	// applies is false when there is nothing to manage (no queues, or a
	// Redis broker, whose queues are lists Celery makes itself).
	applies bool
	// inLine is true when the broker holds every queue and binding of the
	// spec (the broker answered and every step succeeded).
	inLine  bool
	reason  string
	message string
	// refusals are removed queues kept because they may hold messages, one
	// sentence each: refused on purpose, reported, looked at again slowly.
	refusals []string
	// retryAfter asks for another reconcile (0: none needed).
	retryAfter time.Duration
}

// BrokerResolver maps a broker pod (name and IP) to the host:port of its
// management API; tests point it at local servers.
type BrokerResolver func(pod, podIP string) string

// PodManagementAddress is the default BrokerResolver: the pod's IP and
// RabbitMQ's management port. The operator needs no cluster DNS, as for
// the cache.
func PodManagementAddress(_, podIP string) string {
	return net.JoinHostPort(podIP, strconv.Itoa(int(resource.RabbitManagement)))
}

// reconcileBrokerQueues keeps the queues and bindings of a running RabbitMQ
// broker in line with spec.queues over its management API (internal/rabbitmq:
// add, rebind, delete only what the operator declared and only when empty).
// A queue change so needs no broker restart. A broker it cannot reach yet is
// not an error: the outcome says so and asks to be retried, and the rest of
// the platform reconciles as usual.
func (r *ParserPlatformReconciler) reconcileBrokerQueues(ctx context.Context, p *platformv1.ParserPlatform, creds resource.Credentials) brokerOutcome {
	return r.syncBrokerQueues(ctx, p, creds, r.brokerResolver())
}

// brokerResolver is how broker pods are reached: at their IPs, on the
// management port.
func (r *ParserPlatformReconciler) brokerResolver() BrokerResolver {
	if r.BrokerResolver != nil {
		return r.BrokerResolver
	}
	return PodManagementAddress
}

func (r *ParserPlatformReconciler) syncBrokerQueues(ctx context.Context, p *platformv1.ParserPlatform, creds resource.Credentials, resolve BrokerResolver) brokerOutcome {
	if !resource.IsRabbitMQBroker(p) {
		return brokerOutcome{}
	}
	ctx, cancel := context.WithTimeout(ctx, brokerSyncTimeout)
	defer cancel()
	pods, err := r.runningBrokerPods(ctx, p)
	if err != nil {
		return notInLine(ReasonBrokerRequestFailed, err.Error())
	}
	if len(pods) == 0 {
		// The pod watch brings the platform back when one runs, as for
		// the cache: no timer, or every platform whose broker is not up
		// yet would be reconciled every brokerRetryInterval for nothing.
		out := notInLine(ReasonBrokerNotReached, "waiting for a broker pod to run")
		out.retryAfter = 0
		return out
	}
	password := creds.Get(resource.BrokerUsersSecretName(p), resource.KeyOperatorPassword)
	key := serverKey{platform: client.ObjectKeyFromObject(p), server: serverBroker}
	inputs := fmt.Sprintf("queues=%v password=%x pods=%s", desiredQueues(p), sha256.Sum256([]byte(password)), podsInputs(pods))
	now := time.Now()
	if out, left, ok := recallAnswer[brokerOutcome](&r.checks, key, inputs, now); ok {
		out.retryAfter = left
		return out
	}
	out := r.applyQueues(ctx, p, pods, resolve, password)
	if out.inLine && len(out.refusals) == 0 {
		r.checks.remember(key, inputs, now, out)
		out.retryAfter = serverRecheckInterval
	} else {
		r.checks.forgetAnswer(key)
	}
	return out
}

// applyQueues dials the broker and applies spec.queues.
func (r *ParserPlatformReconciler) applyQueues(ctx context.Context, p *platformv1.ParserPlatform, pods []corev1.Pod, resolve BrokerResolver, password string) brokerOutcome {
	mgmt, err := dialBroker(ctx, pods, resolve, resource.BrokerUsersSecretName(p), password)
	if err != nil {
		return notInLine(ReasonBrokerNotReached, err.Error())
	}
	defer mgmt.Close()
	res, err := rabbitmq.Sync(ctx, mgmt, desiredQueues(p), func(s rabbitmq.Step) {
		r.event(p, "Normal", "BrokerQueues", string(s.Kind), s.String())
	})
	if err != nil {
		return notInLine(ReasonBrokerRequestFailed, "applying spec.queues to the broker: "+err.Error())
	}
	out := brokerOutcome{applies: true, inLine: true, reason: ReasonQueuesInLine,
		message: fmt.Sprintf("%d queues declared and bound on the broker", len(p.Spec.Queues.Queues))}
	for _, k := range res.Kept {
		out.refusals = append(out.refusals, k.String())
	}
	if len(out.refusals) > 0 {
		out.reason, out.retryAfter = ReasonQueueRemovalRefused, brokerKeptRetryInterval
		out.message += "; " + strings.Join(out.refusals, "; ")
	}
	return out
}

func notInLine(reason, message string) brokerOutcome {
	return brokerOutcome{applies: true, reason: reason, message: message, retryAfter: brokerRetryInterval}
}

// desiredQueues is spec.queues as the broker must hold them.
func desiredQueues(p *platformv1.ParserPlatform) rabbitmq.Desired {
	d := rabbitmq.Desired{Vhost: resource.RabbitVhost, Exchange: resource.CeleryExchange}
	for _, q := range resource.QueueBindings(p) {
		d.Queues = append(d.Queues, rabbitmq.QueueBinding{Queue: q.Queue, RoutingKey: q.RoutingKey})
	}
	return d
}

// runningBrokerPods are the broker's running pods with an IP, by name.
func (r *ParserPlatformReconciler) runningBrokerPods(ctx context.Context, p *platformv1.ParserPlatform) ([]corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := r.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels(resource.BrokerPodSelector(p))); err != nil {
		return nil, fmt.Errorf("listing broker pods: %w", err)
	}
	var pods []corev1.Pod
	for _, pod := range list.Items {
		if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" && pod.DeletionTimestamp.IsZero() {
			pods = append(pods, pod)
		}
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

// dialBroker returns a client of the first pod, by name, whose management
// API answers and takes the password of the operator's own broker user
// (resource.BrokerOperatorUser; the applications' user has no management
// rights). Any node serves the whole cluster. Pods are tried at once, so
// pods that do not answer cost one request timeout, not one each. The error
// names every pod and why.
func dialBroker(ctx context.Context, pods []corev1.Pod, resolve BrokerResolver, secret, password string) (*rabbitmq.Client, error) {
	clients := make([]*rabbitmq.Client, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, pod := range pods {
		clients[i] = rabbitmq.NewClient(resolve(pod.Name, pod.Status.PodIP), resource.BrokerOperatorUser, password, brokerRequestTimeout)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = clients[i].Ping(ctx)
		}()
	}
	wg.Wait()
	var chosen *rabbitmq.Client
	var failures []string
	for i, pod := range pods {
		var api *rabbitmq.APIError
		switch {
		case errs[i] == nil && chosen == nil:
			chosen = clients[i]
			continue
		case errs[i] == nil:
		case errors.As(errs[i], &api) && api.Status == http.StatusUnauthorized:
			failures = append(failures, fmt.Sprintf("%s refused user %s with the password of Secret %s", pod.Name, resource.BrokerOperatorUser, secret))
		default:
			failures = append(failures, fmt.Sprintf("%s (%s): %v", pod.Name, resolve(pod.Name, pod.Status.PodIP), errs[i]))
		}
		clients[i].Close()
	}
	if chosen == nil {
		return nil, fmt.Errorf("management API unreachable on %s", strings.Join(failures, "; "))
	}
	return chosen, nil
}
