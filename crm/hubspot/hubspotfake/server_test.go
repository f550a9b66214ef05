package hubspotfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// response is a decoded HTTP answer of the fake.
type response struct {
	status int
	header http.Header
	body   string
}

// hubspotErr decodes HubSpot's error body.
func (r response) hubspotErr(t *testing.T) hubspotError {
	t.Helper()
	var e hubspotError
	require.NoError(t, json.Unmarshal([]byte(r.body), &e), "error bodies are JSON: %s", r.body)
	require.Equal(t, "error", e.Status)
	require.NotEmpty(t, e.CorrelationID)
	return e
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(r.body), v), r.body)
}

// testBundle is a fake on a test clock, its URL and its control client.
type testBundle struct {
	server *Server
	url    string
	client *Client

	mu  sync.Mutex
	now time.Time
}

// advance moves the fake's clock.
func (b *testBundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = b.now.Add(d)
}

// setup starts a fake keeping its state in statePath ("" memory), on a
// clock that moves only when the test says.
func setup(t *testing.T, statePath string) *testBundle {
	t.Helper()
	server, err := NewServer(statePath)
	require.NoError(t, err)
	b := &testBundle{server: server, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	server.now = func() time.Time {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.now
	}
	server.sleep = func(time.Duration) {}
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	b.url, b.client = httpServer.URL, NewClient(httpServer.URL, httpServer.Client())
	return b
}

// do sends a request; header values "" are not set.
func (b *testBundle) do(t *testing.T, method, path, contentType, body, token string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func (b *testBundle) upsert(t *testing.T, token string, inputs ...upsertInput) response {
	t.Helper()
	data, err := json.Marshal(map[string]any{"inputs": inputs})
	require.NoError(t, err)
	return b.do(t, http.MethodPost, pathBatchUpsert, "application/json", string(data), token)
}

func (b *testBundle) token(t *testing.T, form url.Values) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/oauth/v1/token", "application/x-www-form-urlencoded", form.Encode(), "")
}

// keyProperty is the unique property the tests upsert by.
var keyProperty = Property{Name: "lead_key", Label: "Lead key", Type: "string", FieldType: "text", GroupName: "contactinformation", HasUniqueValue: true}

// privateAccount creates an account with a private-app token and the key
// property.
func (b *testBundle) privateAccount(t *testing.T, scopes []string) Account {
	t.Helper()
	a, err := b.client.CreateAccount(context.Background(), CreateAccountRequest{Scopes: scopes, Properties: []Property{keyProperty}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(a.PrivateAppToken, "pat-na1-"))
	return a
}

const callback = "http://127.0.0.1:9/cb?keep=1"

// oauthTokens creates an OAuth account and exchanges its code.
func (b *testBundle) oauthTokens(t *testing.T) (Account, tokenResponse) {
	t.Helper()
	a, err := b.client.CreateAccount(context.Background(), CreateAccountRequest{OAuth: true, RedirectURI: callback, Properties: []Property{keyProperty}})
	require.NoError(t, err)
	require.NotEmpty(t, a.Code)
	resp := b.token(t, url.Values{"grant_type": {"authorization_code"}, "client_id": {DevClientID}, "client_secret": {DevClientSecret},
		"redirect_uri": {callback}, "code": {a.Code}})
	require.Equal(t, http.StatusOK, resp.status, resp.body)
	var tok tokenResponse
	resp.decode(t, &tok)
	return a, tok
}

func input(key, email string) upsertInput {
	return upsertInput{ID: key, IDProperty: keyProperty.Name, ObjectWriteTraceID: "trace-" + key, Properties: map[string]string{"email": email, "firstname": "Ada"}}
}

func TestConsentAndTokens(t *testing.T) {
	t.Parallel()

	consentQuery := func(state string) string {
		return "/oauth/authorize?" + url.Values{"client_id": {DevClientID}, "redirect_uri": {callback},
			"scope": {"oauth crm.objects.contacts.write"}, "optional_scope": {"crm.schemas.contacts.write"}, "state": {state}}.Encode()
	}

	t.Run("ConsentPageAllowAndExchange", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		page := b.do(t, http.MethodGet, consentQuery("st&<1>"), "", "", "")
		require.Equal(t, http.StatusOK, page.status)
		require.Contains(t, page.body, `<button type="submit" name="decision" value="allow">Allow</button>`)
		require.Contains(t, page.body, "crm.schemas.contacts.write (optional)")
		require.NotContains(t, page.body, "st&<1>", "the state is escaped in the page")

		redirect, err := b.client.Consent(context.Background(), b.url+consentQuery("st&<1>"), 0)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:9", redirect.Host)
		require.Equal(t, "st&<1>", redirect.Query().Get("state"), "the state comes back unchanged")
		require.Equal(t, "1", redirect.Query().Get("keep"), "the redirect URI's own query is kept")
		code := redirect.Query().Get("code")
		require.NotEmpty(t, code)

		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {DevClientID}, "client_secret": {DevClientSecret},
			"redirect_uri": {callback}, "code": {code}}
		resp := b.token(t, form)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		var tok tokenResponse
		resp.decode(t, &tok)
		require.Equal(t, 1800, tok.ExpiresIn)
		require.Equal(t, "bearer", tok.TokenType)
		require.Positive(t, tok.HubID)
		require.ElementsMatch(t, []string{ScopeOAuth, ScopeContactsWrite, ScopeSchemasContactsWrite}, tok.Scopes, "every scope asked for, optional ones too")

		// A code works once.
		again := b.token(t, form)
		require.Equal(t, http.StatusBadRequest, again.status)
		var oe oauthError
		again.decode(t, &oe)
		require.Equal(t, "BAD_AUTH_CODE", oe.Status)
		require.NotContains(t, again.body, code)

		// The account is one that consent created, connected through OAuth.
		acct, err := b.client.Account(context.Background(), tok.HubID)
		require.NoError(t, err)
		require.True(t, acct.OAuth)
		require.Empty(t, acct.PrivateAppToken)
	})

	t.Run("ConsentRefusals", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		deny := b.do(t, http.MethodPost, "/oauth/authorize", "application/x-www-form-urlencoded",
			url.Values{"client_id": {DevClientID}, "redirect_uri": {callback}, "scope": {"oauth"}, "state": {"s1"}, "decision": {"deny"}}.Encode(), "")
		require.Equal(t, http.StatusFound, deny.status)
		loc, err := url.Parse(deny.header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "access_denied", loc.Query().Get("error"))
		require.Equal(t, "s1", loc.Query().Get("state"))
		require.Empty(t, loc.Query().Get("code"))

		for name, q := range map[string]url.Values{
			"unknown client":   {"client_id": {"other"}, "redirect_uri": {callback}, "scope": {"oauth"}},
			"no redirect":      {"client_id": {DevClientID}, "scope": {"oauth"}},
			"relative":         {"client_id": {DevClientID}, "redirect_uri": {"/cb"}, "scope": {"oauth"}},
			"no scope":         {"client_id": {DevClientID}, "redirect_uri": {callback}},
			"unknown scope":    {"client_id": {DevClientID}, "redirect_uri": {callback}, "scope": {"oauth tickets"}},
			"unknown optional": {"client_id": {DevClientID}, "redirect_uri": {callback}, "scope": {"oauth"}, "optional_scope": {"files"}},
		} {
			resp := b.do(t, http.MethodGet, "/oauth/authorize?"+q.Encode(), "", "", "")
			require.Equal(t, http.StatusBadRequest, resp.status, name)
		}
		b.server.mu.Lock()
		require.Empty(t, b.server.portals, "refused consents create no account")
		b.server.mu.Unlock()
	})

	t.Run("ReinstallRestoresARevokedGrant", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct, tok := b.oauthTokens(t)
		_, err := b.client.Revoke(context.Background(), acct.HubID)
		require.NoError(t, err)
		refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {DevClientID}, "client_secret": {DevClientSecret}, "refresh_token": {tok.RefreshToken}}
		resp := b.token(t, refresh)
		require.Equal(t, http.StatusBadRequest, resp.status)
		var oe oauthError
		resp.decode(t, &oe)
		require.Equal(t, "BAD_REFRESH_TOKEN", oe.Status)

		redirect, err := b.client.Consent(context.Background(), b.url+consentQuery("s2"), acct.HubID)
		require.NoError(t, err)
		require.NotEmpty(t, redirect.Query().Get("code"))
		got, err := b.client.Account(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.False(t, got.Revoked, "consenting again reinstalls the app")
		require.ElementsMatch(t, []string{ScopeOAuth, ScopeContactsWrite, ScopeSchemasContactsWrite}, got.Scopes)
	})

	t.Run("TokenErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct, err := b.client.CreateAccount(context.Background(), CreateAccountRequest{OAuth: true, RedirectURI: callback})
		require.NoError(t, err)
		base := url.Values{"grant_type": {"authorization_code"}, "client_id": {DevClientID}, "client_secret": {DevClientSecret},
			"redirect_uri": {callback}, "code": {acct.Code}}
		with := func(k, v string) url.Values {
			f := url.Values{}
			for key, vals := range base {
				f[key] = vals
			}
			f.Set(k, v)
			return f
		}
		for name, tc := range map[string]struct {
			form url.Values
			code string
		}{
			"client id":     {with("client_id", "nope"), "BAD_CLIENT_ID"},
			"client secret": {with("client_secret", "nope"), "BAD_CLIENT_SECRET"},
			"redirect":      {with("redirect_uri", "http://127.0.0.1:9/other"), "BAD_REDIRECT_URI"},
			"code":          {with("code", "forged"), "BAD_AUTH_CODE"},
			"grant type":    {with("grant_type", "password"), "BAD_GRANT_TYPE"},
			"refresh token": {url.Values{"grant_type": {"refresh_token"}, "client_id": {DevClientID}, "client_secret": {DevClientSecret}, "refresh_token": {"nope"}}, "BAD_REFRESH_TOKEN"},
		} {
			resp := b.token(t, tc.form)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			var oe oauthError
			resp.decode(t, &oe)
			require.Equal(t, tc.code, oe.Status, name)
		}
		// None of those used the code up.
		require.Equal(t, http.StatusOK, b.token(t, base).status)
	})

	t.Run("ExpiryAndRefresh", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct, tok := b.oauthTokens(t)
		require.Equal(t, http.StatusOK, b.upsert(t, tok.AccessToken, input("k1", "a@example.org")).status)

		info := b.do(t, http.MethodGet, "/oauth/v1/access-tokens/"+tok.AccessToken, "", "", "")
		require.Equal(t, http.StatusOK, info.status)
		var ti accessTokenInfo
		info.decode(t, &ti)
		require.Equal(t, acct.HubID, ti.HubID)
		require.Equal(t, int64(1800), ti.ExpiresIn)
		require.Contains(t, ti.Scopes, ScopeContactsWrite)

		b.advance(AccessTokenLifetime + 5*time.Second)
		expired := b.upsert(t, tok.AccessToken, input("k1", "a@example.org"))
		require.Equal(t, http.StatusUnauthorized, expired.status)
		e := expired.hubspotErr(t)
		require.Equal(t, "EXPIRED_AUTHENTICATION", e.Category)
		require.Equal(t, "The OAuth token used to make this call expired 5 second(s) ago.", e.Message)
		require.Equal(t, "401 Unauthorized", expired.header.Get("X-HubSpot-Auth-Failure"))
		require.Equal(t, http.StatusUnauthorized, b.do(t, http.MethodGet, "/oauth/v1/access-tokens/"+tok.AccessToken, "", "", "").status)

		resp := b.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {DevClientID}, "client_secret": {DevClientSecret}, "refresh_token": {tok.RefreshToken}})
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		var fresh tokenResponse
		resp.decode(t, &fresh)
		require.NotEqual(t, tok.AccessToken, fresh.AccessToken)
		require.Equal(t, tok.RefreshToken, fresh.RefreshToken, "HubSpot keeps the refresh token")
		require.Equal(t, http.StatusOK, b.upsert(t, fresh.AccessToken, input("k1", "a@example.org")).status)

		// expire-tokens ends the fresh token now; the grant stays.
		require.NoError(t, b.client.ExpireTokens(context.Background(), acct.HubID))
		require.Equal(t, http.StatusUnauthorized, b.upsert(t, fresh.AccessToken, input("k1", "a@example.org")).status)
	})

	t.Run("PrivateTokenInfo", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		resp := b.do(t, http.MethodPost, "/oauth/v2/private-apps/get/access-token-info", "application/json", `{"tokenKey":"`+acct.PrivateAppToken+`"}`, "")
		require.Equal(t, http.StatusOK, resp.status)
		var info privateTokenInfo
		resp.decode(t, &info)
		require.Equal(t, acct.HubID, info.HubID)
		require.ElementsMatch(t, DefaultScopes(), info.Scopes)

		unknown := b.do(t, http.MethodPost, "/oauth/v2/private-apps/get/access-token-info", "application/json", `{"tokenKey":"pat-na1-unknown"}`, "")
		require.Equal(t, http.StatusUnauthorized, unknown.status)
		require.NotContains(t, unknown.body, "pat-na1-unknown")

		yes := true
		_, err := b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{IntrospectionUnavailable: &yes})
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodPost, "/oauth/v2/private-apps/get/access-token-info", "application/json", `{"tokenKey":"`+acct.PrivateAppToken+`"}`, "").status)
	})
}

func TestCRMAPI(t *testing.T) {
	t.Parallel()

	t.Run("Authentication", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		for name, token := range map[string]string{"missing": "", "unknown": "pat-na1-nope"} {
			resp := b.upsert(t, token, input("k", "a@example.org"))
			require.Equal(t, http.StatusUnauthorized, resp.status, name)
			require.Equal(t, "INVALID_AUTHENTICATION", resp.hubspotErr(t).Category, name)
			require.Equal(t, "401 Unauthorized", resp.header.Get("X-HubSpot-Auth-Failure"))
		}
		_, err := b.client.Revoke(context.Background(), acct.HubID)
		require.NoError(t, err)
		resp := b.upsert(t, acct.PrivateAppToken, input("k", "a@example.org"))
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Equal(t, "INVALID_AUTHENTICATION", resp.hubspotErr(t).Category)
		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Zero(t, st.Records, "a refused call stores nothing")

		_, err = b.client.Restore(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, b.upsert(t, acct.PrivateAppToken, input("k", "a@example.org")).status)
	})

	t.Run("MissingScopes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, []string{ScopeContactsRead})
		resp := b.upsert(t, acct.PrivateAppToken, input("k", "a@example.org"))
		require.Equal(t, http.StatusForbidden, resp.status)
		e := resp.hubspotErr(t)
		require.Equal(t, "MISSING_SCOPES", e.Category)
		require.Equal(t, []string{ScopeContactsWrite}, e.Errors[0].Context["requiredScopes"])

		create := b.do(t, http.MethodPost, pathContactProperties, "application/json",
			`{"name":"x_y","label":"X","type":"string","fieldType":"text","groupName":"contactinformation"}`, acct.PrivateAppToken)
		require.Equal(t, http.StatusForbidden, create.status)
		require.Equal(t, []string{ScopeSchemasContactsWrite}, create.hubspotErr(t).Errors[0].Context["requiredScopes"])
		// Reading a property needs one of the scopes HubSpot's
		// specification lists for it: a contact scope, or reading schemas.
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, pathContactProperties+"/email", "", "", acct.PrivateAppToken).status)
		for _, scope := range []string{ScopeContactsWrite, ScopeSchemasContactsRead} {
			one := b.privateAccount(t, []string{scope})
			require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, pathContactProperties+"/email", "", "", one.PrivateAppToken).status, scope)
		}
		none := b.privateAccount(t, []string{})
		require.Equal(t, http.StatusForbidden, b.do(t, http.MethodGet, pathContactProperties+"/email", "", "", none.PrivateAppToken).status)
		schemaWriter := b.privateAccount(t, []string{ScopeSchemasContactsWrite})
		read := b.do(t, http.MethodGet, pathContactProperties+"/email", "", "", schemaWriter.PrivateAppToken)
		require.Equal(t, http.StatusForbidden, read.status, "writing schemas is not among the scopes that read them")
		require.Equal(t, "MISSING_SCOPES", read.hubspotErr(t).Category)
	})

	t.Run("RateLimits", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		calls, window := 2, 1000
		_, err := b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{LimitCalls: &calls, LimitWindowMS: &window})
		require.NoError(t, err)

		first := b.upsert(t, acct.PrivateAppToken, input("k1", "a@example.org"))
		require.Equal(t, http.StatusOK, first.status)
		require.Equal(t, "2", first.header.Get("X-HubSpot-RateLimit-Max"))
		require.Equal(t, "1", first.header.Get("X-HubSpot-RateLimit-Remaining"))
		require.Equal(t, "1000", first.header.Get("X-HubSpot-RateLimit-Interval-Milliseconds"))
		require.Equal(t, "250000", first.header.Get("X-HubSpot-RateLimit-Daily"))
		require.Equal(t, "249999", first.header.Get("X-HubSpot-RateLimit-Daily-Remaining"))
		b.advance(400 * time.Millisecond)
		require.Equal(t, "0", b.upsert(t, acct.PrivateAppToken, input("k2", "b@example.org")).header.Get("X-HubSpot-RateLimit-Remaining"))

		over := b.upsert(t, acct.PrivateAppToken, input("k3", "c@example.org"))
		require.Equal(t, http.StatusTooManyRequests, over.status)
		e := over.hubspotErr(t)
		require.Equal(t, "RATE_LIMIT", e.ErrorType)
		require.Equal(t, "TEN_SECONDLY_ROLLING", e.PolicyName)
		require.Empty(t, over.header.Get("Retry-After"), "HubSpot documents no Retry-After")
		require.Equal(t, "0", over.header.Get("X-HubSpot-RateLimit-Remaining"))

		// The window rolls: the first call leaves it after one window.
		b.advance(600 * time.Millisecond)
		require.Equal(t, http.StatusOK, b.upsert(t, acct.PrivateAppToken, input("k3", "c@example.org")).status)

		// rate_limit_next answers upserts only, here with a Retry-After.
		one, secs := 1, 3
		_, err = b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &secs})
		require.NoError(t, err)
		b.advance(2 * time.Second)
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, pathContactProperties+"/email", "", "", acct.PrivateAppToken).status)
		limited := b.upsert(t, acct.PrivateAppToken, input("k4", "d@example.org"))
		require.Equal(t, http.StatusTooManyRequests, limited.status)
		require.Equal(t, "3", limited.header.Get("Retry-After"))
		require.Equal(t, http.StatusOK, b.upsert(t, acct.PrivateAppToken, input("k4", "d@example.org")).status)

		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"k1": 1, "k2": 1, "k3": 1, "k4": 1}, st.ByKey, "limited calls stored nothing")

		// OAuth answers carry no daily headers.
		_, tok := b.oauthTokens(t)
		resp := b.upsert(t, tok.AccessToken, input("k1", "a@example.org"))
		require.Equal(t, "100", resp.header.Get("X-HubSpot-RateLimit-Max"))
		require.Empty(t, resp.header.Get("X-HubSpot-RateLimit-Daily"))
	})

	t.Run("FailNextAnyEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct, tok := b.oauthTokens(t)
		n, status := 3, http.StatusBadGateway
		_, err := b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{FailNext: &n, FailStatus: &status})
		require.NoError(t, err)
		require.Equal(t, status, b.do(t, http.MethodGet, "/oauth/v1/access-tokens/"+tok.AccessToken, "", "", "").status)
		require.Equal(t, status, b.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {DevClientID},
			"client_secret": {DevClientSecret}, "refresh_token": {tok.RefreshToken}}).status)
		require.Equal(t, status, b.upsert(t, tok.AccessToken, input("k", "a@example.org")).status)
		require.Equal(t, http.StatusOK, b.upsert(t, tok.AccessToken, input("k", "a@example.org")).status, "three calls long")
	})

	t.Run("Properties", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		token := acct.PrivateAppToken
		missing := b.do(t, http.MethodGet, pathContactProperties+"/my_key", "", "", token)
		require.Equal(t, http.StatusNotFound, missing.status)
		require.Equal(t, "OBJECT_NOT_FOUND", missing.hubspotErr(t).Category)

		body := `{"name":"my_key","label":"My key","type":"string","fieldType":"text","groupName":"contactinformation","hasUniqueValue":true}`
		created := b.do(t, http.MethodPost, pathContactProperties, "application/json", body, token)
		require.Equal(t, http.StatusCreated, created.status, created.body)
		var p Property
		created.decode(t, &p)
		require.True(t, p.HasUniqueValue)
		require.Equal(t, http.StatusConflict, b.do(t, http.MethodPost, pathContactProperties, "application/json", body, token).status)
		require.Equal(t, http.StatusConflict, b.do(t, http.MethodPost, pathContactProperties, "application/json",
			strings.Replace(body, "my_key", "email", 1), token).status, "HubSpot's own properties exist too")

		got := b.do(t, http.MethodGet, pathContactProperties+"/my_key", "", "", token)
		require.Equal(t, http.StatusOK, got.status)
		got.decode(t, &p)
		require.Equal(t, "my_key", p.Name)

		for name, bad := range map[string]string{
			"name":  strings.Replace(body, "my_key", "My Key", 1),
			"type":  strings.Replace(body, `"string"`, `"blob"`, 1),
			"json":  `{"name":`,
			"label": strings.Replace(body, `"My key"`, `""`, 1),
		} {
			require.Equal(t, http.StatusBadRequest, b.do(t, http.MethodPost, pathContactProperties, "application/json", bad, token).status, name)
		}
	})
}

func TestBatchUpsert(t *testing.T) {
	t.Parallel()

	t.Run("UpsertByKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		token := acct.PrivateAppToken

		resp := b.upsert(t, token, input("k1", "a@example.org"), input("k2", "b@example.org"), input("k3", "c@example.org"))
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		var ans batchResponse
		resp.decode(t, &ans)
		require.Equal(t, "COMPLETE", ans.Status)
		require.Len(t, ans.Results, 3)
		require.Equal(t, []string{"trace-k3", "trace-k2", "trace-k1"},
			[]string{ans.Results[0].ObjectWriteTraceID, ans.Results[1].ObjectWriteTraceID, ans.Results[2].ObjectWriteTraceID},
			"results do not come in request order")
		ids := map[string]string{}
		for _, r := range ans.Results {
			require.True(t, r.New)
			require.Equal(t, r.ID, r.Properties["hs_object_id"])
			ids[r.Properties[keyProperty.Name]] = r.ID
		}

		again := b.upsert(t, token, upsertInput{ID: "k1", IDProperty: keyProperty.Name, Properties: map[string]string{"phone": "+1 555"}})
		require.Equal(t, http.StatusOK, again.status)
		ans = batchResponse{}
		again.decode(t, &ans)
		require.False(t, ans.Results[0].New)
		require.Equal(t, ids["k1"], ans.Results[0].ID, "the same contact, updated")
		require.Empty(t, ans.Results[0].ObjectWriteTraceID, "no trace ID was sent")

		c, err := b.client.Contact(context.Background(), acct.HubID, "k1")
		require.NoError(t, err)
		require.Equal(t, map[string]string{"email": "a@example.org", "firstname": "Ada", "phone": "+1 555", keyProperty.Name: "k1"}, c.Properties)
		require.Equal(t, 2, c.Upserts)
		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, RecordStats{Records: 3, Upserts: 4, ByKey: map[string]int{"k1": 2, "k2": 1, "k3": 1}}, st)

		empty := b.upsert(t, token)
		require.Equal(t, http.StatusOK, empty.status)
		ans = batchResponse{}
		empty.decode(t, &ans)
		require.Empty(t, ans.Results)

		calls, err := b.client.Calls(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Len(t, calls, 3)
		require.Equal(t, Call{At: calls[0].At, Method: http.MethodPost, Path: pathBatchUpsert, Status: http.StatusOK, Inputs: 3}, calls[0])
	})

	t.Run("WholeBatchRefusals", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		_, err := b.client.CreateProperty(context.Background(), acct.HubID, Property{Name: "plain", Label: "Plain", Type: "string", FieldType: "text", GroupName: "contactinformation"})
		require.NoError(t, err)
		token := acct.PrivateAppToken
		good := input("k1", "a@example.org")

		many := make([]upsertInput, MaxBatchInputs+1)
		for i := range many {
			many[i] = input(fmt.Sprintf("k%d", i), fmt.Sprintf("a%d@example.org", i))
		}
		withProp := input("k2", "b@example.org")
		withProp.Properties["nope"] = "x"
		for name, tc := range map[string]struct {
			inputs []upsertInput
			want   string
		}{
			"invalid email":    {[]upsertInput{good, input("k2", "zelda.example.org")}, `"error":"INVALID_EMAIL"`},
			"unknown property": {[]upsertInput{good, withProp}, `"error":"PROPERTY_DOESNT_EXIST"`},
			"non-unique key":   {[]upsertInput{{ID: "k", IDProperty: "plain", Properties: map[string]string{}}}, "non-unique 0-1 property plain"},
			"unknown key prop": {[]upsertInput{{ID: "k", IDProperty: "gone", Properties: map[string]string{}}}, `"name":"gone"`},
			"duplicate ids":    {[]upsertInput{good, good}, "Duplicate IDs"},
			"too many":         {many, "Batch input limit exceeded"},
		} {
			resp := b.upsert(t, token, tc.inputs...)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			e := resp.hubspotErr(t)
			require.Equal(t, "VALIDATION_ERROR", e.Category, name)
			require.Contains(t, e.Message, tc.want, name)
		}
		// Like HubSpot, the message quotes the value.
		require.Contains(t, b.upsert(t, token, input("k2", "zelda.example.org")).body, "zelda.example.org")

		contains, prop := "blocked", "email"
		_, err = b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{RefuseProperty: &prop, RefuseContains: &contains})
		require.NoError(t, err)
		refused := b.upsert(t, token, good, input("k2", "blocked@example.org"))
		require.Equal(t, http.StatusBadRequest, refused.status)
		require.Contains(t, refused.hubspotErr(t).Message, "INVALID_EMAIL")

		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Zero(t, st.Records, "a refused batch stores nothing")
	})

	t.Run("PerRecordErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		token := acct.PrivateAppToken
		prop, contains := "email", "reject-me"
		_, err := b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{RejectProperty: &prop, RejectContains: &contains})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, b.upsert(t, token, input("owner", "taken@example.org")).status)

		resp := b.upsert(t, token, input("k1", "a@example.org"), input("k2", "x.reject-me@example.org"), input("k3", "taken@example.org"))
		require.Equal(t, http.StatusMultiStatus, resp.status, resp.body)
		var ans batchResponse
		resp.decode(t, &ans)
		require.Equal(t, 2, ans.NumErrors)
		require.Len(t, ans.Results, 1)
		require.Equal(t, "trace-k1", ans.Results[0].ObjectWriteTraceID)
		require.Equal(t, "VALIDATION_ERROR", ans.Errors[0].Category)
		require.Equal(t, []string{"trace-k2"}, ans.Errors[0].Context["objectWriteTraceId"])
		require.Equal(t, "INVALID_EMAIL", ans.Errors[0].Errors[0].Code)
		require.Equal(t, "CONFLICT", ans.Errors[1].Category, "an email another contact holds")
		require.Equal(t, []string{"trace-k3"}, ans.Errors[1].Context["objectWriteTraceId"])

		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"owner": 1, "k1": 1}, st.ByKey)

		// The faults that hide what became of records.
		yes := true
		_, err = b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{OmitTraceIDs: &yes})
		require.NoError(t, err)
		resp = b.upsert(t, token, input("k4", "d@example.org"), input("k5", "x.reject-me@example.org"))
		ans = batchResponse{}
		resp.decode(t, &ans)
		require.Empty(t, ans.Results[0].ObjectWriteTraceID)
		require.Empty(t, ans.Errors[0].Context)
		_, err = b.client.UpdateFaults(context.Background(), acct.HubID, FaultsUpdate{DropResults: &yes})
		require.NoError(t, err)
		resp = b.upsert(t, token, input("k6", "f@example.org"))
		require.Equal(t, http.StatusOK, resp.status)
		ans = batchResponse{}
		resp.decode(t, &ans)
		require.Empty(t, ans.Results)
		st, err = b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Contains(t, st.ByKey, "k6", "dropped results still stored the record")
	})

	t.Run("UpsertByEmail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		token := acct.PrivateAppToken
		require.Equal(t, http.StatusOK, b.upsert(t, token, input("k1", "ada@example.org")).status)
		c1, err := b.client.Contact(context.Background(), acct.HubID, "k1")
		require.NoError(t, err)

		// A new key with that email (in another case) would be a second
		// contact for it: refused alone, as HubSpot refuses a duplicate.
		resp := b.upsert(t, token, input("k2", "Ada@Example.org"), input("k3", "c@example.org"))
		require.Equal(t, http.StatusMultiStatus, resp.status, resp.body)
		var ans batchResponse
		resp.decode(t, &ans)
		require.Len(t, ans.Results, 1)
		require.Equal(t, "trace-k3", ans.Results[0].ObjectWriteTraceID)
		require.Len(t, ans.Errors, 1)
		conflict := ans.Errors[0]
		require.Equal(t, "CONFLICT", conflict.Category)
		require.Equal(t, "Contact already exists. Existing ID: "+c1.ID, conflict.Message)
		require.Equal(t, []string{"trace-k2"}, conflict.Context["objectWriteTraceId"])
		require.Len(t, conflict.Errors, 1)
		require.Equal(t, "email", conflict.Errors[0].In)
		require.Contains(t, conflict.Errors[0].Message, "Existing ID: "+c1.ID)

		// Upserted by email, the existing contact takes the new key.
		byEmail := upsertInput{ID: "ADA@example.org", IDProperty: "email", ObjectWriteTraceID: "trace-k2",
			Properties: map[string]string{"email": "ada@example.org", keyProperty.Name: "k2", "phone": "+1 555"}}
		resp = b.upsert(t, token, byEmail)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		ans = batchResponse{}
		resp.decode(t, &ans)
		require.Len(t, ans.Results, 1)
		got := ans.Results[0]
		require.Equal(t, c1.ID, got.ID, "the contact that has the email")
		require.False(t, got.New)
		require.Equal(t, "trace-k2", got.ObjectWriteTraceID)
		require.Equal(t, "k2", got.Properties[keyProperty.Name])
		require.Equal(t, "Ada", got.Properties["firstname"], "what the input leaves out stays")
		c, err := b.client.Contact(context.Background(), acct.HubID, "k2")
		require.NoError(t, err)
		require.Equal(t, c1.ID, c.ID, "found by the key it holds now")
		require.Equal(t, "k1", c.Key, "the key it was created by")
		require.Equal(t, 2, c.Upserts)

		// The old key is free: upserted by it, the email is still taken,
		// and by email the contact takes it back.
		resp = b.upsert(t, token, input("k1", "ada@example.org"))
		require.Equal(t, http.StatusMultiStatus, resp.status, resp.body)
		ans = batchResponse{}
		resp.decode(t, &ans)
		require.Equal(t, "Contact already exists. Existing ID: "+c1.ID, ans.Errors[0].Message)
		byEmail.ObjectWriteTraceID, byEmail.Properties[keyProperty.Name] = "trace-k1", "k1"
		require.Equal(t, http.StatusOK, b.upsert(t, token, byEmail).status)
		c, err = b.client.Contact(context.Background(), acct.HubID, "k1")
		require.NoError(t, err)
		require.Equal(t, c1.ID, c.ID)
		require.Equal(t, "k1", c.Properties[keyProperty.Name])

		// An email nobody has is a new contact.
		resp = b.upsert(t, token, upsertInput{ID: "new@example.org", IDProperty: "email", Properties: map[string]string{"firstname": "Nia"}})
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		ans = batchResponse{}
		resp.decode(t, &ans)
		require.True(t, ans.Results[0].New)
		require.Equal(t, "new@example.org", ans.Results[0].Properties["email"])
		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, 3, st.Records)

		// Whole-batch refusals of email IDs, which store nothing.
		for name, tc := range map[string]struct {
			inputs []upsertInput
			want   string
		}{
			"an email twice": {[]upsertInput{{ID: "x@example.org", IDProperty: "email", Properties: map[string]string{}},
				{ID: "X@example.org", IDProperty: "email", Properties: map[string]string{}}}, "Duplicate IDs"},
			"not an email": {[]upsertInput{{ID: "x.example.org", IDProperty: "email", Properties: map[string]string{}}}, `"error":"INVALID_EMAIL"`},
		} {
			resp := b.upsert(t, token, tc.inputs...)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			require.Contains(t, resp.hubspotErr(t).Message, tc.want, name)
		}
		st, err = b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, 3, st.Records, "refused batches store nothing")
	})

	t.Run("UniqueValues", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		token := acct.PrivateAppToken
		require.Equal(t, http.StatusOK, b.upsert(t, token, input("k1", "a@example.org"), input("k2", "b@example.org")).status)
		c1, err := b.client.Contact(context.Background(), acct.HubID, "k1")
		require.NoError(t, err)
		c2, err := b.client.Contact(context.Background(), acct.HubID, "k2")
		require.NoError(t, err)

		// k2's contact may not take the email k1's contact has.
		resp := b.upsert(t, token, input("k2", "a@example.org"))
		require.Equal(t, http.StatusMultiStatus, resp.status, resp.body)
		var ans batchResponse
		resp.decode(t, &ans)
		require.Equal(t, "Contact already exists. Existing ID: "+c1.ID, ans.Errors[0].Message)

		// Nor may k1's contact, upserted by email, take the key k2's has.
		resp = b.upsert(t, token, upsertInput{ID: "a@example.org", IDProperty: "email", ObjectWriteTraceID: "trace-k2",
			Properties: map[string]string{"email": "a@example.org", keyProperty.Name: "k2"}})
		require.Equal(t, http.StatusMultiStatus, resp.status, resp.body)
		ans = batchResponse{}
		resp.decode(t, &ans)
		require.Empty(t, ans.Results)
		require.Len(t, ans.Errors, 1)
		require.Equal(t, "CONFLICT", ans.Errors[0].Category)
		require.Contains(t, ans.Errors[0].Message, "Existing ID: "+c2.ID)
		require.Equal(t, keyProperty.Name, ans.Errors[0].Errors[0].In)
		require.Equal(t, []string{"trace-k2"}, ans.Errors[0].Context["objectWriteTraceId"])

		// Neither refusal changed anything.
		for key, want := range map[string]Contact{"k1": c1, "k2": c2} {
			got, err := b.client.Contact(context.Background(), acct.HubID, key)
			require.NoError(t, err)
			require.Equal(t, want, got, key)
		}
		st, err := b.client.Records(context.Background(), acct.HubID)
		require.NoError(t, err)
		require.Equal(t, RecordStats{Records: 2, Upserts: 2, ByKey: map[string]int{"k1": 1, "k2": 1}}, st)
	})
}

func TestControl(t *testing.T) {
	t.Parallel()

	t.Run("FaultsAndRefusals", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		acct := b.privateAccount(t, nil)
		ctx := context.Background()
		intp := func(v int) *int { return &v }
		strp := func(v string) *string { return &v }
		for name, u := range map[string]FaultsUpdate{
			"fail status":    {FailStatus: intp(200)},
			"negative":       {FailNext: intp(-1)},
			"half a limit":   {LimitCalls: intp(3)},
			"rule, no text":  {RejectProperty: strp("email")},
			"text, no rule":  {RefuseContains: strp("x")},
			"bad property":   {RejectProperty: strp("E Mail"), RejectContains: strp("x")},
			"retry too long": {RetryAfterSeconds: intp(maxRetryAfterSeconds + 1)},
		} {
			_, err := b.client.UpdateFaults(ctx, acct.HubID, u)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr, name)
			require.Equal(t, http.StatusBadRequest, apiErr.StatusCode, name)
			f, err := b.client.Faults(ctx, acct.HubID)
			require.NoError(t, err)
			require.Equal(t, DefaultFaults(), f, "%s: a refused change changes nothing", name)
		}
		f, err := b.client.UpdateFaults(ctx, acct.HubID, FaultsUpdate{FailNext: intp(2), RejectProperty: strp("email"), RejectContains: strp("x")})
		require.NoError(t, err)
		require.Equal(t, 2, f.FailNext)
		require.Equal(t, http.StatusServiceUnavailable, f.FailStatus)
		f, err = b.client.UpdateFaults(ctx, acct.HubID, FaultsUpdate{RejectProperty: strp("")})
		require.NoError(t, err)
		require.Empty(t, f.RejectContains, "removing the rule removes its text")
		require.NoError(t, b.client.ClearFaults(ctx, acct.HubID))

		_, err = b.client.DropScope(ctx, acct.HubID, ScopeOAuth)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusConflict, apiErr.StatusCode, "dropping a scope the app lacks is refused")
		got, err := b.client.DropScope(ctx, acct.HubID, ScopeContactsWrite)
		require.NoError(t, err)
		require.NotContains(t, got.Scopes, ScopeContactsWrite)
		got, err = b.client.AddScope(ctx, acct.HubID, ScopeContactsWrite)
		require.NoError(t, err)
		require.Contains(t, got.Scopes, ScopeContactsWrite)

		require.ErrorAs(t, b.client.DeleteProperty(ctx, acct.HubID, "email"), &apiErr)
		require.Equal(t, http.StatusConflict, apiErr.StatusCode)
		require.ErrorAs(t, b.client.DeleteProperty(ctx, acct.HubID, "nope"), &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.NoError(t, b.client.DeleteProperty(ctx, acct.HubID, keyProperty.Name))

		_, err = b.client.Account(ctx, 999)
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "unknown_account", apiErr.Code)
		_, err = b.client.CreateAccount(ctx, CreateAccountRequest{OAuth: true})
		require.ErrorAs(t, err, &apiErr, "an OAuth account needs the redirect URI its code is bound to")
		require.NotContains(t, err.Error(), acct.PrivateAppToken)
	})

	t.Run("StatePersists", func(t *testing.T) {
		t.Parallel()
		statePath := filepath.Join(t.TempDir(), "hubspot", "state.json")
		b := setup(t, statePath)
		private := b.privateAccount(t, nil)
		oauth, tok := b.oauthTokens(t)
		_, err := b.client.DropScope(context.Background(), private.HubID, ScopeContactsRead)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, b.upsert(t, private.PrivateAppToken, input("k1", "a@example.org")).status)

		info, err := os.Stat(statePath)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the state file holds tokens")

		again := setup(t, statePath)
		require.Equal(t, http.StatusOK, again.upsert(t, private.PrivateAppToken, input("k1", "a@example.org")).status, "the private token survives")
		require.Equal(t, http.StatusOK, again.upsert(t, tok.AccessToken, input("k1", "a@example.org")).status, "the access token survives")
		require.Equal(t, http.StatusOK, again.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {DevClientID},
			"client_secret": {DevClientSecret}, "refresh_token": {tok.RefreshToken}}).status, "the refresh token survives")
		got, err := again.client.Account(context.Background(), private.HubID)
		require.NoError(t, err)
		require.NotContains(t, got.Scopes, ScopeContactsRead)
		st, err := again.client.Records(context.Background(), private.HubID)
		require.NoError(t, err)
		require.Equal(t, 1, st.Records, "contacts live in memory: only the second server's upsert")
		fresh, err := again.client.CreateAccount(context.Background(), CreateAccountRequest{})
		require.NoError(t, err)
		require.Greater(t, fresh.HubID, oauth.HubID, "hub IDs are never reused")

		require.NoError(t, os.WriteFile(statePath, []byte("{"), 0o600))
		_, err = NewServer(statePath)
		require.ErrorContains(t, err, "is corrupt")
	})
}
