package main

import (
	"errors"
	"io"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families is one scrape of a Prometheus text endpoint.
type families map[string]*dto.MetricFamily

func parseMetrics(r io.Reader) (families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// acceptProtobuf asks a Prometheus endpoint for the protobuf exposition: only
// it carries native histograms, whose ~9 % buckets give real percentiles
// where the classic work-queue buckets are decades (1 s, 10 s, ...).
const acceptProtobuf = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9,text/plain;version=0.0.4;q=0.5"

// parseResponse decodes a scrape in whichever format the endpoint chose.
func parseResponse(resp *http.Response) (families, error) {
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() != expfmt.TypeProtoDelim {
		return parseMetrics(resp.Body)
	}
	out := families{}
	dec := expfmt.NewDecoder(resp.Body, format)
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		out[mf.GetName()] = mf
	}
}

// labelsOf flattens a series' labels.
func labelsOf(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// where matches series whose labels have every given value.
func where(kv ...string) func(map[string]string) bool {
	return func(l map[string]string) bool {
		for i := 0; i+1 < len(kv); i += 2 {
			if l[kv[i]] != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// sum adds the values of a counter, gauge or untyped family's matching series.
func (f families) sum(name string, match func(map[string]string) bool) float64 {
	total := 0.0
	mf, ok := f[name]
	if !ok {
		return 0
	}
	for _, m := range mf.GetMetric() {
		if !match(labelsOf(m)) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

// histogram is a classic Prometheus histogram: cumulative bucket counts by
// upper bound, the last bound +Inf.
type histogram struct {
	bounds []float64
	counts []float64
	count  float64
	sum    float64
}

// histogram merges the matching series of a histogram family.
func (f families) histogram(name string, match func(map[string]string) bool) histogram {
	byBound := map[float64]float64{}
	h := histogram{}
	mf, ok := f[name]
	if !ok {
		return h
	}
	for _, m := range mf.GetMetric() {
		if m.Histogram == nil || !match(labelsOf(m)) {
			continue
		}
		addBuckets(byBound, m.GetHistogram())
		h.count += float64(m.GetHistogram().GetSampleCount())
		h.sum += m.GetHistogram().GetSampleSum()
	}
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.counts = append(h.counts, byBound[b])
	}
	if n := len(h.bounds); n == 0 || !math.IsInf(h.bounds[n-1], 1) {
		h.bounds = append(h.bounds, math.Inf(1))
		h.counts = append(h.counts, h.count)
	}
	return h
}

// addBuckets adds a series' cumulative bucket counts by upper bound: the
// native buckets when the scrape has them, else the classic ones.
func addBuckets(byBound map[float64]float64, h *dto.Histogram) {
	if h.Schema == nil || (len(h.GetPositiveSpan()) == 0 && h.GetZeroCount() == 0) {
		for _, b := range h.GetBucket() {
			byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
		return
	}
	// Native: bucket i holds (base^(i-1), base^i], base = 2^(2^-schema);
	// spans give the indexes, deltas the counts. Observations here are
	// durations, never negative.
	base := math.Pow(2, math.Pow(2, -float64(h.GetSchema())))
	cumulative := float64(h.GetZeroCount())
	byBound[h.GetZeroThreshold()] += cumulative
	index, count, d := int32(0), int64(0), 0
	for _, span := range h.GetPositiveSpan() {
		index += span.GetOffset()
		for range span.GetLength() {
			count += h.GetPositiveDelta()[d]
			d++
			cumulative += float64(count)
			byBound[math.Pow(base, float64(index))] += cumulative
			index++
		}
	}
}

// minus is the histogram of the observations made since earlier.
func (h histogram) minus(earlier histogram) histogram {
	out := histogram{bounds: h.bounds, count: h.count - earlier.count, sum: h.sum - earlier.sum}
	before := map[float64]float64{}
	for i, b := range earlier.bounds {
		before[b] = earlier.counts[i]
	}
	for i, b := range h.bounds {
		out.counts = append(out.counts, h.counts[i]-before[b])
	}
	return out
}

// quantile estimates the q-quantile as PromQL's histogram_quantile does:
// linear interpolation inside the bucket that holds it. NaN without samples.
func (h histogram) quantile(q float64) float64 {
	if h.count <= 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, upper := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(upper, 1) {
				// Beyond the last finite bound: report that bound.
				return lower
			}
			inBucket := h.counts[i] - below
			if inBucket <= 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/inBucket
		}
		lower, below = upper, h.counts[i]
	}
	return lower
}

// bucketAbove is the smallest bucket bound at or above the q-quantile: what
// the histogram can say for sure ("p99 <= 0.1 s").
func (h histogram) bucketAbove(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	for i, upper := range h.bounds {
		if h.counts[i] >= q*h.count {
			return upper
		}
	}
	return math.Inf(1)
}
