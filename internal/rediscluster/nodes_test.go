package rediscluster

import (
	"reflect"
	"testing"
)

// TestParseClusterNodes reads the output of Debian's redis-server 7.0.15,
// taken from a two-node cluster mid-migration: hostnames after the bus
// port, a node that has not learnt its own IP, open slots on the myself line.
func TestParseClusterNodes(t *testing.T) {
	const text = `656be293a1120292034babb436bbdae1181ef8b9 127.0.0.1:7002@17002,cache-7002.test master - 0 1795930177416 0 connected
1e2acda2f6517cbddd2f3b0da34d03d54c62ada0 127.0.0.1:7001@17001,cache-7001.test myself,master - 0 0 1 connected 0-100 102 [5->-656be293a1120292034babb436bbdae1181ef8b9] [200-<-656be293a1120292034babb436bbdae1181ef8b9]
07c37dfeb235213a872192d90877d0cd55635b91 :7003@17003 slave,fail? 656be293a1120292034babb436bbdae1181ef8b9 0 0 2 disconnected
`
	nodes, err := ParseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("got %d nodes, want 3", len(nodes))
	}
	self := nodes[1]
	want := Node{
		ID: "1e2acda2f6517cbddd2f3b0da34d03d54c62ada0", IP: "127.0.0.1", Port: 7001, Hostname: "cache-7001.test",
		Flags: Flags{Myself: true, Master: true}, ConfigEpoch: 1, Connected: true,
		Slots:     []SlotRange{{0, 100}, {102, 102}},
		Migrating: map[int]string{5: "656be293a1120292034babb436bbdae1181ef8b9"},
		Importing: map[int]string{200: "656be293a1120292034babb436bbdae1181ef8b9"},
	}
	if !reflect.DeepEqual(self, want) {
		t.Errorf("myself line:\n got %+v\nwant %+v", self, want)
	}
	if got := self.Addr(); got != "cache-7001.test:7001" {
		t.Errorf("Addr() = %q, want the announced hostname with the port", got)
	}
	if got := nodes[2]; !got.Flags.Replica || !got.Flags.PFail || got.MasterID != nodes[0].ID || got.Connected || got.IP != "" || got.Addr() != ":7003" {
		t.Errorf("replica line = %+v", got)
	}
	for _, bad := range []string{
		"id 1.2.3.4:1@2 master - 0 0",                       // too few fields
		"id 1.2.3.4@2 master - 0 0 1 connected",             // no port
		"id 1.2.3.4:1@2 master - 0 0 1 connected 16384",     // slot out of range
		"id 1.2.3.4:1@2 master - 0 0 1 connected 9-3",       // backwards
		"id 1.2.3.4:1@2 master - 0 0 1 connected [5-?-x]",   // unknown open marker
		"id 1.2.3.4:1@2 master - 0 0 epoch connected 0-100", // epoch
	} {
		if _, err := ParseClusterNodes(bad); err == nil {
			t.Errorf("ParseClusterNodes(%q) succeeded", bad)
		}
	}
}

func TestRanges(t *testing.T) {
	got := Ranges([]int{7, 1, 2, 3, 5, 3, 16383})
	want := []SlotRange{{1, 3}, {5, 5}, {7, 7}, {16383, 16383}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Ranges = %v, want %v", got, want)
	}
	if n := CountSlots(want); n != 6 || len(Slots(want)) != 6 {
		t.Errorf("CountSlots = %d, Slots = %v", n, Slots(want))
	}
	if s := formatRanges(want); s != "1-3,5,7,16383" {
		t.Errorf("formatRanges = %q", s)
	}
}
