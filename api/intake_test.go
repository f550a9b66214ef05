package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// The contact fields every test lead carries. They are lead PII: no
// response error and no log line may ever contain them.
const (
	piiName    = "Ada Lovelace"
	piiEmail   = "ada.lovelace@example.org"
	piiPhone   = "+1 555 0199"
	piiMessage = "Call me after five about the house on Elm Street"
)

var piiValues = []string{piiName, piiEmail, piiPhone, piiMessage}

// intakeBundle is a testBundle with an org that has a lead integration
// (in setup, with its intake token) and an active CRM integration.
type intakeBundle struct {
	*testBundle
	ctx   context.Context
	org   string
	lead  string
	token string // lead's current intake token
	crm   string
	// crmKey is the CRM integration's sandbox API key.
	crmKey string
}

func setupIntake(t *testing.T, db testenv.Database) *intakeBundle {
	t.Helper()
	b := &intakeBundle{testBundle: setup(t, db), ctx: context.Background(), org: testenv.ID("org")}
	b.lead, b.token = b.createLeadWithToken(t)
	b.crm = testenv.ID("crm")
	b.crmKey = b.sandboxKey(t, nil)
	b.createCRM(t, b.crm, b.org)
	b.command(t, b.crm, "authorize", authorizeBody(t, "ops", b.crmKey))
	requireStatus(t, b.command(t, b.crm, "complete-setup", ""), integration.StatusActive, integration.ReasonNone)
	return b
}

// createLeadWithToken creates a lead integration in the org, expecting
// source "Z", and returns its ID and first intake token.
func (b *intakeBundle) createLeadWithToken(t *testing.T) (id, token string) {
	t.Helper()
	id = testenv.ID("lead")
	_, token, err := b.stack.Starter.CreateLead(b.ctx, integration.Spec{
		ID: id, OrgID: b.org, Provider: "zillow", ExpectedSource: "Z",
	}, "test")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(token, "itk_"), "token %q", token)
	return id, token
}

func leadPath(id string) string { return "/v1/lead-integrations/" + id + "/leads" }

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// leadJSON is a lead body with every contact field set.
func leadJSON(t *testing.T, externalID, source string) string {
	t.Helper()
	return mustJSON(t, map[string]any{
		"external_id": externalID, "source": source,
		"name": piiName, "email": piiEmail, "phone": piiPhone, "message": piiMessage,
		"attributes": map[string]any{"budget": 450000, "beds": "3"},
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return string(raw)
}

// intakeAnswer is the body of an accepted lead: its opaque public ID and
// whether it repeated one, nothing about the platform or the org (review
// L1: no platform-wide counter, no count of the org's CRM integrations).
type intakeAnswer struct {
	LeadID    string `json:"lead_id"`
	Duplicate bool   `json:"duplicate"`
}

// send posts a lead that must be answered with code (202 stored, 200
// duplicate) and returns the answer, which has exactly its two fields.
func (b *intakeBundle) send(t *testing.T, code int, header http.Header, id, body string) intakeAnswer {
	t.Helper()
	r := b.doWithHeader(t, http.MethodPost, leadPath(id), body, header)
	require.Equal(t, code, r.code, r.body)
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	var out intakeAnswer
	require.NoError(t, dec.Decode(&out), r.body)
	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &fields))
	require.Len(t, fields, 2, `the answer is {"lead_id", "duplicate"}: %s`, r.body)
	require.Regexp(t, `^ld_[0-9a-f]{32}$`, out.LeadID, r.body)
	return out
}

// storedID is the store's ID of the lead with publicID: the key its CRM
// record has.
func (b *intakeBundle) storedID(t *testing.T, publicID string) string {
	t.Helper()
	l, err := b.stack.Store.LeadByPublicID(b.ctx, publicID)
	require.NoError(t, err)
	return strconv.FormatInt(l.ID, 10)
}

func (b *intakeBundle) leadCount(t *testing.T, id string) int64 {
	t.Helper()
	n, err := b.stack.Store.CountLeads(b.ctx, id)
	require.NoError(t, err)
	return n
}

func (b *intakeBundle) deliveries(t *testing.T) store.DeliveryCounts {
	t.Helper()
	c, err := b.stack.Store.DeliveryCounts(b.ctx, b.crm)
	require.NoError(t, err)
	return c
}

// waitDelivered waits until the CRM integration has delivered n leads and
// has none pending.
func (b *intakeBundle) waitDelivered(t *testing.T, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		c := b.deliveries(t)
		return c.Delivered == n && c.Pending == 0 && c.Rejected == 0
	}, 60*time.Second, 100*time.Millisecond, "%s delivers %d leads (now %+v)", b.crm, n, b.deliveries(t))
}

// requireNoPII checks that no response, no log line and nothing in the
// workflow histories of the org's lead and CRM integrations (every
// payload decoded) carries a contact field of a lead; the histories hold
// neither the intake token nor the CRM's API key either.
func (b *intakeBundle) requireNoPII(t *testing.T) {
	t.Helper()
	logs := b.stack.Logs.String()
	for _, pii := range piiValues {
		for _, body := range b.bodies {
			require.NotContains(t, body, pii, "a response contains lead PII")
		}
		require.NotContains(t, logs, pii, "the logs contain lead PII")
	}
	for _, wid := range []string{integration.WorkflowID(integration.KindLead, b.lead), integration.WorkflowID(integration.KindCRM, b.crm)} {
		history := testenv.HistoryText(t, b.stack.Temporal, wid)
		testenv.RequirePresent(t, history, b.org, "the scan of "+wid+" reads payloads")
		for _, secret := range append([]string{b.token, b.crmKey}, piiValues...) {
			testenv.RequireAbsent(t, history, secret, "lead data or a secret in the history of "+wid)
		}
	}
}

// TestIntake: leads sent during setup are stored and move the setup
// tracker but reach no CRM; after activation each new lead is routed to
// the org's CRM and delivered; a repeated external ID is stored once and
// routed never again.
func TestIntake(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupIntake(t, db)
		auth := bearer(b.token)

		wrong := b.send(t, http.StatusAccepted, auth, b.lead, leadJSON(t, "setup-1", "z"))
		require.False(t, wrong.Duplicate)
		v := b.get(t, b.lead)
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonSourceMismatch)
		require.NotNil(t, v.LastSource)
		require.Equal(t, "z", *v.LastSource)

		right := b.send(t, http.StatusAccepted, auth, b.lead, leadJSON(t, "setup-2", "Z"))
		require.False(t, right.Duplicate)
		require.NotEqual(t, right.LeadID, wrong.LeadID)
		v = b.get(t, b.lead)
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingSetupCompletion)
		require.Equal(t, "Z", *v.LastSource)
		require.True(t, step(t, v, integration.StepTestLeadReceived).Done)
		require.Equal(t, int64(2), b.leadCount(t, b.lead), "leads sent during setup are stored")
		require.Equal(t, store.DeliveryCounts{}, b.deliveries(t), "and queued for no CRM")

		requireStatus(t, b.command(t, b.lead, "complete-setup", ""), integration.StatusActive, integration.ReasonNone)

		live := b.send(t, http.StatusAccepted, auth, b.lead, leadJSON(t, "live-1", "Z"))
		require.False(t, live.Duplicate)
		b.waitDelivered(t, 1) // queued for the org's one CRM
		stats, err := b.stack.Sandbox.Records(b.ctx, b.crmKey)
		require.NoError(t, err)
		require.Equal(t, 1, stats.Records)
		require.Equal(t, map[string]int{b.storedID(t, live.LeadID): 1}, stats.ByKey, "the CRM has the lead, keyed by its ID")
		stored, err := b.stack.Store.LeadByPublicID(b.ctx, live.LeadID)
		require.NoError(t, err)
		require.Equal(t, [3]string{piiName, "Ada", "Lovelace"}, [3]string{stored.Name, stored.FirstName, stored.LastName}, "the name alone is split")
		crmView := b.get(t, b.crm)
		require.NotNil(t, crmView.Sync)
		require.NotNil(t, crmView.Sync.Delivered)
		require.Equal(t, int64(1), *crmView.Sync.Delivered)
		require.Equal(t, int64(0), *crmView.Sync.Pending)

		// The authorization scheme is case-insensitive (RFC 9110 §11.1).
		lower := http.Header{"Authorization": {"bearer " + b.token}}
		// The name's parts and the company, when sent, are stored as sent.
		parts := mustJSON(t, map[string]any{
			"external_id": "live-2", "source": "Z", "name": piiName,
			"first_name": "Augusta Ada", "last_name": "King", "company": "Analytical Engines",
			"email": piiEmail, "phone": piiPhone, "message": piiMessage,
		})
		second := b.send(t, http.StatusAccepted, lower, b.lead, parts)
		b.waitDelivered(t, 2)
		stored, err = b.stack.Store.LeadByPublicID(b.ctx, second.LeadID)
		require.NoError(t, err)
		require.Equal(t, [4]string{piiName, "Augusta Ada", "King", "Analytical Engines"}, [4]string{stored.Name, stored.FirstName, stored.LastName, stored.Company})

		// Repeats, with other contact details, are duplicates of the
		// original: 200, its public lead ID, nothing stored, nothing routed. A
		// repeat of a lead sent during setup is not routed either.
		body := mustJSON(t, map[string]any{"external_id": "live-1", "source": "Z", "name": "Someone Else"})
		dup := b.send(t, http.StatusOK, auth, b.lead, body)
		require.Equal(t, intakeAnswer{LeadID: live.LeadID, Duplicate: true}, dup)
		dup = b.send(t, http.StatusOK, auth, b.lead, leadJSON(t, "setup-2", "Z"))
		require.Equal(t, intakeAnswer{LeadID: right.LeadID, Duplicate: true}, dup)
		require.Equal(t, int64(4), b.leadCount(t, b.lead), "stored once")
		c := b.deliveries(t)
		require.Equal(t, int64(2), c.Pending+c.Delivered+c.Rejected, "duplicates are not queued again")
		stats, err = b.stack.Sandbox.Records(b.ctx, b.crmKey)
		require.NoError(t, err)
		require.Equal(t, 2, stats.Records)
		for key, n := range stats.ByKey {
			require.Equal(t, 1, n, "lead %s upserted once", key)
		}

		b.requireNoPII(t)
		b.requireNoSecret(t, b.token)
	})
}

// TestIntakeBadInputStoresNothing: every bad intake request is answered
// 4xx with a JSON error naming the problem, and stores nothing: no lead, no
// delivery, no change to the integration (no tracker move during setup).
func TestIntakeBadInputStoresNothing(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupIntake(t, db)

		// The main lead integration is active, so a lead that slipped
		// through would be routed; a second one is still in setup, where
		// a stored lead would move its tracker.
		b.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "test-lead", "Z"))
		requireStatus(t, b.command(t, b.lead, "complete-setup", ""), integration.StatusActive, integration.ReasonNone)
		inSetup, inSetupToken := b.createLeadWithToken(t)
		deleted, deletedToken := b.createLeadWithToken(t)
		b.command(t, deleted, "delete", "")

		// Rotation: the old token stops working at once.
		oldToken := b.token
		var err error
		b.token, err = b.stack.Starter.RotateIntakeToken(b.ctx, b.lead)
		require.NoError(t, err)
		require.NotEqual(t, oldToken, b.token)

		leadsBefore := map[string]int64{}
		for _, id := range []string{b.lead, inSetup, deleted, b.crm} {
			leadsBefore[id] = b.leadCount(t, id)
		}
		require.Equal(t, int64(1), leadsBefore[b.lead])
		deliveriesBefore := b.deliveries(t)
		snapshots := map[string]state{}
		for _, id := range []string{b.lead, inSetup, deleted} {
			snapshots[id] = b.snapshot(t, id)
		}

		valid := leadJSON(t, "bad-input", "Z")
		with := func(change func(l map[string]any)) string {
			var l map[string]any
			require.NoError(t, json.Unmarshal([]byte(valid), &l))
			change(l)
			return mustJSON(t, l)
		}
		over := func(n int) string { return strings.Repeat(piiEmail, n/len(piiEmail)+1)[:n+1] }
		missingAuth := http.Header{}

		type badCase struct {
			name    string
			id      string      // default: the target lead integration
			header  http.Header // default: the target's current token
			body    string
			code    int
			want    []string // substrings of the error
			wwwAuth string   // substring of WWW-Authenticate on a 401
		}
		cases := []badCase{
			{name: "unknown integration", id: "no-such-lead", body: valid, code: 404, want: []string{"no-such-lead"}},
			{name: "invalid id", id: "bad%20id!", body: valid, code: 400, want: []string{"invalid integration id"}},
			{name: "too long id", id: strings.Repeat("a", 65), body: valid, code: 400, want: []string{"invalid integration id"}},
			{name: "CRM integration", id: b.crm, body: valid, code: 404, want: []string{b.crm, "lead integration"}},
			{name: "deleted lead integration", id: deleted, header: bearer(deletedToken), body: valid, code: 404, want: []string{deleted}},

			{name: "missing Authorization", header: missingAuth, body: valid, code: 401,
				want: []string{"Authorization: Bearer"}, wwwAuth: `Bearer realm="lead intake"`},
			{name: "empty bearer token", header: http.Header{"Authorization": {"Bearer "}}, body: valid, code: 401,
				want: []string{"missing intake token"}, wwwAuth: "Bearer"},
			{name: "basic auth", header: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, body: valid, code: 401,
				want: []string{"Bearer"}, wwwAuth: "Bearer"},
			{name: "wrong token", header: bearer("itk_" + strings.Repeat("0", 48)), body: valid, code: 401,
				want: []string{"wrong intake token"}, wwwAuth: `error="invalid_token"`},
			{name: "another integration's token", header: bearer(deletedToken), body: valid, code: 401,
				want: []string{"wrong intake token"}, wwwAuth: `error="invalid_token"`},
			{name: "rotated-away token", header: bearer(oldToken), body: valid, code: 401,
				want: []string{"wrong intake token", "rotate-intake-token"}, wwwAuth: `error="invalid_token"`},

			{name: "malformed JSON", body: valid[:len(valid)-1], code: 400, want: []string{"not valid JSON"}},
			{name: "not JSON", body: "external_id=x&source=Z", code: 400, want: []string{"not valid JSON"}},
			{name: "not an object", body: `["bad-input", "Z"]`, code: 400, want: []string{"JSON object", "array"}},
			{name: "a string", body: `"` + piiEmail + `"`, code: 400, want: []string{"JSON object", "string"}},
			{name: "two objects", body: valid + valid, code: 400, want: []string{"after the JSON object"}},
			{name: "unknown field", body: with(func(l map[string]any) { l["emial"] = piiEmail }), code: 400, want: []string{`"emial"`}},
			{name: "external_id a number", body: with(func(l map[string]any) { l["external_id"] = 42 }), code: 400,
				want: []string{`"external_id"`, "string", "number"}},
			{name: "name an object", body: with(func(l map[string]any) { l["name"] = map[string]string{"first": piiName} }), code: 400,
				want: []string{`"name"`, "string"}},
			{name: "attributes an array", body: with(func(l map[string]any) { l["attributes"] = []string{piiPhone} }), code: 400,
				want: []string{`"attributes"`, "object"}},
			{name: "number out of range", body: `{"external_id": "bad-input", "source": "Z", "attributes": {"budget": 1e400}}`, code: 400,
				want: []string{`"attributes"`, "out of range"}},
			{name: "empty body", body: "", code: 400, want: []string{`"external_id"`, "required"}},
			{name: "empty object", body: "{}", code: 400, want: []string{`"external_id"`, "required"}},
			{name: "missing external_id", body: with(func(l map[string]any) { delete(l, "external_id") }), code: 400,
				want: []string{`"external_id"`, "required"}},
			{name: "blank external_id", body: with(func(l map[string]any) { l["external_id"] = "  " }), code: 400,
				want: []string{`"external_id"`, "required"}},
			{name: "null external_id", body: with(func(l map[string]any) { l["external_id"] = nil }), code: 400,
				want: []string{`"external_id"`, "required"}},
			{name: "missing source", body: with(func(l map[string]any) { delete(l, "source") }), code: 400,
				want: []string{`"source"`, "required"}},
			{name: "empty source", body: with(func(l map[string]any) { l["source"] = "" }), code: 400,
				want: []string{`"source"`, "required"}},
			{name: "external_id over 200 bytes", body: with(func(l map[string]any) { l["external_id"] = over(200) }), code: 400,
				want: []string{`"external_id"`, "over 200 bytes"}},
			{name: "source over 200 bytes", body: with(func(l map[string]any) { l["source"] = over(integration.MaxSourceLength) }), code: 400,
				want: []string{`"source"`, "over 200 bytes"}},
			{name: "name over 320 bytes", body: with(func(l map[string]any) { l["name"] = over(320) }), code: 400,
				want: []string{`"name"`, "over 320 bytes"}},
			{name: "email over 320 bytes", body: with(func(l map[string]any) { l["email"] = over(320) }), code: 400,
				want: []string{`"email"`, "over 320 bytes"}},
			{name: "phone over 320 bytes", body: with(func(l map[string]any) { l["phone"] = over(320) }), code: 400,
				want: []string{`"phone"`, "over 320 bytes"}},
			{name: "message over 16 KiB", body: with(func(l map[string]any) { l["message"] = over(16 << 10) }), code: 400,
				want: []string{`"message"`, "over 16384 bytes"}},
			{name: "body over 64 KiB", body: with(func(l map[string]any) { l["attributes"] = map[string]any{"notes": over(64 << 10)} }), code: 413,
				want: []string{"64 KiB"}},
			{name: "NUL in name", body: with(func(l map[string]any) { l["name"] = piiName + "\x00" }), code: 400,
				want: []string{"name", "NUL"}},
			{name: "NUL in email", body: with(func(l map[string]any) { l["email"] = "\x00" + piiEmail }), code: 400,
				want: []string{"email", "NUL"}},
			{name: "NUL in message", body: with(func(l map[string]any) { l["message"] = piiMessage + "\x00" }), code: 400,
				want: []string{"message", "NUL"}},
			{name: "NUL in source", body: with(func(l map[string]any) { l["source"] = "Z\x00" }), code: 400,
				want: []string{"source", "NUL"}},
			{name: "NUL in external_id", body: with(func(l map[string]any) { l["external_id"] = "bad\x00input" }), code: 400,
				want: []string{`field "external_id"`, "NUL"}},
			{name: "NUL in attributes", body: with(func(l map[string]any) { l["attributes"] = map[string]any{"note": piiPhone + "\x00"} }), code: 400,
				want: []string{"attributes", "NUL"}},
			{name: "NUL in an attribute name", body: with(func(l map[string]any) { l["attributes"] = map[string]any{"no\x00te": "x"} }), code: 400,
				want: []string{"attributes", "NUL"}},
		}

		for _, target := range []struct{ id, token string }{{b.lead, b.token}, {inSetup, inSetupToken}} {
			for _, tc := range cases {
				id, header := target.id, bearer(target.token)
				if tc.id != "" {
					id = tc.id
				}
				if tc.header != nil {
					header = tc.header
				}
				r := b.doWithHeader(t, http.MethodPost, leadPath(id), tc.body, header)
				require.Equal(t, tc.code, r.code, "%s (%s): %s", tc.name, target.id, r.body)
				msg := errorMessage(t, r)
				for _, want := range tc.want {
					require.Contains(t, msg, want, "%s (%s)", tc.name, target.id)
				}
				for _, pii := range piiValues {
					require.NotContains(t, msg, pii, "%s: the error echoes lead PII", tc.name)
				}
				require.NotContains(t, msg, target.token, "%s: the error echoes the token", tc.name)
				if tc.wwwAuth != "" {
					require.Contains(t, r.header.Get("WWW-Authenticate"), tc.wwwAuth, tc.name)
				} else {
					require.Empty(t, r.header.Get("WWW-Authenticate"), tc.name)
				}
			}
		}

		for id, n := range leadsBefore {
			require.Equal(t, n, b.leadCount(t, id), "no lead may be stored for %s", id)
		}
		for _, id := range []string{"no-such-lead", strings.Repeat("a", 65)} {
			require.Zero(t, b.leadCount(t, id))
		}
		require.Equal(t, deliveriesBefore, b.deliveries(t), "no delivery may be queued")
		for id, before := range snapshots {
			b.requireUnchanged(t, id, before)
		}
		require.Nil(t, b.get(t, inSetup).LastSource, "bad input does not move the setup tracker")

		// The same valid lead with the new token is taken, on both: the
		// cases above failed for their own reason, not the body.
		b.send(t, http.StatusAccepted, bearer(b.token), b.lead, valid)
		b.send(t, http.StatusAccepted, bearer(inSetupToken), inSetup, valid)
		v := b.get(t, inSetup)
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingSetupCompletion)
		require.Equal(t, leadsBefore[b.lead]+1, b.leadCount(t, b.lead))
		b.waitDelivered(t, 1)

		b.requireNoPII(t)
		for _, token := range []string{b.token, oldToken, inSetupToken, deletedToken} {
			b.requireNoSecret(t, token)
		}
	})
}

// TestIntakeTimeout: a lead whose workflow does not answer within the
// command timeout (here: no worker runs, and a lead during setup is told
// to the workflow) is answered 504 in JSON, saying it may have been
// accepted and how to send it again safely.
func TestIntakeTimeout(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := &intakeBundle{testBundle: setup(t, db), ctx: context.Background(), org: testenv.ID("org")}
		b.lead, b.token = b.createLeadWithToken(t)
		slow := &intakeBundle{testBundle: b.withHandlerOptions(t, api.WithCommandTimeout(time.Second)), ctx: b.ctx, org: b.org, lead: b.lead, token: b.token}
		b.stack.Service.Worker.Stop()

		r := slow.doWithHeader(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "slow-1", "Z"), bearer(b.token))
		require.Equal(t, http.StatusGatewayTimeout, r.code, r.body)
		msg := errorMessage(t, r)
		require.Contains(t, msg, "not confirmed within 1s")
		require.Contains(t, msg, "send it again with the same external_id")
		require.Contains(t, b.stack.Logs.String(), "intake timed out")
		for _, pii := range piiValues {
			require.NotContains(t, r.body, pii)
			require.NotContains(t, b.stack.Logs.String(), pii)
		}
	})
}
