package activities_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/proc"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// Shape of BenchmarkDeliverBacklog: the org of `integrations bench`.
const (
	benchCRMs    = 2
	benchBacklog = 20000 // leads pending for every CRM integration
)

// BenchmarkDeliverBacklog drains a backlog of benchBacklog leads per CRM
// integration through Deliver into an in-process sandbox CRM, both CRM
// integrations at once as their workflows would, and then pushes the same
// number of records in the same batches straight through the connector,
// one pusher per CRM account. It reports both rates, the first as a share
// of the second, and the machine's CPU time per record of each: what the
// database work of delivery costs. Temporal is left out (it adds one
// activity round trip per deliverBudget and the resume's validation).
//
//	INTEGRATIONS_REQUIRE_SERVICES=1 go test ./activities/ -run '^$' -bench DeliverBacklog -benchtime 1x
func BenchmarkDeliverBacklog(b *testing.B) {
	for _, name := range []string{"postgres", "sqlite"} {
		b.Run(name, func(b *testing.B) {
			url := testenv.SQLiteURL(b)
			if name == "postgres" {
				url = testenv.PostgresURL(b)
			}
			benchmarkDeliverBacklog(b, url)
		})
	}
}

func benchmarkDeliverBacklog(b *testing.B, databaseURL string) {
	ctx := context.Background()
	st, err := store.Open(ctx, databaseURL)
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	require.NoError(b, st.Migrate(ctx))
	kr, err := credential.NewKeyring(make([]byte, 32))
	require.NoError(b, err)

	server, err := sandboxfake.NewServer("")
	require.NoError(b, err)
	httpServer := httptest.NewServer(server.Handler())
	b.Cleanup(httpServer.Close)
	connector := sandbox.NewConnector(httpServer.URL, nil)
	client := sandboxfake.NewClient(httpServer.URL, nil)
	acts := &activities.Activities{Store: st, Connectors: crm.NewRegistry(connector), Keyring: kr}

	now := time.Now().UTC()
	project := func(spec integration.Spec) {
		s, err := integration.New(spec, now)
		require.NoError(b, err)
		s.Status, s.Reason, s.Version = integration.StatusActive, integration.ReasonNone, 2
		_, err = st.Project(ctx, s, integration.Change{IntegrationID: s.ID, Version: 2, Event: integration.EventCompleteSetup, ToStatus: s.Status, At: now})
		require.NoError(b, err)
	}
	project(integration.Spec{ID: "bench-lead", OrgID: "org", Kind: integration.KindLead, Provider: "p", ExpectedSource: "s"})
	crms := make([]string, benchCRMs)
	keys := make([]string, benchCRMs)
	for i := range crms {
		crms[i] = fmt.Sprint("bench-crm-", i)
		project(integration.Spec{ID: crms[i], OrgID: "org", Kind: integration.KindCRM, Provider: sandbox.ProviderName})
		acct, err := client.CreateAccount(ctx, nil)
		require.NoError(b, err)
		keys[i] = acct.APIKey
		cred, err := st.AddCandidateCredential(ctx, crms[i], kr.Sealer([]byte(`{"api_key":"`+acct.APIKey+`"}`), crms[i]), now)
		require.NoError(b, err)
		_, err = st.PromoteCredential(ctx, crms[i], cred.Version, now)
		require.NoError(b, err)
	}

	// Seeded behind the store's back, on a pool of its own.
	seedDB := testenv.OpenSQL(b, databaseURL)
	var delivered, raw, deliveredCPU, rawCPU time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		seedBacklog(b, seedDB, round, crms)
		b.StartTimer()
		busy := machineBusy(b)
		delivered += drainBacklog(b, acts, crms)
		deliveredCPU += machineBusy(b) - busy
		b.StopTimer()
		busy = machineBusy(b)
		raw += pushRaw(b, connector, keys, round)
		rawCPU += machineBusy(b) - busy
		b.StartTimer()
		round++
	}
	for i, key := range keys {
		stats, err := client.Records(ctx, key)
		require.NoError(b, err)
		require.Equal(b, 2*round*benchBacklog, stats.Records, "CRM %d: every lead once, and the raw records", i)
	}
	records := float64(round * benchBacklog * benchCRMs)
	b.ReportMetric(records/delivered.Seconds(), "delivered/s")
	b.ReportMetric(records/raw.Seconds(), "raw/s")
	b.ReportMetric(100*raw.Seconds()/delivered.Seconds(), "%-of-raw")
	// The machine's CPU time (this process, PostgreSQL, everything) per
	// record: while both phases saturate the processors, their ratio
	// bounds the share above.
	b.ReportMetric(float64(deliveredCPU.Microseconds())/records, "cpu-µs/delivery")
	b.ReportMetric(float64(rawCPU.Microseconds())/records, "cpu-µs/raw")
}

// machineBusy is proc.MachineBusy, which must work here.
func machineBusy(b *testing.B) time.Duration {
	b.Helper()
	busy, ok := proc.MachineBusy()
	require.True(b, ok, "this benchmark reads /proc/stat")
	return busy
}

// seedBacklog writes benchBacklog leads with a pending delivery to every
// CRM integration in a few statements, which intake would take minutes for.
func seedBacklog(b *testing.B, db *sqlx.DB, round int, crms []string) {
	b.Helper()
	at := time.Now().UTC()
	_, err := db.Exec(db.Rebind(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO leads (lead_integration_id, org_id, external_id, source, name, email, phone, message, received_at)
SELECT 'bench-lead', 'org', ? || i, 'Bench Partner', 'Lead ' || i, 'lead' || i || '@example.com', '+1555' || i,
	'Please call me back about the listing.', ? FROM n`), benchBacklog, "r"+strconv.Itoa(round)+"-", at)
	require.NoError(b, err)
	for _, id := range crms {
		_, err := db.Exec(db.Rebind(`INSERT INTO lead_deliveries (crm_integration_id, lead_id, created_at)
SELECT ?, id, ? FROM leads WHERE external_id LIKE ?`), id, at, "r"+strconv.Itoa(round)+"-%")
		require.NoError(b, err)
	}
	if db.DriverName() == "postgres" {
		// As autovacuum would after such a load (measured: the plans
		// and the figures are the same without it).
		_, err = db.Exec(`ANALYZE leads; ANALYZE lead_deliveries`)
		require.NoError(b, err)
	}
}

// drainBacklog runs Deliver for every CRM integration at once until
// nothing is pending, and returns how long that took.
func drainBacklog(b *testing.B, acts *activities.Activities, crms []string) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make([]error, len(crms))
	start := time.Now()
	for i, id := range crms {
		wg.Go(func() {
			for {
				res, err := acts.Deliver(context.Background(), activities.DeliverInput{IntegrationID: id, Provider: sandbox.ProviderName})
				if err == nil && res.Failure != nil {
					err = fmt.Errorf("%s: %s", res.Failure.Class, res.Failure.Message)
				}
				if err != nil {
					errs[i] = err
					return
				}
				total.Add(int64(res.Delivered + res.Rejected))
				if !res.More {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		require.NoError(b, err)
	}
	require.Equal(b, int64(benchBacklog*len(crms)), total.Load())
	return elapsed
}

// pushRaw pushes benchBacklog records per account straight through the
// connector in its full batches, one pusher per account, and returns how
// long that took.
func pushRaw(b *testing.B, connector crm.Connector, keys []string, round int) time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	start := time.Now()
	for p, key := range keys {
		wg.Go(func() {
			creds := []byte(`{"api_key":"` + key + `"}`)
			for start := 0; start < benchBacklog; start += connector.BatchLimit() {
				batch := make([]crm.Record, 0, connector.BatchLimit())
				for k := start; k < min(start+connector.BatchLimit(), benchBacklog); k++ {
					batch = append(batch, crm.Record{
						Key: fmt.Sprintf("raw-%d-%d-%d", round, p, k), Source: "Bench Partner", Name: fmt.Sprint("Lead ", k),
						Email: fmt.Sprintf("lead%d@example.com", k), Phone: fmt.Sprint("+1555", k),
						Message: "Please call me back about the listing.",
					})
				}
				if _, err := connector.Push(context.Background(), creds, batch); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		require.NoError(b, err)
	}
	return elapsed
}
