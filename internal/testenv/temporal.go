package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// TemporalBinEnv overrides where the temporal CLI binary is.
const TemporalBinEnv = "TEMPORAL_BIN"

var (
	devServerOnce sync.Once
	devServer     *testsuite.DevServer
	devServerErr  error
)

// Main runs a test binary's tests and stops the shared dev server after
// them. Use it from TestMain: os.Exit(testenv.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if devServer != nil {
		_ = devServer.Stop()
	}
	return code
}

// DevServer returns the test binary's Temporal dev server, started on free
// ports on first use with searchAttributes registered. Packages that use it
// must call Main from TestMain so the server is stopped.
func DevServer(t testing.TB, searchAttributes temporal.SearchAttributes) *testsuite.DevServer {
	t.Helper()
	devServerOnce.Do(func() {
		bin, err := TemporalBinary()
		if err != nil {
			devServerErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		devServer, devServerErr = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
			ExistingPath:     bin,
			ClientOptions:    &client.Options{Namespace: "default", Logger: QuietLogger()},
			LogLevel:         "error",
			SearchAttributes: searchAttributes,
			Stdout:           io.Discard,
			Stderr:           io.Discard,
		})
	})
	if devServerErr != nil {
		Unavailable(t, "the Temporal dev server", devServerErr)
	}
	return devServer
}

// TemporalBinary finds the temporal CLI: $TEMPORAL_BIN, else bin/temporal
// at the repository root.
func TemporalBinary() (string, error) {
	if p := os.Getenv(TemporalBinEnv); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "temporal")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: run `make temporal` or set %s", p, TemporalBinEnv)
	}
	return p, nil
}

// RepoRoot is the directory holding the module's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "tools", "temporal")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found above the working directory")
		}
		dir = parent
	}
}

// QuietLogger is an SDK logger that only reports errors, for test clients.
func QuietLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

// TaskQueue returns a task queue name unique to t, so parallel tests that
// share a dev server never run each other's workflows.
func TaskQueue(t testing.TB) string {
	return "test-" + randomHex(6)
}

// ID returns a unique ID with a readable prefix.
func ID(prefix string) string { return prefix + "-" + randomHex(5) }

// DiscardLogger is an SDK logger that drops everything, for tests that
// provoke errors on purpose.
func DiscardLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}
