package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
)

// configBundle is a data dir and an environment of the test's own, so no
// variable or Temporal profile of the machine leaks into what Load sees.
type configBundle struct {
	dataDir string
	env     map[string]string
}

func setupConfig(t *testing.T) *configBundle {
	t.Helper()
	dir := t.TempDir()
	return &configBundle{dataDir: dir, env: map[string]string{
		// A profile file that does not exist: none of the machine's.
		"TEMPORAL_CONFIG_FILE": filepath.Join(dir, "no-temporal.toml"),
	}}
}

func (b *configBundle) load(t *testing.T, flags map[string]string) (app.Config, error) {
	t.Helper()
	all := map[string]string{"data-dir": b.dataDir}
	for k, v := range flags {
		all[k] = v
	}
	return app.Load(app.Inputs{Flags: all, LookupEnv: func(name string) (string, bool) {
		v, ok := b.env[name]
		return v, ok
	}})
}

func (b *configBundle) writeDevJSON(t *testing.T, info app.DevInfo) {
	t.Helper()
	require.NoError(t, app.WriteDevInfo(b.dataDir, info))
}

// settings returns the effective settings by name.
func settings(cfg app.Config) map[string]app.Setting {
	out := map[string]app.Setting{}
	for _, s := range cfg.Settings() {
		out[s.Name] = s
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	require.Equal(t, b.dataDir, cfg.DataDir)
	require.Equal(t, "sqlite://"+filepath.Join(b.dataDir, "integrations.db"), cfg.DatabaseURL)
	require.Equal(t, app.DefaultTemporalAddress, cfg.Temporal.Address)
	require.Equal(t, "default", cfg.Temporal.Namespace)
	require.Equal(t, "integrations", cfg.TaskQueue)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
	require.Empty(t, cfg.PublicURL, "no public URL but the dev stack's")
	require.Equal(t, "http://127.0.0.1:8090", cfg.SandboxURL)
	require.Equal(t, integration.DefaultPolicy(), cfg.Policy, "the worker policy defaults to design §2")
	require.Equal(t, app.RetentionConfig{Leads: 30 * 24 * time.Hour, PurgeInterval: time.Hour}, cfg.Retention, "lead payloads are kept 30 days")
	require.Equal(t, "https://api.hubapi.com", cfg.HubSpot.APIURL)
	require.Equal(t, "https://app.hubspot.com/oauth/authorize", cfg.HubSpot.AuthURL)
	require.Equal(t, "https://login.salesforce.com", cfg.Salesforce.LoginURL)
	require.Equal(t, "https://api.followupboss.com", cfg.FollowUpBoss.APIURL)
	require.Nil(t, cfg.Dev)
	for name, s := range settings(cfg) {
		if name == "data_dir" {
			require.Equal(t, app.SourceFlag, s.Source)
			continue
		}
		require.Equal(t, app.SourceDefault, s.Source, name)
	}
}

func TestLoadSources(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	b.writeDevJSON(t, app.DevInfo{
		TemporalAddress: "127.0.0.1:7999", Namespace: "devns", DatabaseURL: "sqlite:///dev/dev.db",
		SandboxURL: "http://127.0.0.1:8999", HTTPURL: "http://127.0.0.1:8888", TaskQueue: "dev-queue",
	})
	b.env["DATABASE_URL"] = "postgres://env@127.0.0.1/envdb"
	b.env["INTEGRATIONS_TASK_QUEUE"] = "env-queue"
	b.env["INTEGRATIONS_VALIDATION_INTERVAL"] = "90s"
	b.env["INTEGRATIONS_ATTENTION_FAILURES"] = "7"
	b.env["INTEGRATIONS_LEAD_RETENTION"] = "168h"
	b.env["INTEGRATIONS_HUBSPOT_CLIENT_ID"] = "hub-client"
	b.env["INTEGRATIONS_SANDBOX_URL"] = "" // empty is unset
	cfg, err := b.load(t, map[string]string{"task-queue": "flag-queue"})
	require.NoError(t, err)

	got := settings(cfg)
	for name, want := range map[string]struct {
		value  string
		source app.Source
	}{
		"task_queue":           {"flag-queue", app.SourceFlag},
		"database_url":         {"postgres://env@127.0.0.1/envdb", app.SourceEnv},
		"validation_interval":  {"1m30s", app.SourceEnv},
		"attention_failures":   {"7", app.SourceEnv},
		"lead_retention":       {"168h0m0s", app.SourceEnv},
		"lead_purge_interval":  {"1h0m0s", app.SourceDefault},
		"hubspot_client_id":    {"hub-client", app.SourceEnv},
		"temporal_address":     {"127.0.0.1:7999", app.SourceDevJSON},
		"temporal_namespace":   {"devns", app.SourceDevJSON},
		"sandbox_url":          {"http://127.0.0.1:8999", app.SourceDevJSON},
		"public_url":           {"http://127.0.0.1:8888", app.SourceDevJSON},
		"http_addr":            {"127.0.0.1:8080", app.SourceDefault},
		"setup_reminder_after": {"72h0m0s", app.SourceDefault},
	} {
		require.Equal(t, want.value, got[name].Value, name)
		require.Equal(t, want.source, got[name].Source, name)
		require.Equal(t, want.source, cfg.Source(name), name)
	}
	require.Equal(t, 90*time.Second, cfg.Policy.ValidationInterval)
	require.Equal(t, 7, cfg.Policy.Attention.Failures)
	require.Equal(t, 7*24*time.Hour, cfg.Retention.Leads)
	require.NotNil(t, cfg.Dev)
	require.Equal(t, "dev-queue", cfg.Dev.TaskQueue)
	require.False(t, cfg.OnDevStack(), "the database is not the dev stack's")
}

func TestLoadTemporalProfile(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	profile := filepath.Join(b.dataDir, "temporal.toml")
	require.NoError(t, os.WriteFile(profile, []byte("[profile.default]\naddress = \"127.0.0.5:7233\"\nnamespace = \"prof\"\napi_key = \"profile-secret\"\n"), 0o600))
	b.env["TEMPORAL_CONFIG_FILE"] = profile
	b.env["TEMPORAL_NAMESPACE"] = "env-ns"
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	got := settings(cfg)
	require.Equal(t, app.Setting{Name: "temporal_address", Value: "127.0.0.5:7233", Source: app.SourceProfile, Env: "TEMPORAL_ADDRESS", DevJSON: "temporal_address"}, got["temporal_address"])
	require.Equal(t, app.SourceEnv, got["temporal_namespace"].Source)
	require.Equal(t, "env-ns", cfg.Temporal.Namespace)
	require.Equal(t, "set (redacted)", got["temporal_api_key"].Value)
	require.Equal(t, "profile-secret", cfg.Temporal.APIKey)
}

func TestSettingsRedactSecrets(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	secrets := map[string]string{
		"INTEGRATIONS_ENCRYPTION_KEY":           "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=",
		"INTEGRATIONS_ENCRYPTION_OLD_KEYS":      "b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0=,b2xkZXIta2V5LW9sZGVyLWtleS1vbGRlci1rZXktISE=",
		"TEMPORAL_API_KEY":                      "temporal-api-key-value",
		"INTEGRATIONS_HUBSPOT_CLIENT_SECRET":    "hubspot-secret-value",
		"INTEGRATIONS_SALESFORCE_CLIENT_SECRET": "salesforce-secret-value",
	}
	for k, v := range secrets {
		b.env[k] = v
	}
	b.env["DATABASE_URL"] = "postgres://app:db-password-value@db.internal:5432/integrations"
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	got := settings(cfg)
	for _, name := range []string{"encryption_key", "encryption_old_keys", "temporal_api_key", "hubspot_client_secret", "salesforce_client_secret"} {
		require.True(t, got[name].Secret, name)
		require.Equal(t, "set (redacted)", got[name].Value, name)
		require.Equal(t, app.SourceEnv, got[name].Source, name)
	}
	require.Equal(t, "not set", got["followupboss_system_key"].Value)
	require.True(t, got["followupboss_system_key"].Secret)
	require.Equal(t, "postgres://app:xxxxx@db.internal:5432/integrations", got["database_url"].Value)

	shown, err := json.Marshal(cfg.Settings())
	require.NoError(t, err)
	for _, v := range append([]string{"db-password-value"}, mapValues(secrets)...) {
		require.NotContains(t, string(shown), v)
	}
}

// TestRedactURL: a password is hidden whether the URL parses or not; a
// URL that does not parse has its whole user info masked.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://app:secret@db.internal:5432/integrations": "postgres://app:xxxxx@db.internal:5432/integrations",
		"postgres://app@db/x":               "postgres://app@db/x",
		"sqlite:///var/lib/integrations.db": "sqlite:///var/lib/integrations.db",
		"/var/lib/integrations.db":          "/var/lib/integrations.db",
		// Unparsable: '#' starts a fragment, so "u:p" would be the host.
		"postgres://u:p#ss@h/db":           "postgres://xxxxx@h/db",
		"postgres://u:p#ss@w@rd@h:5432/db": "postgres://xxxxx@h:5432/db",
		"postgres://u:p%zz@h/db":           "postgres://xxxxx@h/db",
		"u:p#ss@h/db":                      "xxxxx@h/db",
		// Parses, with the password cut into host, port and fragment.
		"postgres://u:1234#ss@h/db": "postgres://xxxxx@h/db",
		// Unparsable, and no user info to hide.
		"postgres://h:port/db": "postgres://h:port/db",
		// A password as a query parameter (lib/pq, pgx).
		"postgres://app@h/db?sslmode=disable&password=secret": "postgres://app@h/db?password=xxxxx&sslmode=disable",
		"postgres://h/db?sslpassword=secret":                  "postgres://h/db?sslpassword=xxxxx",
		"file:/tmp/x.db?_pragma=busy_timeout(5000)":           "file:/tmp/x.db?_pragma=busy_timeout(5000)",
	} {
		got := app.RedactURL(in)
		require.Equal(t, want, got, in)
		for _, secret := range []string{"secret", "p#ss", "ss@w", "1234"} {
			require.NotContains(t, got, secret, in)
		}
	}
}

// TestPublicURL: the public URL, where OAuth redirects come back to, has
// no default but the dev stack's (its own HTTP API, handed on by
// dev.json); a process without one refuses OAuth connect, saying to set
// it, and stores nothing.
func TestPublicURL(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	cfg, err := b.load(t, map[string]string{"http-addr": "0.0.0.0:8080"})
	require.NoError(t, err)
	require.Empty(t, cfg.PublicURL, "a listen address is no public URL")
	require.Equal(t, app.Setting{Name: "public_url", Value: "not set", Source: app.SourceDefault, Env: "INTEGRATIONS_PUBLIC_URL", DevJSON: "http_url"},
		settings(cfg)["public_url"], "as `integrations config` shows it")

	svc, err := app.New(t.Context(), cfg, app.WithMigrate())
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	require.Empty(t, svc.Starter.OAuthRedirectURL)
	id := "hubspot-acme"
	st, err := integration.New(integration.Spec{ID: id, OrgID: "acme", Kind: integration.KindCRM, Provider: "hubspot"}, time.Now())
	require.NoError(t, err)
	_, err = svc.Store.Project(t.Context(), st, integration.Created(st, "test"))
	require.NoError(t, err)
	_, err = svc.Starter.StartOAuth(t.Context(), id, "ops", false)
	require.ErrorContains(t, err, "OAuth connect is not configured here: set INTEGRATIONS_PUBLIC_URL")
	n, err := svc.Store.CountOAuthStates(t.Context(), id)
	require.NoError(t, err)
	require.Zero(t, n, "a refused connect stores no state")

	// Given: the callback is under it.
	b.env["INTEGRATIONS_PUBLIC_URL"] = "https://api.example.com/"
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	require.Equal(t, app.SourceEnv, cfg.Source("public_url"))
	given, err := app.New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(given.Close)
	require.Equal(t, "https://api.example.com/oauth/callback", given.Starter.OAuthRedirectURL)

	// The dev stack's own HTTP API, unless one is given (https with TLS).
	for _, tc := range []struct {
		env   map[string]string
		flags map[string]string
		want  string
		src   app.Source
	}{
		{want: "http://127.0.0.1:8080", src: app.SourceDev},
		{flags: map[string]string{"http-addr": "127.0.0.1:9090", "tls-cert": "c.pem", "tls-key": "k.pem"}, want: "https://127.0.0.1:9090", src: app.SourceDev},
		{env: map[string]string{"INTEGRATIONS_PUBLIC_URL": "https://dev.example.com"}, want: "https://dev.example.com", src: app.SourceEnv},
	} {
		b := setupConfig(t)
		for k, v := range tc.env {
			b.env[k] = v
		}
		flags := map[string]string{"data-dir": b.dataDir}
		for k, v := range tc.flags {
			flags[k] = v
		}
		cfg, err := app.Load(app.Inputs{Flags: flags, NoDevJSON: true, LookupEnv: func(name string) (string, bool) {
			v, ok := b.env[name]
			return v, ok
		}})
		require.NoError(t, err)
		require.NoError(t, app.DevConfig(&cfg, app.DevOptions{TemporalPort: 7233}))
		require.Equal(t, tc.want, cfg.PublicURL)
		require.Equal(t, tc.src, cfg.Source("public_url"))
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestLoadRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"INTEGRATIONS_SYNC_INTERVAL": "soon"}, "INTEGRATIONS_SYNC_INTERVAL"},
		{map[string]string{"INTEGRATIONS_SETUP_ABANDON_AFTER": "-1h"}, "INTEGRATIONS_SETUP_ABANDON_AFTER"},
		{map[string]string{"INTEGRATIONS_ATTENTION_FAILURES": "0"}, "INTEGRATIONS_ATTENTION_FAILURES"},
	} {
		b := setupConfig(t)
		for k, v := range tc.env {
			b.env[k] = v
		}
		_, err := b.load(t, nil)
		require.ErrorContains(t, err, tc.want)
	}

	b := setupConfig(t)
	require.NoError(t, os.WriteFile(app.DevInfoPath(b.dataDir), []byte("{not json"), 0o600))
	_, err := b.load(t, nil)
	require.ErrorContains(t, err, filepath.Join(b.dataDir, "dev.json"), "a malformed dev.json names its file")
}

func TestEnvironReproducesTheConfig(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	b.env["INTEGRATIONS_ENCRYPTION_KEY"] = "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk="
	b.env["INTEGRATIONS_SYNC_BACKOFF_MAX"] = "2m"
	cfg, err := b.load(t, map[string]string{"database-url": "postgres://x@127.0.0.1/y", "task-queue": "q"})
	require.NoError(t, err)

	child := setupConfig(t)
	for k, v := range cfg.Environ() {
		child.env[k] = v
	}
	again, err := app.Load(app.Inputs{LookupEnv: func(name string) (string, bool) {
		v, ok := child.env[name]
		return v, ok
	}})
	require.NoError(t, err)
	require.Equal(t, cfg.Settings(), withSources(again.Settings(), cfg.Settings()), "the child sees every value of the parent")
	require.Equal(t, cfg.EncryptionKey, again.EncryptionKey)
	require.Equal(t, cfg.Policy, again.Policy)
}

// withSources copies the sources of want into got, for comparing values.
func withSources(got, want []app.Setting) []app.Setting {
	for i := range got {
		got[i].Source = want[i].Source
	}
	return got
}

func TestMaxDeliveryAttempts(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	require.Equal(t, activities.DefaultMaxDeliveryAttempts, cfg.MaxDeliveryAttempts)
	require.Equal(t, app.SourceDefault, cfg.Source("max_delivery_attempts"))

	b.env["INTEGRATIONS_MAX_DELIVERY_ATTEMPTS"] = "3"
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	require.Equal(t, 3, cfg.MaxDeliveryAttempts)
	require.Equal(t, "3", cfg.Environ()["INTEGRATIONS_MAX_DELIVERY_ATTEMPTS"], "children of the process get it too")

	for _, bad := range []string{"0", "-1", "ten"} {
		b.env["INTEGRATIONS_MAX_DELIVERY_ATTEMPTS"] = bad
		_, err := b.load(t, nil)
		require.ErrorContains(t, err, "INTEGRATIONS_MAX_DELIVERY_ATTEMPTS", bad)
	}
}

func TestOverrideRecordsItsSource(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	require.NoError(t, cfg.Override("sandbox_url", "http://127.0.0.1:9", app.SourceFlag))
	require.Equal(t, "http://127.0.0.1:9", cfg.SandboxURL)
	require.Equal(t, app.SourceFlag, cfg.Source("sandbox_url"))
	require.ErrorContains(t, cfg.Override("no_such_setting", "x", app.SourceFlag), "no_such_setting")
	require.Error(t, cfg.Override("sync_interval", "sometime", app.SourceFlag))
}

func TestEverySettingIsDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	b := setupConfig(t)
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	for _, s := range cfg.Settings() {
		if s.Env != "" {
			require.True(t, strings.Contains(string(readme), s.Env), "README's Configuration section names %s", s.Env)
		}
	}
}
