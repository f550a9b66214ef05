package cli_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// tokenPattern matches an intake token as starter.NewIntakeToken makes it.
var tokenPattern = regexp.MustCompile(`itk_[0-9a-f]{48}`)

// tokenIn returns the intake token in out, which must hold exactly one.
func tokenIn(t *testing.T, out string) string {
	t.Helper()
	tokens := tokenPattern.FindAllString(out, -1)
	require.Len(t, tokens, 1, "one intake token, printed once: %s", out)
	return tokens[0]
}

// requireTokenWorks checks whether token is id's current intake token.
func (b *testBundle) requireTokenWorks(t *testing.T, id, token string, works bool) {
	t.Helper()
	err := b.stack.Starter.CheckIntakeToken(context.Background(), id, token)
	if works {
		require.NoError(t, err, "the token of %s works", id)
		return
	}
	require.ErrorIs(t, err, starter.ErrUnauthorized, "the token of %s does not work", id)
}

// createLead creates a lead integration in org, expecting source "Z",
// and returns its ID.
func (b *testBundle) createLead(t *testing.T, org string) string {
	t.Helper()
	id := testenv.ID("lead")
	b.ok(t, "create", "lead", "--org", org, "--partner", "zillow", "--expected-source", "Z", "--id", id)
	return id
}

// activeCRM takes a new sandbox CRM integration of org to active through
// the CLI and returns its ID and the sandbox account's API key.
func (b *testBundle) activeCRM(t *testing.T, org string) (id, key string) {
	t.Helper()
	id = testenv.ID("crm")
	b.ok(t, "create", "crm", "--org", org, "--provider", "sandbox", "--id", id)
	key = b.sandboxKey(t)
	b.ok(t, "authorize", id, "--credentials-file", b.credentialsFile(t, key))
	requireStatus(t, b.view(t, "complete-setup", id), integration.StatusActive, integration.ReasonNone)
	return id, key
}

func (b *testBundle) leadCount(t *testing.T, id string) int64 {
	t.Helper()
	n, err := b.stack.Store.CountLeads(context.Background(), id)
	require.NoError(t, err)
	return n
}

// syncCounts reads the sync object of a CRM integration's
// `status --output json` and returns its pending, delivered and rejected
// counts, which must be there.
func (b *testBundle) syncCounts(t *testing.T, id string) (pending, delivered, rejected int64) {
	t.Helper()
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, "status", id, "-o", "json")), &raw))
	sync, ok := raw["sync"].(map[string]any)
	require.True(t, ok, "status of %s has a sync object: %v", id, raw)
	for _, k := range []string{"consecutive_failures", "failing_since", "last_error", "next_attempt_at"} {
		require.Contains(t, sync, k)
	}
	count := func(name string) int64 {
		v, ok := sync[name].(float64)
		require.True(t, ok, "sync.%s is a number: %v", name, sync)
		return int64(v)
	}
	return count("pending"), count("delivered"), count("rejected")
}

// TestIntakeToken: `create lead` prints the intake token once (text and
// JSON), status never shows it, and `rotate-intake-token` replaces it.
func TestIntakeToken(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		org := testenv.ID("org")

		textID := testenv.ID("lead")
		out := b.ok(t, "create", "lead", "--org", org, "--partner", "zillow", "--expected-source", "Z", "--id", textID)
		textToken := tokenIn(t, out)
		require.Contains(t, out, "POST /v1/lead-integrations/"+textID+"/leads")
		require.Contains(t, out, "Authorization: Bearer "+textToken)
		b.requireTokenWorks(t, textID, textToken, true)

		jsonID := testenv.ID("lead")
		var created struct {
			integration.View
			IntakeToken string `json:"intake_token"`
		}
		out = b.ok(t, "create", "lead", "--org", org, "--partner", "zillow", "--expected-source", "Z", "--id", jsonID, "-o", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &created), out)
		require.Equal(t, jsonID, created.ID)
		requireStatus(t, created.View, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
		require.Equal(t, created.IntakeToken, tokenIn(t, out))
		b.requireTokenWorks(t, jsonID, created.IntakeToken, true)
		b.requireTokenWorks(t, jsonID, textToken, false)
		b.requireTokenWorks(t, textID, created.IntakeToken, false)

		// Shown only at creation: nothing else prints it.
		for _, args := range [][]string{
			{"status", textID}, {"status", textID, "-o", "json"}, {"status", textID, "--live"},
			{"list", "--org", org, "-o", "json"}, {"events", textID, "-o", "json"},
		} {
			require.NotContains(t, b.ok(t, args...), "itk_", strings.Join(args, " "))
		}

		out = b.ok(t, "rotate-intake-token", textID)
		rotated := tokenIn(t, out)
		require.Contains(t, out, "no longer works")
		require.NotEqual(t, textToken, rotated)
		b.requireTokenWorks(t, textID, rotated, true)
		b.requireTokenWorks(t, textID, textToken, false)

		var rotation map[string]string
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "rotate-intake-token", textID, "-o", "json")), &rotation))
		require.Equal(t, map[string]string{"id": textID, "intake_token": rotation["intake_token"]}, rotation)
		require.Regexp(t, "^"+tokenPattern.String()+"$", rotation["intake_token"])
		b.requireTokenWorks(t, textID, rotation["intake_token"], true)
		b.requireTokenWorks(t, textID, rotated, false)
		b.requireTokenWorks(t, jsonID, created.IntakeToken, true) // other integrations keep theirs

		// Only lead integrations that are not deleted have a token.
		crmID := testenv.ID("crm")
		b.ok(t, "create", "crm", "--org", org, "--provider", "sandbox", "--id", crmID)
		msg := b.rejected(t, "rotate-intake-token", crmID)
		require.Contains(t, msg, "CRM integration")
		_, err := b.stack.Store.IntakeTokenHash(context.Background(), crmID)
		require.ErrorIs(t, err, store.ErrNotFound, "a refused rotation stores no token")

		b.ok(t, "delete", jsonID)
		require.Zero(t, b.stack.IntakeTokenRows(t, jsonID), "deleting an integration destroys its intake token")
		msg = b.rejected(t, "rotate-intake-token", jsonID)
		require.Contains(t, msg, "deleted")
		require.Zero(t, b.stack.IntakeTokenRows(t, jsonID), "the refused rotation stores no token")
		b.requireTokenWorks(t, jsonID, created.IntakeToken, false)

		r := b.run(t, "rotate-intake-token", "no-such-lead")
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, "no integration has id no-such-lead")
		r = b.run(t, "rotate-intake-token")
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	})
}

// TestSendLead: send-lead goes through intake: a repeated --external-id
// is a duplicate, stored once; CRM, deleted and unknown integrations
// refuse it and store nothing.
func TestSendLead(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		org := testenv.ID("org")
		lead := b.createLead(t, org)
		pii := []string{"--name", "Ada Lovelace", "--email", "ada.lovelace@example.org", "--phone", "+1 555 0199", "--message", "call after five"}

		out := b.ok(t, append([]string{"send-lead", lead, "--source", "Z", "--external-id", "partner-1"}, pii...)...)
		m := regexp.MustCompile(`lead (ld_[0-9a-f]{32}) accepted, queued for 0 CRM integration\(s\)`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		leadID := m[1]
		require.Contains(t, out, "awaiting_setup_completion", "the test lead moved the tracker")
		stored, err := b.stack.Store.LeadByPublicID(context.Background(), leadID)
		require.NoError(t, err)
		require.Equal(t, [3]string{"Ada Lovelace", "Ada", "Lovelace"}, [3]string{stored.Name, stored.FirstName, stored.LastName}, "--name is split")

		out = b.ok(t, "send-lead", lead, "--source", "Z", "--external-id", "partner-1", "--name", "Someone Else")
		require.Contains(t, out, `duplicate of lead `+leadID+` (external id "partner-1"): nothing stored`)
		var dup struct {
			integration.View
			Lead struct {
				LeadID    string `json:"lead_id"`
				Duplicate bool   `json:"duplicate"`
				Routed    *int   `json:"routed"`
			} `json:"lead"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "send-lead", lead, "--source", "Z", "--external-id", "partner-1", "-o", "json")), &dup))
		require.True(t, dup.Lead.Duplicate)
		require.Equal(t, leadID, dup.Lead.LeadID)
		require.NotNil(t, dup.Lead.Routed, "the operator sees how many CRMs got it")
		require.Zero(t, *dup.Lead.Routed)
		require.Equal(t, lead, dup.ID)
		require.Equal(t, int64(1), b.leadCount(t, lead), "stored once")

		// Without --external-id each lead is new. Given parts win over the
		// name, which is filled from them when missing.
		out = b.ok(t, "send-lead", lead, "--source", "Z", "--name", "Ada King", "--first-name", "Augusta Ada", "--last-name", "Lovelace", "--company", "Engines Ltd")
		stored, err = b.stack.Store.LeadByPublicID(context.Background(), regexp.MustCompile(`ld_[0-9a-f]{32}`).FindString(out))
		require.NoError(t, err)
		require.Equal(t, [4]string{"Ada King", "Augusta Ada", "Lovelace", "Engines Ltd"}, [4]string{stored.Name, stored.FirstName, stored.LastName, stored.Company})
		out = b.ok(t, "send-lead", lead, "--source", "Z", "--last-name", "Lovelace")
		stored, err = b.stack.Store.LeadByPublicID(context.Background(), regexp.MustCompile(`ld_[0-9a-f]{32}`).FindString(out))
		require.NoError(t, err)
		require.Equal(t, [3]string{"Lovelace", "", "Lovelace"}, [3]string{stored.Name, stored.FirstName, stored.LastName})
		require.Equal(t, int64(3), b.leadCount(t, lead))

		crmID := testenv.ID("crm")
		b.ok(t, "create", "crm", "--org", org, "--provider", "sandbox", "--id", crmID)
		msg := b.rejected(t, append([]string{"send-lead", crmID, "--source", "Z"}, pii...)...)
		require.Contains(t, msg, "does not receive leads")
		refusals := []string{msg}
		require.Zero(t, b.leadCount(t, crmID))

		deleted := b.createLead(t, org)
		b.ok(t, "send-lead", deleted, "--source", "Z", "--external-id", "before-delete")
		b.ok(t, "delete", deleted)
		msg = b.rejected(t, append([]string{"send-lead", deleted, "--source", "Z"}, pii...)...)
		require.Contains(t, msg, "deleted")
		require.Equal(t, int64(1), b.leadCount(t, deleted))
		refusals = append(refusals, msg)

		r := b.run(t, append([]string{"send-lead", "no-such-lead", "--source", "Z"}, pii...)...)
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, "no lead integration has id no-such-lead")
		require.Zero(t, b.leadCount(t, "no-such-lead"))
		refusals = append(refusals, r.stderr)

		r = b.run(t, "send-lead", lead, "--external-id", "no-source")
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, "--source")
		r = b.run(t, "send-lead", lead, "--source", "Z", "--external-id", strings.Repeat("x", 201))
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, `"external_id"`)
		r = b.run(t, "send-lead", lead, "--source", "Z", "--company", strings.Repeat("x", 321))
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, `"company"`)
		require.Equal(t, int64(3), b.leadCount(t, lead), "refused leads are not stored")

		for _, v := range pii {
			require.NotContains(t, b.stack.Logs.String(), v, "the logs contain lead PII")
			for _, refusal := range refusals {
				require.NotContains(t, refusal, v, "an error contains lead PII")
			}
		}
	})
}

// TestSyncStatusAndSandbox: a CRM integration's `status --output json` has
// sync counts that follow a delivered lead, and `sandbox fault` and
// `sandbox records` drive and inspect the sandbox: two failed pushes, then
// the lead is in the CRM exactly once.
func TestSyncStatusAndSandbox(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		org := testenv.ID("org")
		crmID, key := b.activeCRM(t, org)
		pending, delivered, rejected := b.syncCounts(t, crmID)
		require.Equal(t, [3]int64{0, 0, 0}, [3]int64{pending, delivered, rejected})
		require.Contains(t, b.ok(t, "status", crmID), "leads:     0 delivered, 0 rejected, 0 pending")

		lead := b.createLead(t, org)
		b.ok(t, "send-lead", lead, "--source", "Z", "--external-id", "test-lead")
		b.ok(t, "complete-setup", lead)

		out := b.ok(t, "sandbox", "fault", key, "--fail-next", "2")
		require.Contains(t, out, "fail_next:       2")
		require.Contains(t, out, "fail_status:     503")
		var faults struct {
			FailNext int `json:"fail_next"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "sandbox", "fault", key, "-o", "json")), &faults))
		require.Equal(t, 2, faults.FailNext, "fault with no flags only shows the faults")
		require.Contains(t, b.ok(t, "sandbox", "records", key), "records:                 0")

		out = b.ok(t, "send-lead", lead, "--source", "Z", "--external-id", "live-1", "--email", "ada.lovelace@example.org")
		m := regexp.MustCompile(`lead (ld_[0-9a-f]{32}) accepted, queued for 1 CRM integration\(s\)`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		sent, err := b.stack.Store.LeadByPublicID(context.Background(), m[1])
		require.NoError(t, err)

		v := b.eventually(t, crmID, func(v integration.View) bool {
			return v.Status == integration.StatusActive && v.Sync != nil && v.Sync.Delivered != nil && *v.Sync.Delivered == 1
		}, "the lead is delivered after two failed pushes")
		require.Zero(t, v.Sync.ConsecutiveFailures, "the success cleared the failures")
		require.NotNil(t, v.Sync.LastSuccessAt)
		pending, delivered, rejected = b.syncCounts(t, crmID)
		require.Equal(t, [3]int64{0, 1, 0}, [3]int64{pending, delivered, rejected})
		require.Contains(t, b.ok(t, "status", crmID), "leads:     1 delivered, 0 rejected, 0 pending")

		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "sandbox", "fault", key, "-o", "json")), &faults))
		require.Zero(t, faults.FailNext, "both failures were used up")
		out = b.ok(t, "sandbox", "records", key)
		require.Contains(t, out, "records:                 1")
		require.Contains(t, out, "upserted_more_than_once: 0")
		var records struct {
			Records int            `json:"records"`
			ByKey   map[string]int `json:"by_key"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "sandbox", "records", key, "-o", "json")), &records))
		require.Equal(t, 1, records.Records)
		require.Equal(t, map[string]int{strconv.FormatInt(sent.ID, 10): 1}, records.ByKey, "the lead, keyed by its ID, once")

		r := b.run(t, "sandbox", "fault", key, "--fail-next", "-1")
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)

		// The refuse rule: whole pushes carrying such a record are refused.
		out = b.ok(t, "sandbox", "fault", key, "--refuse-field", "email", "--refuse-contains", "huge")
		require.Contains(t, out, `refuse_rule:     email contains "huge" (HTTP 400)`)
		r = b.run(t, "sandbox", "fault", key, "--refuse-field", "email")
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		r = b.run(t, "sandbox", "fault", key, "--refuse-status", "200")
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, b.ok(t, "sandbox", "fault", key, "--clear"), "refuse_rule:     none")
	})
}
