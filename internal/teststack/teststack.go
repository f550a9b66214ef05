// Package teststack assembles the whole service for end-to-end tests: a
// real Temporal dev server (shared per test binary), a fresh database, the
// sandbox CRM, and a worker on a task queue of the test's own, so parallel
// tests never see each other's workflows.
package teststack

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm/followupboss/followupbossfake"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
	"github.com/acme/integrations/crm/salesforce/salesforcefake"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
)

// Stack is one test's running service.
type Stack struct {
	DB         testenv.Database
	Store      *store.Store
	Temporal   client.Client
	TaskQueue  string
	Sandbox    *sandboxfake.Client
	SandboxURL string
	// The fakes of the real CRMs the stack's connectors talk to, through
	// their control APIs.
	HubSpot      *hubspotfake.Client
	Salesforce   *salesforcefake.Client
	FollowUpBoss *followupbossfake.Client
	// HTTPURL is the stack's HTTP API (the OAuth callback's server).
	HTTPURL string
	Keyring *credential.Keyring
	Starter *starter.Starter
	// DataDir holds dev.json and encryption.key, as `integrations dev`
	// leaves them, so CLI commands run with --data-dir find this stack.
	DataDir string
	// Logs collects everything the worker and its client logged.
	Logs *SyncBuffer
	// Service is the assembled service the fields above come from.
	Service *app.Service
}

// Options tune a stack.
type Options struct {
	// Config is the per-integration overrides the Starter gives the
	// integrations it creates.
	Config workflows.Config
	// MaxDeliveryAttempts is the worker's limit of failures of its own
	// before a lead is set aside (0: the default).
	MaxDeliveryAttempts int
}

// New starts a stack for t on db; everything stops when t ends. It is
// assembled by app.New, as `integrations dev` is, and leaves dev.json and
// encryption.key in DataDir as dev does.
func New(t *testing.T, db testenv.Database, opts Options) *Stack {
	t.Helper()
	server := testenv.DevServer(t, workflows.SearchAttributes(integration.State{}))
	ctx := context.Background()

	// The HTTP API's address is chosen first: the fakes' consent pages and
	// the OAuth callback need the public URL before anything starts.
	httpAddr := freeAddr(t)
	publicURL := "http://" + httpAddr
	fakes, err := app.StartFakes(ctx, app.FakeAddrs{Sandbox: "127.0.0.1:0", HubSpot: "127.0.0.1:0", Salesforce: "127.0.0.1:0", FollowUpBoss: "127.0.0.1:0"},
		"", publicURL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(fakes.Stop)

	logs := &SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tc, err := client.NewClientFromExisting(server.Client(), client.Options{Logger: log.NewStructuredLogger(logger)})
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	cfg := app.Config{
		DataDir: t.TempDir(), DatabaseURL: db.URL, TaskQueue: testenv.TaskQueue(t),
		Temporal:            app.TemporalConfig{Address: server.FrontendHostPort(), Namespace: app.DefaultNamespace},
		MaxDeliveryAttempts: opts.MaxDeliveryAttempts,
		HTTPAddr:            httpAddr, PublicURL: publicURL,
		Salesforce: app.SalesforceConfig{APIVersion: "v67.0"},
	}
	require.NoError(t, fakes.Configure(&cfg))
	svc, err := app.New(ctx, cfg, app.WithLogger(logger), app.WithTemporalClient(tc), app.WithMigrate(),
		app.WithDevKeyring(), app.WithWorker(sdkworker.Options{}), app.WithNudger(20*time.Millisecond, nil), app.WithHTTP())
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	require.NoError(t, svc.Start(ctx))
	svc.Starter.Config = opts.Config

	require.NoError(t, app.WriteDevInfo(cfg.DataDir, svc.DevInfo("")))

	httpClient := &http.Client{Timeout: 10 * time.Second}
	return &Stack{
		DB: db, Store: svc.Store, Temporal: tc, TaskQueue: cfg.TaskQueue,
		Sandbox: sandboxfake.NewClient(fakes.SandboxURL, httpClient), SandboxURL: fakes.SandboxURL,
		HubSpot:      hubspotfake.NewClient(fakes.HubSpotURL, httpClient),
		Salesforce:   salesforcefake.NewClient(fakes.SalesforceURL, httpClient),
		FollowUpBoss: followupbossfake.NewClient(fakes.FollowUpBossURL, httpClient),
		HTTPURL:      svc.HTTP.URL(),
		Keyring:      svc.Keyring, DataDir: cfg.DataDir, Logs: logs, Starter: svc.Starter, Service: svc,
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// Credentials returns a sandbox credentials document for an API key.
func Credentials(apiKey string) []byte {
	b, _ := json.Marshal(map[string]string{"api_key": apiKey})
	return b
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StoredVersions lists every row of crm_credentials the integration has,
// by version, discarded candidates included, read with SQL of its own:
// what a test checks to show that nothing was stored, or that a delete
// left nothing behind.
func (s *Stack) StoredVersions(t testing.TB, integrationID string) []int {
	t.Helper()
	return s.rowsOf(t, `SELECT version FROM crm_credentials WHERE integration_id = ? ORDER BY version`, integrationID)
}

// IntakeTokenRows counts the integration's rows in intake_tokens, read
// with SQL of its own.
func (s *Stack) IntakeTokenRows(t testing.TB, integrationID string) int {
	t.Helper()
	return len(s.rowsOf(t, `SELECT 1 FROM intake_tokens WHERE integration_id = ?`, integrationID))
}

func (s *Stack) rowsOf(t testing.TB, query, integrationID string) []int {
	t.Helper()
	// A pool of its own, closed when t ends, so what is read is what the
	// tables hold, not what the store makes of them.
	db := testenv.OpenSQL(t, s.DB.URL)
	var out []int
	require.NoError(t, db.Select(&out, db.Rebind(query), integrationID))
	return out
}
