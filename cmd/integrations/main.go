// Command integrations runs the integrations service and its operator
// commands; see `integrations --help`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/cli"
)

func main() {
	// pprof is opt-in, for this one process: only when asked, and only on
	// a loopback address.
	if addr := os.Getenv(app.PprofAddrEnv); addr != "" {
		if err := app.ServePprof(addr); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(cli.ExitUsage)
		}
	}
	os.Exit(cli.Run(context.Background(), os.Args, os.Stdout, os.Stderr))
}
