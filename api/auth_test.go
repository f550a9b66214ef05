package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// authBundle is an intakeBundle (org with a lead integration in setup and
// an active CRM integration) plus another org with a CRM integration of
// its own, and an API key of each org.
type authBundle struct {
	*intakeBundle
	other, otherCRM string
	// orgKey is b.org's key, named orgKeyName; otherKey the other org's.
	orgKey, orgKeyName, otherKey string
}

func setupAuth(t *testing.T, db testenv.Database) *authBundle {
	t.Helper()
	b := &authBundle{intakeBundle: setupIntake(t, db), other: testenv.ID("other"), otherCRM: testenv.ID("crm"), orgKeyName: "backend"}
	b.createCRM(t, b.otherCRM, b.other)
	_, b.orgKey = b.issueKey(t, apikey.Spec{OrgID: b.org, Name: b.orgKeyName})
	_, b.otherKey = b.issueKey(t, apikey.Spec{OrgID: b.other, Name: "globex-backend"})
	return b
}

// world is everything a refused request must leave alone: for each
// integration its row, events, credential version and live workflow
// state; the leads, deliveries and API keys.
type world struct {
	states     map[string]state
	live       map[string]liveState
	leads      int64
	deliveries store.DeliveryCounts
	keys       []store.APIKey
	// consents counts the OAuth consents handed out for each integration.
	consents map[string]int
}

// liveState is what the workflow holds, as its status query answers.
type liveState struct {
	state            integration.State
	projected        int64
	pendingMessages  int
	run              int
	nextValidationAt *time.Time
}

func (b *authBundle) world(t *testing.T) world {
	t.Helper()
	w := world{states: map[string]state{}, live: map[string]liveState{}, leads: b.leadCount(t, b.lead), deliveries: b.deliveries(t), consents: map[string]int{}}
	for _, id := range []string{b.lead, b.crm, b.otherCRM} {
		w.states[id] = b.snapshot(t, id)
		n, err := b.stack.Store.CountOAuthStates(b.ctx, id)
		require.NoError(t, err)
		w.consents[id] = n
		snap, err := b.stack.Starter.Live(b.ctx, id)
		require.NoError(t, err)
		w.live[id] = liveState{snap.State, snap.ProjectedVersion, snap.PendingMessages, snap.Run, snap.NextValidationAt}
	}
	keys, err := b.stack.Store.ListAPIKeys(b.ctx, store.APIKeyFilter{})
	require.NoError(t, err)
	w.keys = keys
	return w
}

func (b *authBundle) requireWorldUnchanged(t *testing.T, before world, what string) {
	t.Helper()
	after := b.world(t)
	for id, st := range before.states {
		require.Equal(t, st, after.states[id], "%s: %s must not change", what, id)
		require.Equal(t, before.live[id], after.live[id], "%s: the workflow of %s must not change", what, id)
	}
	require.Equal(t, before.leads, after.leads, "%s: no lead may be stored", what)
	require.Equal(t, before.deliveries, after.deliveries, "%s: no delivery may be queued", what)
	require.Equal(t, before.keys, after.keys, "%s: no API key may change", what)
	require.Equal(t, before.consents, after.consents, "%s: no OAuth consent may be handed out", what)
}

// route is one operator route with a body that would be taken.
type route struct {
	name, method, path, body string
}

func (b *authBundle) routes(t *testing.T, attackerKey string) []route {
	return []route{
		{"list", http.MethodGet, "/v1/integrations", ""},
		{"list the org", http.MethodGet, "/v1/integrations?org=" + b.org, ""},
		{"get", http.MethodGet, integrationPath(b.crm), ""},
		{"get lead", http.MethodGet, integrationPath(b.lead), ""},
		{"events", http.MethodGet, integrationPath(b.crm, "events"), ""},
		{"pause", http.MethodPost, integrationPath(b.crm, "pause"), `{"by": "mallory", "note": "x"}`},
		{"resume", http.MethodPost, integrationPath(b.crm, "resume"), `{"by": "mallory"}`},
		{"complete-setup", http.MethodPost, integrationPath(b.lead, "complete-setup"), `{"by": "mallory"}`},
		{"delete", http.MethodPost, integrationPath(b.crm, "delete"), `{"by": "mallory"}`},
		{"delete lead", http.MethodPost, integrationPath(b.lead, "delete"), ""},
		{"authorize", http.MethodPost, integrationPath(b.crm, "authorize"), authorizeBody(t, "mallory", attackerKey)},
		{"authorize oauth", http.MethodPost, integrationPath(b.crm, "authorize", "oauth"), `{"by": "mallory"}`},
	}
}

// TestAuthorizationMatrix: every operator route, called with no key, a
// malformed one, a revoked one, an intake token and another org's key, is
// refused as specified (401, or 404 exactly as for an unknown ID, or 403
// for another org's list) and stores nothing: no row, event, credential
// version, lead, delivery, API key or workflow state changes. The org's
// key and an admin key are served.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupAuth(t, db)
		revokedID, revoked := b.issueKey(t, apikey.Spec{OrgID: b.org, Name: "former-employee"})
		_, err := b.stack.Store.RevokeAPIKey(b.ctx, revokedID, time.Now())
		require.NoError(t, err)
		attackerKey := b.sandboxKey(t, nil)
		routes := b.routes(t, attackerKey)
		before := b.world(t)

		for _, caller := range []struct {
			name   string
			header http.Header
			want   string // substring of the 401's message
		}{
			{"no key", http.Header{}, "missing API key"},
			{"empty bearer", http.Header{"Authorization": {"Bearer "}}, "missing API key"},
			{"basic auth", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, "missing API key"},
			{"malformed", bearer("iak_not-a-key"), "malformed API key"},
			{"truncated", bearer(b.orgKey[:len(b.orgKey)-1]), "malformed API key"},
			{"intake token", bearer(b.token), "malformed API key"},
			{"forged secret", bearer(b.orgKey[:len(b.orgKey)-8] + "00000000"), "unknown API key"},
			{"revoked", bearer(revoked), "revoked"},
		} {
			for _, rt := range routes {
				r := b.doWithHeader(t, rt.method, rt.path, rt.body, caller.header)
				require.Equal(t, http.StatusUnauthorized, r.code, "%s, %s: %s", caller.name, rt.name, r.body)
				require.Contains(t, errorMessage(t, r), caller.want, "%s, %s", caller.name, rt.name)
				require.Contains(t, r.header.Get("WWW-Authenticate"), `Bearer realm="integrations API"`, "%s, %s", caller.name, rt.name)
			}
		}
		b.requireWorldUnchanged(t, before, "unauthenticated requests")

		// Another org's key: the org's integrations do not exist for it.
		other := bearer(b.otherKey)
		for _, rt := range routes {
			r := b.doWithHeader(t, rt.method, rt.path, rt.body, other)
			switch rt.name {
			case "list":
				require.Equal(t, http.StatusOK, r.code, r.body)
				require.Equal(t, []string{b.otherCRM}, viewIDs(t, r.body), "an org's key lists its own org")
				continue
			case "list the org":
				require.Equal(t, http.StatusForbidden, r.code, r.body)
				require.Contains(t, errorMessage(t, r), "for org "+b.other)
				continue
			}
			require.Equal(t, http.StatusNotFound, r.code, "%s: %s", rt.name, r.body)
			// Exactly what an unknown ID gets: the same status and body.
			id := strings.Split(strings.TrimPrefix(rt.path, "/v1/integrations/"), "/")[0]
			ghost := testenv.ID("ghost")
			unknown := b.doWithHeader(t, rt.method, strings.Replace(rt.path, id, ghost, 1), rt.body, other)
			require.Equal(t, unknown.code, r.code, rt.name)
			require.Equal(t, strings.ReplaceAll(unknown.body, ghost, "ID"), strings.ReplaceAll(r.body, id, "ID"), "%s: another org's integration answers as an unknown one", rt.name)
			require.Equal(t, unknown.header.Get("Content-Type"), r.header.Get("Content-Type"))
		}
		b.requireWorldUnchanged(t, before, "another org's key")
		b.requireNoSecret(t, attackerKey)

		// The org's key: served, its org only; its name is the actor.
		org := bearer(b.orgKey)
		ours := sorted([]string{b.lead, b.crm})
		require.Equal(t, ours, sorted(viewIDs(t, b.okWith(t, org, http.MethodGet, "/v1/integrations", ""))))
		require.Equal(t, ours, sorted(viewIDs(t, b.okWith(t, org, http.MethodGet, "/v1/integrations?org="+b.org, ""))))
		b.okWith(t, org, http.MethodGet, integrationPath(b.crm), "")
		b.okWith(t, org, http.MethodGet, integrationPath(b.crm, "events"), "")
		v := decodeView(t, b.okWith(t, org, http.MethodPost, integrationPath(b.crm, "pause"), `{"by": "mallory", "note": "maintenance"}`))
		requireStatus(t, v, integration.StatusPaused, integration.ReasonManual)
		last := b.lastEvent(t, b.crm)
		require.Equal(t, b.orgKeyName, last.Actor, "the actor is the key's name, whatever the body claims")
		require.Equal(t, "mallory", last.ClaimedBy, "the claim is kept beside it")
		require.Equal(t, "maintenance", last.Note)
		v = decodeView(t, b.okWith(t, org, http.MethodPost, integrationPath(b.crm, "resume"), ""))
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		require.Empty(t, b.lastEvent(t, b.crm).ClaimedBy, "no by, no claim")
		r := b.doWithHeader(t, http.MethodPost, integrationPath(b.lead, "complete-setup"), "", org)
		require.Equal(t, http.StatusConflict, r.code, "the state, not the key, refuses this: %s", r.body)

		// An admin key: every org.
		require.Equal(t, []string{b.otherCRM}, viewIDs(t, b.ok(t, http.MethodGet, "/v1/integrations?org="+b.other, "")))
		all := viewIDs(t, b.ok(t, http.MethodGet, "/v1/integrations", ""))
		require.Subset(t, all, []string{b.lead, b.crm, b.otherCRM})
		v = b.command(t, b.otherCRM, "delete", `{"by": "ops"}`)
		requireStatus(t, v, integration.StatusDeleted, integration.ReasonNone)
		last = b.lastEvent(t, b.otherCRM)
		require.Equal(t, b.adminName, last.Actor)
		require.Equal(t, "ops", last.ClaimedBy)

		// Partner intake takes its token, never an API key.
		for _, key := range []string{b.orgKey, b.admin} {
			r := b.doWithHeader(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "with-api-key", "Z"), bearer(key))
			require.Equal(t, http.StatusUnauthorized, r.code, r.body)
			require.Contains(t, errorMessage(t, r), "intake token")
		}
		require.Equal(t, before.leads, b.leadCount(t, b.lead))
		b.requireNoSecret(t, b.orgKey)
		b.requireNoSecret(t, b.admin)
	})
}

// TestTakeover is the review's C1 as a test: an unauthenticated or
// cross-org authorize cannot put an attacker's CRM key on an org's
// integration, nor can a browser's cross-site "simple" POST; the org's
// credentials stay as they were, and its leads keep going to its CRM.
func TestTakeover(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupAuth(t, db)
		attackerKey := b.sandboxKey(t, nil)
		body := authorizeBody(t, "attacker", attackerKey)
		path := integrationPath(b.crm, "authorize")
		credBefore, err := b.stack.Store.CurrentCredential(b.ctx, b.crm)
		require.NoError(t, err)
		before := b.world(t)

		for _, tc := range []struct {
			name        string
			header      http.Header
			contentType string
			code        int
		}{
			{"unauthenticated", http.Header{}, "application/json", http.StatusUnauthorized},
			{"another org's key", bearer(b.otherKey), "application/json", http.StatusNotFound},
			// What a web page can send cross-site without a preflight:
			// no Authorization header, a text/plain, form or multipart body.
			{"cross-site text/plain", http.Header{}, "text/plain", http.StatusUnauthorized},
			{"cross-site form", http.Header{}, "application/x-www-form-urlencoded", http.StatusUnauthorized},
			// Even with the org's own key, a body that is not declared JSON
			// is refused before it is read.
			{"text/plain with the org's key", bearer(b.orgKey), "text/plain", http.StatusUnsupportedMediaType},
			{"text/plain;charset with the admin key", bearer(b.admin), "text/plain; charset=utf-8", http.StatusUnsupportedMediaType},
			{"form with the org's key", bearer(b.orgKey), "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
			{"multipart with the org's key", bearer(b.orgKey), "multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
			{"no Content-Type with the org's key", bearer(b.orgKey), "", http.StatusUnsupportedMediaType},
			{"JSON look-alike with the org's key", bearer(b.orgKey), "application/jsonp", http.StatusUnsupportedMediaType},
		} {
			r := b.raw(t, http.MethodPost, path, body, tc.contentType, tc.header)
			require.Equal(t, tc.code, r.code, "%s: %s", tc.name, r.body)
			msg := errorMessage(t, r)
			if tc.code == http.StatusUnsupportedMediaType {
				require.Contains(t, msg, "Content-Type: application/json", tc.name)
			}
			require.NotContains(t, msg, attackerKey, tc.name)
		}
		b.requireWorldUnchanged(t, before, "the takeover attempts")
		credAfter, err := b.stack.Store.CurrentCredential(b.ctx, b.crm)
		require.NoError(t, err)
		require.Equal(t, credBefore, credAfter, "the org's credentials are unchanged")
		plain, err := b.stack.Keyring.Open(credAfter.Ciphertext, b.crm, credAfter.Version)
		require.NoError(t, err)
		require.NotContains(t, string(plain), attackerKey)

		// A text/plain command is refused the same way, changing nothing.
		r := b.raw(t, http.MethodPost, integrationPath(b.crm, "delete"), `{"by": "attacker"}`, "text/plain", bearer(b.orgKey))
		require.Equal(t, http.StatusUnsupportedMediaType, r.code, r.body)
		b.requireWorldUnchanged(t, before, "a text/plain delete")

		// The org's leads still reach the org's CRM account, not the
		// attacker's.
		b.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "test-lead", "Z"))
		requireStatus(t, b.command(t, b.lead, "complete-setup", ""), integration.StatusActive, integration.ReasonNone)
		out := b.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "after-attack", "Z"))
		require.NotEmpty(t, out.LeadID)
		b.waitDelivered(t, 1)
		ours, err := b.stack.Sandbox.Records(b.ctx, b.crmKey)
		require.NoError(t, err)
		require.Equal(t, 1, ours.Records)
		theirs, err := b.stack.Sandbox.Records(b.ctx, attackerKey)
		require.NoError(t, err)
		require.Zero(t, theirs.Records, "nothing reaches the attacker's CRM account")
		b.requireNoPII(t)
		b.requireNoSecret(t, attackerKey)
	})
}

// TestIntakeContentType: partner intake needs JSON too, and a refused
// lead is not stored.
func TestIntakeContentType(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupIntake(t, db)
		leadsBefore, deliveriesBefore, snap := b.leadCount(t, b.lead), b.deliveries(t), b.snapshot(t, b.lead)
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "application/xml"} {
			r := b.raw(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "ct-"+ct, "Z"), ct, bearer(b.token))
			require.Equal(t, http.StatusUnsupportedMediaType, r.code, "%q: %s", ct, r.body)
			require.Contains(t, errorMessage(t, r), "Content-Type: application/json")
		}
		require.Equal(t, leadsBefore, b.leadCount(t, b.lead), "no lead may be stored")
		require.Equal(t, deliveriesBefore, b.deliveries(t))
		b.requireUnchanged(t, b.lead, snap)
		out := b.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "ct-json", "Z"))
		require.False(t, out.Duplicate)
		r := b.raw(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "ct-charset", "Z"), "Application/JSON; charset=utf-8", bearer(b.token))
		require.Equal(t, http.StatusAccepted, r.code, "media types are case-insensitive and take parameters: %s", r.body)
		b.requireNoPII(t)
	})
}

// TestEventsPaging: GET events pages with after and limit, a Link header
// pointing at the next page; the pages together are the whole history.
func TestEventsPaging(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("crm")
		b.createCRM(t, id, "acme")
		key := b.sandboxKey(t, nil)
		b.command(t, id, "authorize", authorizeBody(t, "ops", key))
		b.command(t, id, "complete-setup", "")
		for range 3 {
			b.command(t, id, "pause", `{"by": "ops"}`)
			b.command(t, id, "resume", `{"by": "ops"}`)
		}
		all := b.events(t, id)
		require.Len(t, all, 9)

		var paged []integration.Change
		next := integrationPath(id, "events") + "?limit=2"
		pages := 0
		for next != "" {
			r := b.do(t, http.MethodGet, next, "")
			require.Equal(t, http.StatusOK, r.code, r.body)
			var page []integration.Change
			require.NoError(t, json.Unmarshal([]byte(r.body), &page))
			require.LessOrEqual(t, len(page), 2)
			paged = append(paged, page...)
			pages++
			require.LessOrEqual(t, pages, 5, "paging must end")
			next = ""
			if link := r.header.Get("Link"); link != "" {
				require.True(t, strings.HasSuffix(link, `>; rel="next"`), link)
				next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			}
		}
		require.Equal(t, 5, pages)
		require.Equal(t, all, paged)

		var tail []integration.Change
		r := b.do(t, http.MethodGet, integrationPath(id, "events")+"?after=7", "")
		require.NoError(t, json.Unmarshal([]byte(r.body), &tail))
		require.Equal(t, all[7:], tail)
		require.Empty(t, r.header.Get("Link"), "the last page links nowhere")
		r = b.do(t, http.MethodGet, integrationPath(id, "events")+"?after=9", "")
		require.JSONEq(t, "[]", r.body)

		for _, tc := range []struct{ query, want string }{
			{"after=-1", `"after"`}, {"after=one", `"after"`}, {"limit=0", "1 to 1000"},
			{"limit=1001", "1 to 1000"}, {"limit=x", `"limit"`}, {"page=2", "after and limit"},
			{"after=1&after=2", "once"},
		} {
			msg := b.fail(t, http.StatusBadRequest, http.MethodGet, integrationPath(id, "events")+"?"+tc.query, "")
			require.Contains(t, msg, tc.want, tc.query)
		}
	})
}

// TestCommandTimeout: a command its workflow does not answer within the
// command timeout (here: no worker runs) is answered 504, saying it may
// still take effect, instead of holding the request for as long as the
// client waits.
func TestCommandTimeout(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("crm")
		b.createCRM(t, id, "acme")
		slow := b.withHandlerOptions(t, api.WithCommandTimeout(time.Second))
		b.stack.Service.Worker.Stop()
		r := slow.do(t, http.MethodPost, integrationPath(id, "delete"), `{"by": "ops"}`)
		require.Equal(t, http.StatusGatewayTimeout, r.code, r.body)
		msg := errorMessage(t, r)
		require.Contains(t, msg, "did not finish within 1s")
		require.Contains(t, msg, "may still take effect")
	})
}

func viewIDs(t *testing.T, body string) []string {
	t.Helper()
	var views []integration.View
	require.NoError(t, json.Unmarshal([]byte(body), &views), body)
	ids := make([]string, 0, len(views))
	for _, v := range views {
		ids = append(ids, v.ID)
	}
	return ids
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// okWith sends a request with header that must succeed.
func (b *testBundle) okWith(t *testing.T, header http.Header, method, path, body string) string {
	t.Helper()
	r := b.doWithHeader(t, method, path, body, header)
	require.Equal(t, http.StatusOK, r.code, "%s %s: %s", method, path, r.body)
	return r.body
}

// lastEvent is the newest recorded change of id.
func (b *testBundle) lastEvent(t *testing.T, id string) integration.Change {
	t.Helper()
	changes, err := b.stack.Store.Events(context.Background(), id)
	require.NoError(t, err)
	require.NotEmpty(t, changes)
	return changes[len(changes)-1]
}
