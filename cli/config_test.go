package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// configOutput is `integrations config --output json`.
type configOutput struct {
	Settings              map[string]app.Setting `json:"settings"`
	CredentialsKey        string                 `json:"credentials_key"`
	CredentialsKeyID      string                 `json:"credentials_key_id"`
	CredentialsKeyProblem string                 `json:"credentials_key_problem"`
}

// runIn runs the CLI with a data dir of its own.
func runIn(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"integrations", "--data-dir", dataDir}, args...), &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func TestConfigShowsSourcesAndRedacts(t *testing.T) {
	// t.Setenv: the environment is one of the sources under test, so this
	// test cannot run in parallel with the others.
	dir := t.TempDir()
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(dir, "no-temporal.toml"))
	const envKey = "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk="
	t.Setenv(credential.KeyEnv, envKey)
	t.Setenv("INTEGRATIONS_SALESFORCE_CLIENT_SECRET", "salesforce-secret-value")
	t.Setenv("INTEGRATIONS_SETUP_REMINDER_AFTER", "2h")
	require.NoError(t, app.WriteDevInfo(dir, app.DevInfo{
		TemporalAddress: "127.0.0.1:7999", Namespace: "default", TaskQueue: "dev-queue",
		DatabaseURL: "postgres://dev:dev-db-password@127.0.0.1:5432/dev", SandboxURL: "http://127.0.0.1:8999",
	}))

	r := runIn(t, dir, "config", "--task-queue", "flag-queue", "--output", "json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var got configOutput
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	for name, want := range map[string]app.Setting{
		"data_dir":                 {Value: dir, Source: app.SourceFlag},
		"task_queue":               {Value: "flag-queue", Source: app.SourceFlag},
		"setup_reminder_after":     {Value: "2h0m0s", Source: app.SourceEnv},
		"encryption_key":           {Value: "set (redacted)", Source: app.SourceEnv},
		"salesforce_client_secret": {Value: "set (redacted)", Source: app.SourceEnv},
		"hubspot_client_secret":    {Value: "not set", Source: app.SourceDefault},
		"temporal_address":         {Value: "127.0.0.1:7999", Source: app.SourceDevJSON},
		"database_url":             {Value: "postgres://dev:xxxxx@127.0.0.1:5432/dev", Source: app.SourceDevJSON},
		"validation_interval":      {Value: "1h0m0s", Source: app.SourceDefault},
	} {
		require.Equal(t, want.Value, got.Settings[name].Value, name)
		require.Equal(t, want.Source, got.Settings[name].Source, name)
	}
	require.Equal(t, "env", got.CredentialsKey)
	key, err := credential.ParseKey(envKey)
	require.NoError(t, err)
	keyID := credential.KeyIDOf(key).String()
	require.Equal(t, keyID, got.CredentialsKeyID, "the key's ID, which is not the key, is shown")
	require.Empty(t, got.CredentialsKeyProblem)

	text := runIn(t, dir, "config")
	require.Equal(t, cli.ExitOK, text.code, text.stderr)
	require.Regexp(t, `(?m)^task_queue\s+dev-queue\s+dev\.json\s`, text.stdout)
	require.Regexp(t, `(?m)^encryption_key\s+set \(redacted\)\s+env\s`, text.stdout)
	require.Contains(t, text.stdout, "credentials key: INTEGRATIONS_ENCRYPTION_KEY (key ID "+keyID+")")

	// The same key against a dev stack that seals with another: the source
	// is still the environment, and config says a worker would refuse it.
	require.NoError(t, app.WriteDevInfo(dir, app.DevInfo{
		TemporalAddress: "127.0.0.1:7999", Namespace: "default", TaskQueue: "dev-queue",
		DatabaseURL: "postgres://dev:dev-db-password@127.0.0.1:5432/dev", KeyID: "k-not-this-one",
	}))
	mismatch := runIn(t, dir, "config", "--output", "json")
	require.Equal(t, cli.ExitOK, mismatch.code, mismatch.stderr)
	var mis configOutput
	require.NoError(t, json.Unmarshal([]byte(mismatch.stdout), &mis), mismatch.stdout)
	require.Equal(t, "env", mis.CredentialsKey)
	require.Empty(t, mis.CredentialsKeyID)
	require.True(t, strings.HasPrefix(mis.CredentialsKeyProblem, "INTEGRATIONS_ENCRYPTION_KEY (key ID "+keyID+") is not the key of the dev stack"), mis.CredentialsKeyProblem)
	mismatchText := runIn(t, dir, "config")
	require.Equal(t, cli.ExitOK, mismatchText.code, mismatchText.stderr)
	require.Contains(t, mismatchText.stdout, "credentials key: INTEGRATIONS_ENCRYPTION_KEY, refused: INTEGRATIONS_ENCRYPTION_KEY (key ID "+keyID+") is not the key of the dev stack")

	for _, out := range []string{r.stdout, text.stdout, mismatch.stdout, mismatchText.stdout} {
		for _, secret := range []string{"c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=", "salesforce-secret-value", "dev-db-password"} {
			require.NotContains(t, out, secret)
		}
	}
}

// TestNoKeyNoCredentials is the stack pointed at by environment from
// another data dir: without INTEGRATIONS_ENCRYPTION_KEY the CLI refuses to
// seal credentials, saying what to set, and stores none; commands that
// need no key still work.
func TestNoKeyNoCredentials(t *testing.T) {
	// t.Setenv: the CLI is pointed at the stack by TEMPORAL_ADDRESS and
	// DATABASE_URL, so this test cannot run in parallel with the others.
	db := testenv.Database{Name: "postgres", URL: testenv.PostgresURL(t)}
	b := setup(t, db)
	id := testenv.ID("crm")
	b.ok(t, "create", "crm", "--org", "acme", "--provider", "sandbox", "--id", id)
	key := b.sandboxKey(t)
	creds := b.credentialsFile(t, key)

	info, err := app.ReadDevInfo(b.stack.DataDir)
	require.NoError(t, err)
	t.Setenv("TEMPORAL_ADDRESS", info.TemporalAddress)
	t.Setenv("DATABASE_URL", info.DatabaseURL)
	t.Setenv("INTEGRATIONS_TASK_QUEUE", info.TaskQueue)
	t.Setenv("INTEGRATIONS_SANDBOX_URL", info.SandboxURL)
	t.Setenv(credential.KeyEnv, "")

	other := t.TempDir()
	// Another dev stack's data dir: its key is not this stack's either.
	elsewhere := t.TempDir()
	require.NoError(t, app.WriteDevInfo(elsewhere, app.DevInfo{TemporalAddress: "127.0.0.1:7999", DatabaseURL: "sqlite://" + elsewhere + "/integrations.db"}))
	for _, dir := range []string{other, elsewhere} {
		r := runIn(t, dir, "authorize", id, "--credentials-file", creds)
		require.Equal(t, cli.ExitError, r.code, "stdout %s stderr %s", r.stdout, r.stderr)
		require.Empty(t, r.stdout)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		require.Contains(t, r.stderr, "no encryption key: set INTEGRATIONS_ENCRYPTION_KEY to the key the workers use")
		require.NotContains(t, r.stderr, "cannot decrypt")
		require.Empty(t, b.stack.StoredVersions(t, id), "no credentials may be stored")
		_, err := os.Stat(filepath.Join(dir, "encryption.key"))
		require.ErrorIs(t, err, os.ErrNotExist, "no key appears by accident")

		// Commands that need no key do not need one.
		st := runIn(t, dir, "status", id, "-o", "json")
		require.Equal(t, cli.ExitOK, st.code, st.stderr)
		var v integration.View
		require.NoError(t, json.Unmarshal([]byte(st.stdout), &v))
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
		for _, args := range [][]string{{"list", "--org", "acme"}, {"events", id}, {"config"}, {"status", id, "--live"}} {
			r := runIn(t, dir, args...)
			require.Equal(t, cli.ExitOK, r.code, "%v: %s", args, r.stderr)
		}
	}

	// With the workers' key it works from anywhere.
	kr, err := os.ReadFile(filepath.Join(b.stack.DataDir, "encryption.key"))
	require.NoError(t, err)
	t.Setenv(credential.KeyEnv, strings.TrimSpace(string(kr)))
	r := runIn(t, other, "authorize", id, "--credentials-file", creds, "-o", "json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var v integration.View
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingFinish)
}
