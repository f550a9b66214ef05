package main

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/proc"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
)

// TestMain stops the shared Temporal dev server after the tests.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// Bounds of the crash run.
const (
	// crashMinKills is how many times the worker is SIGKILLed at least.
	crashMinKills = 6
	// crashFlowFor is how long leads flow at least; the kills happen
	// while they do.
	crashFlowFor = 20 * time.Second
	// crashKillEvery bounds the random time a worker lives before it is
	// killed: at least the minimum, less than minimum plus spread.
	crashKillEveryMin    = time.Second
	crashKillEverySpread = 3 * time.Second
	// crashLeadPause is the pause of each lead sender between leads, so
	// the flow is steady rather than a flood the drain then waits for.
	crashLeadPause = 10 * time.Millisecond
	// crashCRMLatency is how long the sandbox takes per batch: kills then
	// often land while a push is in flight, after the CRM has taken the
	// batch but before the worker recorded it, so the retried batch
	// pushes the same leads again.
	crashCRMLatency = 30 * time.Millisecond
	// crashDrainTimeout is how long every CRM may take to deliver the
	// backlog after intake stopped. An activity that a killed worker had
	// started is only retried after its start-to-close timeout (2 min
	// for a delivery), so this must exceed that.
	crashDrainTimeout = 90 * time.Second
)

// crashConfig makes the safety timer and backoff short, so a nudge lost
// with a killed worker costs seconds, and continues workflows as new often
// so some kills land around a continue-as-new.
var crashConfig = workflows.Config{
	SyncInterval:       2 * time.Second,
	SyncBackoffInitial: 200 * time.Millisecond,
	SyncBackoffMax:     time.Second,
	MaxHistoryEvents:   400,
}

// crashBundle is the stack of a crash run: Temporal, Postgres and the
// sandbox CRM in the test process, the worker a child process of the built
// binary that the test kills and restarts.
type crashBundle struct {
	ctx     context.Context
	dir     string
	bin     string
	env     []string
	store   *store.Store
	starter *starter.Starter
	sandbox *sandboxfake.Client
	org     string

	worker  *workerProcess
	started int // workers started, for their log names
	kills   int
	// nudgesLost counts nudges the test's Nudger could not deliver.
	nudgesLost atomic.Int64
}

// workerProcess is one `integrations worker` child.
type workerProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func setupCrash(t *testing.T) *crashBundle {
	t.Helper()
	server := testenv.DevServer(t, workflows.SearchAttributes(integration.State{}))
	dbURL := testenv.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)

	sb, err := sandboxfake.NewServer("")
	require.NoError(t, err)
	sandboxHTTP := httptest.NewServer(sb.Handler())
	t.Cleanup(sandboxHTTP.Close)

	tc, err := client.NewClientFromExisting(server.Client(), client.Options{Logger: testenv.QuietLogger()})
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "integrations")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	// One key shared by the test's starter (which seals credentials) and
	// every worker (which opens them), as production shares it.
	key := make([]byte, credential.KeySize)
	_, err = cryptorand.Read(key)
	require.NoError(t, err)
	// The data dir is the test's own: nothing may fall back to a dev
	// stack's state.
	cfg := app.Config{
		DataDir: dir, DatabaseURL: dbURL, TaskQueue: testenv.TaskQueue(t), SandboxURL: sandboxHTTP.URL,
		EncryptionKey: base64.StdEncoding.EncodeToString(key),
		Temporal:      app.TemporalConfig{Address: server.FrontendHostPort(), Namespace: app.DefaultNamespace},
	}
	b := &crashBundle{ctx: ctx, dir: dir, bin: bin, org: testenv.ID("org"),
		sandbox: sandboxfake.NewClient(sandboxHTTP.URL, &http.Client{Timeout: 10 * time.Second})}
	svc, err := app.New(ctx, cfg, app.WithTemporalClient(tc), app.WithMigrate(), app.WithKeyring(),
		app.WithNudger(20*time.Millisecond, func(string, ...any) { b.nudgesLost.Add(1) }))
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	require.NoError(t, svc.Start(ctx))
	b.store, b.starter = svc.Store, svc.Starter
	b.starter.Config = crashConfig

	// The workers run with exactly this configuration; no Temporal profile
	// of the machine may point them elsewhere.
	set := cfg.Environ()
	set["TEMPORAL_CONFIG_FILE"] = filepath.Join(dir, "no-temporal-config.toml")
	b.env = proc.ChildEnv(set)

	// The current worker, whichever it is by then, dies with the test; a
	// failed run shows the end of its log.
	t.Cleanup(func() {
		if b.worker == nil {
			return
		}
		b.worker.kill()
		if t.Failed() {
			t.Logf("the end of the last worker's log (%s):\n%s", b.worker.logPath, tail(b.worker.logPath, 30))
		}
	})
	return b
}

// startWorker starts a new `integrations worker` child.
func (b *crashBundle) startWorker(t *testing.T) {
	t.Helper()
	b.started++
	logPath := filepath.Join(b.dir, fmt.Sprintf("worker-%d.log", b.started))
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(b.bin, "worker")
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = b.env, b.dir, logFile, logFile
	require.NoError(t, cmd.Start())
	w := &workerProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		w.waitErr = cmd.Wait()
		close(w.done)
	}()
	b.worker = w
}

// restartWorker SIGKILLs the worker, as a crashed machine would stop it:
// no graceful shutdown, in-flight activities and workflow tasks abandoned.
// Then it starts a new one.
func (b *crashBundle) restartWorker(t *testing.T) {
	t.Helper()
	b.requireWorkerAlive(t)
	require.NoError(t, b.worker.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-b.worker.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("worker pid %d did not die within 10s of SIGKILL", b.worker.cmd.Process.Pid)
	}
	b.kills++
	b.startWorker(t)
}

// requireWorkerAlive fails when the worker exited by itself.
func (b *crashBundle) requireWorkerAlive(t *testing.T) {
	t.Helper()
	select {
	case <-b.worker.done:
		t.Fatalf("the worker exited by itself (%v); the end of its log:\n%s", b.worker.waitErr, tail(b.worker.logPath, 30))
	default:
	}
}

func (w *workerProcess) kill() {
	_ = w.cmd.Process.Kill()
	<-w.done
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// activeLead creates a lead integration of the org and activates it after
// one test lead, which reaches no CRM.
func (b *crashBundle) activeLead(t *testing.T) string {
	t.Helper()
	id := testenv.ID("lead")
	_, _, err := b.starter.CreateLead(b.ctx, integration.Spec{ID: id, OrgID: b.org, Provider: "zillow", ExpectedSource: "Z"}, "test")
	require.NoError(t, err)
	_, err = b.starter.Intake(b.ctx, id, starter.Lead{ExternalID: "setup-test", Source: "Z"})
	require.NoError(t, err)
	st, err := b.starter.Command(b.ctx, id, integration.EventCompleteSetup, "test", "")
	require.NoError(t, err)
	require.Equal(t, integration.StatusActive, st.Status)
	return id
}

// activeCRM creates a CRM integration of the org on a fresh sandbox
// account, takes it to active and returns its ID and the account's key.
func (b *crashBundle) activeCRM(t *testing.T) (string, string) {
	t.Helper()
	id := testenv.ID("crm")
	acct, err := b.sandbox.CreateAccount(b.ctx, nil)
	require.NoError(t, err)
	_, err = b.starter.Create(b.ctx, integration.Spec{ID: id, OrgID: b.org, Kind: integration.KindCRM, Provider: "sandbox"}, "test")
	require.NoError(t, err)
	_, err = b.starter.Authorize(b.ctx, id, []byte(fmt.Sprintf(`{"api_key":%q}`, acct.APIKey)), "test")
	require.NoError(t, err)
	st, err := b.starter.Command(b.ctx, id, integration.EventCompleteSetup, "test", "")
	require.NoError(t, err)
	require.Equal(t, integration.StatusActive, st.Status)
	latency := int(crashCRMLatency / time.Millisecond)
	_, err = b.sandbox.UpdateFaults(b.ctx, acct.APIKey, sandboxfake.FaultsUpdate{LatencyMS: &latency})
	require.NoError(t, err)
	return id, acct.APIKey
}

// leadFlow sends leads from several goroutines until stopped, and keeps
// the public IDs of the accepted ones.
type leadFlow struct {
	stop     context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	accepted []string
	errs     []error
}

// flowLeads starts senders per lead integration; each sends a lead, pauses,
// and repeats until the flow is stopped. Every lead is routed to crms CRM
// integrations.
func (b *crashBundle) flowLeads(leadIDs []string, sendersPerLead, crms int) *leadFlow {
	ctx, stop := context.WithCancel(b.ctx)
	f := &leadFlow{stop: stop}
	for _, leadID := range leadIDs {
		for s := range sendersPerLead {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					ext := fmt.Sprintf("s%d-%d", s, n)
					// The bundle's context, not the flow's: stopping the
					// flow must not cancel a lead mid-intake and leave its
					// outcome unknown.
					out, err := b.starter.Intake(b.ctx, leadID, starter.Lead{
						ExternalID: ext, Source: "Z", Name: "Ada Lovelace",
						Email: fmt.Sprintf("ada-%s@example.com", ext), Phone: "+1 555 0100",
					})
					switch {
					case err != nil:
						err = fmt.Errorf("intake %s of %s: %w", ext, leadID, err)
					case out.Duplicate:
						err = fmt.Errorf("intake %s of %s: answered as a duplicate", ext, leadID)
					case out.Routed != crms:
						err = fmt.Errorf("intake %s of %s: routed to %d CRMs, want %d", ext, leadID, out.Routed, crms)
					}
					f.mu.Lock()
					if err != nil {
						f.errs = append(f.errs, err)
					} else {
						f.accepted = append(f.accepted, out.LeadID)
					}
					f.mu.Unlock()
					select {
					case <-ctx.Done():
					case <-time.After(crashLeadPause):
					}
				}
			}()
		}
	}
	return f
}

// finish stops the senders and returns the accepted leads' public IDs.
func (f *leadFlow) finish(t *testing.T) []string {
	t.Helper()
	f.stop()
	f.wg.Wait()
	require.Empty(t, f.errs, "intake never fails while the worker crashes: it needs only the database")
	return f.accepted
}

// TestWorkerCrashLosesNothing is the crash run: while leads flow, the
// worker process is SIGKILLed and restarted again and again; afterwards
// every accepted lead is in every CRM of the org exactly once.
func TestWorkerCrashLosesNothing(t *testing.T) {
	t.Parallel()
	b := setupCrash(t)
	b.startWorker(t)

	leads := []string{b.activeLead(t), b.activeLead(t)}
	crmIDs, keys := make([]string, 2), make([]string, 2)
	for i := range crmIDs {
		crmIDs[i], keys[i] = b.activeCRM(t)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	flowStart := time.Now()
	flow := b.flowLeads(leads, 2, len(crmIDs))
	// The kills land at random points of the delivery cycle: mid-batch,
	// between the CRM's answer and the database write, mid-projection.
	// The sleep paces the chaos; no assertion depends on it.
	for b.kills < crashMinKills || time.Since(flowStart) < crashFlowFor {
		time.Sleep(crashKillEveryMin + time.Duration(rng.Int64N(int64(crashKillEverySpread))))
		b.restartWorker(t)
	}
	accepted := flow.finish(t)
	flowTime := time.Since(flowStart)
	require.NotEmpty(t, accepted)

	// One worker, left alone, delivers the backlog: nudges of the leads
	// sent while no worker ran wait in the workflows, and the safety timer
	// covers any that were lost.
	drainStart := time.Now()
	counts := func(id string) store.DeliveryCounts {
		c, err := b.store.DeliveryCounts(b.ctx, id)
		if err != nil {
			t.Logf("delivery counts of %s: %v", id, err)
		}
		return c
	}
	drained := assert.Eventually(t, func() bool {
		for _, id := range crmIDs {
			if c := counts(id); c.Pending != 0 || c.Delivered+c.Rejected < int64(len(accepted)) {
				return false
			}
		}
		return true
	}, crashDrainTimeout, 200*time.Millisecond)
	if !drained {
		for _, id := range crmIDs {
			t.Logf("%s after %s: %+v", id, crashDrainTimeout, counts(id))
		}
		t.Fatalf("the CRMs did not deliver the %d accepted leads within %s of intake stopping", len(accepted), crashDrainTimeout)
	}
	drainTime := time.Since(drainStart)
	b.requireWorkerAlive(t)

	// The CRM keys its records by the store's lead ID, which the partner
	// never sees.
	want := make([]string, len(accepted))
	for i, publicID := range accepted {
		l, err := b.starter.Store.LeadByPublicID(b.ctx, publicID)
		require.NoError(t, err)
		want[i] = strconv.FormatInt(l.ID, 10)
	}
	slices.Sort(want)
	for i, id := range crmIDs {
		c := counts(id)
		require.Equal(t, int64(len(accepted)), c.Delivered, "%s: delivered", id)
		require.Zero(t, c.Rejected, "%s: rejected", id)
		require.Zero(t, c.Pending, "%s: pending", id)

		stats, err := b.sandbox.Records(b.ctx, keys[i])
		require.NoError(t, err)
		require.Equal(t, len(accepted), stats.Records, "%s: records in the CRM", id)
		got := make([]string, 0, len(stats.ByKey))
		for k := range stats.ByKey {
			got = append(got, k)
		}
		slices.Sort(got)
		require.Equal(t, want, got, "%s: the CRM holds exactly the accepted leads (test leads excluded)", id)
		retried := 0
		for _, n := range stats.ByKey {
			retried += n - 1
		}
		t.Logf("%s: %d records, %d upserts (%d leads pushed again by retried batches, deduplicated by key)",
			id, stats.Records, stats.Upserts, retried)

		require.Eventually(t, func() bool {
			st, err := b.store.Get(b.ctx, id)
			return err == nil && st.Status == integration.StatusActive
		}, 30*time.Second, 100*time.Millisecond, "%s ends active", id)
	}
	t.Logf("%d kills while %d leads flowed for %s (%.0f leads/s); backlog delivered %s after intake stopped; %d nudges not delivered",
		b.kills, len(accepted), flowTime.Round(time.Millisecond), float64(len(accepted))/flowTime.Seconds(),
		drainTime.Round(time.Millisecond), b.nudgesLost.Load())
}
