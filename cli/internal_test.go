package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// TestPrintChecks: text status tells a failed check from one that could not
// run because of it, and shows what a passing check found.
func TestPrintChecks(t *testing.T) {
	t.Parallel()
	s := integration.State{
		ID: "crm-1", Kind: integration.KindCRM, Status: integration.StatusPaused, Reason: integration.ReasonExpiredCredentials,
		Validation: &integration.Validation{Checks: []integration.Check{
			{Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials, Message: "the API key was rejected (HTTP 401)", Remediation: "authorize again"},
			crm.NotChecked(crm.CheckScopes, "the credentials were rejected"),
			{Name: crm.CheckAPIAccess, OK: true, Message: "the account is active"},
			{Name: "lead_key", OK: true},
		}},
	}
	var out bytes.Buffer
	printText(&out, s)
	text := out.String()
	require.Contains(t, text, "    FAIL credentials [expired_credentials]: the API key was rejected (HTTP 401)\n         fix: authorize again\n")
	require.Contains(t, text, "    --   scopes: not checked: the credentials were rejected\n")
	require.NotContains(t, text, "FAIL scopes")
	require.Contains(t, text, "    ok   api_access: the account is active\n")
	require.Contains(t, text, "    ok   lead_key\n")
}

// TestPageText: what a fake's consent prints of the callback page reads as
// a sentence, its heading kept apart from the text.
func TestPageText(t *testing.T) {
	t.Parallel()
	page := `<!doctype html>
<html><head><meta charset="utf-8"><title>Connected</title></head>
<body><h1>Connected</h1><p>Integration sf-acme is connected: it is now active. You can close this page &amp; go.</p></body></html>`
	require.Equal(t, "Connected: Integration sf-acme is connected: it is now active. You can close this page & go.", pageText(page))
}
