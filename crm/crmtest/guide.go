package crmtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// StringConstants returns, by name, every constant or variable declared in
// the non-test Go files of the current directory (a test's package) whose
// name begins with one of prefixes; each must be a plain string literal. A
// guide test reads the customer texts (remediations, rejection reasons)
// this way, so a new one cannot be left out of the guide or of the test.
func StringConstants(t testing.TB, prefixes ...string) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	texts := map[string]string{}
	fset := token.NewFileSet()
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
			for i, ident := range spec.Names {
				if i >= len(spec.Values) || !hasAnyPrefix(ident.Name, prefixes) {
					continue
				}
				lit, ok := spec.Values[i].(*ast.BasicLit)
				require.True(t, ok && lit.Kind == token.STRING, "%s must be a plain string literal", ident.Name)
				text, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				texts[ident.Name] = text
			}
			return true
		})
	}
	return texts
}

func hasAnyPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
