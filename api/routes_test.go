package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// TestRouteSets: a handler of intake only (the listener partners reach)
// has no operator route, whatever key comes with the request, and one of
// operator routes only has no intake; both answer /healthz.
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
	})
}
