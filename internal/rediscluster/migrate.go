package rediscluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// migrate moves slots from one master to another, a chunk at a time, the
// way Redis documents it: IMPORTING on the destination, MIGRATING on the
// source, MIGRATE every key, then SETSLOT NODE on the destination, the
// source and every other node. While a slot is open the source answers ASK
// for keys it no longer has, so clients follow redirections and see no
// error. Each chunk starts from the state the nodes report, so a migration
// cut anywhere is finished by running it again. from may be zero (its
// owner is dead): then only the slot assignment is done.
func (r *stepRun) migrate(ctx context.Context, from, to NodeRef, slots []int) error {
	if from.ID != "" {
		if err := r.e.waitKnown(ctx, from, to); err != nil {
			return err
		}
	}
	if err := r.e.waitStateOK(ctx, to); err != nil {
		return err
	}
	chunk := r.e.SlotsPerChunk
	if chunk <= 0 {
		chunk = 128
	}
	for len(slots) > 0 {
		n := min(chunk, len(slots))
		if err := r.moveChunk(ctx, from, to, slots[:n]); err != nil {
			return err
		}
		slots = slots[n:]
	}
	return nil
}

func (r *stepRun) moveChunk(ctx context.Context, from, to NodeRef, chunk []int) error {
	ev := Event{Slots: Ranges(chunk)}
	dst, err := r.e.view(ctx, to.Addr)
	if err != nil {
		return err
	}
	var src *View
	if from.ID != "" {
		if src, err = r.e.view(ctx, from.Addr); err != nil {
			return err
		}
	}
	var importing, migrating, draining, assign []int
	for _, s := range chunk {
		dstOwns := claims(dst.Self, s)
		srcOwns := src != nil && claims(src.Self, s)
		if src != nil && !srcOwns && !dstOwns {
			return fmt.Errorf("slot %d is held by neither %s nor %s: the plan is stale", s, from, to)
		}
		if srcOwns && !dstOwns && dst.Self.Importing[s] != from.ID {
			importing = append(importing, s)
		}
		if srcOwns && src.Self.Migrating[s] != to.ID {
			migrating = append(migrating, s)
		}
		if srcOwns || src != nil && src.Self.Migrating[s] != "" {
			draining = append(draining, s)
		}
		if !dstOwns {
			assign = append(assign, s)
		}
	}
	if err := r.setSlots(ctx, to.Addr, importing, "IMPORTING", from.ID); err != nil {
		return err
	}
	if err := r.hook(ctx, withPhase(ev, PhaseImporting)); err != nil {
		return err
	}
	if err := r.setSlots(ctx, from.Addr, migrating, "MIGRATING", to.ID); err != nil {
		return err
	}
	if err := r.hook(ctx, withPhase(ev, PhaseMigrating)); err != nil {
		return err
	}
	if len(draining) > 0 {
		if err := r.moveKeys(ctx, from.Addr, to.Addr, draining, true); err != nil {
			return err
		}
	}
	if err := r.hook(ctx, withPhase(ev, PhaseSetSlot)); err != nil {
		return err
	}
	return r.assign(ctx, from, to, assign, chunk, ev)
}

// assign makes to the owner: destination first (it bumps its epoch and
// tells the cluster), then the source, which clears its migrating state,
// then every other node, so clients are redirected at once, not after
// gossip.
func (r *stepRun) assign(ctx context.Context, from, to NodeRef, assign, chunk []int, ev Event) error {
	if err := r.setSlots(ctx, to.Addr, assign, "NODE", to.ID); err != nil {
		return err
	}
	if err := r.hook(ctx, withPhase(ev, PhaseSetSlotDestination)); err != nil {
		return err
	}
	if from.ID != "" {
		if err := r.setSlots(ctx, from.Addr, chunk, "NODE", to.ID); err != nil {
			if err := r.settled(ctx, from, chunk, err); err != nil {
				return err
			}
		}
	}
	for _, n := range r.plan.Nodes {
		if n.ID != from.ID && n.ID != to.ID {
			// Best effort: replicas refuse SETSLOT, and gossip reaches
			// every node anyway.
			_ = r.setSlots(ctx, n.Addr, chunk, "NODE", to.ID)
		}
	}
	return nil
}

// settled accepts a failed SETSLOT NODE on the source when the source has
// already learnt the new owner by gossip (a master that lost its last slot
// becomes a replica and refuses SETSLOT): it then holds none of the slots
// and none is open on it.
func (r *stepRun) settled(ctx context.Context, from NodeRef, chunk []int, cause error) error {
	v, err := r.e.view(ctx, from.Addr)
	if err != nil {
		return fmt.Errorf("%w; then: %w", cause, err)
	}
	for _, s := range chunk {
		if claims(v.Self, s) || v.Self.Migrating[s] != "" || v.Self.Importing[s] != "" {
			return fmt.Errorf("%w (slot %d still held or open on %s)", cause, s, from)
		}
	}
	return nil
}

// setSlots sends CLUSTER SETSLOT <slot> <how> [<id>] for every slot in one
// pipeline.
func (r *stepRun) setSlots(ctx context.Context, addr string, slots []int, how, id string) error {
	if len(slots) == 0 {
		return nil
	}
	cmds, err := r.e.Conn.Client(addr).Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range slots {
			args := []any{"CLUSTER", "SETSLOT", s, how}
			if id != "" {
				args = append(args, id)
			}
			p.Do(ctx, args...)
		}
		return nil
	})
	if err != nil {
		for i, c := range cmds {
			if c.Err() != nil {
				return fmt.Errorf("CLUSTER SETSLOT %d %s %s at %s: %w", slots[i], how, id, addr, c.Err())
			}
		}
		return fmt.Errorf("CLUSTER SETSLOT %s at %s: %w", how, addr, err)
	}
	return nil
}

// moveKeys moves every key of the slots from one node to another with
// MIGRATE, in batches, until a round finds none left. The slots must be
// open on the source (MIGRATE works on open slots whoever owns them). With
// replace false a key the destination already has keeps the destination's
// value (it is the one clients have been served) and the source's copy is
// deleted.
func (r *stepRun) moveKeys(ctx context.Context, fromAddr, toAddr string, slots []int, replace bool) error {
	ip, port, err := r.e.Conn.endpoint(ctx, toAddr)
	if err != nil {
		return err
	}
	src := r.e.Conn.Client(fromAddr)
	batch := r.e.KeysPerBatch
	if batch <= 0 {
		batch = 100
	}
	for pending := slots; len(pending) > 0; {
		keys, err := keysInSlots(ctx, src, pending, batch)
		if err != nil {
			return fmt.Errorf("CLUSTER GETKEYSINSLOT at %s: %w", fromAddr, err)
		}
		var next []int
		for i, s := range pending {
			if len(keys[i]) == 0 {
				continue
			}
			next = append(next, s)
			r.batches++
			if err := r.hook(ctx, Event{Phase: PhaseBatch, Slots: Ranges([]int{s}), Batch: r.batches, Keys: len(keys[i])}); err != nil {
				return err
			}
			if err := r.migrateBatch(ctx, src, ip, port, keys[i], replace); err != nil {
				return fmt.Errorf("MIGRATE slot %d from %s to %s: %w", s, fromAddr, toAddr, err)
			}
		}
		pending = next
	}
	return nil
}

func keysInSlots(ctx context.Context, c *redis.Client, slots []int, batch int) ([][]string, error) {
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range slots {
			p.ClusterGetKeysInSlot(ctx, s, batch)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.(*redis.StringSliceCmd).Val()
	}
	return out, nil
}

// migrateBatch runs MIGRATE host port "" 0 timeout [REPLACE] [AUTH pw] KEYS
// k...: the password travels in the protocol, as AUTH does. Without
// replace, a batch the destination refuses with BUSYKEY is retried key by
// key, and only the keys refused with BUSYKEY are dropped from the source.
func (r *stepRun) migrateBatch(ctx context.Context, src *redis.Client, ip string, port int, keys []string, replace bool) error {
	err := src.Do(ctx, r.migrateArgs(ip, port, keys, replace)...).Err()
	if err == nil || replace || !strings.Contains(err.Error(), "BUSYKEY") {
		return err
	}
	for _, k := range keys {
		err := src.Do(ctx, r.migrateArgs(ip, port, []string{k}, false)...).Err()
		switch {
		case err == nil:
		case strings.Contains(err.Error(), "BUSYKEY"):
			if err := dropKey(ctx, src, k); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

func (r *stepRun) migrateArgs(ip string, port int, keys []string, replace bool) []any {
	timeout := r.e.MigrateTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	args := []any{"MIGRATE", ip, port, "", 0, timeout.Milliseconds()}
	if replace {
		args = append(args, "REPLACE")
	}
	if pw := r.e.Conn.password; pw != "" {
		args = append(args, "AUTH", pw)
	}
	args = append(args, "KEYS")
	for _, k := range keys {
		args = append(args, k)
	}
	return args
}

// dropKey deletes, on a node where its slot is importing, a key the
// destination of a MIGRATE already had. ASKING lets the node act on a slot
// it does not own; both commands must share a connection.
func dropKey(ctx context.Context, c *redis.Client, key string) error {
	conn := c.Conn()
	defer func() { _ = conn.Close() }()
	_, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "ASKING")
		p.Del(ctx, key)
		return nil
	})
	return err
}

func withPhase(ev Event, p Phase) Event {
	ev.Phase = p
	return ev
}
