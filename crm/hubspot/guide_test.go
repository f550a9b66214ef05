package hubspot

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/crmtest"
	"github.com/acme/integrations/integration"
)

// guidePath is the customer guide the remediation texts come from.
const guidePath = "../../docs/crms/hubspot.md"

// TestGuideHasEveryRemediation fails when the guide and the texts the
// connector reports drift apart.
func TestGuideHasEveryRemediation(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(guidePath)
	require.NoError(t, err)
	guide := string(data)

	// Every remediate* constant of the package, so a new remediation
	// cannot be left out of the guide (or of this test).
	texts := crmtest.StringConstants(t, "remediate")
	require.Len(t, texts, 7, "the remediation constants the test found")
	for name, text := range texts {
		require.True(t, strings.Contains(guide, text), "docs/crms/hubspot.md must quote %s verbatim, on one line: %q", name, text)
	}
	// The values the source holds are the ones the checks report.
	require.Equal(t, remediateLeadKeyProperty, texts["remediateLeadKeyProperty"])

	for _, name := range []string{crm.CheckCredentials, crm.CheckScopes, CheckLeadKeyProperty, CheckLeadSourceProperty, KeyProperty, SourceProperty,
		ScopeContactsWrite, ScopeSchemasContactsWrite, string(integration.ReasonExpiredCredentials), string(integration.ReasonInsufficientPermissions)} {
		require.True(t, strings.Contains(guide, "`"+name+"`"), "the guide names `%s`", name)
	}
	for what, text := range map[string]string{
		"where attributes go":                            attributesHeading,
		"the reason of an invalid email":                 describe("INVALID_EMAIL", "email"),
		"the reason of a lead key another contact holds": describe("CONFLICT", KeyProperty),
		"what happens to repeat leads":                   "### Repeat leads",
	} {
		require.True(t, strings.Contains(guide, text), "the guide quotes %s: %q", what, text)
	}
}
