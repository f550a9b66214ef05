package hubspot

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// guidePath is the customer guide the remediation texts come from.
const guidePath = "../../docs/crms/hubspot.md"

// remediationTexts returns every remediate* constant of the package's
// source, so a new remediation cannot be left out of the guide (or of this
// test).
func remediationTexts(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	texts := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, ident := range spec.Names {
				if !strings.HasPrefix(ident.Name, "remediate") || i >= len(spec.Values) {
					continue
				}
				lit, ok := spec.Values[i].(*ast.BasicLit)
				require.True(t, ok, "%s must be a plain string literal", ident.Name)
				text, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				texts[ident.Name] = text
			}
			return true
		})
	}
	return texts
}

// TestGuideHasEveryRemediation fails when the guide and the texts the
// connector reports drift apart.
func TestGuideHasEveryRemediation(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(guidePath)
	require.NoError(t, err)
	guide := string(data)

	texts := remediationTexts(t)
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
