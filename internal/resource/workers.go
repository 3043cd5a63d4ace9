package resource

import (
	"strconv"

	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// workerGraceSeconds gives a Celery worker time for a warm shutdown: on
// SIGTERM it stops taking tasks and finishes the ones it runs.
const workerGraceSeconds int64 = 300

// WorkerName is the identity of queue q's workers: "worker-<q>".
func WorkerName(queue string) string { return "worker-" + queue }

// workerWorkloads: one Deployment (with HPA and PDB) per queue, running
// `celery -A <app> worker -Q <queue> --concurrency <n>`.
func workerWorkloads(p *platformv1.ParserPlatform, cfg appConfig) []*appWorkload {
	if !hasQueues(p) {
		return nil
	}
	w := p.Spec.Queues.Workers
	var out []*appWorkload
	for i := range p.Spec.Queues.Queues {
		q := &p.Spec.Queues.Queues[i]
		out = append(out, &appWorkload{
			platform: p, name: WorkerName(q.Name), component: ComponentWorker,
			image:   w.Image,
			command: []string{"celery"},
			args: []string{
				"-A", orString(w.App, "vk_parser"), "worker",
				"-Q", q.Name,
				"--concurrency", strconv.Itoa(int(orInt32(q.Concurrency, 4))),
				"--hostname", "$(INSTANCE_ID)@%h",
				"--loglevel", "INFO",
			},
			env: w.Env, resources: w.Resources, replicas: q.Replicas,
			autoscaling: p.Spec.AutoscalingFor(q.Autoscaling.Override()),
			config:      cfg,
			gracePeriod: ptr.To(workerGraceSeconds),
		})
	}
	return out
}
