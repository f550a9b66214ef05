package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// soloFailures reads the solo_failures column of a delivery.
func soloFailures(t testing.TB, b *testBundle, crmID string, leadID int64) int {
	t.Helper()
	var n int
	q := b.store.DB().Rebind(`SELECT solo_failures FROM lead_deliveries WHERE crm_integration_id = ? AND lead_id = ?`)
	require.NoError(t, b.store.DB().GetContext(b.ctx, &n, q, crmID, leadID))
	return n
}

// deleteCRM projects the deleted snapshot of CRM integration id (version
// 3, after crmIntegration's 2) at t0+3s.
func deleteCRM(t testing.TB, b *testBundle, id, org string) integration.State {
	t.Helper()
	st, ch := at(newCRM(t, id, org), 3, integration.StatusDeleted, "")
	ch.Event = integration.EventDelete
	project(t, b, st, ch)
	return st
}

func TestRecordSoloFailures(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		t.Run("GivesUpAtTheLimit", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "solo", 3)
			poison, other := f.leads[1], f.leads[2]
			reason := "gave up after 3 failures of its own; last error: crm transient (HTTP 503, simulated_failure)"

			for i := 1; i <= 2; i++ {
				gaveUp, err := b.store.RecordSoloFailures(b.ctx, f.crm, []int64{poison}, 3, reason, t0)
				require.NoError(t, err)
				require.Empty(t, gaveUp, "failure %d of 3", i)
				require.Equal(t, i, soloFailures(t, b, f.crm, poison))
				require.Equal(t, store.DeliveryPending, delivery(t, b, f.crm, poison).Status)
			}
			// Attempts (every failure, an outage's too) are not the count.
			require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, f.crm, []int64{poison, other}, "crm transient (HTTP 503)"))

			gaveUp, err := b.store.RecordSoloFailures(b.ctx, f.crm, []int64{poison, other}, 3, reason, t0.Add(time.Minute))
			require.NoError(t, err)
			require.Equal(t, []int64{poison}, gaveUp, "only the lead at its third failure of its own")
			row := delivery(t, b, f.crm, poison)
			require.Equal(t, store.DeliveryGaveUp, row.Status)
			require.Equal(t, reason, row.Reason)
			require.Equal(t, 1, row.Attempts)
			require.NotNil(t, row.CompletedAt)
			require.True(t, row.CompletedAt.Equal(t0.Add(time.Minute)))
			require.Equal(t, 1, soloFailures(t, b, f.crm, other))
			require.Equal(t, store.DeliveryPending, delivery(t, b, f.crm, other).Status)

			// Set aside: no longer pending, counted apart, and final.
			require.Equal(t, []int64{f.leads[0], other}, pendingLeadIDs(t, b, f.crm))
			c := counts(t, b, f.crm)
			require.Equal(t, int64(1), c.GaveUp)
			require.Equal(t, int64(2), c.Pending)
			gaveUp, err = b.store.RecordSoloFailures(b.ctx, f.crm, []int64{poison}, 3, reason, t0)
			require.NoError(t, err)
			require.Empty(t, gaveUp)
			require.Equal(t, 3, soloFailures(t, b, f.crm, poison), "a final delivery is left alone")
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{{LeadID: poison, Status: store.DeliveryDelivered}}, t0))
			require.Equal(t, store.DeliveryGaveUp, delivery(t, b, f.crm, poison).Status)
			require.Equal(t, f.leads, pendingLeadIDs(t, b, f.otherCRM), "each CRM integration counts its own")
		})

		t.Run("RefusesBadInputAndStoresNothing", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "solo-bad", 1)
			for name, call := range map[string]func() error{
				"no CRM": func() error {
					_, err := b.store.RecordSoloFailures(b.ctx, "", f.leads, 3, "r", t0)
					return err
				},
				"no limit": func() error {
					_, err := b.store.RecordSoloFailures(b.ctx, f.crm, f.leads, 0, "r", t0)
					return err
				},
				"no reason": func() error {
					_, err := b.store.RecordSoloFailures(b.ctx, f.crm, f.leads, 3, " ", t0)
					return err
				},
			} {
				require.Error(t, call(), name)
			}
			require.Zero(t, soloFailures(t, b, f.crm, f.leads[0]), "nothing was stored")
			gaveUp, err := b.store.RecordSoloFailures(b.ctx, f.crm, nil, 3, "r", t0)
			require.NoError(t, err)
			require.Empty(t, gaveUp)
		})
	})
}

func TestDeleteCancelsPendingDeliveries(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		f := newDeliveryFixture(t, b, "cancel", 3)
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
			{LeadID: f.leads[0], Status: store.DeliveryDelivered, CRMRecordID: "r0"},
		}, t0))

		deleted := deleteCRM(t, b, f.crm, "org-cancel")
		for _, id := range f.leads[1:] {
			row := delivery(t, b, f.crm, id)
			require.Equal(t, store.DeliveryCancelled, row.Status)
			require.Contains(t, row.Reason, "deleted")
			require.NotNil(t, row.CompletedAt)
			require.True(t, row.CompletedAt.Equal(deleted.UpdatedAt), "cancelled when the delete happened")
		}
		require.Equal(t, store.DeliveryDelivered, delivery(t, b, f.crm, f.leads[0]).Status, "a completed delivery stays as it was")
		c := counts(t, b, f.crm)
		require.Equal(t, [4]int64{0, 1, 0, 2}, [4]int64{c.Pending, c.Delivered, c.GaveUp, c.Cancelled})
		require.Nil(t, c.OldestPendingSince)
		require.Equal(t, f.leads, pendingLeadIDs(t, b, f.otherCRM), "the org's other CRM integration keeps its deliveries")

		// A replayed projection changes nothing; new leads go to the
		// other CRM integration only.
		st, ch := at(newCRM(t, f.crm, "org-cancel"), 3, integration.StatusDeleted, "")
		ch.Event = integration.EventDelete
		require.False(t, project(t, b, st, ch))
		require.Equal(t, c, counts(t, b, f.crm))
		res := addLead(t, b, newLeadPayload("cancel-lead", "after-delete", 0))
		require.Equal(t, []string{f.otherCRM}, res.Routed)

		// A deleted lead integration cancels nothing of anybody's.
		lead := leadIntegration(t, b, "cancel-lead-2", "org-cancel", integration.StatusActive)
		routed := addLead(t, b, newLeadPayload("cancel-lead-2", "x", 0))
		lst, lch := at(lead, 3, integration.StatusDeleted, "")
		project(t, b, lst, lch)
		require.Equal(t, store.DeliveryPending, delivery(t, b, f.otherCRM, routed.LeadID).Status)
	})
}

// TestConcurrentIntakeAndDelete sends leads from many goroutines while
// the CRM integration's deleted snapshot is projected, several rounds on
// each database: whatever the interleaving, no pending delivery of the
// deleted CRM integration remains (PostgreSQL: intake locks the rows it
// routes to; SQLite: writers take turns), and the org's other CRM
// integration got every lead.
func TestConcurrentIntakeAndDelete(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		const rounds, senders, perSender = 4, 8, 15
		for round := range rounds {
			name := fmt.Sprintf("race-%d", round)
			f := newDeliveryFixture(t, b, name, 0)
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, senders*perSender)
			for s := range senders {
				wg.Go(func() {
					<-start
					for i := range perSender {
						_, err := b.store.AddLead(b.ctx, newLeadPayload(name+"-lead", fmt.Sprintf("s%d-%d", s, i), i))
						errs <- err
					}
				})
			}
			deleted := make(chan error, 1)
			wg.Go(func() {
				<-start
				// Once a share of the leads is in, different each round,
				// so the delete lands among the intakes.
				want := int64(senders * perSender * (round + 1) / (rounds + 1))
				for deadline := time.Now().Add(time.Minute); ; {
					n, err := b.store.CountLeads(b.ctx, name+"-lead")
					if err != nil || n >= want {
						break
					}
					if time.Now().After(deadline) {
						deleted <- fmt.Errorf("round %d: only %d of %d leads arrived within a minute", round, n, want)
						return
					}
				}
				st, ch := at(newCRM(t, f.crm, "org-"+name), 3, integration.StatusDeleted, "")
				ch.Event = integration.EventDelete
				_, err := b.store.Project(b.ctx, st, ch)
				deleted <- err
			})
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.NoError(t, <-deleted)

			c := counts(t, b, f.crm)
			require.Zero(t, c.Pending, "round %d: no pending delivery of a deleted CRM integration remains (%d cancelled, %d delivered)", round, c.Cancelled, c.Delivered)
			require.Zero(t, c.Delivered+c.Rejected+c.GaveUp)
			other := counts(t, b, f.otherCRM)
			require.Equal(t, int64(senders*perSender), other.Pending, "round %d: every lead reached the other CRM integration", round)
			t.Logf("round %d: %d of %d leads were routed to the deleted CRM integration, and cancelled", round, c.Cancelled, senders*perSender)
		}
	})
}
