package cli_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// TestLeadsEraseAndPurge: `leads erase` removes a person's lead data from
// every table and cancels their pending deliveries, so the CRM never gets
// them, while everyone else's leads are delivered; bad input is refused
// with nothing changed; `leads purge` purges what is past the retention.
func TestLeadsEraseAndPurge(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		conn := testenv.OpenSQL(t, db.URL)
		ctx := context.Background()
		org := testenv.ID("org")
		crmID, key := b.activeCRM(t, org)
		lead := b.createLead(t, org)
		tester := []string{"Tess Tester", "tess@example.org", "+1 555 0100"}
		b.ok(t, "send-lead", lead, "--source", "Z", "--external-id", "test-lead", "--name", tester[0], "--email", tester[1], "--phone", tester[2])
		b.ok(t, "complete-setup", lead)

		// While the CRM is paused, Ada's and Grace's leads wait for it.
		b.ok(t, "pause", crmID, "--by", "ops")
		ada := []string{"Ada Lovelace", "Ada.Lovelace@Example.org", "+44 20 7946 0000", "Analytical Engines", "about the engine"}
		grace := []string{"Grace Hopper", "grace@example.net", "+1 555 0199", "Compilers Inc", "about the compiler"}
		send := func(ext string, p []string) {
			b.ok(t, "send-lead", lead, "--source", "Z", "--external-id", ext,
				"--name", p[0], "--email", p[1], "--phone", p[2], "--company", p[3], "--message", p[4])
		}
		send("ada-1", ada)
		send("grace-1", grace)
		pending, _, _ := b.syncCounts(t, crmID)
		require.Equal(t, int64(2), pending)

		before := testenv.DumpTables(t, conn)
		for _, args := range [][]string{
			{"leads", "erase"},
			{"leads", "erase", "--email", ada[1], "--phone", ada[2]},
			{"leads", "erase", "--email", "ada.lovelace-at-example.org"},
			{"leads", "erase", "--email", "Ada <" + ada[1] + ">"},
			{"leads", "erase", "--phone", "none"},
			{"leads", "erase", "--email", ""},
			{"leads", "erase", "ada", "--email", ada[1]},
		} {
			r := b.run(t, args...)
			require.Equal(t, cli.ExitUsage, r.code, "%v: %s", args, r.stderr)
			require.Empty(t, r.stdout)
			require.NotContains(t, r.stderr, "lovelace", "%v: the refusal never echoes the contact", args)
		}
		require.Equal(t, before, testenv.DumpTables(t, conn), "refused erasures change nothing")

		var erased store.Erasure
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "leads", "erase", "--email", "ada.lovelace@EXAMPLE.org", "-o", "json")), &erased))
		require.Equal(t, store.Erasure{Leads: 1, Deliveries: 1, Cancelled: 1}, erased)
		out := b.ok(t, "leads", "erase", "--phone", "15550100")
		require.Contains(t, out, "erased the lead data of 1 lead(s)")
		require.Contains(t, out, "leads:           1")
		require.Contains(t, out, "lead_deliveries: 0 (0 pending cancelled)", "the test lead reached no CRM")
		require.NotContains(t, out, "reached a CRM")

		// Resumed, the CRM gets Grace's lead only.
		b.ok(t, "resume", crmID, "--by", "ops")
		b.eventually(t, crmID, func(v integration.View) bool {
			return v.Sync != nil && v.Sync.Delivered != nil && *v.Sync.Delivered == 1 && *v.Sync.Pending == 0
		}, "Grace's lead is delivered")
		var records struct {
			ByKey map[string]int `json:"by_key"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "sandbox", "records", key, "-o", "json")), &records))
		var graceID int64
		require.NoError(t, conn.Get(&graceID, conn.Rebind(`SELECT id FROM leads WHERE external_id = ?`), "grace-1"))
		require.Equal(t, map[string]int{strconv.FormatInt(graceID, 10): 1}, records.ByKey, "the erased lead never reached the CRM")

		after := testenv.DumpTables(t, conn)
		require.Empty(t, after.Containing(append(ada, tester...)...), "erased from every table")
		for _, v := range grace {
			require.NotEmpty(t, after.Containing(v), "%s is kept", v)
		}
		for _, v := range append(ada, tester...) {
			require.NotContains(t, b.stack.Logs.String(), v, "the logs contain lead PII")
		}

		// A lead older than the retention (30 days by default), routed to
		// no CRM, is purged by `leads purge`; Grace's recent one is kept.
		setupLead := b.createLead(t, org)
		old, err := b.stack.Store.AddLead(ctx, store.Lead{
			IntegrationID: setupLead, ExternalID: "old-1", Source: "Z", Name: "Old Timer", Email: "old@example.org",
			ReceivedAt: time.Now().Add(-31 * 24 * time.Hour),
		})
		require.NoError(t, err)
		out = b.ok(t, "leads", "purge")
		require.Contains(t, out, "purged the lead data of 1 lead(s) past the retention of 720h0m0s")
		purged, err := b.stack.Store.LeadByPublicID(ctx, old.PublicID)
		require.NoError(t, err)
		require.NotNil(t, purged.PurgedAt)
		require.Empty(t, testenv.DumpTables(t, conn).Containing("Old Timer", "old@example.org"))
		var again store.Purged
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "leads", "purge", "-o", "json")), &again))
		require.Zero(t, again)
		require.NotEmpty(t, testenv.DumpTables(t, conn).Containing(grace[1]))
	})
}
