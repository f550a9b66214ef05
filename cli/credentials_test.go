package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
)

// TestCredentialsRewrap rotates the key of a stack through the CLI: with a
// new active key and the old one among the old keys, `credentials rewrap`
// re-seals every credential, after which each opens with the new key
// alone.
func TestCredentialsRewrap(t *testing.T) {
	// t.Setenv: the keys come from the environment, so this test cannot
	// run in parallel with the others (nor its databases with each other).
	for _, db := range []testenv.Database{
		{Name: "postgres", URL: testenv.PostgresURL(t)},
		{Name: "sqlite", URL: testenv.SQLiteURL(t)},
	} {
		t.Run(db.Name, func(t *testing.T) {
			b := setup(t, db)
			// Two CRM integrations authorized under the stack's key: one
			// good key (current) and one refused (discarded) each.
			var ids []string
			for range 2 {
				id := testenv.ID("crm")
				ids = append(ids, id)
				b.ok(t, "create", "crm", "--org", "acme", "--provider", "sandbox", "--id", id)
				b.ok(t, "authorize", id, "--credentials-file", b.credentialsFile(t, b.sandboxKey(t, "contacts.read")))
				b.ok(t, "authorize", id, "--credentials-file", b.credentialsFile(t, b.sandboxKey(t)))
			}
			oldKey, err := os.ReadFile(filepath.Join(b.stack.DataDir, "encryption.key"))
			require.NoError(t, err)
			newKey := make([]byte, credential.KeySize)
			_, err = rand.Read(newKey)
			require.NoError(t, err)
			newB64 := base64.StdEncoding.EncodeToString(newKey)

			t.Setenv(credential.KeyEnv, newB64)
			t.Setenv(credential.OldKeysEnv, strings.TrimSpace(string(oldKey)))
			// On the dev stack of the data dir, whose worker seals with
			// the old key, a process with another active key refuses to
			// start: what it sealed, that worker could not open.
			r := b.run(t, "credentials", "rewrap")
			require.Equal(t, cli.ExitError, r.code, r.stdout)
			require.Contains(t, r.stderr, "unset "+credential.KeyEnv)
			for _, id := range ids {
				cred, err := b.stack.Store.CurrentCredential(context.Background(), id)
				require.NoError(t, err)
				_, err = b.stack.Keyring.Open(cred.Ciphertext, id, cred.Version)
				require.NoError(t, err, "a refused rewrap changes nothing")
			}
			// Rotation as production does it: a process with the keys in
			// its environment, against the database, apart from the dev
			// stack of a data dir.
			apart := t.TempDir()
			rewrap := func(args ...string) result {
				return runIn(t, apart, append([]string{"--database-url", b.stack.DB.URL, "credentials", "rewrap"}, args...)...)
			}
			r = rewrap("-o", "json")
			require.Equal(t, cli.ExitOK, r.code, r.stderr)
			var report starter.RewrapReport
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &report), r.stdout)
			require.Equal(t, starter.RewrapReport{KeyID: credential.KeyIDOf(newKey).String(), Resealed: 2}, report)
			for _, out := range []string{r.stdout, r.stderr} {
				require.NotContains(t, out, newB64)
				require.NotContains(t, out, strings.TrimSpace(string(oldKey)))
			}

			// The old key removed: everything opens with the new key alone,
			// and a second rewrap has nothing to do.
			t.Setenv(credential.OldKeysEnv, "")
			r = rewrap()
			require.Equal(t, cli.ExitOK, r.code, r.stderr)
			text := r.stdout
			require.Regexp(t, `(?m)^already current\s+2$`, text)
			require.Regexp(t, `(?m)^resealed\s+0$`, text)
			require.Regexp(t, `(?m)^failed\s+0$`, text)
			alone, err := credential.NewKeyring(newKey)
			require.NoError(t, err)
			for _, id := range ids {
				cred, err := b.stack.Store.CurrentCredential(context.Background(), id)
				require.NoError(t, err)
				require.Equal(t, 2, cred.Version)
				raw, err := alone.Open(cred.Ciphertext, id, cred.Version)
				require.NoError(t, err, id)
				require.Contains(t, string(raw), "api_key")
			}

			// A keyring that lacks the key of what is stored: reported per
			// version, exit 1, nothing changed.
			other := make([]byte, credential.KeySize)
			t.Setenv(credential.KeyEnv, base64.StdEncoding.EncodeToString(other))
			r = rewrap()
			require.Equal(t, cli.ExitError, r.code, r.stdout)
			require.Regexp(t, `(?m)^failed\s+2$`, r.stdout)
			require.Contains(t, r.stdout, credential.KeyIDOf(newKey).String(), "names the key that is missing")
			require.Contains(t, r.stderr, credential.OldKeysEnv)
			for _, id := range ids {
				cred, err := b.stack.Store.CurrentCredential(context.Background(), id)
				require.NoError(t, err)
				_, err = alone.Open(cred.Ciphertext, id, cred.Version)
				require.NoError(t, err, "left as it was")
			}

			r = rewrap("extra")
			require.Equal(t, cli.ExitUsage, r.code)
		})
	}
}
