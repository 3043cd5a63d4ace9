package resource

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestRabbitMQPrometheusPerQueueOnRealServer boots the broker pod as the
// builders lay it out, rabbitmq_prometheus enabled, and reads /metrics:
// every declared queue has its own rabbitmq_queue_messages_ready series
// (per-object metrics, from the pod's advanced.config), and 500 messages
// published to one queue show in it. The rules, the dashboard and KEDA
// read exactly that series.
func TestRabbitMQPrometheusPerQueueOnRealServer(t *testing.T) {
	rmq := requireRabbitMQ(t)
	p := samplePlatform()
	b := bootBrokerPodWith(t, rmq, p, brokerBoot{prometheus: true})
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", b.promPort)

	body := scrape(t, url)
	for _, name := range []string{MetricRabbitReady, MetricRabbitUnacked, MetricRabbitConsumers} {
		if !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for _, q := range QueueBindings(p) {
		if _, ok := queueReady(body, q.Queue); !ok {
			t.Errorf("/metrics has no %s series for queue %s (per-object metrics off?)", MetricRabbitReady, q.Queue)
		}
	}

	conn, err := amqp.Dial(fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/", BrokerUser, testBrokerPassword, b.amqpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 500 {
		if err := ch.PublishWithContext(ctx, CeleryExchange, "parser", false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, _ := queueReady(scrape(t, url), "parser")
		if n == 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rabbitmq_queue_messages_ready{queue=\"parser\"} = %v after publishing 500 messages", n)
		}
		time.Sleep(time.Second)
	}
	if n, _ := queueReady(scrape(t, url), "analytics"); n != 0 {
		t.Errorf("analytics shows %v ready messages, want 0", n)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(out)
}

var readyLine = regexp.MustCompile(`^` + MetricRabbitReady + `\{([^}]*)\} ([0-9.e+]+)$`)

// queueReady is the value of the queue's ready-messages series.
func queueReady(body, queue string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		m := readyLine.FindStringSubmatch(sc.Text())
		if m != nil && strings.Contains(m[1], `queue="`+queue+`"`) {
			v, err := strconv.ParseFloat(m[2], 64)
			return v, err == nil
		}
	}
	return 0, false
}
