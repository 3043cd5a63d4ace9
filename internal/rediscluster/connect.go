package rediscluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Resolver maps the address of a node or pod, as the cluster announces it
// (hostname:port; pods announce their DNS name), to a host:port the caller
// can dial. The operator resolves pod names to pod IPs through the API, so it
// needs no cluster DNS; tests map names to loopback ports.
type Resolver interface {
	Resolve(ctx context.Context, addr string) (string, error)
}

// ResolverFunc lets a plain function serve as a Resolver.
type ResolverFunc func(ctx context.Context, addr string) (string, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, addr string) (string, error) { return f(ctx, addr) }

// Direct is the Resolver for callers whose addresses are dialable as they
// are (cluster DNS works, or nodes announce IPs).
var Direct Resolver = ResolverFunc(func(_ context.Context, addr string) (string, error) { return addr, nil })

// Connector holds one go-redis client per node address, every connection
// made through the Resolver and authenticated with the cluster's password
// (sent over the protocol, never on a command line). Make one per pass and
// Close it: clients dial lazily, so a pod that moved to a new IP is reached
// at its new IP by the next connection.
type Connector struct {
	resolver Resolver
	password string
	// Timeout bounds each command round trip; MIGRATE runs within it too.
	timeout time.Duration

	mu      sync.Mutex
	clients map[string]*redis.Client
}

// NewConnector is a Connector for a cluster whose nodes require password
// ("" for none).
func NewConnector(r Resolver, password string) *Connector {
	return &Connector{resolver: r, password: password, timeout: 10 * time.Second, clients: map[string]*redis.Client{}}
}

// Client is the client of the node at addr (its announced or pod address).
// It does not retry: the plan, not the connection, decides what to redo.
func (c *Connector) Client(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[addr]; ok {
		return cl
	}
	cl := redis.NewClient(&redis.Options{
		Addr:            addr,
		Password:        c.password,
		Protocol:        2,
		DisableIdentity: true,
		MaxRetries:      -1,
		PoolSize:        2,
		DialTimeout:     5 * time.Second,
		// Off: with it on, NewClient looks the address' hostname up in DNS
		// (up to 2s) to guess an endpoint type, and pod DNS names do not
		// resolve where the operator runs; Redis 7.0 has no such feature.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		ReadTimeout:              c.timeout,
		WriteTimeout:             c.timeout,
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			target, err := c.resolver.Resolve(ctx, addr)
			if err != nil {
				return nil, fmt.Errorf("resolving %s: %w", addr, err)
			}
			d := net.Dialer{Timeout: 5 * time.Second}
			return d.DialContext(ctx, network, target)
		},
	})
	c.clients[addr] = cl
	return cl
}

// Close closes every client.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for addr, cl := range c.clients {
		if err := cl.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.clients, addr)
	}
	return first
}

// endpoint resolves addr to an IP and port, which CLUSTER MEET and MIGRATE
// need: Redis 7.0's MEET takes no hostname.
func (c *Connector) endpoint(ctx context.Context, addr string) (string, int, error) {
	target, err := c.resolver.Resolve(ctx, addr)
	if err != nil {
		return "", 0, fmt.Errorf("resolving %s: %w", addr, err)
	}
	host, portText, err := net.SplitHostPort(target)
	if err != nil {
		return "", 0, fmt.Errorf("resolving %s: %q is not host:port: %w", addr, target, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", 0, fmt.Errorf("resolving %s: port %q: %w", addr, portText, err)
	}
	if net.ParseIP(host) != nil {
		return host, port, nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return "", 0, fmt.Errorf("resolving %s: looking up %s: %w", addr, host, err)
	}
	return ips[0].String(), port, nil
}
