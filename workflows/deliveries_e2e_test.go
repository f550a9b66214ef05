package workflows_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/starter"
)

// deliveryBundle is a flowBundle whose worker sets a lead aside after
// maxAttempts failures of its own.
type deliveryBundle struct {
	*flowBundle
	maxAttempts int
}

func setupDeliveries(t *testing.T, db testenv.Database, maxAttempts int) *deliveryBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	stack := teststack.New(t, db, teststack.Options{Config: syncConfig, MaxDeliveryAttempts: maxAttempts})
	return &deliveryBundle{flowBundle: &flowBundle{e2eBundle: &e2eBundle{stack: stack, ctx: ctx}, org: testenv.ID("org")}, maxAttempts: maxAttempts}
}

// send sends one lead and returns its ID.
func (b *deliveryBundle) send(t *testing.T, lead starter.Lead) int64 {
	t.Helper()
	b.sent++
	lead.ExternalID, lead.Source = fmt.Sprintf("ext-%d", b.sent), "Z"
	out, err := b.stack.Starter.Intake(b.ctx, b.lead, lead)
	require.NoError(t, err)
	require.False(t, out.Duplicate)
	// The reply's ID is the opaque public one; the CRM record's key is
	// the store's.
	stored, err := b.stack.Store.LeadByPublicID(b.ctx, out.LeadID)
	require.NoError(t, err)
	return stored.ID
}

// delivery reads a delivery as it is stored.
func (b *deliveryBundle) delivery(t *testing.T, crmID string, leadID int64) (status, reason string, solo int) {
	t.Helper()
	db := testenv.OpenSQL(t, b.stack.DB.URL)
	defer db.Close()
	q := db.Rebind(`SELECT status, reason, solo_failures FROM lead_deliveries WHERE crm_integration_id = ? AND lead_id = ?`)
	require.NoError(t, db.QueryRowContext(b.ctx, q, crmID, leadID).Scan(&status, &reason, &solo))
	return status, reason, solo
}

// requireOnce fails unless the sandbox account holds exactly the leads
// ids, each upserted once.
func (b *deliveryBundle) requireOnce(t *testing.T, key string, ids []int64) {
	t.Helper()
	stats, err := b.stack.Sandbox.Records(b.ctx, key)
	require.NoError(t, err)
	want := make(map[string]int, len(ids))
	for _, id := range ids {
		want[strconv.FormatInt(id, 10)] = 1
	}
	require.Equal(t, want, stats.ByKey, "every lead delivered exactly once, and nothing else")
}

// TestRefusedBatchesAreSplit is review H1 end to end: 25 leads whose
// attributes hold 60,000 '<' take a batch of the backlog over the
// sandbox's 8 MiB (a 413), and two leads carry what the sandbox refuses a
// batch for (a 400). Delivery splits until it finds them: the two are
// rejected with the CRM's reason, every other lead is delivered exactly
// once, and the integration never fails a sync.
func TestRefusedBatchesAreSplit(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupDeliveries(t, db, 0)
		crmID, key := b.crm(t)
		b.activeLead(t)
		_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{RefuseField: "email", RefuseContains: "refuse-me"})
		require.NoError(t, err)

		// A backlog, so batches are full: paused while the leads arrive.
		_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventPause, "ops", "")
		require.NoError(t, err)
		huge := map[string]any{"notes": strings.Repeat("<", 60_000)}
		var good, refused []int64
		for i := range 120 {
			switch {
			case i == 30 || i == 95:
				refused = append(refused, b.send(t, starter.Lead{Name: "Zelda Quill", Email: fmt.Sprintf("refuse-me-%d@example.org", i)}))
			case i < 25:
				good = append(good, b.send(t, starter.Lead{Name: "Ada", Email: fmt.Sprintf("big%d@example.org", i), Attributes: huge}))
			default:
				good = append(good, b.send(t, starter.Lead{Name: "Grace", Email: fmt.Sprintf("lead%d@example.org", i)}))
			}
		}
		_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventResume, "ops", "")
		require.NoError(t, err)

		b.waitDelivered(t, crmID, 120)
		c := b.counts(t, crmID)
		require.Equal(t, [3]int64{118, 2, 0}, [3]int64{c.Delivered, c.Rejected, c.Pending})
		b.requireOnce(t, key, good)
		for _, id := range refused {
			status, reason, _ := b.delivery(t, crmID, id)
			require.Equal(t, "rejected", status)
			require.Equal(t, "refused by the CRM when sent on its own: batch_rejected (HTTP 400, batch_refused)", reason)
		}
		calls, err := b.stack.Sandbox.Calls(b.ctx, key)
		require.NoError(t, err)
		statuses := map[int]int{}
		for _, call := range calls {
			statuses[call.Status]++
		}
		require.Positive(t, statuses[413], "the big leads took a batch over the sandbox's limit: %v", statuses)
		require.Positive(t, statuses[400], "the refused leads had their batches refused: %v", statuses)
		st := b.state(t, crmID)
		require.Equal(t, integration.StatusActive, st.Status, "refusals are answers, not failed syncs")
		require.Zero(t, st.ConsecutiveFailures)
	})
}

// TestLeadFailingAloneIsSetAside: the sandbox fails (503) every call that
// carries one lead and takes every other one. The lead is set aside as
// gave_up after the configured number of failures of its own while the
// others flow past it, each delivered exactly once, and it blocks nothing
// afterwards.
func TestLeadFailingAloneIsSetAside(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupDeliveries(t, db, 3)
		crmID, key := b.crm(t)
		b.activeLead(t)
		_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{RefuseField: "email", RefuseContains: "poison", RefuseStatus: 503})
		require.NoError(t, err)

		poison := b.send(t, starter.Lead{Name: "Zelda Quill", Email: "poison@example.org"})
		var others []int64
		for round := 0; ; round++ {
			require.Less(t, round, 30, "the lead is set aside within rounds of others flowing")
			ids := []int64{b.send(t, starter.Lead{Email: fmt.Sprintf("r%d-a@example.org", round)}),
				b.send(t, starter.Lead{Email: fmt.Sprintf("r%d-b@example.org", round)})}
			others = append(others, ids...)
			require.Eventually(t, func() bool {
				for _, id := range ids {
					if status, _, _ := b.delivery(t, crmID, id); status != "delivered" {
						return false
					}
				}
				return true
			}, 30*time.Second, 20*time.Millisecond, "round %d: the others are delivered past the failing lead", round)
			if status, _, _ := b.delivery(t, crmID, poison); status != "pending" {
				t.Logf("set aside after %d round(s) of two other leads", round+1)
				break
			}
		}
		status, reason, solo := b.delivery(t, crmID, poison)
		require.Equal(t, "gave_up", status)
		require.Equal(t, 3, solo, "set aside at the third failure of its own")
		require.Contains(t, reason, "gave up after 3 failures of its own")
		require.Contains(t, reason, "crm transient (HTTP 503, simulated_failure)")
		require.NotContains(t, reason, "poison")
		require.NotContains(t, reason, "http")

		// Set aside: counted, shown, and no longer in the way.
		later := []int64{b.send(t, starter.Lead{Email: "later-1@example.org"}), b.send(t, starter.Lead{Email: "later-2@example.org"})}
		others = append(others, later...)
		b.waitDelivered(t, crmID, int64(len(others)))
		c := b.counts(t, crmID)
		require.Equal(t, [3]int64{int64(len(others)), 1, 0}, [3]int64{c.Delivered, c.GaveUp, c.Pending})
		b.requireOnce(t, key, others)
		b.waitStatus(t, crmID, integration.StatusActive)
		v, err := b.stack.Starter.View(b.ctx, crmID)
		require.NoError(t, err)
		require.Equal(t, int64(1), *v.Sync.GaveUp)
		require.Zero(t, *v.Sync.Cancelled)
	})
}

// TestOutageSetsNothingAside: every contacts call fails for many more
// attempts than the limit of failures of its own; no lead is set aside,
// and once the CRM is back every lead is delivered exactly once.
func TestOutageSetsNothingAside(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupDeliveries(t, db, 2)
		crmID, key := b.crm(t)
		b.activeLead(t)
		const failing = 14
		_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{FailNext: failing, FailStatus: 503})
		require.NoError(t, err)
		var ids []int64
		for i := range 6 {
			ids = append(ids, b.send(t, starter.Lead{Email: fmt.Sprintf("lead%d@example.org", i)}))
		}

		b.waitDelivered(t, crmID, 6)
		c := b.counts(t, crmID)
		require.Equal(t, [3]int64{6, 0, 0}, [3]int64{c.Delivered, c.GaveUp, c.Rejected}, "an outage gives up nothing")
		b.requireOnce(t, key, ids)
		calls, err := b.stack.Sandbox.Calls(b.ctx, key)
		require.NoError(t, err)
		failed := 0
		for _, call := range calls {
			if call.Status == 503 {
				failed++
			}
		}
		require.Equal(t, failing, failed, "every failure was used up: many attempts, more than the limit of %d", b.maxAttempts)
		b.waitStatus(t, crmID, integration.StatusActive)
	})
}

// TestDeleteCancelsDeliveriesRoutedDuringIt: leads keep arriving while a
// paused CRM integration with a backlog is deleted; once the delete has
// returned and the intakes are done, none of its deliveries is pending
// (they are cancelled), and the org's other CRM integration got every lead.
func TestDeleteCancelsDeliveriesRoutedDuringIt(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupDeliveries(t, db, 0)
		doomed, _ := b.crm(t)
		other, otherKey := b.crm(t)
		b.activeLead(t)
		_, err := b.stack.Starter.Command(b.ctx, doomed, integration.EventPause, "ops", "")
		require.NoError(t, err)
		var ids []int64
		for i := range 10 {
			ids = append(ids, b.send(t, starter.Lead{Email: fmt.Sprintf("before%d@example.org", i)}))
		}

		var wg sync.WaitGroup
		sent := make(chan string, 40)
		wg.Go(func() {
			for i := range 40 {
				out, err := b.stack.Starter.Intake(b.ctx, b.lead, starter.Lead{ExternalID: fmt.Sprintf("during-%d", i), Source: "Z", Email: fmt.Sprintf("during%d@example.org", i)})
				if err != nil {
					t.Errorf("intake during the delete: %v", err)
					return
				}
				sent <- out.LeadID
			}
		})
		_, err = b.stack.Starter.Command(b.ctx, doomed, integration.EventDelete, "ops", "")
		require.NoError(t, err)
		wg.Wait()
		close(sent)
		for publicID := range sent {
			stored, err := b.stack.Store.LeadByPublicID(b.ctx, publicID)
			require.NoError(t, err)
			ids = append(ids, stored.ID)
		}

		c := b.counts(t, doomed)
		t.Logf("%d deliveries cancelled, of %d leads", c.Cancelled, len(ids))
		require.Zero(t, c.Pending, "no pending delivery of a deleted CRM integration remains")
		require.GreaterOrEqual(t, c.Cancelled, int64(10), "the backlog, and what was routed during the delete, is cancelled")
		require.Zero(t, c.Delivered)
		b.waitDelivered(t, other, int64(len(ids)))
		b.requireOnce(t, otherKey, ids)
	})
}
