package followupboss

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
)

// guidePath is the customer guide, from this package's directory.
var guidePath = filepath.Join("..", "..", "docs", "crms", "followupboss.md")

// customerTexts returns every Remediate* and Reason* string constant
// declared in the package's non-test files, by name: the texts a failed
// check or a rejected lead shows the customer. Reading the source means a
// new text cannot be forgotten here.
func customerTexts(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	texts := map[string]string{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if !strings.HasPrefix(name.Name, "Remediate") && !strings.HasPrefix(name.Name, "Reason") {
					continue
				}
				lit, ok := spec.Values[i].(*ast.BasicLit)
				require.True(t, ok && lit.Kind == token.STRING, "%s must be a plain string constant", name.Name)
				text, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				texts[name.Name] = text
			}
			return true
		})
	}
	return texts
}

// TestGuide keeps the guide and the connector in step: every remediation
// text a failed check shows and every reason a rejected lead gets appears
// in the guide word for word, so what a customer reads in the status is
// what the guide explains.
func TestGuide(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(guidePath)
	require.NoError(t, err)
	guide := string(data)

	texts := customerTexts(t)
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
