package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RecordParameter is the broker's global parameter that holds the Record.
const RecordParameter = "parser-operator-declared-queues"

// Client talks to one node's management API (any node of a cluster serves
// the whole cluster's state).
type Client struct {
	base     string // http://host:port
	user     string
	password string
	http     *http.Client
}

// NewClient reaches the management API at addr (host:port) as user. timeout
// bounds each request: an unreachable broker must not hold a reconcile.
func NewClient(addr, user, password string, timeout time.Duration) *Client {
	return &Client{
		base: "http://" + addr, user: user, password: password,
		http: &http.Client{Timeout: timeout, Transport: &http.Transport{
			Proxy: nil, DisableKeepAlives: false, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second,
		}},
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// APIError is an answer of the management API that is not a success.
type APIError struct {
	Method, Path string
	Status       int
	Reason       string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Reason)
}

// IsNotFound tells a 404 answer.
func IsNotFound(err error) bool {
	var api *APIError
	return errors.As(err, &api) && api.Status == http.StatusNotFound
}

// Ping checks that the API answers and takes the credentials.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/api/whoami", nil, nil)
}

// ExchangeExists implements Management.
func (c *Client) ExchangeExists(ctx context.Context, vhost, exchange string) (bool, error) {
	err := c.do(ctx, http.MethodGet, path("exchanges", vhost, exchange), nil, nil)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Queues implements Management. Counts absent from the answer (statistics
// not in yet) leave StatsKnown false.
func (c *Client) Queues(ctx context.Context, vhost string) ([]Queue, error) {
	var rows []struct {
		Name      string `json:"name"`
		Messages  *int   `json:"messages"`
		Consumers *int   `json:"consumers"`
	}
	if err := c.do(ctx, http.MethodGet, path("queues", vhost)+"?columns=name,messages,consumers", nil, &rows); err != nil {
		return nil, err
	}
	out := make([]Queue, 0, len(rows))
	for _, r := range rows {
		q := Queue{Name: r.Name, StatsKnown: r.Messages != nil && r.Consumers != nil}
		if q.StatsKnown {
			q.Messages, q.Consumers = *r.Messages, *r.Consumers
		}
		out = append(out, q)
	}
	return out, nil
}

// Bindings implements Management: the exchange's bindings to queues.
func (c *Client) Bindings(ctx context.Context, vhost, exchange string) ([]Binding, error) {
	var rows []struct {
		Destination     string `json:"destination"`
		DestinationType string `json:"destination_type"`
		RoutingKey      string `json:"routing_key"`
		PropertiesKey   string `json:"properties_key"`
	}
	if err := c.do(ctx, http.MethodGet, path("exchanges", vhost, exchange, "bindings", "source"), nil, &rows); err != nil {
		return nil, err
	}
	var out []Binding
	for _, r := range rows {
		if r.DestinationType == "queue" {
			out = append(out, Binding{Queue: r.Destination, RoutingKey: r.RoutingKey, PropertiesKey: r.PropertiesKey})
		}
	}
	return out, nil
}

// Record implements Management; a broker that has none has an empty one.
func (c *Client) Record(ctx context.Context) (Record, error) {
	var param struct {
		Value Record `json:"value"`
	}
	err := c.do(ctx, http.MethodGet, path("global-parameters", RecordParameter), nil, &param)
	if IsNotFound(err) {
		return Record{Queues: map[string][]string{}}, nil
	}
	if param.Value.Queues == nil {
		param.Value.Queues = map[string][]string{}
	}
	return param.Value, err
}

// SetRecord implements Management.
func (c *Client) SetRecord(ctx context.Context, r Record) error {
	body := map[string]any{"name": RecordParameter, "value": r}
	return c.do(ctx, http.MethodPut, path("global-parameters", RecordParameter), body, nil)
}

// DeclareExchange implements Management: direct and durable, as Celery
// declares its default exchange.
func (c *Client) DeclareExchange(ctx context.Context, vhost, exchange string) error {
	body := map[string]any{"type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": map[string]any{}}
	return c.do(ctx, http.MethodPut, path("exchanges", vhost, exchange), body, nil)
}

// DeclareQueue implements Management: durable, as the boot definitions and
// Celery declare it.
func (c *Client) DeclareQueue(ctx context.Context, vhost, queue string) error {
	body := map[string]any{"durable": true, "auto_delete": false, "arguments": map[string]any{}}
	return c.do(ctx, http.MethodPut, path("queues", vhost, queue), body, nil)
}

// Bind implements Management.
func (c *Client) Bind(ctx context.Context, vhost, exchange string, b Binding) error {
	body := map[string]any{"routing_key": b.RoutingKey, "arguments": map[string]any{}}
	return c.do(ctx, http.MethodPost, path("bindings", vhost, "e", exchange, "q", b.Queue), body, nil)
}

// Unbind implements Management; a binding already gone is not an error.
func (c *Client) Unbind(ctx context.Context, vhost, exchange string, b Binding) error {
	key := b.PropertiesKey
	if key == "" {
		key = b.RoutingKey
	}
	err := c.do(ctx, http.MethodDelete, path("bindings", vhost, "e", exchange, "q", b.Queue, key), nil, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// DeleteQueueIfIdle implements Management. The broker answers 400 when the
// queue is not empty or has consumers; a queue already gone counts as
// deleted.
func (c *Client) DeleteQueueIfIdle(ctx context.Context, vhost, queue string) (bool, error) {
	err := c.do(ctx, http.MethodDelete, path("queues", vhost, queue)+"?if-empty=true&if-unused=true", nil, nil)
	var api *APIError
	switch {
	case err == nil, IsNotFound(err):
		return true, nil
	case errors.As(err, &api) && api.Status == http.StatusBadRequest:
		return false, nil
	}
	return false, err
}

// path joins escaped segments: the virtual host "/" is "%2F".
func path(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api")
	for _, s := range segments {
		b.WriteString("/" + url.PathEscape(s))
	}
	return b.String()
}

func (c *Client) do(ctx context.Context, method, p string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	u, err := url.Parse(c.base + p)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, p, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(data, &e)
		reason := strings.TrimSpace(e.Error + ": " + e.Reason)
		if e.Error == "" {
			reason = http.StatusText(resp.StatusCode)
		}
		return &APIError{Method: method, Path: p, Status: resp.StatusCode, Reason: reason}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, p, err)
	}
	return nil
}
