package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// apiKeyBundle is a migrated database of its own and a data dir, for the
// api-key commands, which need nothing else.
type apiKeyBundle struct {
	dataDir, databaseURL string
	store                *store.Store
}

func setupAPIKeys(t *testing.T, db testenv.Database) *apiKeyBundle {
	t.Helper()
	s, err := store.Open(t.Context(), db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Migrate(t.Context()))
	return &apiKeyBundle{dataDir: t.TempDir(), databaseURL: db.URL, store: s}
}

func (b *apiKeyBundle) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"integrations", "--data-dir", b.dataDir, "--database-url", b.databaseURL}, args...), &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func (b *apiKeyBundle) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := b.run(t, args...)
	require.Equal(t, cli.ExitOK, r.code, "integrations %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

// usage runs a command that must fail as a usage error (exit 2, one line).
func (b *apiKeyBundle) usage(t *testing.T, args ...string) string {
	t.Helper()
	r := b.run(t, args...)
	require.Equal(t, cli.ExitUsage, r.code, "integrations %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	require.Empty(t, r.stdout)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	return r.stderr
}

// keyJSON is what api-key create and list print with --output json.
type keyJSON struct {
	ID        string  `json:"id"`
	OrgID     string  `json:"org_id"`
	Admin     bool    `json:"admin"`
	Name      string  `json:"name"`
	CreatedAt string  `json:"created_at"`
	RevokedAt *string `json:"revoked_at"`
	Key       string  `json:"key"`
}

func (b *apiKeyBundle) create(t *testing.T, args ...string) keyJSON {
	t.Helper()
	var k keyJSON
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, append([]string{"api-key", "create", "-o", "json"}, args...)...)), &k))
	return k
}

func (b *apiKeyBundle) list(t *testing.T, args ...string) []keyJSON {
	t.Helper()
	var keys []keyJSON
	out := b.ok(t, append([]string{"api-key", "list", "-o", "json"}, args...)...)
	require.NoError(t, json.Unmarshal([]byte(out), &keys))
	require.NotNil(t, keys, "an empty list is [], not null: %s", out)
	return keys
}

// TestAPIKeyCommands: create prints the key once and stores its hash; list
// never shows a key; revoke stops it at once.
func TestAPIKeyCommands(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupAPIKeys(t, db)
		ctx := t.Context()
		require.Empty(t, b.list(t))

		text := b.ok(t, "api-key", "create", "--org", "acme", "--name", "backend")
		require.Contains(t, text, "for org acme, name backend")
		require.Contains(t, text, "shown only now")
		key := strings.TrimSpace(strings.Split(text, "\n")[1])
		k, err := apikey.Authenticate(ctx, b.store, key)
		require.NoError(t, err, "the printed key works: %q", key)
		require.Equal(t, "acme", k.OrgID)
		require.Equal(t, "backend", k.Name)

		admin := b.create(t, "--admin", "--name", "ops")
		require.True(t, admin.Admin)
		require.Empty(t, admin.OrgID)
		ak, err := apikey.Authenticate(ctx, b.store, admin.Key)
		require.NoError(t, err)
		require.True(t, ak.Admin)
		require.Equal(t, admin.ID, ak.ID)

		keys := b.list(t)
		require.Len(t, keys, 2)
		require.Equal(t, []string{admin.ID, k.ID}, []string{keys[0].ID, keys[1].ID})
		for _, listed := range keys {
			require.Empty(t, listed.Key, "list never shows a key")
		}
		textList := b.ok(t, "api-key", "list")
		require.NotContains(t, textList, key)
		require.NotContains(t, textList, admin.Key)
		require.Contains(t, textList, "(admin)")
		require.Len(t, b.list(t, "--org", "acme"), 1)
		require.Empty(t, b.list(t, "--org", "globex"))

		// Refusals store nothing.
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--org", "acme"}, "needs --name"},
			{[]string{"--name", "x"}, "--org ORG"},
			{[]string{"--org", "acme", "--admin", "--name", "x"}, "not both"},
			{[]string{"--org", "bad org", "--name", "x"}, "invalid org id"},
			{[]string{"--org", "acme", "--name", "two words"}, "invalid key name"},
			{[]string{"--org", "acme", "--name", "backend"}, "choose another --name"},
		} {
			msg := b.usage(t, append([]string{"api-key", "create"}, tc.args...)...)
			require.Contains(t, msg, tc.want, "%v", tc.args)
		}
		require.Len(t, b.list(t), 2, "nothing refused is stored")

		revoked := b.ok(t, "api-key", "revoke", k.ID)
		require.Contains(t, revoked, "revoked since")
		_, err = apikey.Authenticate(ctx, b.store, key)
		require.ErrorIs(t, err, apikey.ErrRevoked)
		keys = b.list(t, "--org", "acme")
		require.Len(t, keys, 1)
		require.NotNil(t, keys[0].RevokedAt)
		b.ok(t, "api-key", "revoke", k.ID) // again: nothing changes
		require.Contains(t, b.usage(t, "api-key", "revoke", "0123456789abcdef"), "no API key has ID")
		// A revoked key's name may be issued again.
		again := b.create(t, "--org", "acme", "--name", "backend")
		require.NotEqual(t, k.ID, again.ID)
	})
}
