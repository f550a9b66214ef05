package followupboss

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/crmtest"
)

// guidePath is the customer guide, from this package's directory.
var guidePath = filepath.Join("..", "..", "docs", "crms", "followupboss.md")

// TestGuide keeps the guide and the connector in step: every remediation
// text a failed check shows and every reason a rejected lead gets appears
// in the guide word for word, so what a customer reads in the status is
// what the guide explains.
func TestGuide(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(guidePath)
	require.NoError(t, err)
	guide := string(data)

	// Every Remediate* and Reason* constant of the package: the texts a
	// failed check or a rejected lead shows the customer.
	texts := crmtest.StringConstants(t, "Remediate", "Reason")
	require.Equal(t, map[string]string{
		"RemediateCredentials":   RemediateCredentials,
		"RemediateAPIAccess":     RemediateAPIAccess,
		"ReasonArchivedLeadFlow": ReasonArchivedLeadFlow,
		"ReasonInvalidEmail":     ReasonInvalidEmail,
		"ReasonInvalidPhone":     ReasonInvalidPhone,
		"ReasonInvalidName":      ReasonInvalidName,
		"ReasonRefused":          ReasonRefused,
	}, texts, "the source scan finds every text")
	for name, text := range texts {
		require.Contains(t, guide, text, "%s must appear in %s word for word", name, guidePath)
	}
	// The mapping the package documents is the guide's.
	for _, s := range []string{EventType, KeyTag(""), "Company: ", DefaultAPIURL} {
		require.Contains(t, guide, s)
	}
}
