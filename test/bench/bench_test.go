package main

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func TestClassicHistogramQuantile(t *testing.T) {
	text := `# TYPE h histogram
h_bucket{controller="a",le="0.1"} 50
h_bucket{controller="a",le="1"} 90
h_bucket{controller="a",le="10"} 100
h_bucket{controller="a",le="+Inf"} 100
h_sum{controller="a"} 42
h_count{controller="a"} 100
h_bucket{controller="b",le="0.1"} 0
h_bucket{controller="b",le="1"} 0
h_bucket{controller="b",le="10"} 7
h_bucket{controller="b",le="+Inf"} 7
h_sum{controller="b"} 30
h_count{controller="b"} 7
`
	f, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	h := f.histogram("h", where("controller", "a"))
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.1}, {0.25, 0.05}, {0.7, 0.55}, {0.99, 9.1}} {
		if got := h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := h.bucketAbove(0.95); got != 10 {
		t.Errorf("p95 bucket %v, want 10", got)
	}
	if got := f.histogram("h", where()).count; got != 107 {
		t.Errorf("merged count %v, want 107", got)
	}
	earlier := f.histogram("h", where("controller", "b"))
	if d := h.minus(earlier); d.count != 93 {
		t.Errorf("minus count %v", d.count)
	}
	if got := f.histogram("missing", where()).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty quantile %v, want NaN", got)
	}
}

// TestNativeHistogramBuckets: schema 0 buckets are (2^(i-1), 2^i].
func TestNativeHistogramBuckets(t *testing.T) {
	h := &dto.Histogram{
		SampleCount:   proto.Uint64(12),
		Schema:        proto.Int32(0),
		ZeroThreshold: proto.Float64(1e-9),
		ZeroCount:     proto.Uint64(1),
		// indexes 0, 1 (bounds 1, 2), then a gap, index 3 (bound 8)
		PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}, {Offset: proto.Int32(1), Length: proto.Uint32(1)}},
		PositiveDelta: []int64{2, 3, -1}, // counts 2, 5, 4
		Bucket:        []*dto.Bucket{{UpperBound: proto.Float64(100), CumulativeCount: proto.Uint64(12)}},
	}
	f := families{"h": {Name: proto.String("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: h}}}}
	got := f.histogram("h", where())
	want := map[float64]float64{1e-9: 1, 1: 3, 2: 8, 8: 12} // cumulative; not the classic 100
	for i, b := range got.bounds {
		if math.IsInf(b, 1) {
			continue
		}
		if got.counts[i] != want[b] {
			t.Errorf("bound %v: cumulative %v, want %v", b, got.counts[i], want[b])
		}
	}
	// The 6th of 12 observations lies in (1, 2].
	if q := got.quantile(0.5); q <= 1 || q > 2 {
		t.Errorf("median %v, want in (1, 2]", q)
	}
}

func TestRequestRow(t *testing.T) {
	for _, tc := range []struct{ method, path, ct, want string }{
		{"POST", "/api/v1/namespaces", "", "POST namespaces"},
		{"POST", "/api/v1/namespaces/x/configmaps", "", "POST configmaps"},
		{"POST", "/apis/platform.vkparser.io/v1alpha1/namespaces/x/parserplatforms", "", "POST platform.vkparser.io/parserplatforms"},
		{"POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "", "POST rbac.authorization.k8s.io/clusterroles"},
		{"PATCH", "/apis/apps/v1/namespaces/x/deployments/d", "application/apply-patch+yaml", "APPLY apps/deployments"},
	} {
		req := &http.Request{Method: tc.method, URL: &url.URL{Path: tc.path}, Header: http.Header{}}
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		if got := requestRow(req); got != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

// TestOperatorWrites: the benchmark's own and the API server's internal
// writes are taken out; the rest is the operator's.
func TestOperatorWrites(t *testing.T) {
	w := writes{
		writeRow("POST", "platform.vkparser.io", "parserplatforms", "", "201"):        30,
		writeRow("POST", "", "configmaps", "", "201"):                                 150,
		writeRow("PATCH", "platform.vkparser.io", "parserplatforms", "status", "409"): 2,
		writeRow("PUT", "coordination.k8s.io", "leases", "", "200"):                   6,
		writeRow("POST", "networking.k8s.io", "ipaddresses", "", "201"):               40,
	}
	total, rows := w.operatorWrites(map[string]int{"POST platform.vkparser.io/parserplatforms": 30})
	if total != 152 || len(rows) != 2 {
		t.Errorf("total %v, rows %v; want 152 in 2 rows", total, rows)
	}
}

func TestPercentileIsTheNearestRank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{nil, 0.99, 0},
		{ms(7), 0.5, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.q, got, tc.want)
		}
	}
}
