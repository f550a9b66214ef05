// Package teststack assembles the whole service for end-to-end tests: a
// real Temporal dev server (shared per test binary), a fresh database, the
// sandbox CRM, and a worker on a task queue of the test's own, so parallel
// tests never see each other's workflows.
package teststack

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/worker"
	"github.com/acme/integrations/workflows"
)

// Stack is one test's running service.
type Stack struct {
	DB         testenv.Database
	Store      *store.Store
	Temporal   client.Client
	TaskQueue  string
	Sandbox    *sandbox.Client
	SandboxURL string
	Keyring    *credential.Keyring
	Starter    *starter.Starter
	// DataDir holds dev.json and encryption.key, as `integrations dev`
	// leaves them, so CLI commands run with --data-dir find this stack.
	DataDir string
	// Logs collects everything the worker and its client logged.
	Logs *SyncBuffer
}

// Options tune a stack.
type Options struct {
	Config workflows.Config
}

// New starts a stack for t on db; everything stops when t ends.
func New(t *testing.T, db testenv.Database, opts Options) *Stack {
	t.Helper()
	server := testenv.DevServer(t, workflows.SearchAttributes(integration.State{}))
	ctx := context.Background()

	st, err := store.Open(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(ctx))

	dataDir := t.TempDir()
	key, err := credential.LoadOrCreateKeyFile(filepath.Join(dataDir, "encryption.key"))
	require.NoError(t, err)
	kr, err := credential.NewKeyring(key)
	require.NoError(t, err)

	sb, err := sandbox.NewServer("")
	require.NoError(t, err)
	sandboxHTTP := httptest.NewServer(sb.Handler())
	t.Cleanup(sandboxHTTP.Close)
	httpClient := &http.Client{Timeout: 10 * time.Second}

	logs := &SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tc, err := client.NewClientFromExisting(server.Client(), client.Options{Logger: log.NewStructuredLogger(logger)})
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	queue := testenv.TaskQueue(t)
	connectors := crm.NewRegistry(sandbox.NewConnector(sandboxHTTP.URL, httpClient))
	acts := &activities.Activities{Store: st, Connectors: connectors, Keyring: kr, Logger: logger}
	w := worker.New(tc, queue, acts, integration.DefaultPolicy(), sdkworker.Options{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	info, err := json.Marshal(map[string]string{
		"temporal_address": server.FrontendHostPort(), "namespace": "default",
		"database_url": db.URL, "sandbox_url": sandboxHTTP.URL, "task_queue": queue,
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "dev.json"), info, 0o600))

	nudgeCtx, stopNudger := context.WithCancel(context.Background())
	t.Cleanup(stopNudger)
	nudger := starter.NewNudger(tc, 20*time.Millisecond, logger.Warn)
	go nudger.Run(nudgeCtx)

	return &Stack{
		DB: db, Store: st, Temporal: tc, TaskQueue: queue,
		Sandbox: sandbox.NewClient(sandboxHTTP.URL, httpClient), SandboxURL: sandboxHTTP.URL,
		Keyring: kr, DataDir: dataDir, Logs: logs,
		Starter: &starter.Starter{Temporal: tc, Store: st, Keyring: kr, Connectors: connectors, Config: opts.Config, TaskQueue: queue, Nudger: nudger},
	}
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
