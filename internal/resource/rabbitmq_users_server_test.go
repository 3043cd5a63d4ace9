package resource

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/vkparser/parser-operator/internal/rabbitmq"
)

// TestRabbitMQUsersHaveLeastPrivilegeOnRealServer boots the broker pod's
// files on a real RabbitMQ with the management API on, and checks what each
// user of users.json may do (broker_users.go): the applications' user
// publishes and consumes on the Celery vhost and is refused by the
// management API; the operator's user reads and writes the queue record the
// operator keeps in a global parameter, which a user tagged management may
// not, and is refused the broker's users and permissions: policymaker is
// the least tag that works.
func TestRabbitMQUsersHaveLeastPrivilegeOnRealServer(t *testing.T) {
	rmq := requireRabbitMQ(t)
	b := bootBrokerPod(t, rmq, withSeedQueues(samplePlatform()), true)
	api := func(user, password string) *rabbitmq.Client {
		c := rabbitmq.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(b.mgmtPort)), user, password, 10*time.Second)
		t.Cleanup(c.Close)
		return c
	}
	t.Run("applications' user", func(t *testing.T) { checkAppUser(t, b, api(BrokerUser, testBrokerPassword)) })
	t.Run("operator's user", func(t *testing.T) { checkOperatorUser(t, b, api(BrokerOperatorUser, testOperatorPassword)) })
	t.Run("the management tag is not enough", func(t *testing.T) {
		for _, args := range [][]string{
			{"add_user", "probe-management", testOperatorPassword},
			{"set_user_tags", "probe-management", "management"},
			{"set_permissions", "-p", RabbitVhost, "probe-management", ".*", ".*", ".*"},
		} {
			if out, err := b.srv.ctl(t, args...); err != nil {
				t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
			}
		}
		probe := api("probe-management", testOperatorPassword)
		if err := probe.Ping(t.Context()); err != nil {
			t.Fatalf("management API as probe-management: %v", err)
		}
		if _, err := probe.Record(t.Context()); !isRefused(err) {
			t.Errorf("reading the global parameter %s with the management tag: %v, want refused; if it is allowed, the operator's user needs no policymaker tag",
				rabbitmq.RecordParameter, err)
		}
	})
}

// checkAppUser: Celery's traffic over AMQP on its vhost, and nothing over
// HTTP (no tag, no management API).
func checkAppUser(t *testing.T, b *brokerPod, appAPI *rabbitmq.Client) {
	ctx := t.Context()
	conn, err := amqp.Dial(fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", BrokerUser, testBrokerPassword, b.amqpPort))
	if err != nil {
		t.Fatalf("AMQP as %s: %v", BrokerUser, err)
	}
	defer func() { _ = conn.Close() }()
	app := &amqpBroker{t: t, conn: conn}
	if unroutable := app.publish("parser", 5); unroutable != 0 {
		t.Fatalf("%d of 5 messages published as %s came back unroutable", unroutable, BrokerUser)
	}
	if got := app.drain("parser"); got != 5 {
		t.Errorf("%s consumed %d messages from parser, want the 5 it published", BrokerUser, got)
	}
	app.declare("celery-made", "celery-made") // Celery declares queues of its own (configure)
	for name, call := range map[string]func() error{
		"GET /api/whoami":                 func() error { return appAPI.Ping(ctx) },
		"GET /api/queues/%2F":             func() error { _, err := appAPI.Queues(ctx, RabbitVhost); return err },
		"DELETE /api/queues/%2F/parser":   func() error { _, err := appAPI.DeleteQueueIfIdle(ctx, RabbitVhost, "parser"); return err },
		"GET the operator's queue record": func() error { _, err := appAPI.Record(ctx); return err },
	} {
		if err := call(); !isRefused(err) {
			t.Errorf("%s as %s: %v, want 401 (the applications' user has no management rights)", name, BrokerUser, err)
		}
	}
}

// checkOperatorUser: the management API, its queue record (read and
// write), and nothing of the broker's users, vhosts or permissions.
func checkOperatorUser(t *testing.T, b *brokerPod, operator *rabbitmq.Client) {
	ctx := t.Context()
	if err := operator.Ping(ctx); err != nil {
		t.Fatalf("management API as %s: %v", BrokerOperatorUser, err)
	}
	record := rabbitmq.Record{Queues: map[string][]string{"parser": {"parser"}}}
	if err := operator.SetRecord(ctx, record); err != nil {
		t.Errorf("writing the queue record as %s: %v", BrokerOperatorUser, err)
	}
	if got, err := operator.Record(ctx); err != nil || len(got.Queues["parser"]) != 1 {
		t.Errorf("reading the queue record as %s: %v, %v", BrokerOperatorUser, got, err)
	}
	if _, err := operator.Queues(ctx, RabbitVhost); err != nil {
		t.Errorf("listing queues as %s: %v", BrokerOperatorUser, err)
	}
	for _, path := range []string{"/api/users", "/api/permissions", "/api/definitions"} {
		if status := getStatus(t, b.mgmtPort, BrokerOperatorUser, testOperatorPassword, path); status != http.StatusUnauthorized && status != http.StatusForbidden {
			t.Errorf("GET %s as %s: HTTP %d, want 401 or 403 (administrators only)", path, BrokerOperatorUser, status)
		}
	}
}

// getStatus is the HTTP status of a GET on the management API.
func getStatus(t *testing.T, port int, user, password, path string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// isRefused: the management API said 401 or 403.
func isRefused(err error) bool {
	var api *rabbitmq.APIError
	return errors.As(err, &api) && (api.Status == http.StatusUnauthorized || api.Status == http.StatusForbidden)
}
