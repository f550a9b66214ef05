package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// devBundle is a built binary in a fresh directory, as a new user has it
// after `make build`.
type devBundle struct {
	dir   string
	bin   string
	env   []string
	ports map[string]int
}

func setupDev(t *testing.T) *devBundle {
	t.Helper()
	temporalBin, err := testenv.TemporalBinary()
	if err != nil {
		testenv.Unavailable(t, "the temporal CLI binary", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "integrations")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	// A clean environment: nothing points the CLI anywhere; it must find
	// the stack through the data dir, as from a second terminal.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TEMPORAL_BIN=" + temporalBin, "USER=walkthrough"}
	ports := map[string]int{}
	for _, name := range []string{"temporal", "ui", "http", "sandbox", "hubspot", "salesforce", "followupboss"} {
		ports[name] = freePort(t)
	}
	return &devBundle{dir: dir, bin: bin, env: env, ports: ports}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDev runs `integrations dev` until it says the stack is up.
func (b *devBundle) startDev(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(b.bin, "dev",
		"--temporal-port", fmt.Sprint(b.ports["temporal"]), "--ui-port", fmt.Sprint(b.ports["ui"]),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", b.ports["http"]), "--sandbox-addr", fmt.Sprintf("127.0.0.1:%d", b.ports["sandbox"]),
		"--hubspot-addr", fmt.Sprintf("127.0.0.1:%d", b.ports["hubspot"]), "--salesforce-addr", fmt.Sprintf("127.0.0.1:%d", b.ports["salesforce"]),
		"--followupboss-addr", fmt.Sprintf("127.0.0.1:%d", b.ports["followupboss"]))
	cmd.Dir, cmd.Env = b.dir, b.env
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	up := make(chan string, 1)
	go func() {
		var seen strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "dev stack is up") {
				up <- seen.String()
			}
		}
		up <- seen.String()
	}()
	select {
	case out := <-up:
		require.Contains(t, out, "dev stack is up", "dev output:\n%s", out)
	case <-time.After(2 * time.Minute):
		t.Fatal("integrations dev did not come up within 2 minutes")
	}
	return cmd
}

// stopDev interrupts dev as Ctrl-C would and checks it stopped everything.
func (b *devBundle) stopDev(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "dev exits cleanly on Ctrl-C")
	case <-time.After(time.Minute):
		t.Fatal("dev did not stop within a minute of Ctrl-C")
	}
	for name, port := range b.ports {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("%s port %d still open after dev stopped", name, port)
		}
	}
}

// cli runs one command in the stack's directory.
func (b *devBundle) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Dir, cmd.Env = b.dir, b.env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "integrations %s: %s", strings.Join(args, " "), out)
	return string(out)
}

func (b *devBundle) status(t *testing.T, id string) integration.View {
	t.Helper()
	var v integration.View
	require.NoError(t, json.Unmarshal([]byte(b.cli(t, "status", id, "-o", "json")), &v))
	return v
}

// walkthrough returns the shell blocks of the README's walkthrough.
func walkthrough(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	section := regexp.MustCompile(`(?s)<!-- walkthrough:start -->(.*)<!-- walkthrough:end -->`).FindSubmatch(readme)
	require.NotNil(t, section, "README has a walkthrough section")
	var script strings.Builder
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllSubmatch(section[1], -1) {
		script.Write(block[1])
	}
	require.Contains(t, script.String(), "integrations create lead")
	return script.String()
}

// TestReadmeWalkthrough is a new user's first hour: `integrations dev` in a
// fresh directory, the README's walkthrough typed as written from a second
// terminal, then Ctrl-C and a restart that resumes every workflow.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	b := setupDev(t)
	dev := b.startDev(t)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", b.ports["http"]))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script := exec.CommandContext(ctx, "bash", "-e", "-c", walkthrough(t))
	// The walkthrough's curl examples default to dev's 127.0.0.1:8080.
	script.Dir, script.Env = b.dir, append(b.env, fmt.Sprintf("API=http://127.0.0.1:%d", b.ports["http"]))
	out, err := script.CombinedOutput()
	transcript := string(out)
	require.NoError(t, err, "walkthrough failed:\n%s", transcript)
	for _, want := range []string{
		"rejected: cannot complete setup of zillow-acme: no test lead received yet",
		"status:    setup_incomplete (source_mismatch)",
		"status:    setup_incomplete (needs_information)",
		"rejected, exit code 3",
		"status:    paused (expired_credentials)",
		"status:    paused (manual)",
		"workflow: run",
		"queued for 0 CRM integration(s)", // a test lead during setup
		"queued for 1 CRM integration(s)", // a lead once both are active
		"duplicate of lead",
		"status:    failed_sync (sync_error)",
		"leads:     2 delivered, 0 rejected, 0 pending",
		"by walkthrough (claimed alice)", // the API key's name, and the body's by
		"no key: 401",
		"text/plain: 415",
		// The HubSpot section, against dev's fake.
		"is connected: it is now setup_incomplete (awaiting_finish)",
		"hubspot-acme: active, 2 delivered, 0 rejected, 0 pending",
		"status:    paused (expired_credentials)",
		"is connected: it is now active",
		"hubspot-acme: active, 3 delivered, 0 rejected, 0 pending",
	} {
		require.Contains(t, transcript, want, "walkthrough transcript:\n%s", transcript)
	}
	require.Equal(t, integration.StatusDeleted, b.status(t, "zillow-acme").Status)
	crm := b.status(t, "crm-acme")
	require.Equal(t, integration.StatusActive, crm.Status)
	require.Equal(t, integration.StatusActive, b.status(t, "hubspot-acme").Status)

	// Ctrl-C stops everything; a restart resumes every workflow, and keeps
	// the admin API key of the first start.
	adminKey, err := os.ReadFile(filepath.Join(b.dir, ".data", "admin-api-key"))
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(b.dir, ".data", "admin-api-key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	b.stopDev(t, dev)
	dev = b.startDev(t)
	again, err := os.ReadFile(filepath.Join(b.dir, ".data", "admin-api-key"))
	require.NoError(t, err)
	require.Equal(t, string(adminKey), string(again), "dev never re-creates its admin key")
	require.Equal(t, crm.Version, b.status(t, "crm-acme").Version)
	require.Contains(t, b.cli(t, "status", "crm-acme", "--live"), "status:    active")

	var creds struct {
		APIKey string `json:"api_key"`
	}
	raw, err := os.ReadFile(filepath.Join(b.dir, "creds.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &creds))
	// The sandbox kept its accounts and the periodic validation still runs.
	b.cli(t, "sandbox", "account", "revoke", creds.APIKey)
	require.Eventually(t, func() bool {
		return b.status(t, "crm-acme").Status == integration.StatusPaused
	}, 30*time.Second, 250*time.Millisecond, "validation after restart pauses the integration")
	b.stopDev(t, dev)
}
