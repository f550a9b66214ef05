package cli_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// TestEventsPages: `events` shows a page at a time (--after, --limit) and
// says how to get the next one; the pages together are the history.
func TestEventsPages(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("lead")
		b.ok(t, "create", "lead", "--org", "acme", "--partner", "zillow", "--expected-source", "Z", "--id", id)
		b.ok(t, "send-lead", id, "--source", "z")
		b.ok(t, "send-lead", id, "--source", "Z")
		b.ok(t, "complete-setup", id, "--by", "alice")
		all := b.events(t, id)
		require.Len(t, all, 4)

		var first, rest []integration.Change
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "events", id, "--limit", "3", "-o", "json")), &first))
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "events", id, "--after", "3", "-o", "json")), &rest))
		require.Equal(t, all, append(first, rest...))
		require.Contains(t, b.ok(t, "events", id, "--limit", "3"), "(more: integrations events "+id+" --after 3)")
		require.NotContains(t, b.ok(t, "events", id, "--after", "3"), "more:")
		require.JSONEq(t, "[]", b.ok(t, "events", id, "--after", "4", "-o", "json"))

		for _, args := range [][]string{{"--limit", "0"}, {"--limit", "1001"}, {"--after", "-1"}} {
			r := b.run(t, append([]string{"events", id}, args...)...)
			require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		}
	})
}
