package simcluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// epmd stands in for the Erlang port mapper of every RabbitMQ pod. In a
// cluster each pod has its own epmd on <pod IP>:4369, and every node there
// is "rabbit"; here all pods share the machine, where epmd is one daemon
// that knows a name once. So the runtime answers the epmd protocol itself,
// on one port of the cluster (ERL_EPMD_PORT of the pods):
//
//   - on 127.0.0.1, where every Erlang node registers (ALIVE2), it accepts
//     every registration and holds it while the node's connection lives,
//     by the node's distribution port, which the runtime gives each pod;
//   - on each RabbitMQ pod's IP, it answers what that pod's own epmd would:
//     the names registered with that pod's port (NAMES), and their port
//     (PORT_PLEASE2), so a node or CLI that looks up rabbit@<pod DNS name>
//     finds that pod's node.
//
// No real epmd runs: the pods' Erlang VMs start with -start_epmd false.
type epmd struct {
	port int

	mu        sync.Mutex
	listeners map[string]net.Listener // by pod IP, and "127.0.0.1"
	byIP      map[string]int          // pod IP -> its distribution port
	regs      map[int]*epmdReg        // distribution port -> registration
	closed    bool
}

type epmdReg struct {
	name   string
	fields []byte // the ALIVE2_REQ after its tag: returned by PORT2_RESP
}

// Request and response tags of the epmd protocol.
const (
	epmdAlive2Req     = 120
	epmdAlive2XResp   = 118
	epmdPortPlease2   = 122
	epmdPort2Resp     = 119
	epmdNamesReq      = 110
	epmdMaxRequestLen = 4096
)

func startEPMD() (*epmd, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &epmd{
		port:      l.Addr().(*net.TCPAddr).Port,
		listeners: map[string]net.Listener{"127.0.0.1": l},
		byIP:      map[string]int{}, regs: map[int]*epmdReg{},
	}
	go e.serve(l, "")
	return e, nil
}

// add makes ip answer for the pod whose node listens on distPort.
func (e *epmd) add(ip string, distPort int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byIP[ip] = distPort
	if _, ok := e.listeners[ip]; ok {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(e.port)))
	if err != nil {
		return fmt.Errorf("epmd on %s: %w", ip, err)
	}
	e.listeners[ip] = l
	go e.serve(l, ip)
	return nil
}

func (e *epmd) remove(ip string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.byIP, ip)
	if l, ok := e.listeners[ip]; ok {
		_ = l.Close()
		delete(e.listeners, ip)
	}
}

func (e *epmd) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for ip, l := range e.listeners {
		_ = l.Close()
		delete(e.listeners, ip)
	}
}

// serve answers connections to one address; ip is "" for 127.0.0.1.
func (e *epmd) serve(l net.Listener, ip string) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = conn.Close() }()
			_ = e.handle(conn, ip)
		}()
	}
}

func (e *epmd) handle(conn net.Conn, ip string) error {
	var n uint16
	if err := binary.Read(conn, binary.BigEndian, &n); err != nil {
		return err
	}
	if n == 0 || n > epmdMaxRequestLen {
		return errors.New("bad request length")
	}
	req := make([]byte, n)
	if _, err := io.ReadFull(conn, req); err != nil {
		return err
	}
	switch req[0] {
	case epmdAlive2Req:
		return e.register(conn, req[1:])
	case epmdNamesReq:
		return e.names(conn, ip)
	case epmdPortPlease2:
		return e.portPlease(conn, ip, string(req[1:]))
	}
	return fmt.Errorf("unsupported epmd request %d", req[0])
}

// register holds a node's registration while its connection is open, as
// epmd does: the node closes it when it stops.
func (e *epmd) register(conn net.Conn, fields []byte) error {
	if len(fields) < 10 {
		return errors.New("short ALIVE2_REQ")
	}
	port := int(binary.BigEndian.Uint16(fields[0:2]))
	nameLen := int(binary.BigEndian.Uint16(fields[8:10]))
	if len(fields) < 10+nameLen {
		return errors.New("short ALIVE2_REQ name")
	}
	reg := &epmdReg{name: string(fields[10 : 10+nameLen]), fields: append([]byte(nil), fields...)}
	e.mu.Lock()
	e.regs[port] = reg
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.regs[port] == reg {
			delete(e.regs, port)
		}
		e.mu.Unlock()
	}()
	resp := []byte{epmdAlive2XResp, 0, 0, 0, 0, 1} // result 0, creation 1
	if _, err := conn.Write(resp); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, conn)
	return err
}

// podReg is the registration of the pod whose IP was asked.
func (e *epmd) podReg(ip string) (*epmdReg, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	port, ok := e.byIP[ip]
	if !ok {
		return nil, 0
	}
	return e.regs[port], port
}

func (e *epmd) names(conn net.Conn, ip string) error {
	out := binary.BigEndian.AppendUint32(nil, uint32(e.port))
	if reg, port := e.podReg(ip); reg != nil {
		out = fmt.Appendf(out, "name %s at port %d\n", reg.name, port)
	}
	_, err := conn.Write(out)
	return err
}

func (e *epmd) portPlease(conn net.Conn, ip, name string) error {
	reg, _ := e.podReg(ip)
	if reg == nil || reg.name != name {
		_, err := conn.Write([]byte{epmdPort2Resp, 1})
		return err
	}
	_, err := conn.Write(append([]byte{epmdPort2Resp, 0}, reg.fields...))
	return err
}
