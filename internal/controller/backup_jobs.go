package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/resource"
)

// What the backup and restore reconcilers share: Jobs created once and
// never updated (a Job's template is immutable, and a running dump must not
// be replaced), their outcome read from their conditions, the reason of a
// failure read from their pods' status, and the object store opened with the
// Secret the platform names.

// BackupCacheOptions adds to the manager's cache what backups and restores
// watch: only the operator's own Jobs (label-selected, as every child is).
func BackupCacheOptions(opts cache.Options) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&batchv1.Job{}] = cache.ByObject{
		Label: labels.SelectorFromSet(labels.Set{resource.LabelManagedBy: resource.ManagedBy}),
	}
	return opts
}

// jobState is a Job's outcome so far.
type jobState int

const (
	jobRunning jobState = iota
	jobSucceeded
	jobFailed
)

// stateOf reads the terminal conditions the Job controller sets.
func stateOf(j *batchv1.Job) (jobState, string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return jobSucceeded, ""
		case batchv1.JobFailed:
			return jobFailed, strings.TrimSuffix(c.Reason+": "+c.Message, ": ")
		}
	}
	return jobRunning, ""
}

// ensureJob returns the live Job named as desired, creating it when there is
// none. A same-named Job controlled by another owner is refused, never used.
func ensureJob(ctx context.Context, c client.Client, reader client.Reader, desired *batchv1.Job, owner types.UID) (*batchv1.Job, error) {
	live := &batchv1.Job{}
	key := client.ObjectKeyFromObject(desired)
	err := c.Get(ctx, key, live)
	if apierrors.IsNotFound(err) {
		// Created a moment ago and not cached yet: a second create would
		// only fail, but reading past the cache says so without a write.
		err = reader.Get(ctx, key, live)
	}
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, desired); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating Job %s: %w", desired.Name, err)
		}
		return desired, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Job %s: %w", desired.Name, err)
	}
	for _, ref := range live.OwnerReferences {
		if ptr.Deref(ref.Controller, false) && ref.UID == owner {
			return live, nil
		}
	}
	return nil, &refusal{reason: "JobNotOwned", msg: fmt.Sprintf("Job %s exists and is not owned by this operator's %s: it is not used; delete or rename it", live.Name, desired.OwnerReferences[0].Kind)}
}

// failureDetail is why a failed Job's pods failed, from their status: the
// kubelet copies a failing container's last output lines there
// (terminationMessagePolicy FallbackToLogsOnError), so the operator names
// the reason without access to pods/log.
func failureDetail(ctx context.Context, reader client.Reader, j *batchv1.Job) string {
	pods := &corev1.PodList{}
	if err := reader.List(ctx, pods, client.InNamespace(j.Namespace), client.MatchingLabels{batchv1.JobNameLabel: j.Name}); err != nil {
		return ""
	}
	for _, pod := range pods.Items {
		for _, st := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			t := st.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			msg := strings.TrimSpace(t.Message)
			if len(msg) > 600 {
				msg = "..." + msg[len(msg)-600:]
			}
			return fmt.Sprintf("container %s exited %d: %s", st.Name, t.ExitCode, msg)
		}
	}
	return ""
}

// describeFailure is a failed Job's reason with its pods' detail.
func describeFailure(ctx context.Context, reader client.Reader, j *batchv1.Job, reason string) string {
	if detail := failureDetail(ctx, reader, j); detail != "" {
		return reason + "; " + detail
	}
	return reason
}

// storeTimeout bounds one conversation with the object store (a listing and
// a few small reads), so a hung store never holds a reconcile worker.
const storeTimeout = 2 * time.Minute

// errStoreConfig marks an object store the operator cannot open because of
// what the user gave it (a missing Secret or key): reported, not retried hot.
var errStoreConfig = errors.New("object store configuration")

// openStore builds a client of the object store from its spec and the
// Secrets it names, read past the cache (users' Secrets carry none of the
// operator's labels, so the cache never holds them).
func openStore(ctx context.Context, reader client.Reader, namespace string, spec platformv1.ObjectStoreSpec) (*backup.Store, error) {
	creds, err := secretKeys(ctx, reader, namespace, spec.SecretRef.Name, backup.AccessKeyIDKey, backup.SecretAccessKeyKey)
	if err != nil {
		return nil, err
	}
	cfg := backup.ObjectStore{
		Endpoint: spec.Endpoint, Bucket: spec.Bucket, Prefix: spec.Prefix, Region: spec.Region,
		InsecureSkipTLSVerify: spec.InsecureSkipTLSVerify,
		Credentials:           backup.Credentials{AccessKeyID: creds[0], SecretAccessKey: creds[1]},
	}
	if spec.CASecretRef != nil {
		ca, err := secretKeys(ctx, reader, namespace, spec.CASecretRef.Name, "ca.crt")
		if err != nil {
			return nil, err
		}
		cfg.CAPEM = []byte(ca[0])
	}
	store, err := backup.NewStore(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreConfig, err)
	}
	return store, nil
}

func secretKeys(ctx context.Context, reader client.Reader, namespace, name string, keys ...string) ([]string, error) {
	secret := &corev1.Secret{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: Secret %s not found in namespace %s", errStoreConfig, name, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		v := strings.TrimSpace(string(secret.Data[k]))
		if v == "" {
			return nil, fmt.Errorf("%w: Secret %s has no %q", errStoreConfig, name, k)
		}
		out = append(out, v)
	}
	return out, nil
}

// retryOnConflict turns a write that met a newer object into a quick
// requeue: the next pass reads it again (the platform's status has several
// writers, each with an optimistic lock).
func retryOnConflict(res ctrl.Result, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetryInterval}, nil
	}
	return res, err
}
