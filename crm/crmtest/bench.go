package crmtest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkPacing measures a pacing connector draining a backlog under a
// call limit of its CRM: the fake answers more than calls per window with
// the CRM's rate-limit response, and the connector is told the limit as
// the CRM tells it (LimitCalls). Each iteration pushes windows windows'
// worth of full batches as fast as the connector lets them go, on an
// account of its own. It reports, from the fake's recorded call times:
// calls/s, the share of the allowed rate the drain reached (%-of-limit),
// and how many calls were answered 429 (rate-limited), which a healthy
// pacer keeps at zero.
//
// Run it with -benchtime 1x: one iteration takes about windows windows.
func BenchmarkPacing(b *testing.B, h Harness, calls int, window time.Duration, windows int) {
	if !h.Capabilities().Pacing {
		b.Fatal("crmtest: BenchmarkPacing needs a connector that paces (Capabilities().Pacing)")
	}
	c := h.Connector()
	var rates []float64
	limited := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		acct := h.NewAccount(b)
		h.LimitCalls(b, acct, calls, window)
		recs := records(fmt.Sprintf("bench%d", i), calls*windows*c.BatchLimit())
		b.StartTimer()
		for batch := range slices.Chunk(recs, c.BatchLimit()) {
			if _, err := c.Push(b.Context(), acct.Credentials, batch); err != nil {
				b.Fatalf("push under a limit of %d per %s: %v", calls, window, err)
			}
		}
		b.StopTimer()
		log := h.Calls(b, acct)
		if len(log) < 2 {
			b.Fatalf("the fake recorded %d calls", len(log))
		}
		for _, call := range log {
			if call.Status == http.StatusTooManyRequests {
				limited++
			}
		}
		span := log[len(log)-1].At.Sub(log[0].At)
		rates = append(rates, float64(len(log)-1)/span.Seconds())
		b.StartTimer()
	}
	allowed := float64(calls) / window.Seconds()
	mean := 0.0
	for _, r := range rates {
		mean += r
	}
	mean /= float64(len(rates))
	b.ReportMetric(mean, "calls/s")
	b.ReportMetric(100*mean/allowed, "%-of-limit")
	b.ReportMetric(float64(limited), "429s")
}
