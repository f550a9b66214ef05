package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// TestRouteSets: a handler of the public routes (the listener partners
// and customers' browsers reach) has no operator route, whatever key comes
// with the request, and one of operator routes has no intake; both answer
// /healthz and the OAuth callback, which connects through either.
func TestRouteSets(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupIntake(t, db)
		intake := &intakeBundle{testBundle: b.withHandlerOptions(t, api.WithRoutes(api.RoutesIntake)), ctx: b.ctx,
			org: b.org, lead: b.lead, token: b.token, crm: b.crm, crmKey: b.crmKey}
		operator := b.withHandlerOptions(t, api.WithRoutes(api.RoutesOperator))
		before := b.snapshot(t, b.crm)

		for _, rt := range []struct{ method, path, body string }{
			{http.MethodGet, "/v1/integrations", ""},
			{http.MethodGet, integrationPath(b.crm), ""},
			{http.MethodGet, integrationPath(b.crm, "events"), ""},
			{http.MethodPost, integrationPath(b.crm, "pause"), `{"by": "ops"}`},
			{http.MethodPost, integrationPath(b.crm, "authorize"), authorizeBody(t, "ops", b.crmKey)},
		} {
			r := intake.do(t, rt.method, rt.path, rt.body)
			require.Equal(t, http.StatusNotFound, r.code, "%s %s on the intake listener: %s", rt.method, rt.path, r.body)
			require.Contains(t, errorMessage(t, r), "no route")
		}
		b.requireUnchanged(t, b.crm, before)
		out := intake.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "on-intake", "Z"))
		require.False(t, out.Duplicate)
		require.JSONEq(t, `{"status": "ok"}`, intake.ok(t, http.MethodGet, "/healthz", ""))

		leads := b.leadCount(t, b.lead)
		r := operator.doWithHeader(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "on-operator", "Z"), bearer(b.token))
		require.Equal(t, http.StatusNotFound, r.code, r.body)
		require.Equal(t, leads, b.leadCount(t, b.lead))
		requireStatus(t, decodeView(t, operator.ok(t, http.MethodGet, integrationPath(b.crm), "")), integration.StatusActive, integration.ReasonNone)
		require.JSONEq(t, `{"status": "ok"}`, operator.ok(t, http.MethodGet, "/healthz", ""))
		intake.requireNoPII(t)

		// The OAuth callback is on both: a consent URL the operator
		// listener handed out connects through the public one, and a
		// spent state is refused on either.
		hub := testenv.ID("hubspot")
		_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: hub, OrgID: b.org, Kind: integration.KindCRM, Provider: "hubspot"}, "test")
		require.NoError(t, err)
		portal, err := b.stack.HubSpot.CreateAccount(b.ctx, hubspotfake.CreateAccountRequest{OAuth: true, RedirectURI: b.stack.HTTPURL + api.OAuthCallbackPath})
		require.NoError(t, err)
		r = operator.do(t, http.MethodPost, integrationPath(hub, "authorize", "oauth"), `{"by": "alice"}`)
		require.Equal(t, http.StatusOK, r.code, r.body)
		var consent struct {
			URL string `json:"consent_url"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &consent))
		redirect, err := b.stack.HubSpot.Consent(b.ctx, consent.URL, portal.HubID)
		require.NoError(t, err)
		code, page := getPage(t, intake.server.URL+api.OAuthCallbackPath+"?"+redirect.RawQuery)
		require.Equal(t, http.StatusOK, code, page)
		require.Contains(t, page, "is connected")
		require.Equal(t, []int{1}, b.stack.StoredVersions(t, hub))
		for _, h := range []*testBundle{intake.testBundle, operator} {
			code, page := getPage(t, h.server.URL+api.OAuthCallbackPath+"?"+redirect.RawQuery)
			require.Equal(t, http.StatusBadRequest, code, page)
			require.Contains(t, page, "invalid, already used or expired")
		}
		require.Equal(t, []int{1}, b.stack.StoredVersions(t, hub), "a replay stores nothing")
	})
}

// getPage opens url as a browser would and returns the status and the
// HTML page.
func getPage(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), "%d: %s", resp.StatusCode, page)
	return resp.StatusCode, string(page)
}
