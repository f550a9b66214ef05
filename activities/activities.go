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
	"slices"
	"strings"
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
	// refreshStore overrides how refreshed credentials are stored (add:
	// the store's AddCurrentCredential) and the first wait between
	// attempts, in tests (zero values: the defaults).
	refreshStore struct {
		add   func(ctx context.Context, integrationID string, renews int, seal store.SealFunc, at time.Time) (store.Credential, error)
		delay time.Duration
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

// Validate runs the provider's checks with the integration's current
// credentials, or with the candidate version in.CredentialVersion (an
// authorize's), which it promotes to current iff every check passes and
// discards otherwise: a refused key is a secret nobody will use. Failed
// checks are a result, not an error; an error means the checks could not
// run (the CRM is unreachable), is retried, and leaves a candidate as it
// was, unpromoted.
func (a *Activities) Validate(ctx context.Context, in ValidateInput) ([]integration.Check, error) {
	connector, err := a.Connectors.Get(in.Provider)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "UnknownProvider", nil)
	}
	candidate := in.CredentialVersion > 0
	var cred store.Credential
	if candidate {
		cred, err = a.Store.CredentialVersion(ctx, in.IntegrationID, in.CredentialVersion)
	} else {
		cred, err = a.Store.CurrentCredential(ctx, in.IntegrationID)
	}
	if errors.Is(err, store.ErrNotFound) {
		check := integration.Check{
			Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials,
			Message:     "no credentials are stored for this integration",
			Remediation: fmt.Sprintf("authorize it: integrations authorize %s --credentials-file FILE", in.IntegrationID),
		}
		if candidate {
			// Discarded already: refused by an earlier attempt of this
			// validation, or its authorize gave up waiting.
			check.Message = fmt.Sprintf("the new credentials (version %d) are no longer stored: they were refused or withdrawn", in.CredentialVersion)
			check.Remediation = fmt.Sprintf("authorize again: integrations authorize %s --credentials-file FILE", in.IntegrationID)
		}
		return []integration.Check{check}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("validate %s: load credentials: %w", in.IntegrationID, err)
	}
	raw, err := a.Keyring.OpenStored(cred.Ciphertext, cred.KeyID, in.IntegrationID, cred.Version)
	if err != nil {
		return nil, decryptError("validate", cred, err)
	}
	creds := openCredentials{raw: raw, version: cred.Version}
	if !candidate {
		// The current grant is refreshed ahead of its expiry, and once more
		// when the CRM rejects its access token: an expired token of a
		// valid grant is no reason to pause. (A candidate was just
		// authorized: it is checked as given.)
		creds = a.freshen(ctx, in.IntegrationID, connector, creds)
	}
	checks, err := connector.Validate(ctx, creds.raw)
	if err == nil && !candidate && credentialsRejected(checks) {
		fresh, ok, unavailable := a.refresh(ctx, in.IntegrationID, connector, creds)
		switch {
		case ok:
			checks, err = connector.Validate(ctx, fresh.raw)
		case unavailable != nil:
			// The grant may be fine: the validation could not run, and
			// is retried, rather than telling the customer to reconnect.
			err = fmt.Errorf("refresh the access token: %w", unavailable)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("validate %s with %s: %w", in.IntegrationID, in.Provider, err)
	}
	checks = withIntegrationID(checks, in.IntegrationID)
	if len(checks) == 0 {
		// No checks would read as "all passed": refuse instead.
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("validate %s: the %s connector returned no checks", in.IntegrationID, in.Provider), "NoChecks", nil)
	}
	if candidate {
		return a.settleCandidate(ctx, in.IntegrationID, cred.Version, checks)
	}
	return checks, nil
}

// withIntegrationID fills the integration's ID into the commands the
// connectors' remediation texts quote ("integrations authorize ID ..."),
// which they write for any integration: status, notifications and the
// authorize answer then show the command to run as it is.
func withIntegrationID(checks []integration.Check, id string) []integration.Check {
	out := slices.Clone(checks)
	for i := range out {
		out[i].Remediation = strings.ReplaceAll(out[i].Remediation, "integrations authorize ID ", "integrations authorize "+id+" ")
	}
	return out
}

// productName is the CRM's name for customers ("Follow Up Boss"), or the
// provider ID when no connector of it is registered.
func (a *Activities) productName(provider string) string {
	connector, err := a.Connectors.Get(provider)
	if err != nil {
		return provider
	}
	return crm.DisplayName(connector)
}

// settleCandidate promotes a validated candidate to current if every check
// passed, and discards it otherwise, and returns the checks to report. A
// failed promotion is an error (the validation is retried: passing checks
// must not be reported while the credentials they are about are not in
// use); a failed discard is only logged, since the candidate is never used
// either way and its authorize discards it too.
func (a *Activities) settleCandidate(ctx context.Context, id string, version int, checks []integration.Check) ([]integration.Check, error) {
	// Exactly when the rules accept an authorize as passing.
	if len(integration.Validation{Checks: checks}.Failed()) > 0 {
		if _, err := a.Store.DiscardCandidateCredential(ctx, id, version, time.Now().UTC()); err != nil {
			a.logger().Warn("refused credentials not discarded", "integration", id, "version", version, "error", err.Error())
		}
		return checks, nil
	}
	current, err := a.Store.PromoteCredential(ctx, id, version, time.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		// Withdrawn while the CRM was asked (its authorize stopped
		// waiting): nothing was promoted, so nothing passed.
		return []integration.Check{{
			Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials,
			Message:     fmt.Sprintf("the new credentials (version %d) were withdrawn during validation", version),
			Remediation: fmt.Sprintf("authorize again: integrations authorize %s --credentials-file FILE", id),
		}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("validate %s: promote credentials version %d: %w", id, version, err)
	}
	if !current {
		a.logger().Info("validated credentials stay unused: a newer authorization is current", "integration", id, "version", version)
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
			n.Subject = fmt.Sprintf("Your %s integration %s is paused: %s", a.productName(s.Provider), displayName(s), humanReason(e.Reason))
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
