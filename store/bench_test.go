package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// Shape of BenchmarkAddLead's load: what intake and sync do in the
// service, minus HTTP and Temporal.
const (
	benchSenders      = 8   // concurrent intake requests
	benchLeadSources  = 2   // lead integrations of the org
	benchCRMs         = 2   // CRM integrations of the org; each lead is delivered to all
	benchBatch        = 100 // deliveries read and completed at once, as a connector batch
	benchIdleInterval = 5 * time.Millisecond
)

// BenchmarkAddLead drives leads through AddLead from benchSenders
// goroutines while, per CRM integration, a consumer reads pending
// deliveries in batches of benchBatch and completes them, as the CRM
// workflows do. It reports intake (leads/s) and delivery (deliveries/s)
// throughput and the lead-to-completion latency the store saw.
//
//	INTEGRATIONS_REQUIRE_SERVICES=1 go test ./store/ -run '^$' -bench AddLead -benchtime 2s
func BenchmarkAddLead(b *testing.B) {
	for _, name := range []string{"postgres", "sqlite"} {
		b.Run(name, func(b *testing.B) {
			db := testenv.Database{Name: name, URL: testenv.SQLiteURL(b)}
			if name == "postgres" {
				db.URL = testenv.PostgresURL(b)
			}
			benchmarkAddLead(b, setup(b, db))
		})
	}
}

func benchmarkAddLead(b *testing.B, bundle *testBundle) {
	for i := range benchLeadSources {
		leadIntegration(b, bundle, fmt.Sprint("bench-lead-", i), "org-bench", integration.StatusActive)
	}
	crms := make([]string, benchCRMs)
	for i := range crms {
		crms[i] = fmt.Sprint("bench-crm-", i)
		crmIntegration(b, bundle, crms[i], "org-bench", integration.StatusActive)
	}
	// Whatever fails in a goroutine ends the run and is reported after it.
	ctx, cancel := context.WithCancel(bundle.ctx)
	defer cancel()
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}

	var delivered atomic.Int64
	var consumers sync.WaitGroup
	stopConsumers := make(chan struct{})
	for _, crm := range crms {
		consumers.Go(func() {
			for {
				batch, err := bundle.store.PendingDeliveries(ctx, crm, benchBatch)
				if err != nil {
					fail(err)
					return
				}
				if len(batch) == 0 {
					select {
					case <-stopConsumers:
						return
					case <-ctx.Done():
						return
					case <-time.After(benchIdleInterval):
					}
					continue
				}
				results := make([]store.DeliveryResult, len(batch))
				for i, d := range batch {
					results[i] = store.DeliveryResult{LeadID: d.Lead.ID, Status: store.DeliveryDelivered, CRMRecordID: fmt.Sprint("rec-", d.Lead.ID)}
				}
				if err := bundle.store.CompleteDeliveries(ctx, crm, results, time.Now()); err != nil {
					fail(err)
					return
				}
				delivered.Add(int64(len(results)))
			}
		})
	}

	leads := make(chan int, benchSenders)
	var senders sync.WaitGroup
	for range benchSenders {
		senders.Go(func() {
			for i := range leads {
				l := newLeadPayload(fmt.Sprint("bench-lead-", i%benchLeadSources), fmt.Sprint("ext-", i), 0)
				l.ReceivedAt = time.Now()
				res, err := bundle.store.AddLead(ctx, l)
				if err == nil && len(res.Routed) != benchCRMs {
					err = fmt.Errorf("lead %d routed to %v", res.LeadID, res.Routed)
				}
				if err != nil {
					fail(err)
				}
			}
		})
	}

	start := time.Now()
	sent := 0
	for b.Loop() {
		if ctx.Err() != nil {
			break
		}
		leads <- sent
		sent++
	}
	close(leads)
	senders.Wait()
	intake := time.Since(start)
	// Let the consumers drain the backlog, as the service must.
	for ctx.Err() == nil && delivered.Load() < int64(sent*benchCRMs) {
		time.Sleep(time.Millisecond)
	}
	drained := time.Since(start)
	close(stopConsumers)
	consumers.Wait()
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		b.Fatal(firstErr)
	}

	latencies, err := bundle.store.DeliveryLatencies(bundle.ctx, start.Add(-time.Second))
	require.NoError(b, err)
	require.Len(b, latencies, sent*benchCRMs)
	b.ReportMetric(float64(sent)/intake.Seconds(), "leads/s")
	b.ReportMetric(float64(delivered.Load())/drained.Seconds(), "deliveries/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
