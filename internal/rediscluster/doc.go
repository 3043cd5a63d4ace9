// Package rediscluster forms, grows and shrinks the platform's Redis
// Cluster cache without losing a key.
//
// It has three parts, so the reconciler can call them one at a time:
//
//   - Observe asks every pod (and every node their views mention) for
//     CLUSTER NODES and CLUSTER INFO: a Topology.
//   - NewPlan is pure: a Topology and the Desired state in, an ordered list
//     of typed steps out (FixOpenSlot, Failover, Reset, Meet, AssignSlots,
//     Replicate, MigrateSlots, Forget). Table tests pin every sequence.
//   - Executor.Execute runs the steps with go-redis over the Redis protocol:
//     no exec into pods, the password only in AUTH and MIGRATE ... AUTH.
//
// Nodes are reached through a Resolver (announced address -> dialable
// host:port), so the operator maps pod DNS names to pod IPs through the API
// and needs no cluster DNS.
//
// Safety rules the planner keeps:
//
//   - Open slots (an interrupted migration) are fixed before anything else:
//     finished into their destination when it stays, else rolled back.
//   - Slots that some node holds are never re-assigned: a restarted or
//     re-scaled cluster is re-joined (Meet), never re-created.
//   - A leaving master gives all its slots away (MIGRATE keeps its keys)
//     before it is forgotten; a node that holds slots is never forgotten.
//   - Masters: the first M ordinals on a fresh cluster; afterwards roles are
//     sticky (masters holding slots stay masters, new masters come from
//     empty pods by ordinal, replicas are reset into masters only when
//     nothing else is left), since every role change copies a data set.
//   - Every master ends within one slot of 16384/M.
//   - The planner refuses (ErrUnreachable) while a desired pod, or a node
//     holding slots that the cluster does not consider failed, cannot be
//     reached.
//
// Resumability: each step reads the state it acts on before acting, and an
// interrupted migration shows as open slots that the next plan fixes first.
// The executor's Hook is called between the commands of a migration, which
// is where tests kill it.
//
// How the reconciler drives it, one pass:
//
//	conn := NewConnector(resolver, password) // resolver: pod DNS name -> pod IP
//	defer conn.Close()
//	top := Observe(ctx, conn, pods)          // pods: "<pod>.<headless>.<ns>.svc:6379", ordinal order
//	plan, err := NewPlan(top, Desired{Pods: pods, Masters: m, ReplicasPerMaster: r})
//	// errors.Is(err, ErrUnreachable): CacheReady=False, requeue
//	err = (&Executor{Conn: conn, Hook: eventsAndMetrics}).Execute(ctx, plan)
//	// CacheReady=True when a fresh Observe gives top.Summary().Healthy() and an empty plan
//
// (or Converge, which loops until the plan is empty). Scaling out, the
// StatefulSet grows first and the plan runs once the new pods answer;
// scaling in, the plan for the smaller pod list runs while the leaving pods
// still run (Observe finds them through the others' views), and the
// StatefulSet shrinks only once that plan has come out empty.
//
// The addresses in Desired.Pods must be what the pods announce
// (--cluster-announce-hostname plus the port): that is how a node found in
// a peer's view is matched to its pod.
package rediscluster
