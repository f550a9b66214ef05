package app_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/internal/testenv"
)

const module = "github.com/acme/integrations/"

// assemblies are the constructions that assemble the service: only app/
// may make them in production code.
var assemblies = []struct {
	pkg, name string
	literal   bool // a composite literal (or new) of a type, not a call
}{
	{"worker", "New", false},
	{"worker", "Register", false},
	{"activities", "Activities", true},
	{"starter", "Starter", true},
	{"api", "New", false},
	{"crm", "NewRegistry", false},
}

// findAssemblies returns "pkg.Name at file:line" for every assembly in the
// module's non-test Go files (outside tools/, a module of its own), with
// the directory of each relative to the module root.
func findAssemblies(t *testing.T, root string) map[string][]string {
	t.Helper()
	found := map[string][]string{} // directory → findings
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "tools" || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		// The local name of each of the module's packages we look for.
		local := map[string]string{}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			pkg, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			name := filepath.Base(pkg)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			local[name] = pkg
		}
		match := func(e ast.Expr, literal bool) (string, bool) {
			sel, ok := e.(*ast.SelectorExpr)
			if !ok {
				return "", false
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok {
				return "", false
			}
			for _, a := range assemblies {
				if a.literal == literal && local[id.Name] == a.pkg && sel.Sel.Name == a.name {
					return a.pkg + "." + a.name, true
				}
			}
			return "", false
		}
		ast.Inspect(file, func(n ast.Node) bool {
			var what string
			var ok bool
			switch n := n.(type) {
			case *ast.CallExpr:
				if what, ok = match(n.Fun, false); !ok {
					if fn, isIdent := n.Fun.(*ast.Ident); isIdent && fn.Name == "new" && len(n.Args) == 1 {
						what, ok = match(n.Args[0], true)
					}
				}
			case *ast.CompositeLit:
				what, ok = match(n.Type, true)
			}
			if ok {
				dir := filepath.Dir(rel)
				found[dir] = append(found[dir], what+" at "+fset.Position(n.Pos()).String())
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	return found
}

// TestServiceAssembledOnlyInApp: nothing but app/ constructs the worker,
// the activities, the starter, the HTTP API or the CRM registry, so the
// service is assembled in exactly one place.
func TestServiceAssembledOnlyInApp(t *testing.T) {
	t.Parallel()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	found := findAssemblies(t, root)

	var inApp []string
	for _, f := range found["app"] {
		what, _, _ := strings.Cut(f, " at ")
		inApp = append(inApp, what)
	}
	// The scan sees each construction where it is: a scan that finds
	// nothing proves nothing.
	for _, a := range assemblies {
		if a.name == "Register" {
			continue // New registers; nothing else needs to
		}
		require.True(t, slices.Contains(inApp, a.pkg+"."+a.name), "app/ assembles %s.%s; found %v", a.pkg, a.name, found["app"])
	}
	delete(found, "app")
	require.Empty(t, found, "the service is assembled outside app/: build it with app.New instead")
}
