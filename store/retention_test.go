package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// person is the PII of one contact, as a lead carries it.
type person struct {
	name, first, last, company, email, phone, message, attribute string
}

// values are what must be gone from every table once the person's leads
// are erased or purged.
func (p person) values() []string {
	return []string{p.name, p.first, p.last, p.company, p.email, p.phone, p.message, p.attribute}
}

var (
	ada = person{
		name: "Ada Lovelace-Byron", first: "Augusta Ada", last: "Lovelace-Byron", company: "Analytical Engines Ltd",
		email: "Ada.Lovelace@Example.org", phone: "+1 (555) 010-2000", message: "Call me about the difference engine",
		attribute: "babbage-referral",
	}
	grace = person{
		name: "Grace Brewster Hopper", first: "Grace Brewster", last: "Hopper", company: "Cobol Compilers Inc",
		email: "grace.hopper@example.net", phone: "+1 555 020 3000", message: "Nanoseconds are this long",
		attribute: "navy-referral",
	}
)

// lifecycleBundle is a testBundle with a direct connection to its
// database, for reading every table behind the store's back.
type lifecycleBundle struct {
	*testBundle
	sql tables
}

// tables dumps the database.
type tables func(t testing.TB) testenv.Tables

func setupLifecycle(t *testing.T, db testenv.Database) *lifecycleBundle {
	t.Helper()
	b := setup(t, db)
	conn := testenv.OpenSQL(t, db.URL)
	return &lifecycleBundle{testBundle: b, sql: func(t testing.TB) testenv.Tables { return testenv.DumpTables(t, conn) }}
}

// leadOf returns a lead of p through leadIntegrationID, received i
// milliseconds after t0.
func leadOf(p person, leadIntegrationID, externalID string, i int) store.Lead {
	return store.Lead{
		IntegrationID: leadIntegrationID, ExternalID: externalID, Source: "Zillow-Test",
		Name: p.name, FirstName: p.first, LastName: p.last, Company: p.company,
		Email: p.email, Phone: p.phone, Message: p.message,
		Attributes: map[string]any{"referral": p.attribute, "beds": 3.0},
		ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond),
	}
}

// payloadColumns are the columns of leads that hold a lead's payload.
var payloadColumns = []string{"name", "first_name", "last_name", "company", "email", "phone", "message"}

// leadRow and deliveryRows find rows of a dump.
func leadRowOf(t testing.TB, dump testenv.Tables, id int64) testenv.Row {
	t.Helper()
	for _, row := range dump["leads"] {
		if row["id"] == strconv.FormatInt(id, 10) {
			return row
		}
	}
	t.Fatalf("no lead %d in the dump", id)
	return nil
}

// expectRemoved changes before's rows of the leads ids as removing their
// payload (for reason, at purgedAt) must: the payload columns emptied,
// the delivery texts cleared (a cancelled delivery keeps its reason),
// pending deliveries cancelled when cancel is set. Nothing else.
func expectRemoved(t testing.TB, before testenv.Tables, ids []int64, reason string, purgedAt time.Time, cancel bool) testenv.Tables {
	t.Helper()
	at := purgedAt.UTC().Format(time.RFC3339Nano)
	removed := map[string]bool{}
	for _, id := range ids {
		removed[strconv.FormatInt(id, 10)] = true
	}
	want := testenv.Tables{}
	for name, rows := range before {
		want[name] = []testenv.Row{}
		for _, row := range rows {
			r := testenv.Row{}
			for k, v := range row {
				r[k] = v
			}
			switch {
			case name == "leads" && removed[r["id"]]:
				for _, c := range payloadColumns {
					r[c] = ""
				}
				r["attributes"] = "{}"
				r["purged_at"], r["purge_reason"] = at, reason
			case name == "lead_deliveries" && removed[r["lead_id"]]:
				r["last_error"] = ""
				switch {
				case r["status"] == store.DeliveryPending && cancel:
					r["status"], r["reason"], r["completed_at"] = store.DeliveryCancelled, store.ErasedReason, at
				case r["status"] != store.DeliveryCancelled:
					r["reason"] = ""
				}
			}
			want[name] = append(want[name], r)
		}
	}
	return want
}

// requireTables compares two dumps table by table, rows in any order.
func requireTables(t testing.TB, want, got testenv.Tables, msg string) {
	t.Helper()
	require.Equal(t, len(want), len(got), msg)
	for name := range want {
		require.ElementsMatch(t, want[name], got[name], "%s: table %s", msg, name)
	}
}

func TestEraseContact(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupLifecycle(t, db)
		at := t0.Add(time.Hour)

		// Two orgs: Ada left leads with both, Grace with the first.
		leadIntegration(t, b.testBundle, "erase-lead-a", "org-a", integration.StatusActive)
		crmIntegration(t, b.testBundle, "erase-crm-a1", "org-a", integration.StatusActive)
		crmIntegration(t, b.testBundle, "erase-crm-a2", "org-a", integration.StatusPaused)
		leadIntegration(t, b.testBundle, "erase-lead-b", "org-b", integration.StatusActive)
		crmIntegration(t, b.testBundle, "erase-crm-b", "org-b", integration.StatusActive)

		adaA := addLead(t, b.testBundle, leadOf(ada, "erase-lead-a", "a-1", 0))
		graceA := addLead(t, b.testBundle, leadOf(grace, "erase-lead-a", "a-2", 1))
		// Another form of Ada's email and phone.
		adaB := leadOf(ada, "erase-lead-b", "b-1", 2)
		adaB.Email, adaB.Phone = " ada.lovelace@EXAMPLE.org ", "1-555-010-2000"
		adaBRes := addLead(t, b.testBundle, adaB)
		// A phone-only lead of Ada's, and one of another person who shares
		// Ada's email domain and part of her number: neither matches by email.
		adaPhoneOnly := leadOf(person{name: "A. L.", phone: "+1 555 010 2000"}, "erase-lead-b", "b-2", 3)
		adaPhoneRes := addLead(t, b.testBundle, adaPhoneOnly)
		near := leadOf(person{name: "Near Miss", email: "lovelace@example.org", phone: "+44 555 010 2000"}, "erase-lead-b", "b-3", 4)
		nearRes := addLead(t, b.testBundle, near)

		// Deliveries in every state: Ada's lead in org A was rejected by
		// one CRM, quoting her email (CRMs do), and failed once at the
		// other, which still has it pending.
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, "erase-crm-a1", []store.DeliveryResult{
			{LeadID: adaA.LeadID, Status: store.DeliveryRejected, Reason: "invalid email " + ada.email},
			{LeadID: graceA.LeadID, Status: store.DeliveryRejected, Reason: "invalid email " + grace.email},
		}, t0.Add(time.Minute)))
		require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, "erase-crm-a2", []int64{adaA.LeadID}, "HTTP 503 for "+ada.phone))
		require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, "erase-crm-a2", []int64{graceA.LeadID}, "HTTP 503 for "+grace.phone))
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, "erase-crm-b", []store.DeliveryResult{
			{LeadID: adaBRes.LeadID, Status: store.DeliveryDelivered, CRMRecordID: "rec-1"},
		}, t0.Add(time.Minute)))

		t.Run("RefusesBadInputAndChangesNothing", func(t *testing.T) {
			before := b.sql(t)
			for name, c := range map[string]store.Contact{
				"None":          {},
				"Both":          {Email: ada.email, Phone: ada.phone},
				"InvalidEmail":  {Email: "ada.lovelace(at)example.org"},
				"NamedEmail":    {Email: "Ada <ada.lovelace@example.org>"},
				"EmailTwoAts":   {Email: "ada@lovelace@example.org"},
				"PhoneNoDigits": {Phone: "call me"},
			} {
				got, err := b.store.EraseContact(b.ctx, c, at)
				require.ErrorIs(t, err, store.ErrInvalidContact, name)
				require.Zero(t, got, name)
				require.NotContains(t, err.Error(), "lovelace", "%s: errors never quote the contact", name)
			}
			requireTables(t, before, b.sql(t), "a refused erasure changes nothing")
		})

		t.Run("NobodyMatchesNothingChanges", func(t *testing.T) {
			before := b.sql(t)
			got, err := b.store.EraseContact(b.ctx, store.Contact{Email: "nobody@example.org"}, at)
			require.NoError(t, err)
			require.Zero(t, got)
			requireTables(t, before, b.sql(t), "nothing matched")
		})

		t.Run("ByEmail", func(t *testing.T) {
			before := b.sql(t)
			got, err := b.store.EraseContact(b.ctx, store.Contact{Email: "ADA.LOVELACE@example.ORG"}, at)
			require.NoError(t, err)
			// Ada's two leads with her email; their deliveries: a1 rejected
			// (reason cleared), a2 pending (cancelled), b delivered (no text).
			require.Equal(t, store.Erasure{Leads: 2, Deliveries: 2, Cancelled: 1, InCRMs: 1}, got, "adaB had reached erase-crm-b")
			after := b.sql(t)
			requireTables(t, expectRemoved(t, before, []int64{adaA.LeadID, adaBRes.LeadID}, store.PurgeErased, at, true), after,
				"only Ada's leads and their deliveries changed")

			// Everything of those leads is gone from every table; Grace's
			// lead and the leads without Ada's email are kept.
			require.Empty(t, after.Containing(ada.values()...))
			for _, v := range append(grace.values(), adaPhoneOnly.Phone, near.Email) {
				require.NotEmpty(t, after.Containing(v), "%s is kept", v)
			}
			require.Equal(t, "erased", leadRowOf(t, after, adaA.LeadID)["purge_reason"])

			// The cancelled delivery is never pushed: nothing pending of Ada's.
			pending := pendingLeadIDs(t, b.testBundle, "erase-crm-a2")
			require.Equal(t, []int64{graceA.LeadID}, pending)
			c := counts(t, b.testBundle, "erase-crm-a1")
			require.Equal(t, int64(2), c.Rejected, "completed deliveries keep their status")

			// Again: nothing left to erase.
			again, err := b.store.EraseContact(b.ctx, store.Contact{Email: ada.email}, at.Add(time.Hour))
			require.NoError(t, err)
			require.Zero(t, again)
			requireTables(t, after, b.sql(t), "a second erasure changes nothing")
		})

		t.Run("ByPhoneDigits", func(t *testing.T) {
			before := b.sql(t)
			got, err := b.store.EraseContact(b.ctx, store.Contact{Phone: "15550102000"}, at)
			require.NoError(t, err)
			require.Equal(t, store.Erasure{Leads: 1, Deliveries: 1, Cancelled: 1}, got, "the phone-only lead, pending at erase-crm-b")
			after := b.sql(t)
			requireTables(t, expectRemoved(t, before, []int64{adaPhoneRes.LeadID}, store.PurgeErased, at, true), after, "only the phone-only lead changed")
			require.Empty(t, after.Containing(adaPhoneOnly.Phone, adaPhoneOnly.Name))
			require.Equal(t, []int64{nearRes.LeadID}, pendingLeadIDs(t, b.testBundle, "erase-crm-b"))
			require.NotEmpty(t, after.Containing(near.Phone), "a number with other digits is another person's")
			require.Equal(t, near.Name, leadRowOf(t, after, nearRes.LeadID)["name"])
		})

		t.Run("OnlyASCIILettersFoldCase", func(t *testing.T) {
			// The same on both databases, whatever PostgreSQL's locale.
			zoe := addLead(t, b.testBundle, leadOf(person{name: "Zoë", email: "Zoë@Example.org"}, "erase-lead-b", "b-4", 5))
			got, err := b.store.EraseContact(b.ctx, store.Contact{Email: "ZOË@example.org"}, at)
			require.NoError(t, err)
			require.Zero(t, got.Leads, "Ë is not ë")
			got, err = b.store.EraseContact(b.ctx, store.Contact{Email: "zoë@EXAMPLE.ORG"}, at)
			require.NoError(t, err)
			require.Equal(t, int64(1), got.Leads)
			require.Empty(t, leadRowOf(t, b.sql(t), zoe.LeadID)["email"])
		})
	})
}

func TestPurgeLeads(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupLifecycle(t, db)
		leadIntegration(t, b.testBundle, "purge-setup", "org-p", integration.StatusSetupIncomplete)
		leadIntegration(t, b.testBundle, "purge-lead", "org-p", integration.StatusActive)
		crmIntegration(t, b.testBundle, "purge-crm-1", "org-p", integration.StatusActive)
		crmIntegration(t, b.testBundle, "purge-crm-2", "org-p", integration.StatusActive)

		// Received before the cutoff: a test lead of a lead integration in
		// setup (routed nowhere), one delivered to both CRMs, one rejected
		// by one (quoting the lead) and set aside by the other, one still
		// pending at a CRM. After it: one delivered.
		cutoff := t0.Add(time.Second)
		testLead := addLead(t, b.testBundle, leadOf(person{name: "Test Lead", email: "test@example.org"}, "purge-setup", "t-1", 0))
		delivered := addLead(t, b.testBundle, leadOf(ada, "purge-lead", "p-1", 1))
		rejected := addLead(t, b.testBundle, leadOf(grace, "purge-lead", "p-2", 2))
		waiting := addLead(t, b.testBundle, leadOf(person{name: "Still Waiting", email: "waiting@example.org"}, "purge-lead", "p-3", 3))
		recent := addLead(t, b.testBundle, leadOf(person{name: "Just Arrived", email: "recent@example.org"}, "purge-lead", "p-4", 2000))
		done := t0.Add(time.Minute)
		for _, crm := range []string{"purge-crm-1", "purge-crm-2"} {
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, crm, []store.DeliveryResult{
				{LeadID: delivered.LeadID, Status: store.DeliveryDelivered, CRMRecordID: "rec-" + crm},
				{LeadID: recent.LeadID, Status: store.DeliveryDelivered},
			}, done))
		}
		require.NoError(t, b.store.RecordDeliveryFailure(b.ctx, "purge-crm-1", []int64{rejected.LeadID, waiting.LeadID}, "HTTP 503"))
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, "purge-crm-1", []store.DeliveryResult{
			{LeadID: rejected.LeadID, Status: store.DeliveryRejected, Reason: "duplicate of " + grace.email},
		}, done))
		require.NoError(t, b.store.CompleteDeliveries(b.ctx, "purge-crm-2", []store.DeliveryResult{
			{LeadID: waiting.LeadID, Status: store.DeliveryDelivered},
		}, done))
		// The deliveries engineer's gave_up status, as any status but
		// pending, is a completed delivery.
		conn := testenv.OpenSQL(t, db.URL)
		_, err := conn.Exec(conn.Rebind(`UPDATE lead_deliveries SET status = 'gave_up', reason = ?, completed_at = ?
WHERE crm_integration_id = 'purge-crm-2' AND lead_id = ?`), "gave up after 10 attempts: HTTP 400 for "+grace.phone, done, rejected.LeadID)
		require.NoError(t, err)

		t.Run("RefusesABadLimit", func(t *testing.T) {
			before := b.sql(t)
			for _, limit := range []int{0, -1, store.MaxPurgeBatch + 1} {
				_, err := b.store.PurgeLeads(b.ctx, cutoff, limit, done)
				require.ErrorContains(t, err, "out of range", "limit %d", limit)
			}
			requireTables(t, before, b.sql(t), "a refused purge changes nothing")
		})

		t.Run("InBatchesOldestFirst", func(t *testing.T) {
			before := b.sql(t)
			purgedAt := t0.Add(31 * 24 * time.Hour)
			first, err := b.store.PurgeLeads(b.ctx, cutoff, 2, purgedAt)
			require.NoError(t, err)
			require.Equal(t, store.Purged{Leads: 2, Deliveries: 0}, first, "the test lead and the delivered one (no texts)")
			second, err := b.store.PurgeLeads(b.ctx, cutoff, 2, purgedAt)
			require.NoError(t, err)
			require.Equal(t, store.Purged{Leads: 1, Deliveries: 2}, second, "the rejected one, and its two deliveries' texts")
			third, err := b.store.PurgeLeads(b.ctx, cutoff, 2, purgedAt)
			require.NoError(t, err)
			require.Zero(t, third, "the pending one waits for its delivery, the recent one for its time")

			after := b.sql(t)
			purged := []int64{testLead.LeadID, delivered.LeadID, rejected.LeadID}
			requireTables(t, expectRemoved(t, before, purged, store.PurgeRetention, purgedAt, false), after,
				"only the due leads and their deliveries' texts changed")
			require.Empty(t, after.Containing(append(ada.values(), append(grace.values(), "Test Lead", "test@example.org")...)...))
			for _, kept := range []string{"Still Waiting", "waiting@example.org", "Just Arrived", "recent@example.org"} {
				require.NotEmpty(t, after.Containing(kept), "%s is kept", kept)
			}
			row := leadRowOf(t, after, delivered.LeadID)
			require.Equal(t, "p-1", row["external_id"], "keys stay")
			require.Equal(t, delivered.PublicID, row["public_id"])
			require.Equal(t, "Zillow-Test", row["source"])
			c := counts(t, b.testBundle, "purge-crm-1")
			require.Equal(t, [3]int64{2, 1, 1}, [3]int64{c.Delivered, c.Rejected, c.Pending}, "counts stay")

			found, err := b.store.LeadByPublicID(b.ctx, delivered.PublicID)
			require.NoError(t, err)
			require.NotNil(t, found.PurgedAt)
			require.Equal(t, purgedAt, *found.PurgedAt)
			require.Empty(t, found.Name+found.FirstName+found.LastName+found.Company+found.Email+found.Phone+found.Message)
			require.Nil(t, found.Attributes)

			// The waiting lead goes once its delivery completes.
			require.NoError(t, b.store.CompleteDeliveries(b.ctx, "purge-crm-1", []store.DeliveryResult{
				{LeadID: waiting.LeadID, Status: store.DeliveryDelivered},
			}, done))
			last, err := b.store.PurgeLeads(b.ctx, cutoff, 2, purgedAt)
			require.NoError(t, err)
			require.Equal(t, store.Purged{Leads: 1, Deliveries: 1}, last, "its delivery's last error went with it")
			require.Empty(t, b.sql(t).Containing("Still Waiting", "waiting@example.org"))
		})
	})
}
