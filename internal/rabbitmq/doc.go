// Package rabbitmq keeps the Celery queues of a running RabbitMQ broker in
// line with the spec, over the management HTTP API, without restarting the
// broker and without ever dropping a message.
//
// It has three parts, so each can be tested on its own:
//
//   - Management is the few calls of the management API the operator makes;
//     Client implements it with net/http (rabbit-hole, the maintained Go
//     client, is not served by the module proxy this project builds from,
//     and nine calls do not need it).
//   - NewPlan is pure: the Desired queues and what the broker has
//     (Observed) in, ordered Steps out. Table tests pin it.
//   - Sync observes, plans and runs the steps.
//
// Safety rules the planner keeps:
//
//   - Only what the operator declared is ever unbound or deleted. The
//     operator records the queues and routing keys it declared in a global
//     parameter of the broker (RecordParameter), stored in the broker's own
//     database on its data volume: the record lives and dies with the queues
//     it describes, and a queue a user or an application created, which the
//     record never names, is never touched. (A marker argument on the queue
//     was the other way; queue arguments cannot be added to an existing
//     queue, so queues declared before the marker could never be told apart,
//     and the boot import and Celery would have to declare it identically.)
//   - A routing key change binds the new key before it unbinds the old one:
//     there is no moment when the queue's tasks route nowhere. Messages
//     stay in the queue; only the binding changes.
//   - A queue removed from the spec is deleted only when it is empty and
//     has no consumer, and the broker checks that itself at the moment of
//     deletion (DELETE ?if-empty=true&if-unused=true), so statistics a few
//     seconds old can never make it drop a message. A queue that still holds
//     messages is kept, with its bindings (unbinding it would drop the
//     messages still routed to it), and reported: its workers are gone, so
//     nobody will drain it unless the user adds it back or purges it.
//   - Counts the broker has not reported yet (a queue's first statistics
//     arrive within collect_statistics_interval) count as "not empty".
package rabbitmq
