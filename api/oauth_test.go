package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// oauthBundle is a testBundle with two HubSpot integrations of one org,
// awaiting authorization, and a portal of the fake HubSpot to consent for.
type oauthBundle struct {
	*testBundle
	ctx      context.Context
	org      string
	one, two string
	hub      int64
}

func setupOAuth(t *testing.T, db testenv.Database) *oauthBundle {
	t.Helper()
	b := &oauthBundle{testBundle: setup(t, db), ctx: context.Background(), org: testenv.ID("org")}
	b.one, b.two = testenv.ID("hubspot"), testenv.ID("hubspot")
	for _, id := range []string{b.one, b.two} {
		_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: id, OrgID: b.org, Kind: integration.KindCRM, Provider: "hubspot"}, "test")
		require.NoError(t, err)
	}
	acct, err := b.stack.HubSpot.CreateAccount(b.ctx, hubspotfake.CreateAccountRequest{OAuth: true, RedirectURI: b.stack.HTTPURL + "/oauth/callback"})
	require.NoError(t, err)
	b.hub = acct.HubID
	return b
}

// consentURL asks the API for id's consent URL with key.
func (b *oauthBundle) consentURL(t *testing.T, id, key string) string {
	t.Helper()
	r := b.doWithHeader(t, http.MethodPost, integrationPath(id, "authorize", "oauth"), `{"by": "alice"}`, bearer(key))
	require.Equal(t, http.StatusOK, r.code, r.body)
	var consent struct {
		URL string `json:"consent_url"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &consent))
	require.NotEmpty(t, consent.URL)
	return consent.URL
}

// consent plays the customer on the fake's page and returns the query the
// browser brings back to the callback (code and state).
func (b *oauthBundle) consent(t *testing.T, consentURL string) url.Values {
	t.Helper()
	redirect, err := b.stack.HubSpot.Consent(b.ctx, consentURL, b.hub)
	require.NoError(t, err)
	return redirect.Query()
}

// callback opens GET /oauth/callback?query as a browser would, and returns
// the status and the page.
func (b *oauthBundle) callback(t *testing.T, query url.Values) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.server.URL+"/oauth/callback?"+query.Encode(), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	return resp.StatusCode, string(page)
}

// customerWorded checks that a callback page speaks to the customer: what
// to do next, and no operator's command or setting.
func (b *oauthBundle) customerWorded(t *testing.T, page string) {
	t.Helper()
	require.Contains(t, strings.ToLower(page), "ask whoever sent you this link for a new one")
	for _, operator := range []string{"integrations authorize", "INTEGRATIONS_", "--oauth", b.one, b.two} {
		require.NotContains(t, page, operator)
	}
}

// untouched checks that id has stored no credentials and is still
// awaiting authorization at version 1.
func (b *oauthBundle) untouched(t *testing.T, id, why string) {
	t.Helper()
	require.Empty(t, b.stack.StoredVersions(t, id), "%s: no credentials stored for %s", why, id)
	st, err := b.stack.Store.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, integration.ReasonAwaitingAuthorization, st.Reason, why)
	require.Equal(t, int64(1), st.Version, "%s: nothing happened to %s", why, id)
}

func TestOAuthConnect(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupOAuth(t, db)

		// A state that was never handed out, a forged one, one without
		// the integration it names, and an empty one: refused.
		good := b.consent(t, b.consentURL(t, b.one, b.admin))
		forged := url.Values{"code": {good.Get("code")}, "state": {b.one + ".forged-" + strings.Repeat("A", 43)}}
		for name, q := range map[string]url.Values{
			"forged":         forged,
			"no integration": {"code": {good.Get("code")}, "state": {strings.Repeat("B", 43)}},
			"empty":          {"code": {good.Get("code")}},
			// The state another integration was handed, brought back in
			// the name of another: its hash covers the name, so it is
			// unknown, and the first integration's state stays usable.
			"cross-integration": {"code": {good.Get("code")}, "state": {b.two + strings.TrimPrefix(good.Get("state"), b.one)}},
		} {
			code, page := b.callback(t, q)
			require.Equal(t, http.StatusBadRequest, code, "%s: %s", name, page)
			require.Contains(t, page, "invalid, already used or expired", name)
			b.customerWorded(t, page)
			b.untouched(t, b.one, name)
			b.untouched(t, b.two, name)
		}

		// The good one connects the integration it was handed for.
		code, page := b.callback(t, good)
		require.Equal(t, http.StatusOK, code, page)
		require.Contains(t, page, "is connected: it is now setup_incomplete (awaiting_finish)")
		require.Equal(t, []int{1}, b.stack.StoredVersions(t, b.one))
		b.untouched(t, b.two, "connecting the other")
		// The authorize is recorded as the consent URL's requester's: the
		// key's name the actor, the request's by its claim beside it.
		authorized := b.lastEvent(t, b.one)
		require.Equal(t, integration.EventAuthorize, authorized.Event)
		require.Equal(t, b.adminName, authorized.Actor)
		require.Equal(t, "alice", authorized.ClaimedBy, "the body's by is the claim")

		// An ID with dots connects too: the state names it before its
		// last dot, and the random part after it has none.
		dotted := "acme." + testenv.ID("hubspot")
		_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: dotted, OrgID: b.org, Kind: integration.KindCRM, Provider: "hubspot"}, "test")
		require.NoError(t, err)
		code, page = b.callback(t, b.consent(t, b.consentURL(t, dotted, b.admin)))
		require.Equal(t, http.StatusOK, code, page)
		require.Contains(t, page, "is connected: it is now setup_incomplete (awaiting_finish)")
		require.Equal(t, []int{1}, b.stack.StoredVersions(t, dotted))

		// Replayed: the state is spent; nothing new is stored.
		code, page = b.callback(t, good)
		require.Equal(t, http.StatusBadRequest, code, page)
		require.Contains(t, page, "invalid, already used or expired")
		require.Equal(t, []int{1}, b.stack.StoredVersions(t, b.one), "a replay stores nothing")

		// Expired: past its ten minutes the state is refused.
		stale := b.consent(t, b.consentURL(t, b.two, b.admin))
		sqlDB := testenv.OpenSQL(t, b.stack.DB.URL)
		defer sqlDB.Close()
		_, err = sqlDB.ExecContext(b.ctx, sqlDB.Rebind(`UPDATE oauth_states SET expires_at = created_at WHERE integration_id = ?`), b.two)
		require.NoError(t, err)
		code, page = b.callback(t, stale)
		require.Equal(t, http.StatusBadRequest, code, page)
		b.untouched(t, b.two, "an expired state")

		// Denied on the consent page: the state is spent, nothing stored.
		denied := b.consent(t, b.consentURL(t, b.two, b.admin))
		denied.Del("code")
		denied.Set("error", "access_denied")
		code, page = b.callback(t, denied)
		require.Equal(t, http.StatusConflict, code, page)
		require.Contains(t, page, "did not grant access")
		b.customerWorded(t, page)
		denied.Set("code", "some-code")
		denied.Del("error")
		code, _ = b.callback(t, denied)
		require.Equal(t, http.StatusBadRequest, code, "a denied consent's state is spent")
		b.untouched(t, b.two, "a denied consent")

		// A callback without a code: refused in the customer's words; the
		// operator's detail (which integration, what to run) is logged,
		// without the state.
		noCode := b.consent(t, b.consentURL(t, b.two, b.admin))
		noCode.Del("code")
		code, page = b.callback(t, noCode)
		require.Equal(t, http.StatusBadRequest, code, page)
		b.customerWorded(t, page)
		b.untouched(t, b.two, "a callback without a code")
		require.Contains(t, b.stack.Logs.String(), "carries no code: start again with `integrations authorize "+b.two+" --oauth`")
		for _, q := range []url.Values{good, denied, noCode} {
			require.NotContains(t, b.stack.Logs.String(), q.Get("state"), "no state in the log")
		}
		require.NotContains(t, b.stack.Logs.String(), good.Get("code"), "no code in the log")

		// The consent URL route is an operator route: no key, another
		// org's key and a lead integration are refused, and store no state.
		n, err := b.stack.Store.CountOAuthStates(b.ctx, b.two)
		require.NoError(t, err)
		_, otherKey := b.issueKey(t, apikey.Spec{OrgID: testenv.ID("other-org"), Name: "other"})
		r := b.doWithHeader(t, http.MethodPost, integrationPath(b.two, "authorize", "oauth"), `{}`, http.Header{})
		require.Equal(t, http.StatusUnauthorized, r.code, r.body)
		r = b.doWithHeader(t, http.MethodPost, integrationPath(b.two, "authorize", "oauth"), `{}`, bearer(otherKey))
		require.Equal(t, http.StatusNotFound, r.code, r.body)
		r = b.raw(t, http.MethodPost, integrationPath(b.two, "authorize", "oauth"), `{}`, "text/plain", nil)
		require.Equal(t, http.StatusUnsupportedMediaType, r.code, r.body)
		r = b.do(t, http.MethodPost, integrationPath(b.two, "authorize", "oauth"), `{"by": "`+strings.Repeat("x", 101)+`"}`)
		require.Equal(t, http.StatusBadRequest, r.code, "a claim too long to record: %s", r.body)
		after, err := b.stack.Store.CountOAuthStates(b.ctx, b.two)
		require.NoError(t, err)
		require.Equal(t, n, after, "refused requests store no consent")

		// A sandbox integration connects with a key, not OAuth.
		sandbox := testenv.ID("crm")
		b.createCRM(t, sandbox, b.org)
		r = b.do(t, http.MethodPost, integrationPath(sandbox, "authorize", "oauth"), `{}`)
		require.Equal(t, http.StatusBadRequest, r.code, r.body)
		require.Contains(t, r.body, "--credentials-file")
	})
}

// TestOAuthCallbackTimeout: a callback whose authorize is not answered
// within the command timeout (here: no worker runs) is answered 504 with
// a page telling the customer it may still finish, instead of holding the
// browser for as long as it waits.
func TestOAuthCallbackTimeout(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupOAuth(t, db)
		query := b.consent(t, b.consentURL(t, b.one, b.admin))
		slow := *b
		slow.testBundle = b.withHandlerOptions(t, api.WithCommandTimeout(time.Second))
		b.stack.Service.Worker.Stop()

		code, page := slow.callback(t, query)
		require.Equal(t, http.StatusGatewayTimeout, code, page)
		require.Contains(t, page, "may still finish")
		require.Contains(t, page, "check again in a minute")
		slow.customerWorded(t, page)
		require.Contains(t, b.stack.Logs.String(), "OAuth callback not connected")
		require.Contains(t, b.stack.Logs.String(), "status=504")
	})
}
