package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
)

// commandTimeout bounds one operator command, including a validation
// against the CRM.
const commandTimeout = 90 * time.Second

// withService assembles what an operator command needs (the store always;
// opts add Temporal, the key, ...) under the command timeout, runs fn and
// closes it all.
func withService(c *cli.Context, fn func(ctx context.Context, svc *app.Service) error, opts ...app.Option) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, commandTimeout)
	defer cancel()
	svc, err := app.New(ctx, cfg, append([]app.Option{app.WithLogger(quietLogger(c))}, opts...)...)
	if err != nil {
		return err
	}
	defer svc.Close()
	return fn(ctx, svc)
}

// withIntegration is withService for a command whose one argument is an
// integration ID.
func withIntegration(c *cli.Context, fn func(ctx context.Context, svc *app.Service, id string) error, opts ...app.Option) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	return withService(c, func(ctx context.Context, svc *app.Service) error { return fn(ctx, svc, id) }, opts...)
}

// quietLogger is for one-shot commands: warnings and errors only, on stderr.
func quietLogger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// processLogger is for the long-running processes: JSON lines on stderr.
func processLogger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil))
}
