package rediscluster

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Node is one line of CLUSTER NODES: how one node sees itself or a peer.
// The planner reads roles, slots and open slots from it.
type Node struct {
	// ID is the node's cluster ID, kept in nodes.conf across restarts.
	ID string
	// IP and Port are where the cluster reaches the node; IP is empty on a
	// node that has not yet learnt its own address (it never met a peer).
	IP string
	// Port is the client port (the cluster bus is Port+10000).
	Port int
	// Hostname is what the node announces (cluster-announce-hostname): the
	// pod's stable DNS name, which outlives pod IPs.
	Hostname string
	// Flags carry the role and the failure state.
	Flags Flags
	// MasterID is the master of a replica, empty for a master.
	MasterID string
	// ConfigEpoch decides between two nodes claiming the same slot: the
	// higher epoch wins, as in Redis.
	ConfigEpoch uint64
	// Connected is the link state from the reporting node to this one.
	Connected bool
	// Slots are the slots the node claims.
	Slots []SlotRange
	// Migrating and Importing map an open slot to the node it is moving to
	// or from. CLUSTER NODES prints them only on the "myself" line.
	Migrating map[int]string
	// Importing: see Migrating.
	Importing map[int]string
}

// Flags are the CLUSTER NODES flags the planner acts on.
type Flags struct {
	// Myself marks the reporting node's own line.
	Myself bool
	// Master and Replica are the role ("master", "slave").
	Master, Replica bool
	// Fail is the cluster's agreement that the node failed ("fail"); PFail
	// only the reporting node's suspicion ("fail?").
	Fail, PFail bool
	// Handshake and NoAddr mark nodes not yet (or no longer) usable.
	Handshake, NoAddr bool
}

// Addr is the endpoint the cluster announces for the node: hostname:port
// when it announces a hostname (pods announce their DNS name), else ip:port.
// It is the key a Resolver maps to something dialable, and it matches the
// pod addresses of a Desired state.
func (n Node) Addr() string {
	host := n.Hostname
	if host == "" {
		host = n.IP
	}
	return net.JoinHostPort(host, strconv.Itoa(n.Port))
}

// IsMaster is true for masters; a node in handshake has no role yet.
func (n Node) IsMaster() bool { return n.Flags.Master }

// SlotCount is how many slots the node claims.
func (n Node) SlotCount() int { return CountSlots(n.Slots) }

// ParseClusterNodes parses the output of CLUSTER NODES (Redis 7: addresses
// as ip:port@cport[,hostname], open slots as [slot->-id] and [slot-<-id]).
func ParseClusterNodes(text string) ([]Node, error) {
	var nodes []Node
	for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		n, err := parseNodeLine(line)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES line %q: %w", line, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func parseNodeLine(line string) (Node, error) {
	f := strings.Fields(line)
	if len(f) < 8 {
		return Node{}, fmt.Errorf("%d fields, want at least 8", len(f))
	}
	n := Node{ID: f[0], Connected: f[7] == "connected"}
	if err := n.parseAddr(f[1]); err != nil {
		return Node{}, err
	}
	n.Flags = parseFlags(f[2])
	if f[3] != "-" {
		n.MasterID = f[3]
	}
	epoch, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return Node{}, fmt.Errorf("config epoch %q: %w", f[6], err)
	}
	n.ConfigEpoch = epoch
	for _, s := range f[8:] {
		if err := n.parseSlotField(s); err != nil {
			return Node{}, err
		}
	}
	return n, nil
}

// parseAddr reads ip:port@cport[,hostname[,aux...]].
func (n *Node) parseAddr(s string) error {
	addr, aux, _ := strings.Cut(s, ",")
	n.Hostname, _, _ = strings.Cut(aux, ",")
	addr, _, _ = strings.Cut(addr, "@")
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return fmt.Errorf("address %q has no port", s)
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		return fmt.Errorf("address %q: port: %w", s, err)
	}
	n.IP, n.Port = strings.Trim(addr[:i], "[]"), port
	return nil
}

func parseFlags(s string) Flags {
	var f Flags
	for flag := range strings.SplitSeq(s, ",") {
		switch flag {
		case "myself":
			f.Myself = true
		case "master":
			f.Master = true
		case "slave":
			f.Replica = true
		case "fail":
			f.Fail = true
		case "fail?":
			f.PFail = true
		case "handshake":
			f.Handshake = true
		case "noaddr":
			f.NoAddr = true
		}
	}
	return f
}

// parseSlotField reads "5", "0-5460", "[93->-id]" (migrating to id) or
// "[93-<-id]" (importing from id).
func (n *Node) parseSlotField(s string) error {
	if !strings.HasPrefix(s, "[") {
		r, err := parseSlotRange(s)
		if err != nil {
			return err
		}
		n.Slots = append(n.Slots, r)
		return nil
	}
	body := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if slot, peer, ok := strings.Cut(body, "->-"); ok {
		return addOpen(&n.Migrating, slot, peer)
	}
	if slot, peer, ok := strings.Cut(body, "-<-"); ok {
		return addOpen(&n.Importing, slot, peer)
	}
	return fmt.Errorf("open slot %q is neither [slot->-id] nor [slot-<-id]", s)
}

func addOpen(m *map[int]string, slot, peer string) error {
	n, err := parseSlot(slot)
	if err != nil {
		return err
	}
	if *m == nil {
		*m = map[int]string{}
	}
	(*m)[n] = peer
	return nil
}
