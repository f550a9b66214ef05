package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
)

// waitPoll is how often wait reads the projection.
const waitPoll = 200 * time.Millisecond

// waitTimeoutError is a wait whose condition did not hold in time.
type waitTimeoutError struct{ msg string }

func (e *waitTimeoutError) Error() string { return e.msg }

// waitCondition is what `integrations wait` waits for; zero fields do not
// constrain.
type waitCondition struct {
	status    integration.Status
	reason    *integration.Reason
	attention *bool
	// delivered and rejected are at least; pending at most.
	delivered, rejected, pending *int64
}

// unmet returns what of c v does not meet yet, empty when it holds.
func (c waitCondition) unmet(v integration.View) []string {
	var out []string
	if c.status != "" && v.Status != c.status {
		out = append(out, fmt.Sprintf("status %s", c.status))
	}
	if c.reason != nil && v.Reason != *c.reason {
		out = append(out, fmt.Sprintf("reason %q", *c.reason))
	}
	if c.attention != nil && v.NeedsAttention != *c.attention {
		out = append(out, fmt.Sprintf("needs_attention %t", *c.attention))
	}
	counts := func(what string, want *int64, have *int64, atLeast bool) {
		switch {
		case want == nil:
		case have == nil:
			out = append(out, what+" counts (a CRM integration)")
		case atLeast && *have < *want:
			out = append(out, fmt.Sprintf("%d %s (now %d)", *want, what, *have))
		case !atLeast && *have > *want:
			out = append(out, fmt.Sprintf("at most %d %s (now %d)", *want, what, *have))
		}
	}
	var delivered, rejected, pending *int64
	if v.Sync != nil {
		delivered, rejected, pending = v.Sync.Delivered, v.Sync.Rejected, v.Sync.Pending
	}
	counts("delivered", c.delivered, delivered, true)
	counts("rejected", c.rejected, rejected, true)
	counts("pending", c.pending, pending, false)
	return out
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "wait until an integration's status (or delivery counts) is as given; exit 4 with the last status on timeout",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "status", Usage: "setup_incomplete, active, failed_sync, paused or deleted"},
			&cli.StringFlag{Name: "reason", Usage: `the status's reason (e.g. expired_credentials; "" for none)`},
			&cli.BoolFlag{Name: "needs-attention", Usage: "needs_attention is set (--needs-attention=false: cleared)"},
			&cli.Int64Flag{Name: "delivered", Usage: "at least this many leads delivered (CRM integrations)"},
			&cli.Int64Flag{Name: "rejected", Usage: "at least this many leads rejected (CRM integrations)"},
			&cli.Int64Flag{Name: "pending", Usage: "at most this many leads pending (CRM integrations; 0: drained)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up after this long"},
		},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			cond, err := parseWaitCondition(c)
			if err != nil {
				return err
			}
			timeout := c.Duration("timeout")
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, timeout+commandTimeout)
			defer cancel()
			svc, err := app.New(ctx, cfg, app.WithLogger(quietLogger(c)))
			if err != nil {
				return err
			}
			defer svc.Close()
			v, err := waitFor(ctx, svc, id, cond, timeout)
			if err != nil {
				return err
			}
			if jsonOutput(c) {
				return printJSON(c, v)
			}
			fmt.Fprintf(c.App.Writer, "%s: %s\n", id, describeView(v))
			return nil
		},
	}
}

// parseWaitCondition reads the flags; at least one must say what to wait
// for.
func parseWaitCondition(c *cli.Context) (waitCondition, error) {
	var cond waitCondition
	if v := c.String("status"); v != "" {
		st, err := integration.ParseStatus(v)
		if err != nil {
			return cond, usagef("%v", err)
		}
		cond.status = st
	}
	if c.IsSet("reason") {
		r := integration.Reason(c.String("reason"))
		cond.reason = &r
	}
	if c.IsSet("needs-attention") {
		b := c.Bool("needs-attention")
		cond.attention = &b
	}
	for _, f := range []struct {
		name string
		dst  **int64
	}{{"delivered", &cond.delivered}, {"rejected", &cond.rejected}, {"pending", &cond.pending}} {
		if c.IsSet(f.name) {
			n := c.Int64(f.name)
			if n < 0 {
				return cond, usagef("--%s must not be negative", f.name)
			}
			*f.dst = &n
		}
	}
	if cond.status == "" && cond.reason == nil && cond.attention == nil && cond.delivered == nil && cond.rejected == nil && cond.pending == nil {
		return cond, usagef("wait needs something to wait for: --status, --reason, --needs-attention, --delivered, --rejected or --pending")
	}
	return cond, nil
}

// waitFor reads the projection every waitPoll until cond holds or timeout
// passes; then the error says what it saw last and what was missing.
func waitFor(ctx context.Context, svc *app.Service, id string, cond waitCondition, timeout time.Duration) (integration.View, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := svc.Starter.View(ctx, id)
		if err != nil {
			return integration.View{}, err
		}
		missing := cond.unmet(v)
		if len(missing) == 0 {
			return v, nil
		}
		if !time.Now().Before(deadline) {
			return v, &waitTimeoutError{msg: fmt.Sprintf("timed out after %s waiting for %s: it is %s; still waiting for %s",
				timeout, id, describeView(v), strings.Join(missing, ", "))}
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(waitPoll):
		}
	}
}

// describeView is a one-line summary of a view for wait's output.
func describeView(v integration.View) string {
	s := string(v.Status)
	if v.Reason != "" {
		s += " (" + string(v.Reason) + ")"
	}
	if v.NeedsAttention {
		s += " [needs attention]"
	}
	if v.Sync != nil && v.Sync.Pending != nil {
		s += fmt.Sprintf(", %d delivered, %d rejected, %d pending", *v.Sync.Delivered, *v.Sync.Rejected, *v.Sync.Pending)
	}
	return s
}
