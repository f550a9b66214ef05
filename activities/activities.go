// Package activities holds the side effects of the integration workflows:
// projecting state into SQL, validating CRM credentials, recording
// notifications, and delivering leads. Activities are methods on a struct
// of dependencies, so the worker wires real ones and tests wire their own.
//
// Delivery (Deliver) never lets one lead stall the others: a batch the CRM
// refuses for what it carries is split until the leads at fault stand
// alone and are rejected, and a lead that keeps failing on its own is set
// aside as gave_up after MaxDeliveryAttempts failures. A failure counts as
// the lead's own only when the lead was pushed alone and the CRM answered
// the next call, of another lead; in an outage every call fails, so
// nothing is set aside. Deliver's documentation has the whole rule.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// Activities are the integration workflows' side effects.
type Activities struct {
	Store      *store.Store
	Connectors *crm.Registry
	Keyring    *credential.Keyring
	Logger     *slog.Logger
	// MaxDeliveryAttempts is how many failures of its own set a lead
	// aside as gave_up (see Deliver); 0 means DefaultMaxDeliveryAttempts.
	MaxDeliveryAttempts int

	// paging overrides Deliver's page size, budget and the clock the
	// budget is measured on in tests (zero values: the defaults);
	// recorderFailed, when set, is called once a Deliver run's recorder has
	// failed and told the pusher to stop, so a test can hold the pusher
	// until then instead of racing it.
	paging struct {
		maxPage        int
		budget         time.Duration
		now            func() time.Time
		recorderFailed func()
	}
}

// ProjectInput is a snapshot and the change that produced it.
type ProjectInput struct {
	State  integration.State  `json:"state"`
	Change integration.Change `json:"change"`
}

// Project writes a snapshot and its change record. It is idempotent: a
// replayed or stale write (lower version) changes nothing.
func (a *Activities) Project(ctx context.Context, in ProjectInput) error {
	applied, err := a.Store.Project(ctx, in.State, in.Change)
	if err != nil {
		return fmt.Errorf("project %s version %d: %w", in.State.ID, in.State.Version, err)
	}
	if !applied {
		a.logger().Info("projection already newer; write skipped", "integration", in.State.ID, "version", in.State.Version)
	}
	return nil
}

// ValidateInput names the CRM integration to validate, and the
// credentials to validate it with.
type ValidateInput struct {
	IntegrationID string `json:"integration_id"`
	Provider      string `json:"provider"`
	// CredentialVersion is a candidate version (from an authorize) to
	// validate and, if every check passes, promote to current; zero
	// validates the current credentials.
	CredentialVersion int `json:"credential_version,omitempty"`
}

// Validate runs the provider's checks with the integration's latest stored
// credentials. Failed checks are a result, not an error; an error means the
// checks could not run (the CRM is unreachable), and is retried.
func (a *Activities) Validate(ctx context.Context, in ValidateInput) ([]integration.Check, error) {
	connector, err := a.Connectors.Get(in.Provider)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "UnknownProvider", nil)
	}
	cred, err := a.Store.LatestCredential(ctx, in.IntegrationID)
	if errors.Is(err, store.ErrNotFound) {
		return []integration.Check{{
			Name: "credentials", Code: integration.ReasonExpiredCredentials,
			Message:     "no credentials are stored for this integration",
			Remediation: fmt.Sprintf("authorize it: integrations authorize %s --credentials-file FILE", in.IntegrationID),
		}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("validate %s: load credentials: %w", in.IntegrationID, err)
	}
	raw, err := a.Keyring.Open(cred.Ciphertext, []byte(in.IntegrationID))
	if err != nil {
		// A key mismatch does not heal by retrying; say what to fix.
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("validate %s: cannot decrypt credentials version %d; check %s matches the key they were stored with", in.IntegrationID, cred.Version, credential.KeyEnv),
			"CredentialDecrypt", nil)
	}
	checks, err := connector.Validate(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("validate %s with %s: %w", in.IntegrationID, in.Provider, err)
	}
	if len(checks) == 0 {
		// No checks would read as "all passed": refuse instead.
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("validate %s: the %s connector returned no checks", in.IntegrationID, in.Provider), "NoChecks", nil)
	}
	return checks, nil
}

// NotifyInput is an effect of a transition and the state it produced.
type NotifyInput struct {
	State  integration.State  `json:"state"`
	Effect integration.Effect `json:"effect"`
}

// Notify records the notifications an effect calls for (email, in-app,
// partner or support) in the notifications table, where the mailers and the
// app pick them up. Each is keyed so a retried activity adds it once.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) error {
	s, e := in.State, in.Effect
	base := store.Notification{IntegrationID: s.ID, OrgID: s.OrgID, Status: "open", CreatedAt: s.UpdatedAt}
	var notes []store.Notification
	switch e.Type {
	case integration.EffectRequestRevision:
		n := base
		n.Channel, n.Kind = "partner", "source_revision"
		n.Subject = fmt.Sprintf("Please revise the lead source for integration %s", s.ID)
		n.Body = fmt.Sprintf("We received a test lead with source %q, but this integration expects exactly %q (case-sensitive). Please send leads with source %q.", e.Source, s.ExpectedSource, s.ExpectedSource)
		n.DedupeKey = fmt.Sprintf("%s:source_revision:%s", s.ID, e.Source)
		notes = append(notes, n)
	case integration.EffectNotifyPaused:
		for _, channel := range []string{"email", "in_app"} {
			n := base
			n.Channel, n.Kind = channel, "paused"
			n.Subject = fmt.Sprintf("Your %s integration %s is paused: %s", s.Provider, displayName(s), humanReason(e.Reason))
			n.Body = pausedBody(e.Checks)
			n.DedupeKey = fmt.Sprintf("%s:paused:%d:%s", s.ID, s.Version, channel)
			notes = append(notes, n)
		}
	case integration.EffectResolvePaused:
		if _, err := a.Store.ResolveNotifications(ctx, s.ID, "paused", s.UpdatedAt); err != nil {
			return fmt.Errorf("resolve paused notifications of %s: %w", s.ID, err)
		}
		return nil
	case integration.EffectSetupReminder:
		n := base
		n.Channel, n.Kind = "email", "setup_reminder"
		n.Subject = fmt.Sprintf("Setup of %s is not finished yet", displayName(s))
		n.Body = fmt.Sprintf("The integration is still in Setup Incomplete (%s). Finish setup, or delete it if it was created by mistake.", s.Reason)
		n.DedupeKey = s.ID + ":setup_reminder"
		notes = append(notes, n)
	case integration.EffectAbandoned:
		n := base
		n.Channel, n.Kind = "support", "setup_abandoned"
		n.Subject = fmt.Sprintf("Integration %s of org %s looks abandoned", s.ID, s.OrgID)
		n.Body = fmt.Sprintf("Setup has been incomplete (%s) since %s. It is flagged, not deleted.", s.Reason, s.CreatedAt.Format("2006-01-02"))
		n.DedupeKey = s.ID + ":setup_abandoned"
		notes = append(notes, n)
	case integration.EffectNeedsAttention:
		n := base
		n.Channel, n.Kind = "support", "needs_attention"
		n.Subject = fmt.Sprintf("Integration %s of org %s keeps failing to sync", s.ID, s.OrgID)
		n.Body = fmt.Sprintf("%d consecutive failed syncs since %s; last error: %s. Retries go on; this clears with the next success.",
			s.ConsecutiveFailures, formatTime(s.FailingSince), s.LastSyncError)
		n.DedupeKey = fmt.Sprintf("%s:needs_attention:%d", s.ID, s.Version)
		notes = append(notes, n)
	case integration.EffectResolveAll:
		if _, err := a.Store.ResolveNotifications(ctx, s.ID, "", s.UpdatedAt); err != nil {
			return fmt.Errorf("resolve the notifications of %s: %w", s.ID, err)
		}
		return nil
	case integration.EffectAttentionResolved:
		if _, err := a.Store.ResolveNotifications(ctx, s.ID, "needs_attention", s.UpdatedAt); err != nil {
			return fmt.Errorf("resolve attention alert of %s: %w", s.ID, err)
		}
		return nil
	default:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("notify %s: unknown effect %q", s.ID, e.Type), "UnknownEffect", nil)
	}
	for _, n := range notes {
		if _, err := a.Store.AddNotification(ctx, n); err != nil {
			return fmt.Errorf("notify %s (%s, %s): %w", s.ID, n.Kind, n.Channel, err)
		}
	}
	return nil
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func displayName(s integration.State) string {
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

// humanReason spells a pause reason the way the help article does.
func humanReason(r integration.Reason) string {
	switch r {
	case integration.ReasonExpiredCredentials:
		return "Expired Credentials"
	case integration.ReasonInsufficientPermissions:
		return "Insufficient Permissions"
	case integration.ReasonAPIDisabled:
		return "API Disabled"
	case integration.ReasonManual:
		return "Paused manually"
	}
	return string(r)
}

func pausedBody(checks []integration.Check) string {
	body := "Our validation found a problem, so syncing is paused; leads wait and are delivered once it is fixed. It resumes automatically once validation passes."
	for _, c := range checks {
		if !c.OK {
			body += fmt.Sprintf("\n- %s: %s. %s", c.Name, c.Message, c.Remediation)
		}
	}
	return body
}
