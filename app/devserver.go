package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

// DevServerOptions say how to run a Temporal dev server.
type DevServerOptions struct {
	// Bin is the temporal CLI (see FindTemporalBinary).
	Bin string
	// Address is the frontend's host:port ("": a free port).
	Address string
	// UIPort serves the Temporal UI there (0: no UI).
	UIPort int
	// DBFile keeps Temporal's state in this SQLite file.
	DBFile string
	// Log takes the server's own output.
	Log io.Writer
	// Logger takes the SDK client's warnings.
	Logger *slog.Logger
}

// StartDevServer starts a Temporal dev server in namespace "default" with
// the workflows' search attributes registered; stop it with its Stop.
func StartDevServer(ctx context.Context, o DevServerOptions) (*testsuite.DevServer, error) {
	server, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     o.Bin,
		ClientOptions:    &client.Options{HostPort: o.Address, Namespace: DefaultNamespace, Logger: sdklog.NewStructuredLogger(o.Logger)},
		DBFilename:       o.DBFile,
		EnableUI:         o.UIPort != 0,
		UIPort:           uiPort(o.UIPort),
		LogLevel:         "warn",
		SearchAttributes: workflows.SearchAttributes(integration.State{}),
		Stdout:           o.Log,
		Stderr:           o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("start the Temporal dev server (%s): %w", o.Bin, err)
	}
	return server, nil
}

func uiPort(p int) string {
	if p == 0 {
		return ""
	}
	return fmt.Sprint(p)
}

// FindTemporalBinary locates the temporal CLI built from tools/temporal:
// the given path, else bin/temporal, else next to this executable, else
// on PATH.
func FindTemporalBinary(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("temporal binary %s: %w", path, err)
		}
		return path, nil
	}
	candidates := []string{filepath.Join("bin", "temporal")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "temporal"))
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("temporal dev server binary not found: run `make temporal` (builds bin/temporal from tools/temporal) or set TEMPORAL_BIN")
}
