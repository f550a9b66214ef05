package app_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/app"
)

// TestDataDirFlag: dev's banner tells a second terminal the --data-dir
// to pass, except for the default one (which Load has made absolute), and
// quotes it for the shell when it needs quoting.
func TestDataDirFlag(t *testing.T) {
	t.Parallel()
	def, err := filepath.Abs(app.DefaultDataDir)
	require.NoError(t, err)
	for dir, want := range map[string]string{
		def:             "",
		def + "/":       "",
		"/tmp/stack":    " --data-dir /tmp/stack",
		"/tmp/my stack": " --data-dir '/tmp/my stack'",
		"/tmp/it's":     ` --data-dir '/tmp/it'\''s'`,
	} {
		require.Equal(t, want, app.DataDirFlag(dir), dir)
	}
}
