// Command temporal is the Temporal CLI, including the dev server
// (`temporal server start-dev`), built from the pinned
// github.com/temporalio/cli module so that the dev stack and the tests never
// download a binary. v1.5.1 is the last release whose module builds from the
// Go module proxy and still exports the dev server.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/temporalio/cli/temporalcli"

	// Keep the sqlite driver at the version the CLI pins (see its own main).
	_ "modernc.org/sqlite"
	// Fall back to an embedded time zone database.
	_ "time/tzdata"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	temporalcli.Execute(ctx, temporalcli.CommandOptions{})
}
