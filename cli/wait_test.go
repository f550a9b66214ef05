package cli_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/internal/testenv"
)

func TestWait(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		org := testenv.ID("org")
		crmID, key := b.activeCRM(t, org)
		leadID := b.createLead(t, org)
		b.ok(t, "send-lead", leadID, "--source", "Z")
		b.ok(t, "complete-setup", leadID)

		out := b.ok(t, "wait", crmID, "--status", "active", "--reason", "", "--needs-attention=false", "--timeout", "5s")
		require.Equal(t, crmID+": active, 0 delivered, 0 rejected, 0 pending\n", out, "a condition that holds answers at once")

		// A condition that comes true later: two leads delivered, drained.
		b.ok(t, "send-lead", leadID, "--source", "Z", "--external-id", "w-1", "--email", "w1@example.com")
		b.ok(t, "send-lead", leadID, "--source", "Z", "--external-id", "w-2", "--email", "w2@example.com")
		v := b.view(t, "wait", crmID, "--delivered", "2", "--pending", "0", "--timeout", "30s")
		require.Equal(t, int64(2), *v.Sync.Delivered)

		// One that does not: exit 4, the last status and what is missing.
		b.ok(t, "sandbox", "account", "revoke", key)
		r := b.run(t, "wait", crmID, "--status", "deleted", "--timeout", "300ms")
		require.Equal(t, cli.ExitTimeout, r.code, "stdout: %s stderr: %s", r.stdout, r.stderr)
		require.Empty(t, r.stdout)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		require.Contains(t, r.stderr, "timed out after 300ms waiting for "+crmID)
		require.Contains(t, r.stderr, "still waiting for status deleted")

		for _, args := range [][]string{
			{"wait", crmID},
			{"wait", crmID, "--status", "asleep"},
			{"wait", crmID, "--pending", "-1"},
			{"wait", crmID, "--status", "active", "--timeout", "0s"},
			{"wait", "--status", "active"},
			{"wait", "no-such-integration", "--status", "active"},
		} {
			r := b.run(t, args...)
			require.Equal(t, cli.ExitUsage, r.code, "integrations %s: %s", strings.Join(args, " "), r.stderr)
			require.True(t, strings.HasPrefix(r.stderr, "usage error: "), r.stderr)
		}
	})
}
