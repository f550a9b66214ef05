package salesforcefake

import (
	"bytes"
	"encoding/json"
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

// fakeClock is the server's clock in these tests: it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testBundle struct {
	server *Server
	url    string
	client *Client
	// http makes plain calls and never follows redirects.
	http  *http.Client
	clock *fakeClock
}

// setup starts a fake on a fake clock (statePath "" keeps it in memory).
func setup(t *testing.T, statePath string) *testBundle {
	t.Helper()
	t.Parallel()
	return start(t, statePath)
}

// start is setup without t.Parallel, for a second server on the same state.
func start(t *testing.T, statePath string) *testBundle {
	t.Helper()
	server, err := NewServer(statePath)
	require.NoError(t, err)
	clock := &fakeClock{t: time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)}
	server.now = clock.Now
	server.sleep = func(time.Duration) {}
	hs := httptest.NewServer(server.Handler())
	t.Cleanup(hs.Close)
	plain := hs.Client()
	plain.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &testBundle{server: server, url: hs.URL, client: NewClient(hs.URL, hs.Client()), http: plain, clock: clock}
}

func (b *testBundle) org(t *testing.T, u OrgUpdate) Org {
	t.Helper()
	o, err := b.client.CreateOrg(t.Context(), u)
	require.NoError(t, err)
	return o
}

func (b *testBundle) tokens(t *testing.T, orgID string) TokenResponse {
	t.Helper()
	tok, err := b.client.IssueTokens(t.Context(), orgID)
	require.NoError(t, err)
	return tok
}

// reply is an answer read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

// apiErrorCode is the first errorCode of a REST error array.
func (r reply) apiErrorCode(t *testing.T) string {
	t.Helper()
	var errs []apiError
	r.json(t, &errs)
	require.NotEmpty(t, errs)
	return errs[0].ErrorCode
}

func (b *testBundle) do(t *testing.T, method, rawURL, token string, body []byte, contentType string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}

// api calls the org's REST API at its instance (tok.InstanceURL).
func (b *testBundle) api(t *testing.T, tok TokenResponse, method, resource string, body any) reply {
	t.Helper()
	var data []byte
	if body != nil {
		var err error
		data, err = json.Marshal(body)
		require.NoError(t, err)
	}
	return b.do(t, method, tok.InstanceURL+"/services/data/v67.0"+resource, tok.AccessToken, data, "application/json")
}

func (b *testBundle) form(t *testing.T, path string, values url.Values) reply {
	t.Helper()
	return b.do(t, http.MethodPost, b.url+path, "", []byte(values.Encode()), "application/x-www-form-urlencoded")
}

// lead is an upsert record with the lead key and the required fields.
func lead(key string, fields ...string) map[string]any {
	rec := map[string]any{"attributes": map[string]string{"type": "Lead"}, DefaultLeadKeyField: key, "LastName": "Lovelace", "Company": "Analytical Engines"}
	for i := 0; i+1 < len(fields); i += 2 {
		rec[fields[i]] = fields[i+1]
	}
	return rec
}

func upsertPath() string { return "/composite/sobjects/Lead/" + DefaultLeadKeyField }

func (b *testBundle) upsert(t *testing.T, tok TokenResponse, records ...map[string]any) []upsertResult {
	t.Helper()
	r := b.api(t, tok, http.MethodPatch, upsertPath(), map[string]any{"allOrNone": false, "records": records})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var results []upsertResult
	r.json(t, &results)
	require.Len(t, results, len(records))
	return results
}

func TestConsentAndCodeExchange(t *testing.T) {
	t.Parallel()

	authorize := func(b *testBundle, prefix string, q url.Values) string {
		return b.url + prefix + "/services/oauth2/authorize?" + q.Encode()
	}
	query := func() url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"http://127.0.0.1:9/cb?keep=1"}, "state": {"s-1"}, "scope": {"api refresh_token"}}
	}
	exchange := func(t *testing.T, b *testBundle, prefix, code, redirect string) reply {
		t.Helper()
		return b.form(t, prefix+"/services/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"client_id": {"app"}, "client_secret": {"secret"}, "redirect_uri": {redirect}})
	}

	t.Run("PageAllowAndExchangeOnce", func(t *testing.T) {
		b := setup(t, "")
		page := b.do(t, http.MethodGet, authorize(b, "", query()), "", nil, "")
		require.Equal(t, http.StatusOK, page.status)
		require.Contains(t, page.header.Get("Content-Type"), "text/html")
		require.Contains(t, string(page.body), `<form method="post">`)
		require.Contains(t, string(page.body), `value="allow">Allow</button>`)

		redirect, err := b.client.Consent(t.Context(), authorize(b, "", query()), "")
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:9", redirect.Host)
		require.Equal(t, "/cb", redirect.Path)
		require.Equal(t, "1", redirect.Query().Get("keep"), "the callback's own query is kept")
		require.Equal(t, "s-1", redirect.Query().Get("state"))
		code := redirect.Query().Get("code")
		require.True(t, strings.HasSuffix(code, "=="), "a code like Salesforce's, which needs URL encoding")

		r := exchange(t, b, "", code, "http://127.0.0.1:9/cb?keep=1")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var raw map[string]any
		r.json(t, &raw)
		require.NotContains(t, raw, "expires_in", "Salesforce's tokens carry no expiry")
		var tok TokenResponse
		r.json(t, &tok)
		require.NotEmpty(t, tok.AccessToken)
		require.NotEmpty(t, tok.RefreshToken)
		require.Equal(t, "Bearer", tok.TokenType)
		require.Equal(t, "api refresh_token", tok.Scope)
		require.Regexp(t, `^`+b.url+`/instance/na\d+$`, tok.InstanceURL)
		require.Regexp(t, `^`+b.url+`/id/00D\w{15}/005\w{15}$`, tok.ID)
		require.Equal(t, "1777863721000", tok.IssuedAt, "milliseconds of the fake's clock")
		require.NotEmpty(t, tok.Signature)

		again := exchange(t, b, "", code, "http://127.0.0.1:9/cb?keep=1")
		require.Equal(t, http.StatusBadRequest, again.status)
		require.JSONEq(t, `{"error":"invalid_grant","error_description":"invalid authorization code"}`, string(again.body), "a code works once")
	})

	t.Run("Refusals", func(t *testing.T) {
		b := setup(t, "")
		consent := func(q url.Values) url.Values {
			redirect, err := b.client.Consent(t.Context(), authorize(b, "", q), "")
			require.NoError(t, err)
			return redirect.Query()
		}
		code := consent(query()).Get("code")
		r := exchange(t, b, "", code, "http://127.0.0.1:9/other")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, string(r.body), "redirect_uri must match configuration")
		require.Equal(t, http.StatusBadRequest, exchange(t, b, "", code, "http://127.0.0.1:9/cb?keep=1").status, "a refused exchange spends the code too")

		code = consent(query()).Get("code")
		b.clock.Advance(codeLifetime)
		r = exchange(t, b, "", code, "http://127.0.0.1:9/cb?keep=1")
		require.Contains(t, string(r.body), "expired authorization code")

		code = consent(query()).Get("code")
		r = exchange(t, b, TestLoginPath, code, "http://127.0.0.1:9/cb?keep=1")
		require.Contains(t, string(r.body), "invalid_grant", "a production code does not exchange at the sandbox login")

		r = b.form(t, "/services/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"app"}})
		require.JSONEq(t, `{"error":"invalid_client","error_description":"invalid client credentials"}`, string(r.body))
		r = b.form(t, "/services/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"app"}, "client_secret": {"s"}})
		require.Contains(t, string(r.body), "unsupported_grant_type")

		bad := query()
		bad.Set("response_type", "token")
		page := b.do(t, http.MethodGet, authorize(b, "", bad), "", nil, "")
		require.Equal(t, http.StatusBadRequest, page.status)
		require.Contains(t, string(page.body), "unsupported_response_type")

		// Deny comes back to the callback with the error and the state.
		form := query()
		form.Set("action", "deny")
		deny := b.form(t, "/services/oauth2/authorize", form)
		require.Equal(t, http.StatusFound, deny.status)
		back, err := url.Parse(deny.header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "access_denied", back.Query().Get("error"))
		require.Equal(t, "s-1", back.Query().Get("state"))
		require.Empty(t, back.Query().Get("code"))
	})

	t.Run("SandboxOrgsLogInAtTheTestLogin", func(t *testing.T) {
		b := setup(t, "")
		sandbox := b.org(t, OrgUpdate{Sandbox: ptr(true)})
		require.Regexp(t, `^cs\d+$`, sandbox.Instance)

		_, err := b.client.Consent(t.Context(), authorize(b, "", query()), sandbox.ID)
		require.ErrorContains(t, err, "no org with that ID logs in here", "not at the production login")

		redirect, err := b.client.Consent(t.Context(), authorize(b, TestLoginPath, query()), sandbox.ID)
		require.NoError(t, err)
		r := exchange(t, b, TestLoginPath, redirect.Query().Get("code"), "http://127.0.0.1:9/cb?keep=1")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var tok TokenResponse
		r.json(t, &tok)
		require.Equal(t, b.url+TestLoginPath+"/id/"+sandbox.ID+"/"+sandbox.UserID, tok.ID)

		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"app"}, "client_secret": {"secret"}}
		require.Equal(t, http.StatusBadRequest, b.form(t, "/services/oauth2/token", refresh).status, "a sandbox grant does not refresh at the production login")
		require.Equal(t, http.StatusOK, b.form(t, TestLoginPath+"/services/oauth2/token", refresh).status)
	})

	t.Run("RegisteredApps", func(t *testing.T) {
		b := setup(t, "")
		_, err := b.client.RegisterApp(t.Context(), App{ClientID: "app", ClientSecret: "secret", CallbackURLs: []string{"http://127.0.0.1:9/cb?keep=1"}})
		require.NoError(t, err)

		other := query()
		other.Set("client_id", "someone-else")
		page := b.do(t, http.MethodGet, authorize(b, "", other), "", nil, "")
		require.Equal(t, http.StatusBadRequest, page.status)
		require.Contains(t, string(page.body), "invalid_client_id")
		elsewhere := query()
		elsewhere.Set("redirect_uri", "http://127.0.0.1:9/elsewhere")
		page = b.do(t, http.MethodGet, authorize(b, "", elsewhere), "", nil, "")
		require.Contains(t, string(page.body), "redirect_uri_mismatch")

		redirect, err := b.client.Consent(t.Context(), authorize(b, "", query()), "")
		require.NoError(t, err)
		wrong := b.form(t, "/services/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {redirect.Query().Get("code")},
			"client_id": {"app"}, "client_secret": {"not-the-secret"}, "redirect_uri": {"http://127.0.0.1:9/cb?keep=1"}})
		require.JSONEq(t, `{"error":"invalid_client","error_description":"invalid client credentials"}`, string(wrong.body))
		require.Equal(t, http.StatusOK, exchange(t, b, "", redirect.Query().Get("code"), "http://127.0.0.1:9/cb?keep=1").status,
			"a refused client does not spend the code")
	})
}

func TestTokensRefreshExpireAndRevoke(t *testing.T) {
	t.Parallel()

	refresh := func(t *testing.T, b *testBundle, rt string) reply {
		t.Helper()
		return b.form(t, "/services/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {controlClientID}, "client_secret": {"x"}})
	}
	getUserinfo := func(t *testing.T, b *testBundle, tok TokenResponse) reply {
		t.Helper()
		return b.do(t, http.MethodGet, tok.InstanceURL+"/services/oauth2/userinfo", tok.AccessToken, nil, "")
	}
	requireSessionInvalid := func(t *testing.T, b *testBundle, tok TokenResponse) {
		t.Helper()
		r := b.api(t, tok, http.MethodGet, "/sobjects/Lead/describe", nil)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.JSONEq(t, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`, string(r.body))
		info := getUserinfo(t, b, tok)
		require.Equal(t, http.StatusForbidden, info.status)
		require.Equal(t, "Bad_OAuth_Token", string(info.body))
	}

	t.Run("SessionTimeoutAndRefresh", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{SessionTimeoutSeconds: ptr(600)})
		tok := b.tokens(t, o.ID)
		info := getUserinfo(t, b, tok)
		require.Equal(t, http.StatusOK, info.status)
		var u userinfo
		info.json(t, &u)
		require.Equal(t, o.ID, u.OrganizationID)
		require.Equal(t, o.UserID, u.UserID)

		b.clock.Advance(10 * time.Minute)
		requireSessionInvalid(t, b, tok)

		r := refresh(t, b, tok.RefreshToken)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var fresh TokenResponse
		r.json(t, &fresh)
		require.NotEqual(t, tok.AccessToken, fresh.AccessToken)
		require.Empty(t, fresh.RefreshToken, "Salesforce answers no refresh token unless it rotates them")
		require.Equal(t, tok.InstanceURL, fresh.InstanceURL)
		require.Equal(t, http.StatusOK, getUserinfo(t, b, fresh).status)

		// A token works on its own instance only.
		other := b.tokens(t, b.org(t, OrgUpdate{}).ID)
		wrongInstance := fresh
		wrongInstance.InstanceURL = other.InstanceURL
		requireSessionInvalid(t, b, wrongInstance)
	})

	t.Run("ExpireTokensAndRotation", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{RotateRefreshTokens: ptr(true)})
		tok := b.tokens(t, o.ID)
		n, err := b.client.ExpireTokens(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		requireSessionInvalid(t, b, tok)

		r := refresh(t, b, tok.RefreshToken)
		var fresh TokenResponse
		r.json(t, &fresh)
		require.NotEmpty(t, fresh.RefreshToken)
		require.NotEqual(t, tok.RefreshToken, fresh.RefreshToken, "rotated")
		require.Contains(t, string(refresh(t, b, tok.RefreshToken).body), "invalid_grant", "the old refresh token is spent")
		require.Equal(t, http.StatusOK, refresh(t, b, fresh.RefreshToken).status)
	})

	t.Run("ControlRevokeAndRestore", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		revoked, err := b.client.Revoke(t.Context(), o.ID)
		require.NoError(t, err)
		require.True(t, revoked.Revoked)
		requireSessionInvalid(t, b, tok)
		r := refresh(t, b, tok.RefreshToken)
		require.JSONEq(t, `{"error":"invalid_grant","error_description":"expired access/refresh token"}`, string(r.body))

		// The customer connects again: a new grant works while the old stays revoked.
		b.clock.Advance(time.Second)
		again := b.tokens(t, o.ID)
		require.Equal(t, http.StatusOK, getUserinfo(t, b, again).status)

		_, err = b.client.Restore(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, getUserinfo(t, b, tok).status, "the same tokens work again")
	})

	t.Run("RevokeEndpointIsFinal", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		require.Equal(t, http.StatusOK, b.form(t, "/services/oauth2/revoke", url.Values{"token": {tok.AccessToken}}).status)
		requireSessionInvalid(t, b, tok)
		require.Contains(t, string(refresh(t, b, tok.RefreshToken).body), "invalid_grant")
		_, err := b.client.Restore(t.Context(), o.ID)
		require.NoError(t, err)
		requireSessionInvalid(t, b, tok)
		require.Equal(t, http.StatusBadRequest, b.form(t, "/services/oauth2/revoke", url.Values{"token": {"unknown"}}).status)
	})

	t.Run("Introspection", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		introspect := func(token string) introspection {
			r := b.form(t, "/services/oauth2/introspect", url.Values{"token": {token}, "client_id": {"app"}, "client_secret": {"s"}})
			require.Equal(t, http.StatusOK, r.status)
			var out introspection
			r.json(t, &out)
			return out
		}
		access := introspect(tok.AccessToken)
		require.True(t, access.Active)
		require.Equal(t, "access_token", access.TokenType)
		require.Equal(t, o.Username, access.Username)
		require.Equal(t, b.clock.Now().Add(DefaultSessionTimeout).Unix(), access.Exp)
		require.Equal(t, "refresh_token", introspect(tok.RefreshToken).TokenType)
		_, err := b.client.Revoke(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, introspection{Active: false}, introspect(tok.AccessToken))
		require.Equal(t, introspection{Active: false}, introspect(tok.RefreshToken))
	})
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	describe := func(t *testing.T, b *testBundle, tok TokenResponse) describeResult {
		t.Helper()
		r := b.api(t, tok, http.MethodGet, "/sobjects/Lead/describe", nil)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var d describeResult
		r.json(t, &d)
		return d
	}
	field := func(d describeResult, name string) (describeField, bool) {
		for _, f := range d.Fields {
			if f.Name == name {
				return f, true
			}
		}
		return describeField{}, false
	}

	t.Run("Defaults", func(t *testing.T) {
		b := setup(t, "")
		tok := b.tokens(t, b.org(t, OrgUpdate{}).ID)
		d := describe(t, b, tok)
		require.Equal(t, "Lead", d.Name)
		require.True(t, d.Createable)
		require.True(t, d.Updateable)
		key, ok := field(d, DefaultLeadKeyField)
		require.True(t, ok)
		require.Equal(t, describeField{Name: DefaultLeadKeyField, Label: "Integrations Lead Key", Type: "string", Length: 255,
			Createable: true, Updateable: true, Nillable: true, ExternalID: true, Unique: true, Custom: true, IDLookup: true}, key)
		last, _ := field(d, "LastName")
		require.False(t, last.Nillable, "LastName is required")
		id, _ := field(d, "Id")
		require.False(t, id.Createable)
	})

	t.Run("PermissionsFieldsAndVersions", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		_, err := b.client.DropPermission(t.Context(), o.ID, PermissionCreate)
		require.NoError(t, err)
		_, err = b.client.UpdateOrg(t.Context(), o.ID, OrgUpdate{HiddenFields: &[]string{"Phone"},
			LeadKeyField: &LeadKeyField{Present: true, ExternalID: true, Unique: false}})
		require.NoError(t, err)
		d := describe(t, b, tok)
		require.False(t, d.Createable)
		require.True(t, d.Updateable)
		_, ok := field(d, "Phone")
		require.False(t, ok, "hidden by field-level security")
		key, _ := field(d, DefaultLeadKeyField)
		require.False(t, key.Unique)

		_, err = b.client.DropPermission(t.Context(), o.ID, PermissionRead)
		require.NoError(t, err)
		r := b.api(t, tok, http.MethodGet, "/sobjects/Lead/describe", nil)
		require.Equal(t, http.StatusNotFound, r.status)
		require.Equal(t, "NOT_FOUND", r.apiErrorCode(t))

		r = b.do(t, http.MethodGet, tok.InstanceURL+"/services/data/v67.0/limits", tok.AccessToken, nil, "")
		require.Equal(t, http.StatusNotFound, r.status, "a resource the fake does not have")
		r = b.do(t, http.MethodGet, tok.InstanceURL+"/services/data/67/sobjects/Lead/describe", tok.AccessToken, nil, "")
		require.Equal(t, http.StatusNotFound, r.status, "not a version")
	})
}

func TestUpsert(t *testing.T) {
	t.Parallel()

	t.Run("CreatesThenUpdatesByKeyInOrder", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		first := b.upsert(t, tok, lead("k1", "Email", "ada@example.com"), lead("k2"))
		for _, r := range first {
			require.True(t, r.Success)
			require.True(t, *r.Created)
			require.Regexp(t, `^00Q\w{15}$`, r.ID)
			require.Empty(t, r.Errors)
		}
		again := b.upsert(t, tok, lead("k2", "FirstName", "Ada"), lead("k1"), lead("k3"))
		require.Equal(t, first[1].ID, again[0].ID, "k2 is updated, in request order")
		require.False(t, *again[0].Created)
		require.Equal(t, first[0].ID, again[1].ID)
		require.True(t, *again[2].Created)

		leads, err := b.client.Leads(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, 3, leads.Leads)
		require.Equal(t, 5, leads.Upserts)
		require.Equal(t, 2, leads.ByKey["k2"].Upserts)
		require.Equal(t, "Ada", leads.ByKey["k2"].Fields["FirstName"])
		require.Equal(t, "ada@example.com", leads.ByKey["k1"].Fields["Email"], "an update keeps fields it does not send")
		require.Equal(t, defaultLeadStatus, leads.ByKey["k3"].Fields["Status"])
	})

	t.Run("RecordErrorsQuoteValuesAndStoreNothing", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		noCompany := lead("k2")
		delete(noCompany, "Company")
		delete(noCompany, "LastName")
		noKey := lead("")
		results := b.upsert(t, tok,
			lead("k1", "Email", "not-an-address"),
			noCompany,
			lead("k3", "FirstName", strings.Repeat("é", 41)),
			lead("dup"), lead("dup"),
			noKey,
			lead("ok"),
		)
		requireError := func(r upsertResult, code, message string, fields ...string) {
			t.Helper()
			require.False(t, r.Success)
			require.Empty(t, r.ID)
			require.Nil(t, r.Created)
			require.Len(t, r.Errors, 1)
			require.Equal(t, code, r.Errors[0].StatusCode)
			require.Contains(t, r.Errors[0].Message, message)
			if fields == nil {
				fields = []string{}
			}
			require.Equal(t, fields, r.Errors[0].Fields)
		}
		requireError(results[0], "INVALID_EMAIL_ADDRESS", "Email: invalid email address: not-an-address", "Email")
		requireError(results[1], "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName, Company]", "LastName", "Company")
		requireError(results[2], "STRING_TOO_LONG", "First Name: data value too large: éé", "FirstName")
		requireError(results[3], "DUPLICATE_EXTERNAL_ID", "Duplicate external id specified: dup", DefaultLeadKeyField)
		requireError(results[4], "DUPLICATE_EXTERNAL_ID", "Duplicate external id specified: dup", DefaultLeadKeyField)
		requireError(results[5], "MISSING_ARGUMENT", DefaultLeadKeyField+" not specified")
		require.True(t, results[6].Success)
		leads, err := b.client.Leads(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"ok"}, keysOf(leads.ByKey), "refused records store nothing")
	})

	t.Run("AllOrNoneRollsBack", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		r := b.api(t, tok, http.MethodPatch, upsertPath(), map[string]any{"allOrNone": true, "records": []any{lead("a"), lead("b", "Email", "bad")}})
		require.Equal(t, http.StatusOK, r.status)
		var results []upsertResult
		r.json(t, &results)
		require.Equal(t, "ALL_OR_NONE_OPERATION_ROLLED_BACK", results[0].Errors[0].StatusCode)
		require.Equal(t, "INVALID_EMAIL_ADDRESS", results[1].Errors[0].StatusCode)
		leads, err := b.client.Leads(t.Context(), o.ID)
		require.NoError(t, err)
		require.Zero(t, leads.Leads)
	})

	t.Run("WholeCallErrors", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{HiddenFields: &[]string{"Description"}})
		tok := b.tokens(t, o.ID)
		call := func(resource string, body any) reply {
			t.Helper()
			return b.api(t, tok, http.MethodPatch, resource, body)
		}
		records := func(recs ...map[string]any) map[string]any {
			return map[string]any{"allOrNone": false, "records": recs}
		}

		r := call(upsertPath(), records(lead("a", "Description", "hello")))
		require.Equal(t, http.StatusBadRequest, r.status)
		require.JSONEq(t, `[{"message":"No such column 'Description' on sobject of type Lead","errorCode":"INVALID_FIELD"}]`, string(r.body))
		r = call(upsertPath(), records(map[string]any{DefaultLeadKeyField: "a", "LastName": "x", "Company": "y"}))
		require.Equal(t, "INVALID_TYPE", r.apiErrorCode(t))
		require.Contains(t, string(r.body), "Must send a concrete entity type.")
		many := make([]map[string]any, MaxCollectionSize+1)
		for i := range many {
			many[i] = lead("k" + string(rune('a'+i%26)))
		}
		r = call(upsertPath(), records(many...))
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "EXCEEDED_ID_LIMIT", r.apiErrorCode(t))
		r = call("/composite/sobjects/Lead/Email", records(lead("a")))
		require.Equal(t, http.StatusNotFound, r.status)
		require.Contains(t, string(r.body), "Provided external ID field does not exist or is not accessible: Email")
		r = b.do(t, http.MethodPatch, tok.InstanceURL+"/services/data/v45.0"+upsertPath(), tok.AccessToken, []byte(`{"records":[]}`), "application/json")
		require.Equal(t, http.StatusNotFound, r.status, "the collections upsert needs v46.0")
		r = b.do(t, http.MethodPatch, tok.InstanceURL+"/services/data/v67.0"+upsertPath(), tok.AccessToken, []byte(`{"records":[`), "application/json")
		require.Equal(t, "JSON_PARSER_ERROR", r.apiErrorCode(t))

		_, err := b.client.UpdateOrg(t.Context(), o.ID, OrgUpdate{LeadKeyField: &LeadKeyField{Present: true, ExternalID: false, Unique: true}})
		require.NoError(t, err)
		r = call(upsertPath(), records(lead("a")))
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, string(r.body), "is not an External ID or indexed field for Lead")
		_, err = b.client.UpdateOrg(t.Context(), o.ID, OrgUpdate{LeadKeyField: &LeadKeyField{Present: false}})
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, call(upsertPath(), records(lead("a"))).status)

		leads, err := b.client.Leads(t.Context(), o.ID)
		require.NoError(t, err)
		require.Zero(t, leads.Leads, "refused calls store nothing")
	})

	t.Run("Permissions", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		b.upsert(t, tok, lead("old"))
		_, err := b.client.UpdateOrg(t.Context(), o.ID, OrgUpdate{LeadPermissions: &[]string{PermissionRead}})
		require.NoError(t, err)
		results := b.upsert(t, tok, lead("new"), lead("old"))
		require.Equal(t, recordError{StatusCode: "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", Message: "entity type cannot be inserted: Lead", Fields: []string{}}, results[0].Errors[0])
		require.Equal(t, recordError{StatusCode: "INSUFFICIENT_ACCESS_OR_READONLY", Message: "entity type cannot be updated: Lead", Fields: []string{}}, results[1].Errors[0])

		_, err = b.client.DropPermission(t.Context(), o.ID, PermissionRead)
		require.NoError(t, err)
		r := b.api(t, tok, http.MethodPatch, upsertPath(), map[string]any{"records": []any{lead("new")}})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "INVALID_TYPE", r.apiErrorCode(t))
		require.Contains(t, string(r.body), "sObject type 'Lead' is not supported")
	})
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAPIAccessLimitsAndFaults(t *testing.T) {
	t.Parallel()
	describe := func(t *testing.T, b *testBundle, tok TokenResponse) reply {
		t.Helper()
		return b.api(t, tok, http.MethodGet, "/sobjects/Lead/describe", nil)
	}

	t.Run("APIDisabled", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		_, err := b.client.DisableAPI(t.Context(), o.ID, true)
		require.NoError(t, err)
		r := describe(t, b, tok)
		require.Equal(t, http.StatusForbidden, r.status)
		require.JSONEq(t, `[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]`, string(r.body))
		info := b.do(t, http.MethodGet, tok.InstanceURL+"/services/oauth2/userinfo", tok.AccessToken, nil, "")
		require.Equal(t, http.StatusOK, info.status, "the identity service still answers")

		_, err = b.client.DisableAPI(t.Context(), o.ID, false)
		require.NoError(t, err)
		_, err = b.client.DisableUserAPI(t.Context(), o.ID, true)
		require.NoError(t, err)
		r = describe(t, b, tok)
		require.Equal(t, http.StatusForbidden, r.status)
		require.Equal(t, "API_CURRENTLY_DISABLED", r.apiErrorCode(t))
	})

	t.Run("AllocationPerWindow", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		_, err := b.client.SetLimit(t.Context(), o.ID, 2, time.Second)
		require.NoError(t, err)
		require.Equal(t, "api-usage=1/2", describe(t, b, tok).header.Get("Sforce-Limit-Info"))
		b.clock.Advance(500 * time.Millisecond)
		require.Equal(t, "api-usage=2/2", describe(t, b, tok).header.Get("Sforce-Limit-Info"))
		over := describe(t, b, tok)
		require.Equal(t, http.StatusForbidden, over.status)
		require.JSONEq(t, `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`, string(over.body))
		require.Equal(t, "api-usage=2/2", over.header.Get("Sforce-Limit-Info"), "a refused call does not count")
		require.Empty(t, over.header.Get("Retry-After"), "Salesforce says no delay")

		b.clock.Advance(500 * time.Millisecond)
		require.Equal(t, "api-usage=2/2", describe(t, b, tok).header.Get("Sforce-Limit-Info"), "the first call left the rolling window")

		calls, err := b.client.Calls(t.Context(), o.ID)
		require.NoError(t, err)
		require.Len(t, calls, 4)
		require.Equal(t, b.clock.Now().Add(-time.Second), calls[0].At, "the fake's clock")
		require.Equal(t, []int{200, 200, 403, 200}, []int{calls[0].Status, calls[1].Status, calls[2].Status, calls[3].Status})
		require.Equal(t, "/instance/"+o.Instance+"/services/data/v67.0/sobjects/Lead/describe", calls[0].Path)
	})

	t.Run("Faults", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		tok := b.tokens(t, o.ID)
		update := func(u FaultsUpdate) Faults {
			t.Helper()
			f, err := b.client.UpdateFaults(t.Context(), o.ID, u)
			require.NoError(t, err)
			return f
		}

		update(FaultsUpdate{FailNext: ptr(3), FailStatus: ptr(503)})
		info := b.do(t, http.MethodGet, tok.InstanceURL+"/services/oauth2/userinfo", tok.AccessToken, nil, "")
		require.Equal(t, http.StatusServiceUnavailable, info.status, "an outage reaches the identity service")
		require.Equal(t, http.StatusServiceUnavailable, describe(t, b, tok).status)
		r := b.form(t, "/services/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {controlClientID}, "client_secret": {"x"}})
		require.Equal(t, http.StatusServiceUnavailable, r.status, "and the token endpoint")
		require.Equal(t, http.StatusOK, describe(t, b, tok).status, "three calls long")

		update(FaultsUpdate{LimitExceededNext: ptr(1)})
		require.Equal(t, "REQUEST_LIMIT_EXCEEDED", describe(t, b, tok).apiErrorCode(t))
		require.Equal(t, http.StatusOK, describe(t, b, tok).status)

		update(FaultsUpdate{LockNext: ptr(1), RejectField: ptr("Email"), RejectContains: ptr("blocked"), RejectCode: ptr("INVALID_EMAIL_ADDRESS")})
		results := b.upsert(t, tok, lead("a"), lead("b", "Email", "ada.blocked@example.com"), lead("c"))
		require.Equal(t, "UNABLE_TO_LOCK_ROW", results[0].Errors[0].StatusCode)
		require.Equal(t, recordError{StatusCode: "INVALID_EMAIL_ADDRESS", Message: "Email: invalid email address: ada.blocked@example.com", Fields: []string{"Email"}}, results[1].Errors[0])
		require.True(t, results[2].Success)

		update(FaultsUpdate{RefuseField: ptr("Email"), RefuseContains: ptr("refused")})
		r = b.api(t, tok, http.MethodPatch, upsertPath(), map[string]any{"records": []any{lead("d"), lead("e", "Email", "x.refused@example.com")}})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "JSON_PARSER_ERROR", r.apiErrorCode(t))

		// Invalid updates change nothing.
		before, err := b.client.Faults(t.Context(), o.ID)
		require.NoError(t, err)
		for _, bad := range []FaultsUpdate{
			{FailStatus: ptr(404)}, {FailNext: ptr(-1)}, {RejectField: ptr("Secret__c")}, {RejectCode: ptr("lower")},
			{RejectField: ptr("")}, // the rule goes, but its contains must too: valid
		} {
			_, err := b.client.UpdateFaults(t.Context(), o.ID, bad)
			if bad.RejectField != nil && *bad.RejectField == "" {
				require.NoError(t, err)
				continue
			}
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		}
		after, err := b.client.Faults(t.Context(), o.ID)
		require.NoError(t, err)
		before.RejectField, before.RejectContains = "", ""
		require.Equal(t, before, after)

		require.NoError(t, b.client.ClearFaults(t.Context(), o.ID))
		cleared, err := b.client.Faults(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, DefaultFaults(), cleared)
	})
}

func TestControl(t *testing.T) {
	t.Parallel()

	t.Run("RefusalsChangeNothing", func(t *testing.T) {
		b := setup(t, "")
		o := b.org(t, OrgUpdate{})
		for _, bad := range []OrgUpdate{
			{Sandbox: ptr(true)},
			{LeadPermissions: &[]string{"Delete"}},
			{HiddenFields: &[]string{"Secret__c"}},
			{APILimit: ptr(0)},
			{APIWindowMS: ptr(int64(0))},
			{LeadKeyField: &LeadKeyField{Name: "not a field"}},
			{SessionTimeoutSeconds: ptr(0)},
		} {
			_, err := b.client.UpdateOrg(t.Context(), o.ID, bad)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr, "%+v", bad)
			require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		}
		now, err := b.client.Org(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, o, now)

		r := b.do(t, http.MethodPost, b.url+"/control/orgs/"+o.ID, "", []byte(`{"revokd":true}`), "application/json")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, string(r.body), "revokd", "a misspelt field is named")

		_, err = b.client.Org(t.Context(), "00Dnope")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.Equal(t, "unknown_org", apiErr.Code)

		r = b.do(t, http.MethodGet, b.url+"/nowhere?code=secret-code", "", nil, "")
		require.Equal(t, http.StatusNotFound, r.status)
		require.NotContains(t, string(r.body), "secret-code")
	})

	t.Run("StatePersistsOrgsAppsAndGrants", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "salesforce.json")
		b := start(t, path)
		_, err := b.client.RegisterApp(t.Context(), App{ClientID: controlClientID, ClientSecret: "s3cret"})
		require.NoError(t, err)
		o := b.org(t, OrgUpdate{Sandbox: ptr(true), APILimit: ptr(5000)})
		tok := b.tokens(t, o.ID)
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the file holds refresh tokens and secrets")

		restarted := start(t, path)
		again, err := restarted.client.Org(t.Context(), o.ID)
		require.NoError(t, err)
		require.Equal(t, o, again)
		r := restarted.api(t, TokenResponse{AccessToken: tok.AccessToken, InstanceURL: strings.Replace(tok.InstanceURL, b.url, restarted.url, 1)}, http.MethodGet, "/sobjects/Lead/describe", nil)
		require.Equal(t, http.StatusUnauthorized, r.status, "access tokens do not survive a restart")
		refresh := restarted.form(t, TestLoginPath+"/services/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			"client_id": {controlClientID}, "client_secret": {"s3cret"}})
		require.Equal(t, http.StatusOK, refresh.status, "grants and apps do: %s", refresh.body)

		require.NoError(t, os.WriteFile(path, []byte(`{"orgs":[{"org_id":""}]}`), 0o600))
		_, err = NewServer(path)
		require.ErrorContains(t, err, "is corrupt")
	})
}
