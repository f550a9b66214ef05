// Command integrations runs the integrations service and its operator
// commands; see `integrations --help`.
package main

import (
	"context"
	"os"

	"github.com/acme/integrations/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args, os.Stdout, os.Stderr))
}
