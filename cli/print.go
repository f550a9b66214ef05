package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// printSync shows a CRM integration's delivery health.
func printSync(w io.Writer, v integration.View) {
	if v.Sync == nil {
		return
	}
	sv := v.Sync
	if sv.Pending != nil {
		line := fmt.Sprintf("  leads:     %d delivered, %d rejected, %d pending", *sv.Delivered, *sv.Rejected, *sv.Pending)
		if sv.GaveUp != nil && sv.Cancelled != nil {
			line += fmt.Sprintf(", %d gave up, %d cancelled", *sv.GaveUp, *sv.Cancelled)
		}
		fmt.Fprintln(w, line)
	}
	if sv.LastSuccessAt != nil {
		fmt.Fprintf(w, "  last sync: %s\n", sv.LastSuccessAt.UTC().Format(time.RFC3339))
	}
	if q := sv.Quota; q != nil {
		fmt.Fprintf(w, "  quota:     %d of %d API calls left (%s), as the CRM said at %s\n", q.Remaining, q.Limit, q.Window, q.ObservedAt.UTC().Format(time.RFC3339))
	}
	if sv.ConsecutiveFailures > 0 {
		fmt.Fprintf(w, "  failing:   %d consecutive failure(s) since %s: %s\n", sv.ConsecutiveFailures, sv.FailingSince.UTC().Format(time.RFC3339), sv.LastError)
		if sv.NextAttemptAt != nil {
			fmt.Fprintf(w, "  retry at:  %s\n", sv.NextAttemptAt.UTC().Format(time.RFC3339))
		}
	}
}

func printState(c *cli.Context, st integration.State) error {
	if jsonOutput(c) {
		return printJSON(c, integration.NewView(st))
	}
	printText(c.App.Writer, st)
	return nil
}

func printText(w io.Writer, s integration.State) {
	title := s.ID
	if s.Name != "" {
		title += " (" + s.Name + ")"
	}
	fmt.Fprintf(w, "%s\n", title)
	fmt.Fprintf(w, "  kind:      %s, %s, org %s\n", s.Kind, s.Provider, s.OrgID)
	status := string(s.Status)
	if s.Reason != "" {
		status += " (" + string(s.Reason) + ")"
	}
	if s.NeedsAttention {
		status += " [needs attention]"
	}
	if s.Abandoned {
		status += " [abandoned]"
	}
	fmt.Fprintf(w, "  status:    %s\n", status)
	fmt.Fprintf(w, "  version:   %d, updated %s\n", s.Version, s.UpdatedAt.UTC().Format(time.RFC3339))
	if s.Kind == integration.KindLead {
		last := s.LastReceivedSource
		if last == "" {
			last = "(none yet)"
		} else {
			last = fmt.Sprintf("%q", last)
		}
		fmt.Fprintf(w, "  source:    expected %q, last received %s\n", s.ExpectedSource, last)
	}
	fmt.Fprintf(w, "  setup:\n")
	for _, step := range s.Setup {
		mark, at := "[ ]", ""
		if step.Done {
			mark = "[x]"
			if step.At != nil {
				at = "  " + step.At.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(w, "    %s %s%s\n", mark, step.Name, at)
	}
	if s.Validation != nil {
		at := ""
		if s.Validation.At != nil {
			at = " (since " + s.Validation.At.UTC().Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "  validation%s:\n", at)
		for _, ch := range s.Validation.Checks {
			switch {
			case ch.OK:
				// What passed says whose access it is (the CRM account),
				// which is worth seeing after a consent.
				fmt.Fprintf(w, "    ok   %s%s\n", ch.Name, messageSuffix(ch.Message))
				continue
			case crm.IsNotChecked(ch):
				// Not a failure of its own: an earlier check's failure
				// kept it from running, and that one says what to fix.
				fmt.Fprintf(w, "    --   %s: %s\n", ch.Name, ch.Message)
				continue
			}
			code := ""
			if ch.Code != "" {
				code = " [" + string(ch.Code) + "]"
			}
			fmt.Fprintf(w, "    FAIL %s%s: %s\n", ch.Name, code, ch.Message)
			if ch.Remediation != "" {
				fmt.Fprintf(w, "         fix: %s\n", ch.Remediation)
			}
		}
	}
}

func printTable(w io.Writer, states []integration.State) {
	fmt.Fprintf(w, "%-24s %-5s %-12s %-12s %-18s %-26s %s\n", "ID", "KIND", "ORG", "PROVIDER", "STATUS", "REASON", "VERSION")
	for _, s := range states {
		fmt.Fprintf(w, "%-24s %-5s %-12s %-12s %-18s %-26s %d\n", s.ID, s.Kind, s.OrgID, s.Provider, s.Status, s.Reason, s.Version)
	}
	if len(states) == 0 {
		fmt.Fprintln(w, "(no integrations)")
	}
}

func printEvents(w io.Writer, changes []integration.Change) {
	for _, ch := range changes {
		from := "-"
		if ch.FromStatus != "" {
			from = statusText(ch.FromStatus, ch.FromReason)
		}
		line := fmt.Sprintf("v%-4d %s  %-20s %s -> %s", ch.Version, ch.At.UTC().Format(time.RFC3339), ch.Event, from, statusText(ch.ToStatus, ch.ToReason))
		if ch.Actor != "" {
			line += "  by " + ch.Actor
		}
		if ch.ClaimedBy != "" && ch.ClaimedBy != ch.Actor {
			// The API's actor is its key's holder; this is who they said.
			line += " (claimed " + ch.ClaimedBy + ")"
		}
		if ch.Note != "" {
			line += "  note: " + strings.ReplaceAll(ch.Note, "\n", " ")
		}
		fmt.Fprintln(w, line)
	}
}

func statusText(s integration.Status, r integration.Reason) string {
	if r == "" {
		return string(s)
	}
	return string(s) + "/" + string(r)
}

// messageSuffix is ": message", or nothing for no message.
func messageSuffix(message string) string {
	if message == "" {
		return ""
	}
	return ": " + message
}
