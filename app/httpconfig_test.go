package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/app"
)

// TestLoadHTTPSettings: the HTTP API's listeners and limits, each from a
// flag or its variable, with the defaults of DefaultHTTPConfig.
func TestLoadHTTPSettings(t *testing.T) {
	t.Parallel()
	b := setupConfig(t)
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	require.Equal(t, app.DefaultHTTPConfig(), cfg.HTTP, "the defaults")
	require.False(t, cfg.HTTP.TLS())

	b.env["INTEGRATIONS_HTTP_READ_TIMEOUT"] = "5s"
	b.env["INTEGRATIONS_HTTP_WRITE_TIMEOUT"] = "2m"
	b.env["INTEGRATIONS_HTTP_IDLE_TIMEOUT"] = "1m"
	b.env["INTEGRATIONS_HTTP_READ_HEADER_TIMEOUT"] = "2s"
	b.env["INTEGRATIONS_HTTP_MAX_HEADER_BYTES"] = "8192"
	b.env["INTEGRATIONS_COMMAND_TIMEOUT"] = "45s"
	b.env["INTEGRATIONS_INTAKE_RATE"] = "5"
	b.env["INTEGRATIONS_INTAKE_BURST"] = "10"
	b.env["INTEGRATIONS_INTAKE_ADDR"] = "0.0.0.0:9443"
	cfg, err = b.load(t, map[string]string{"tls-cert": "/etc/tls/cert.pem", "tls-key": "/etc/tls/key.pem", "http-addr": "10.0.0.1:8443"})
	require.NoError(t, err)
	require.Equal(t, app.HTTPConfig{
		IntakeAddr: "0.0.0.0:9443", TLSCert: "/etc/tls/cert.pem", TLSKey: "/etc/tls/key.pem",
		ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute,
		MaxHeaderBytes: 8192, CommandTimeout: 45 * time.Second, IntakeRate: 5, IntakeBurst: 10,
	}, cfg.HTTP)
	require.Empty(t, cfg.PublicURL, "a listen address is no public URL")
	require.Equal(t, app.SourceFlag, cfg.Source("tls_cert"))
	require.Equal(t, app.SourceEnv, cfg.Source("intake_rate"))

	for _, bad := range []map[string]string{
		{"INTEGRATIONS_INTAKE_RATE": "0"}, {"INTEGRATIONS_INTAKE_BURST": "-3"},
		{"INTEGRATIONS_HTTP_READ_TIMEOUT": "forever"}, {"INTEGRATIONS_COMMAND_TIMEOUT": "0s"},
	} {
		b := setupConfig(t)
		for k, v := range bad {
			b.env[k] = v
		}
		_, err := b.load(t, nil)
		for k := range bad {
			require.ErrorContains(t, err, k)
		}
	}
}

// TestHTTPConfigOr: a hand-built Config's zero limits take the defaults.
func TestHTTPConfigOr(t *testing.T) {
	t.Parallel()
	got := app.HTTPConfig{ReadTimeout: time.Second, IntakeAddr: "127.0.0.1:0"}.Or(app.DefaultHTTPConfig())
	want := app.DefaultHTTPConfig()
	want.ReadTimeout, want.IntakeAddr = time.Second, "127.0.0.1:0"
	require.Equal(t, want, got)
}
