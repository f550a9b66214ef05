package store_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// leadIntegration projects a lead integration of org with the given status
// (version 2 unless it is setup_incomplete) and returns its state.
func leadIntegration(t testing.TB, b *testBundle, id, org string, status integration.Status) integration.State {
	t.Helper()
	st, ch := at(newLead(t, id, org), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
	require.True(t, project(t, b, st, ch))
	if status == integration.StatusSetupIncomplete {
		return st
	}
	st, ch = at(st, 2, status, "")
	require.True(t, project(t, b, st, ch))
	return st
}

// crmIntegration projects a CRM integration of org with the given status.
func crmIntegration(t testing.TB, b *testBundle, id, org string, status integration.Status) {
	t.Helper()
	st, ch := at(newCRM(t, id, org), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
	require.True(t, project(t, b, st, ch))
	if status != integration.StatusSetupIncomplete {
		st, ch = at(st, 2, status, "")
		require.True(t, project(t, b, st, ch))
	}
}

// newLeadPayload returns a lead for integrationID with every field set,
// received i milliseconds after t0.
func newLeadPayload(integrationID, externalID string, i int) store.Lead {
	return store.Lead{
		IntegrationID: integrationID, ExternalID: externalID, Source: "Zillow-Test",
		Name: "Jane Doe " + externalID, FirstName: "Jane", LastName: "Doe " + externalID, Company: "Doe & Söhne",
		Email: "jane@example.com", Phone: "+1 555 0100", Message: "Call me — ünïcödé",
		Attributes: map[string]any{"budget": 450000.5, "tags": []any{"a", "b"}, "nested": map[string]any{"x": true}},
		ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond),
	}
}

// nested returns attributes that nest depth levels deep: objects in
// arrays in objects ...
func nested(depth int) map[string]any {
	var v any = "Secret"
	for i := depth; i > 1; i-- {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	return map[string]any{"k": v}
}

func addLead(t testing.TB, b *testBundle, l store.Lead) store.IntakeResult {
	t.Helper()
	res, err := b.store.AddLead(b.ctx, l)
	require.NoError(t, err)
	return res
}

// pendingLeadIDs lists the lead IDs of crmID's pending deliveries, in the
// order PendingDeliveries returns them.
func pendingLeadIDs(t testing.TB, b *testBundle, crmID string) []int64 {
	t.Helper()
	deliveries, err := b.store.PendingDeliveries(b.ctx, crmID, store.MaxPendingLimit)
	require.NoError(t, err)
	ids := []int64{}
	for _, d := range deliveries {
		ids = append(ids, d.Lead.ID)
	}
	return ids
}

func counts(t testing.TB, b *testBundle, crmID string) store.DeliveryCounts {
	t.Helper()
	c, err := b.store.DeliveryCounts(b.ctx, crmID)
	require.NoError(t, err)
	return c
}

func countLeads(t testing.TB, b *testBundle, leadIntegrationID string) int64 {
	t.Helper()
	n, err := b.store.CountLeads(b.ctx, leadIntegrationID)
	require.NoError(t, err)
	return n
}

// deliveryRow is a lead_deliveries row as the tests inspect it.
type deliveryRow struct {
	Status      string     `db:"status"`
	Attempts    int        `db:"attempts"`
	LastError   string     `db:"last_error"`
	CRMRecordID string     `db:"crm_record_id"`
	Reason      string     `db:"reason"`
	CreatedAt   time.Time  `db:"created_at"`
	CompletedAt *time.Time `db:"completed_at"`
}

func delivery(t testing.TB, b *testBundle, crmID string, leadID int64) deliveryRow {
	t.Helper()
	var row deliveryRow
	q := b.store.DB().Rebind(`SELECT status, attempts, last_error, crm_record_id, reason, created_at, completed_at
FROM lead_deliveries WHERE crm_integration_id = ? AND lead_id = ?`)
	require.NoError(t, b.store.DB().GetContext(b.ctx, &row, q, crmID, leadID))
	row.CreatedAt = row.CreatedAt.UTC()
	if row.CompletedAt != nil {
		c := row.CompletedAt.UTC()
		row.CompletedAt = &c
	}
	return row
}

func TestAddLead(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		t.Run("RoutesToEveryCRMOfTheOrgThatIsNotDeleted", func(t *testing.T) {
			t.Parallel()
			owner := leadIntegration(t, b, "route-lead", "org-route", integration.StatusActive)
			crmIntegration(t, b, "route-crm-active", "org-route", integration.StatusActive)
			crmIntegration(t, b, "route-crm-paused", "org-route", integration.StatusPaused)
			crmIntegration(t, b, "route-crm-failing", "org-route", integration.StatusFailedSync)
			crmIntegration(t, b, "route-crm-setup", "org-route", integration.StatusSetupIncomplete)
			crmIntegration(t, b, "route-crm-deleted", "org-route", integration.StatusDeleted)
			crmIntegration(t, b, "route-crm-other-org", "org-route-other", integration.StatusActive)

			l := newLeadPayload("route-lead", "ext-1", 0)
			l.OrgID = "someone-elses-org"
			l.ReceivedAt = time.Date(2025, 3, 4, 1, 2, 3, 456789999, time.FixedZone("UTC-7", -7*3600))
			l.PublicID = "ld_chosen_by_the_caller"
			res := addLead(t, b, l)
			require.Positive(t, res.LeadID)
			require.Regexp(t, `^ld_[0-9a-f]{32}$`, res.PublicID, "the store assigns an opaque public ID")
			require.False(t, res.Duplicate)
			require.Equal(t, []string{"route-crm-active", "route-crm-failing", "route-crm-paused", "route-crm-setup"}, res.Routed)
			require.Equal(t, owner, res.Integration)

			want := l
			want.ID, want.PublicID, want.OrgID = res.LeadID, res.PublicID, "org-route"
			want.ReceivedAt = time.Date(2025, 3, 4, 8, 2, 3, 456789000, time.UTC)
			for _, crm := range res.Routed {
				deliveries, err := b.store.PendingDeliveries(b.ctx, crm, 10)
				require.NoError(t, err)
				require.Equal(t, []store.Delivery{{Lead: want, Attempts: 0}}, deliveries, crm)
				require.Same(t, time.UTC, deliveries[0].Lead.ReceivedAt.Location())
				require.Equal(t, want.ReceivedAt, delivery(t, b, crm, res.LeadID).CreatedAt)
			}
			for _, crm := range []string{"route-crm-deleted", "route-crm-other-org"} {
				require.Equal(t, store.DeliveryCounts{}, counts(t, b, crm), crm)
			}
		})

		t.Run("RoutesOnlyWhileTheLeadIntegrationIsActive", func(t *testing.T) {
			t.Parallel()
			setupState := leadIntegration(t, b, "gate-lead", "org-gate", integration.StatusSetupIncomplete)
			crmIntegration(t, b, "gate-crm", "org-gate", integration.StatusActive)

			before := addLead(t, b, newLeadPayload("gate-lead", "before", 0))
			require.Empty(t, before.Routed)
			require.Equal(t, integration.StatusSetupIncomplete, before.Integration.Status)
			require.Equal(t, setupState, before.Integration)
			require.Equal(t, int64(1), countLeads(t, b, "gate-lead"), "leads are stored during setup too")

			active, ch := at(setupState, 2, integration.StatusActive, "")
			require.True(t, project(t, b, active, ch))
			during := addLead(t, b, newLeadPayload("gate-lead", "during", 1))
			require.Equal(t, []string{"gate-crm"}, during.Routed)
			require.Equal(t, integration.StatusActive, during.Integration.Status)

			paused, ch := at(setupState, 3, integration.StatusPaused, integration.ReasonManual)
			require.True(t, project(t, b, paused, ch))
			after := addLead(t, b, newLeadPayload("gate-lead", "after", 2))
			require.Empty(t, after.Routed)
			require.Equal(t, integration.StatusPaused, after.Integration.Status)

			require.Equal(t, []int64{during.LeadID}, pendingLeadIDs(t, b, "gate-crm"))
			require.Equal(t, int64(3), countLeads(t, b, "gate-lead"))
		})

		t.Run("LaterCRMGetsOnlyLaterLeads", func(t *testing.T) {
			t.Parallel()
			leadIntegration(t, b, "later-lead", "org-later", integration.StatusActive)
			crmIntegration(t, b, "later-crm-1", "org-later", integration.StatusActive)
			first := addLead(t, b, newLeadPayload("later-lead", "first", 0))
			require.Equal(t, []string{"later-crm-1"}, first.Routed)

			crmIntegration(t, b, "later-crm-2", "org-later", integration.StatusSetupIncomplete)
			second := addLead(t, b, newLeadPayload("later-lead", "second", 1))
			require.Equal(t, []string{"later-crm-1", "later-crm-2"}, second.Routed)

			require.Equal(t, []int64{first.LeadID, second.LeadID}, pendingLeadIDs(t, b, "later-crm-1"))
			require.Equal(t, []int64{second.LeadID}, pendingLeadIDs(t, b, "later-crm-2"))
		})

		t.Run("DuplicateExternalIDIsStoredOnce", func(t *testing.T) {
			t.Parallel()
			leadIntegration(t, b, "dup-lead", "org-dup", integration.StatusActive)
			leadIntegration(t, b, "dup-lead-other", "org-dup", integration.StatusActive)
			crmIntegration(t, b, "dup-crm", "org-dup", integration.StatusActive)

			original := addLead(t, b, newLeadPayload("dup-lead", "ext-dup", 0))
			retry := newLeadPayload("dup-lead", "ext-dup", 5)
			retry.Name = "a retry must not change the stored lead"
			again := addLead(t, b, retry)
			require.True(t, again.Duplicate)
			require.Equal(t, original.LeadID, again.LeadID)
			require.Equal(t, original.PublicID, again.PublicID, "a duplicate answers the original's public ID")
			require.Empty(t, again.Routed, "a duplicate is not routed again")
			require.Equal(t, "dup-lead", again.Integration.ID)
			require.Equal(t, int64(1), countLeads(t, b, "dup-lead"))

			deliveries, err := b.store.PendingDeliveries(b.ctx, "dup-crm", 10)
			require.NoError(t, err)
			require.Len(t, deliveries, 1)
			require.Equal(t, "Jane Doe ext-dup", deliveries[0].Lead.Name)

			// The external ID is the partner's: another lead integration may reuse it.
			other := addLead(t, b, newLeadPayload("dup-lead-other", "ext-dup", 1))
			require.False(t, other.Duplicate)
			require.NotEqual(t, original.LeadID, other.LeadID)
			require.NotEqual(t, original.PublicID, other.PublicID)
			found, err := b.store.LeadByPublicID(b.ctx, other.PublicID)
			require.NoError(t, err)
			require.Equal(t, other.LeadID, found.ID)
			_, err = b.store.LeadByPublicID(b.ctx, "ld_unknown")
			require.ErrorIs(t, err, store.ErrNotFound)
			require.Equal(t, []int64{original.LeadID, other.LeadID}, pendingLeadIDs(t, b, "dup-crm"))
		})

		t.Run("ConcurrentDuplicatesStoreOneLead", func(t *testing.T) {
			t.Parallel()
			leadIntegration(t, b, "race-lead", "org-race", integration.StatusActive)
			crmIntegration(t, b, "race-crm", "org-race", integration.StatusActive)

			const senders = 8
			results := make([]store.IntakeResult, senders)
			errs := make([]error, senders)
			var wg sync.WaitGroup
			for i := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = b.store.AddLead(b.ctx, newLeadPayload("race-lead", "same", i))
				}()
			}
			wg.Wait()
			stored := 0
			for i := range senders {
				require.NoError(t, errs[i])
				require.Equal(t, results[0].LeadID, results[i].LeadID)
				require.Equal(t, results[0].PublicID, results[i].PublicID)
				if !results[i].Duplicate {
					stored++
					require.Equal(t, []string{"race-crm"}, results[i].Routed)
				}
			}
			require.Equal(t, 1, stored, "exactly one sender stores the lead")
			require.Equal(t, int64(1), countLeads(t, b, "race-lead"))
			require.Equal(t, int64(1), counts(t, b, "race-crm").Pending)
		})

		t.Run("UnknownDeletedOrCRMIntegrationIsNotFound", func(t *testing.T) {
			t.Parallel()
			leadIntegration(t, b, "gone-lead", "org-gone", integration.StatusDeleted)
			crmIntegration(t, b, "gone-crm", "org-gone", integration.StatusActive)
			for _, id := range []string{"gone-unknown", "gone-lead", "gone-crm"} {
				_, err := b.store.AddLead(b.ctx, newLeadPayload(id, "ext-1", 0))
				require.ErrorIs(t, err, store.ErrNotFound, id)
				require.NotErrorIs(t, err, store.ErrInvalidLead, id)
				require.Zero(t, countLeads(t, b, id), id)
			}
			require.Equal(t, store.DeliveryCounts{}, counts(t, b, "gone-crm"))
		})

		t.Run("RejectsBadInputAndStoresNothing", func(t *testing.T) {
			t.Parallel()
			leadIntegration(t, b, "bad-lead", "org-bad", integration.StatusActive)
			crmIntegration(t, b, "bad-crm", "org-bad", integration.StatusActive)
			cases := map[string]struct {
				mutate func(l *store.Lead)
				want   string
			}{
				"NoIntegration":        {func(l *store.Lead) { l.IntegrationID = "" }, "no lead integration ID"},
				"NoExternalID":         {func(l *store.Lead) { l.ExternalID = "" }, "no external ID"},
				"NoSource":             {func(l *store.Lead) { l.Source = "" }, "no source"},
				"NoReceiveTime":        {func(l *store.Lead) { l.ReceivedAt = time.Time{} }, "no receive time"},
				"NULInName":            {func(l *store.Lead) { l.Name = "Secret\x00Person" }, "name contains a NUL"},
				"InvalidUTF8Email":     {func(l *store.Lead) { l.Email = "Secret\xffPerson" }, "email is not valid UTF-8"},
				"NULInFirstName":       {func(l *store.Lead) { l.FirstName = "Secret\x00Person" }, "first name contains a NUL"},
				"NULInLastName":        {func(l *store.Lead) { l.LastName = "Secret\x00Person" }, "last name contains a NUL"},
				"InvalidUTF8Company":   {func(l *store.Lead) { l.Company = "Secret\xffPerson" }, "company is not valid UTF-8"},
				"DeepAttributes":       {func(l *store.Lead) { l.Attributes = nested(store.MaxAttributeDepth + 1) }, "nest 33 levels deep"},
				"NULInAttribute":       {func(l *store.Lead) { l.Attributes = map[string]any{"k": []any{"Secret\x00Person"}} }, "attributes contain a NUL"},
				"UnencodableAttribute": {func(l *store.Lead) { l.Attributes = map[string]any{"k": math.NaN()} }, "encode attributes"},
			}
			for name, tc := range cases {
				l := newLeadPayload("bad-lead", "ext-"+name, 0)
				tc.mutate(&l)
				_, err := b.store.AddLead(b.ctx, l)
				require.ErrorContains(t, err, tc.want, name)
				require.ErrorIs(t, err, store.ErrInvalidLead, name)
				require.NotContains(t, err.Error(), "Secret", "errors never echo lead data")
			}
			require.Zero(t, countLeads(t, b, "bad-lead"))
			require.Equal(t, store.DeliveryCounts{}, counts(t, b, "bad-crm"))

			// A literal backslash-u0000 is text, not a NUL.
			l := newLeadPayload("bad-lead", "ext-literal", 0)
			l.Attributes = map[string]any{`\u0000`: `\u0000`}
			res := addLead(t, b, l)
			deliveries, err := b.store.PendingDeliveries(b.ctx, "bad-crm", 1)
			require.NoError(t, err)
			require.Equal(t, res.LeadID, deliveries[0].Lead.ID)
			require.Equal(t, l.Attributes, deliveries[0].Lead.Attributes)

			// As deep as allowed is stored.
			l = newLeadPayload("bad-lead", "ext-deep", 0)
			l.Attributes = nested(store.MaxAttributeDepth)
			addLead(t, b, l)
		})

		t.Run("EmptyAttributesComeBackNil", func(t *testing.T) {
			t.Parallel()
			leadIntegration(t, b, "attr-lead", "org-attr", integration.StatusActive)
			crmIntegration(t, b, "attr-crm", "org-attr", integration.StatusActive)
			l := newLeadPayload("attr-lead", "ext-1", 0)
			l.Attributes = map[string]any{}
			l.Name, l.Email, l.Phone, l.Message = "", "", "", ""
			addLead(t, b, l)
			deliveries, err := b.store.PendingDeliveries(b.ctx, "attr-crm", 1)
			require.NoError(t, err)
			require.Nil(t, deliveries[0].Lead.Attributes)
			require.Empty(t, deliveries[0].Lead.Name)
		})
	})
}

// deliveryFixture is an active lead integration of its own org with two
// CRM integrations and n routed leads.
type deliveryFixture struct {
	crm, otherCRM string
	leads         []int64
}

func newDeliveryFixture(t *testing.T, b *testBundle, name string, n int) deliveryFixture {
	t.Helper()
	org := "org-" + name
	f := deliveryFixture{crm: name + "-crm", otherCRM: name + "-crm-other"}
	leadIntegration(t, b, name+"-lead", org, integration.StatusActive)
	crmIntegration(t, b, f.crm, org, integration.StatusActive)
	crmIntegration(t, b, f.otherCRM, org, integration.StatusActive)
	for i := range n {
		res := addLead(t, b, newLeadPayload(name+"-lead", fmt.Sprintf("ext-%03d", i), i*1000))
		f.leads = append(f.leads, res.LeadID)
	}
	return f
}

func TestDeliveries(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		t.Run("PendingOldestLeadFirstWithinLimit", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "order", 5)
			for i := 1; i < len(f.leads); i++ {
				require.Greater(t, f.leads[i], f.leads[i-1], "lead IDs follow intake order")
			}
			deliveries, err := b.store.PendingDeliveries(b.ctx, f.crm, 3)
			require.NoError(t, err)
			require.Len(t, deliveries, 3)
			for i, d := range deliveries {
				require.Equal(t, f.leads[i], d.Lead.ID)
				require.Equal(t, fmt.Sprintf("ext-%03d", i), d.Lead.ExternalID)
				require.Equal(t, "order-lead", d.Lead.IntegrationID)
			}

			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
				{LeadID: f.leads[0], Status: store.DeliveryDelivered, CRMRecordID: "r0"},
				{LeadID: f.leads[2], Status: store.DeliveryRejected, Reason: "invalid email"},
			}, t0))
			require.Equal(t, []int64{f.leads[1], f.leads[3], f.leads[4]}, pendingLeadIDs(t, b, f.crm))
			require.Equal(t, f.leads, pendingLeadIDs(t, b, f.otherCRM), "each CRM integration has its own deliveries")

			for _, limit := range []int{0, -1, store.MaxPendingLimit + 1} {
				_, err := b.store.PendingDeliveries(b.ctx, f.crm, limit)
				require.ErrorContains(t, err, "out of range", limit)
			}
			none, err := b.store.PendingDeliveries(b.ctx, "order-unknown", 10)
			require.NoError(t, err)
			require.Empty(t, none)
		})

		t.Run("PendingAfterPagesByLeadID", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "after", 5)
			page := func(after int64, limit int) []int64 {
				deliveries, err := b.store.PendingDeliveriesAfter(b.ctx, f.crm, after, limit)
				require.NoError(t, err)
				ids := []int64{}
				for _, d := range deliveries {
					ids = append(ids, d.Lead.ID)
				}
				return ids
			}
			require.Equal(t, f.leads[:2], page(0, 2))
			require.Equal(t, f.leads[2:4], page(f.leads[1], 2), "the next page starts after the last lead of the previous one")
			require.Equal(t, f.leads[4:], page(f.leads[3], 2))
			require.Empty(t, page(f.leads[4], 2))

			// A page read while earlier leads are still being delivered
			// does not see them again, nor completed ones.
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
				{LeadID: f.leads[3], Status: store.DeliveryDelivered, CRMRecordID: "r3"},
			}, t0))
			require.Equal(t, []int64{f.leads[2], f.leads[4]}, page(f.leads[1], 10))

			pending, err := b.store.HasPending(b.ctx, f.crm)
			require.NoError(t, err)
			require.True(t, pending)
			pending, err = b.store.HasPending(b.ctx, "after-unknown")
			require.NoError(t, err)
			require.False(t, pending)
			var rest []store.DeliveryResult
			for _, id := range []int64{f.leads[0], f.leads[1], f.leads[2], f.leads[4]} {
				rest = append(rest, store.DeliveryResult{LeadID: id, Status: store.DeliveryDelivered})
			}
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, rest, t0))
			pending, err = b.store.HasPending(b.ctx, f.crm)
			require.NoError(t, err)
			require.False(t, pending, "every delivery completed")
			_, err = b.store.PendingDeliveriesAfter(b.ctx, f.crm, 0, store.MaxPendingLimit+1)
			require.ErrorContains(t, err, "out of range")
		})

		t.Run("CompleteIsIdempotent", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "complete", 3)
			done := t0.Add(time.Minute)
			results := []store.DeliveryResult{
				{LeadID: f.leads[0], Status: store.DeliveryDelivered, CRMRecordID: "rec-0"},
				// CRM text is stored the same on both backends, whatever its bytes.
				{LeadID: f.leads[1], Status: store.DeliveryRejected, Reason: "invalid\x00 email\xff"},
				{LeadID: 999999999, Status: store.DeliveryDelivered, CRMRecordID: "never routed"},
			}
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, results, done))

			want0 := deliveryRow{Status: store.DeliveryDelivered, CRMRecordID: "rec-0", CreatedAt: t0, CompletedAt: &done}
			want1 := deliveryRow{Status: store.DeliveryRejected, Reason: "invalid email\uFFFD", CreatedAt: t0.Add(time.Second), CompletedAt: &done}
			require.Equal(t, want0, delivery(t, b, f.crm, f.leads[0]))
			require.Equal(t, want1, delivery(t, b, f.crm, f.leads[1]))
			require.Equal(t, store.DeliveryPending, delivery(t, b, f.crm, f.leads[2]).Status)
			require.Equal(t, store.DeliveryPending, delivery(t, b, f.otherCRM, f.leads[0]).Status)

			// A retried batch, even with other answers, changes nothing.
			retry := []store.DeliveryResult{
				{LeadID: f.leads[0], Status: store.DeliveryRejected, Reason: "changed my mind"},
				{LeadID: f.leads[1], Status: store.DeliveryDelivered, CRMRecordID: "rec-1"},
			}
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, retry, done.Add(time.Hour)))
			require.Equal(t, want0, delivery(t, b, f.crm, f.leads[0]))
			require.Equal(t, want1, delivery(t, b, f.crm, f.leads[1]))
			require.Equal(t, store.DeliveryCounts{
				Pending: 1, Delivered: 1, Rejected: 1, OldestPendingSince: ptr(t0.Add(2 * time.Second)), LastDeliveredAt: &done,
			}, counts(t, b, f.crm))
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, nil, done), "an empty batch is fine")
		})

		t.Run("CompleteManyInOneCall", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "many", 3)
			// More results than one statement takes; the routed leads sit
			// after the first chunk.
			var results []store.DeliveryResult
			for i := range 1100 {
				results = append(results, store.DeliveryResult{LeadID: int64(-1 - i), Status: store.DeliveryDelivered})
			}
			for i, id := range f.leads {
				results = append(results, store.DeliveryResult{LeadID: id, Status: store.DeliveryDelivered, CRMRecordID: fmt.Sprint("rec-", i)})
			}
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, results, t0))
			require.Equal(t, store.DeliveryCounts{Delivered: 3, LastDeliveredAt: ptr(t0)}, counts(t, b, f.crm))
			require.Equal(t, "rec-2", delivery(t, b, f.crm, f.leads[2]).CRMRecordID)
		})

		t.Run("CompleteRejectsBadResultsAndChangesNothing", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "badresult", 2)
			good := store.DeliveryResult{LeadID: f.leads[0], Status: store.DeliveryDelivered, CRMRecordID: "rec"}
			cases := map[string]struct {
				crm     string
				results []store.DeliveryResult
				want    string
			}{
				"UnknownStatus": {f.crm, []store.DeliveryResult{good, {LeadID: f.leads[1], Status: "pending"}}, `unknown delivery result "pending"`},
				"TwoResults":    {f.crm, []store.DeliveryResult{good, good}, "has two results"},
				"NoCRM":         {"", []store.DeliveryResult{good}, "no CRM integration ID"},
			}
			for name, tc := range cases {
				err := b.store.CompleteDeliveries(b.ctx, tc.crm, tc.results, t0)
				require.ErrorContains(t, err, tc.want, name)
			}
			require.Equal(t, int64(2), counts(t, b, f.crm).Pending)
		})

		t.Run("FailureBookkeeping", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "fail", 3)
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
				{LeadID: f.leads[2], Status: store.DeliveryDelivered, CRMRecordID: "rec-2"},
			}, t0))

			require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, f.crm, f.leads, "HTTP 503 from hubspot"))
			require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, f.crm, f.leads[:1], "timeout after 30s"))

			require.Equal(t, deliveryRow{Status: store.DeliveryPending, Attempts: 2, LastError: "timeout after 30s", CreatedAt: t0},
				delivery(t, b, f.crm, f.leads[0]))
			require.Equal(t, deliveryRow{Status: store.DeliveryPending, Attempts: 1, LastError: "HTTP 503 from hubspot", CreatedAt: t0.Add(time.Second)},
				delivery(t, b, f.crm, f.leads[1]))
			completed := delivery(t, b, f.crm, f.leads[2])
			require.Zero(t, completed.Attempts, "completed deliveries are left alone")
			require.Empty(t, completed.LastError)
			other := delivery(t, b, f.otherCRM, f.leads[0])
			require.Zero(t, other.Attempts, "other CRM integrations are left alone")

			deliveries, err := b.store.PendingDeliveries(b.ctx, f.crm, 10)
			require.NoError(t, err)
			require.Len(t, deliveries, 2)
			require.Equal(t, 2, deliveries[0].Attempts)
			require.Equal(t, 1, deliveries[1].Attempts)

			// A long message is cut without splitting a character.
			long := strings.Repeat("é", store.MaxDeliveryErrorLength)
			require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, f.crm, f.leads[1:2], long))
			got := delivery(t, b, f.crm, f.leads[1])
			require.Equal(t, 2, got.Attempts)
			require.Equal(t, long[:store.MaxDeliveryErrorLength], got.LastError)

			require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, f.crm, nil, "nothing to record"))
			require.ErrorContains(t, b.store.RecordDeliveryFailure(b.ctx, f.crm, f.leads, " "), "no error message")
			require.ErrorContains(t, b.store.RecordDeliveryFailure(b.ctx, "", f.leads, "x"), "no CRM integration ID")
			require.Equal(t, 2, delivery(t, b, f.crm, f.leads[0]).Attempts, "bad input changes nothing")
		})

		t.Run("Counts", func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, b, "counts", 4)
			require.Equal(t, store.DeliveryCounts{Pending: 4, OldestPendingSince: ptr(t0)}, counts(t, b, f.crm))

			first, second, third := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(3*time.Hour)
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
				{LeadID: f.leads[0], Status: store.DeliveryDelivered},
				{LeadID: f.leads[3], Status: store.DeliveryDelivered},
			}, first))
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
				{LeadID: f.leads[1], Status: store.DeliveryRejected, Reason: "duplicate contact"},
			}, second))
			require.Equal(t, store.DeliveryCounts{
				Pending: 1, Delivered: 2, Rejected: 1, OldestPendingSince: ptr(t0.Add(2 * time.Second)), LastDeliveredAt: &second,
			}, counts(t, b, f.crm), "a rejection is the CRM's answer too")

			require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
				{LeadID: f.leads[2], Status: store.DeliveryDelivered},
			}, third))
			require.Equal(t, store.DeliveryCounts{Delivered: 3, Rejected: 1, LastDeliveredAt: &third}, counts(t, b, f.crm))
			require.Equal(t, store.DeliveryCounts{Pending: 4, OldestPendingSince: ptr(t0)}, counts(t, b, f.otherCRM), "per CRM integration")
			require.Equal(t, store.DeliveryCounts{}, counts(t, b, "counts-unknown"))
		})
	})
}

func ptr[T any](v T) *T { return &v }

func TestDeliveryLatencies(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		// Leads received at t0, t0+1s, t0+2s.
		f := newDeliveryFixture(t, b, "latency", 3)

		early := t0.Add(10 * time.Second)
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
			{LeadID: f.leads[0], Status: store.DeliveryDelivered},
		}, early))
		since := t0.Add(time.Minute)
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
			{LeadID: f.leads[1], Status: store.DeliveryDelivered},
			{LeadID: f.leads[2], Status: store.DeliveryRejected, Reason: "invalid email"},
		}, since.Add(1500*time.Microsecond)))
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.otherCRM, []store.DeliveryResult{
			{LeadID: f.leads[2], Status: store.DeliveryDelivered},
		}, since))

		got, err := b.store.DeliveryLatencies(b.ctx, since)
		require.NoError(t, err)
		require.Equal(t, []time.Duration{
			58 * time.Second,                       // lead 2 to the other CRM, completed exactly at since
			58*time.Second + 1500*time.Microsecond, // lead 2, rejected by the first CRM
			59*time.Second + 1500*time.Microsecond, // lead 1
		}, got, "shortest first; earlier completions left out")

		all, err := b.store.DeliveryLatencies(b.ctx, t0)
		require.NoError(t, err)
		require.Equal(t, 10*time.Second, all[0])
		require.Len(t, all, 4)
	})
}

func TestCompletionsSince(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		f := newDeliveryFixture(t, b, "completions", 4)
		elsewhere := newDeliveryFixture(t, b, "completions-elsewhere", 1)
		ids := []string{f.crm, f.otherCRM}
		complete := func(crmID string, at time.Time, leads ...int64) {
			t.Helper()
			results := make([]store.DeliveryResult, len(leads))
			for i, id := range leads {
				results[i] = store.DeliveryResult{LeadID: id, Status: store.DeliveryDelivered}
			}
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, crmID, results, at))
		}
		since := t0.Add(time.Minute)
		complete(f.crm, since.Add(-time.Second), f.leads[0])                      // before since
		complete(elsewhere.crm, since, elsewhere.leads[0])                        // a CRM not asked about
		complete(f.otherCRM, since.Add(time.Millisecond), f.leads[0], f.leads[1]) // the first two, at once
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, f.crm, []store.DeliveryResult{
			{LeadID: f.leads[1], Status: store.DeliveryRejected, Reason: "invalid email"},
		}, since.Add(2*time.Millisecond)))
		complete(f.crm, since.Add(3*time.Millisecond), f.leads[2])
		// f.leads[3] stays pending for both.

		for _, tc := range []struct {
			name  string
			ids   []string
			since time.Time
			first time.Time
			after int64
		}{
			{"FirstAndTheLaterOnes", ids, since, since.Add(time.Millisecond), 2},
			{"CompletionAtSinceCounts", ids, since.Add(2 * time.Millisecond), since.Add(2 * time.Millisecond), 1},
			{"OnlyTheCRMsAsked", []string{f.crm}, t0, since.Add(-time.Second), 2},
			{"NoneSince", ids, since.Add(time.Hour), time.Time{}, 0},
			{"UnknownCRM", []string{"completions-no-such-crm"}, t0, time.Time{}, 0},
			{"NoCRMs", nil, t0, time.Time{}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				first, after, err := b.store.CompletionsSince(b.ctx, tc.ids, tc.since)
				require.NoError(t, err)
				require.Equal(t, tc.first, first, "in UTC")
				require.Equal(t, tc.after, after)
			})
		}
	})
}

func TestIntakeTokens(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		hash := func(b byte) []byte {
			h := make([]byte, 32)
			h[0], h[31] = b, 0x00 // NUL bytes, as hashes have
			return h
		}

		_, err := b.store.IntakeTokenHash(b.ctx, "token-lead")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.NoError(t, b.store.SetIntakeToken(b.ctx, "token-lead", hash(1), t0))
		got, err := b.store.IntakeTokenHash(b.ctx, "token-lead")
		require.NoError(t, err)
		require.Equal(t, hash(1), got)

		// Rotation replaces the hash.
		require.NoError(t, b.store.SetIntakeToken(b.ctx, "token-lead", hash(2), t0.Add(time.Hour)))
		got, err = b.store.IntakeTokenHash(b.ctx, "token-lead")
		require.NoError(t, err)
		require.Equal(t, hash(2), got)

		// Per integration.
		_, err = b.store.IntakeTokenHash(b.ctx, "token-other")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.ErrorContains(t, b.store.SetIntakeToken(b.ctx, "token-lead", []byte("the-token-itself"), t0), "not 32")
		require.ErrorContains(t, b.store.SetIntakeToken(b.ctx, "", hash(3), t0), "no integration ID")
		require.ErrorContains(t, b.store.SetIntakeToken(b.ctx, "token-lead", hash(3), time.Time{}), "no issue time")
		got, err = b.store.IntakeTokenHash(b.ctx, "token-lead")
		require.NoError(t, err)
		require.Equal(t, hash(2), got, "bad input changes nothing")
	})
}
