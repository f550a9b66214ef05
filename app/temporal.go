package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"
)

// TemporalStartupWait is how long the long-running processes (worker,
// serve) keep trying to reach Temporal when they start: a server that is
// still starting, or too busy to answer in time, delays them rather than
// ending them.
const TemporalStartupWait = time.Minute

// temporalOptions are the SDK client options of c: its address, namespace
// and API key over the rest of the Temporal client profile (TLS, gRPC
// metadata), following the SDK's envconfig conventions.
func (c Config) temporalOptions(logger *slog.Logger) (client.Options, error) {
	profile := envconfig.ClientConfigProfile{}
	if c.temporalProfile != nil {
		profile = *c.temporalProfile
	}
	profile.Address, profile.Namespace, profile.APIKey = c.Temporal.Address, c.Temporal.Namespace, c.Temporal.APIKey
	if profile.Address == "" {
		profile.Address = DefaultTemporalAddress
	}
	if profile.Namespace == "" {
		profile.Namespace = DefaultNamespace
	}
	opts, err := profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("Temporal client configuration: %w", err)
	}
	opts.Logger = log.NewStructuredLogger(logger)
	return opts, nil
}

// dialTemporal connects to c's Temporal, retrying every second for up to
// wait (0: one try) while ctx lasts, for processes that start next to (or
// before) the Temporal server.
func (c Config) dialTemporal(ctx context.Context, logger *slog.Logger, wait time.Duration) (client.Client, error) {
	opts, err := c.temporalOptions(logger)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		tc, err := client.DialContext(ctx, opts)
		if err == nil {
			return tc, nil
		}
		err = fmt.Errorf("connect to Temporal at %s: %w (is `integrations dev` running? set TEMPORAL_ADDRESS otherwise)", opts.HostPort, err)
		if wait <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		logger.Warn("Temporal is not reachable yet; retrying", "attempt", attempt, "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}
