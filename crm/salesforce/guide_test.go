package salesforce_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/salesforce"
)

// TestGuide keeps docs/crms/salesforce.md in step with the connector: every
// remediation text the checks report appears in it verbatim, and so do the
// names the customer sees (checks, fields, what fills a required field).
func TestGuide(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "crms", "salesforce.md"))
	require.NoError(t, err)
	guide := string(data)

	for name, text := range map[string]string{
		"RemediateCredentials":        salesforce.RemediateCredentials,
		"RemediateCredentialsSandbox": salesforce.RemediateCredentialsSandbox,
		"RemediateAPIAccess":          salesforce.RemediateAPIAccess,
		"RemediatePermissions":        salesforce.RemediatePermissions,
		"RemediateLeadKeyField":       salesforce.RemediateLeadKeyField,
	} {
		require.True(t, strings.Contains(guide, text), "the guide quotes %s verbatim: %q", name, text)
	}
	for _, name := range []string{
		crm.CheckCredentials, crm.CheckAPIAccess, crm.CheckScopes, salesforce.CheckLeadKeyField,
		salesforce.LeadKeyField, salesforce.NotProvided, salesforce.DefaultAPIVersion,
		salesforce.DefaultLoginURL, salesforce.DefaultTestLoginURL,
		"INTEGRATIONS_SALESFORCE_CLIENT_ID", "INTEGRATIONS_SALESFORCE_CLIENT_SECRET",
		"INTEGRATIONS_SALESFORCE_LOGIN_URL", "INTEGRATIONS_SALESFORCE_TEST_LOGIN_URL", "INTEGRATIONS_SALESFORCE_API_VERSION",
	} {
		require.Contains(t, guide, "`"+name+"`", "the guide names %s", name)
	}
}
