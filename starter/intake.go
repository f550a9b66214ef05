package starter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/client"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
)

// ErrUnauthorized is returned for a missing or wrong intake token.
var ErrUnauthorized = errors.New("unauthorized")

// Lead is a lead as a partner sends it. Contact fields are PII: they go to
// the database only, never into workflow history, logs or errors.
type Lead struct {
	ExternalID string `json:"external_id"`
	Source     string `json:"source"`
	// Name is the contact's whole name. FirstName and LastName are its
	// parts: when the partner sends neither, intake splits Name (see
	// integration.SplitName); when it sends either, they are stored as sent.
	Name       string         `json:"name,omitempty"`
	FirstName  string         `json:"first_name,omitempty"`
	LastName   string         `json:"last_name,omitempty"`
	Company    string         `json:"company,omitempty"`
	Email      string         `json:"email,omitempty"`
	Phone      string         `json:"phone,omitempty"`
	Message    string         `json:"message,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Field limits of a lead (bytes; attributes in levels of nesting); the
// whole body is bounded by the API.
const (
	maxExternalIDBytes = 200
	maxContactBytes    = 320
	maxMessageBytes    = 16 << 10
)

// FieldError names the lead field that is wrong.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q %s", e.Field, e.Problem) }

// Is makes a FieldError an invalid-input error.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidInput }

// Validate checks a lead's fields; the error names the first bad field and
// never echoes its value.
func (l Lead) Validate() error {
	switch {
	case strings.TrimSpace(l.ExternalID) == "":
		return &FieldError{"external_id", "is required: the partner's ID of the lead"}
	case len(l.ExternalID) > maxExternalIDBytes:
		return &FieldError{"external_id", fmt.Sprintf("is over %d bytes", maxExternalIDBytes)}
	case l.Source == "":
		return &FieldError{"source", "is required: the lead source value configured for the integration"}
	case len(l.Source) > integration.MaxSourceLength:
		return &FieldError{"source", fmt.Sprintf("is over %d bytes", integration.MaxSourceLength)}
	}
	type field struct{ name, value string }
	contact := []field{
		{"name", l.Name}, {"first_name", l.FirstName}, {"last_name", l.LastName},
		{"company", l.Company}, {"email", l.Email}, {"phone", l.Phone},
	}
	for _, f := range contact {
		if len(f.value) > maxContactBytes {
			return &FieldError{f.name, fmt.Sprintf("is over %d bytes", maxContactBytes)}
		}
	}
	if len(l.Message) > maxMessageBytes {
		return &FieldError{"message", fmt.Sprintf("is over %d bytes", maxMessageBytes)}
	}
	if depth := store.AttributeDepth(l.Attributes); depth > store.MaxAttributeDepth {
		return &FieldError{"attributes", fmt.Sprintf("nest %d levels deep, more than %d: flatten them", depth, store.MaxAttributeDepth)}
	}
	text := append([]field{{"external_id", l.ExternalID}, {"source", l.Source}}, contact...)
	for _, f := range append(text, field{"message", l.Message}) {
		if strings.ContainsRune(f.value, 0) || !utf8.ValidString(f.value) {
			return &FieldError{f.name, "must be UTF-8 text without NUL characters"}
		}
	}
	return nil
}

// IntakeOutcome is what intake tells the sender. Its JSON is the answer
// to a partner: the lead's opaque public ID and whether it was a repeat,
// nothing about the platform (the platform-wide lead counter) or the org
// (how many CRM integrations it has).
type IntakeOutcome struct {
	// LeadID is the lead's public ID ("ld_" and 32 hex digits); for a
	// duplicate, the original's.
	LeadID    string `json:"lead_id"`
	Duplicate bool   `json:"duplicate"`
	// Routed counts the CRM integrations the lead is queued for: for
	// operators (send-lead shows it), never in the partner's answer.
	Routed int `json:"-"`
	// State is the lead integration after the lead, when it was still in
	// setup (the tracker moved); otherwise as read at intake.
	State integration.State `json:"-"`
}

// Intake stores a lead for a lead integration and routes it: once the
// integration is active, the lead becomes a pending delivery for every CRM
// integration of the org, and their workflows are nudged. During setup, the
// workflow sees the lead's source for its tracker (and the call returns once
// that is projected). The HTTP intake and `integrations send-lead` both come
// here.
func (s *Starter) Intake(ctx context.Context, id string, lead Lead) (IntakeOutcome, error) {
	if err := integration.ValidateID("integration id", id); err != nil {
		return IntakeOutcome{}, invalid(err)
	}
	if err := lead.Validate(); err != nil {
		return IntakeOutcome{}, err
	}
	name, first, last := leadNames(lead)
	res, err := s.Store.AddLead(ctx, store.Lead{
		IntegrationID: id, ExternalID: lead.ExternalID, Source: lead.Source,
		Name: name, FirstName: first, LastName: last, Company: lead.Company,
		Email: lead.Email, Phone: lead.Phone, Message: lead.Message, Attributes: lead.Attributes,
		ReceivedAt: s.now(),
	})
	if errors.Is(err, store.ErrNotFound) {
		// Say why, when the integration exists: a deleted one or a CRM
		// integration refuses the lead (nothing was stored either way).
		if current, cerr := s.current(ctx, id); cerr == nil {
			if current.Kind != integration.KindLead {
				return IntakeOutcome{}, &integration.Rejection{Command: integration.EventLeadReceived,
					Message: fmt.Sprintf("CRM integration %s does not receive leads from partners: send them to a lead integration of org %s", id, current.OrgID)}
			}
			if current.Status == integration.StatusDeleted {
				return IntakeOutcome{}, &integration.Rejection{Command: integration.EventLeadReceived,
					Message: fmt.Sprintf("integration %s is deleted: create a new one", id)}
			}
		}
		return IntakeOutcome{}, fmt.Errorf("%w: no lead integration has id %s", ErrNotFound, id)
	}
	if errors.Is(err, store.ErrInvalidLead) {
		return IntakeOutcome{}, invalid(err)
	}
	if err != nil {
		return IntakeOutcome{}, fmt.Errorf("intake for %s: %w", id, err)
	}
	out := IntakeOutcome{LeadID: res.PublicID, Duplicate: res.Duplicate, Routed: len(res.Routed), State: res.Integration}
	for _, crmID := range res.Routed {
		s.nudge(ctx, crmID)
	}
	if res.Integration.Status == integration.StatusSetupIncomplete {
		// Also for a duplicate: a partner retrying after a failed answer
		// still moves the tracker (a repeated source changes nothing).
		st, err := s.update(ctx, id, integration.EventLeadReceived, workflows.Command{By: "partner", Source: lead.Source})
		if err != nil {
			return out, err
		}
		out.State = st
	}
	return out, nil
}

// nudge asks a CRM integration's workflow to deliver now, through the
// coalescing Nudger when there is one. A lost nudge only delays delivery
// until the workflow's safety timer.
func (s *Starter) nudge(ctx context.Context, crmID string) {
	if s.Nudger != nil {
		s.Nudger.Nudge(crmID)
		return
	}
	_ = s.Temporal.SignalWorkflow(ctx, integration.WorkflowID(integration.KindCRM, crmID), "", workflows.SignalSync, nil)
}

// NewIntakeToken returns a fresh intake token and the hash to store.
func NewIntakeToken() (token string, hash []byte, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate intake token: %w", err)
	}
	token = "itk_" + hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:], nil
}

// RotateIntakeToken issues a new intake token for a lead integration; the
// old one stops working at once. The token is returned once and stored only
// as a hash.
func (s *Starter) RotateIntakeToken(ctx context.Context, id string) (string, error) {
	current, err := s.current(ctx, id)
	if err != nil {
		return "", err
	}
	if current.Kind != integration.KindLead {
		return "", &integration.Rejection{Command: "rotate-intake-token", Message: fmt.Sprintf("%s is a CRM integration: only lead integrations have intake tokens", id)}
	}
	if current.Status == integration.StatusDeleted {
		return "", &integration.Rejection{Command: "rotate-intake-token", Message: fmt.Sprintf("integration %s is deleted: create a new one", id)}
	}
	token, hash, err := NewIntakeToken()
	if err != nil {
		return "", err
	}
	if err := s.Store.SetIntakeToken(ctx, id, hash, s.now()); err != nil {
		return "", fmt.Errorf("rotate intake token of %s: %w", id, err)
	}
	return token, nil
}

// CheckIntakeToken verifies token against the lead integration's stored
// hash, in constant time. An integration without a token gives
// ErrUnauthorized like a wrong token. (The HTTP intake answers unknown IDs
// with 404 before asking, so partners can tell a wrong URL from a wrong
// token.)
func (s *Starter) CheckIntakeToken(ctx context.Context, id, token string) error {
	if token == "" {
		return ErrUnauthorized
	}
	stored, err := s.Store.IntakeTokenHash(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrUnauthorized
		}
		return fmt.Errorf("check intake token of %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 {
		return ErrUnauthorized
	}
	return nil
}

// Nudger coalesces sync nudges: however many leads arrive for a CRM
// integration within a tick, its workflow gets one signal.
type Nudger struct {
	client  client.Client
	tick    time.Duration
	pending chan string
	logf    func(msg string, args ...any)
}

// NewNudger returns a Nudger that signals through c at most once per tick
// per integration; run it with Run.
func NewNudger(c client.Client, tick time.Duration, logf func(msg string, args ...any)) *Nudger {
	return &Nudger{client: c, tick: tick, pending: make(chan string, 4096), logf: logf}
}

// Nudge asks for a sync of crmID soon. It never blocks: when the buffer is
// full the nudge is dropped and the workflow's safety timer covers it.
func (n *Nudger) Nudge(crmID string) {
	select {
	case n.pending <- crmID:
	default:
	}
}

// Run sends the coalesced nudges until ctx ends.
func (n *Nudger) Run(ctx context.Context) {
	ticker := time.NewTicker(n.tick)
	defer ticker.Stop()
	due := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-n.pending:
			due[id] = true
		case <-ticker.C:
			for id := range due {
				delete(due, id)
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := n.client.SignalWorkflow(sctx, integration.WorkflowID(integration.KindCRM, id), "", workflows.SignalSync, nil)
				cancel()
				if err != nil && n.logf != nil {
					n.logf("sync nudge not delivered; the safety timer will pick the leads up", "integration", id, "error", err.Error())
				}
			}
		}
	}
}

// CreateLead creates a lead integration and issues its first intake token,
// returned once (only its hash is stored).
func (s *Starter) CreateLead(ctx context.Context, spec integration.Spec, by string) (integration.State, string, error) {
	spec.Kind = integration.KindLead
	st, err := s.Create(ctx, spec, by)
	if err != nil {
		return integration.State{}, "", err
	}
	token, hash, err := NewIntakeToken()
	if err == nil {
		err = s.Store.SetIntakeToken(ctx, st.ID, hash, s.now())
	}
	if err != nil {
		return st, "", fmt.Errorf("created %s, but issuing its intake token failed (run `integrations rotate-intake-token %s`): %w", st.ID, st.ID, err)
	}
	return st, token, nil
}
