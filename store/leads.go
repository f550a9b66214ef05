package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/acme/integrations/integration"
)

// ErrInvalidLead is wrapped by AddLead's errors for a lead that cannot be
// stored as given (a required field missing, a NUL character, ...): the
// caller's input is at fault, not the database. The message names the
// field, never its value.
var ErrInvalidLead = errors.New("invalid lead")

// Lead is a lead a partner sent through a lead integration: the payload
// that is delivered to every CRM integration of the org.
type Lead struct {
	// ID is assigned by AddLead, in intake order; CRMs get it as the
	// idempotency key of the record.
	ID int64
	// IntegrationID is the lead integration the lead arrived through.
	IntegrationID string
	// OrgID is the org of that integration; AddLead takes it from the
	// integration row, whatever the caller set.
	OrgID string
	// ExternalID is the partner's own ID of the lead: a repeat of it
	// through the same lead integration is a duplicate.
	ExternalID string
	// Source is the source value the partner sent.
	Source string
	// Contact fields; any may be empty.
	Name, Email, Phone, Message string
	// Attributes are further free-form fields. They round-trip as JSON, so
	// numbers come back as float64; nil when there are none.
	Attributes map[string]any
	// ReceivedAt is when intake accepted the lead.
	ReceivedAt time.Time
}

// IntakeResult is what AddLead did with a lead.
type IntakeResult struct {
	// LeadID is the stored lead's ID; for a duplicate, the original's.
	LeadID int64
	// Duplicate reports that the lead integration already had a lead with
	// this external ID, so nothing was stored.
	Duplicate bool
	// Routed lists, sorted, the CRM integrations that got a pending
	// delivery of the lead; empty for duplicates and while the lead
	// integration is not active.
	Routed []string
	// Integration is the lead integration as read in the intake
	// transaction, so callers act on the status the routing used.
	Integration integration.State
}

// leadRow is a row of leads.
type leadRow struct {
	ID                int64     `db:"id"`
	LeadIntegrationID string    `db:"lead_integration_id"`
	OrgID             string    `db:"org_id"`
	ExternalID        string    `db:"external_id"`
	Source            string    `db:"source"`
	Name              string    `db:"name"`
	Email             string    `db:"email"`
	Phone             string    `db:"phone"`
	Message           string    `db:"message"`
	Attributes        string    `db:"attributes"`
	ReceivedAt        time.Time `db:"received_at"`
}

// leadColumns lists the columns of leads in leadRow order, qualified with
// the alias l so they can be joined.
const leadColumns = `l.id, l.lead_integration_id, l.org_id, l.external_id, l.source,
	l.name, l.email, l.phone, l.message, l.attributes, l.received_at`

func toLeadRow(l Lead) (leadRow, error) {
	attributes := []byte("{}")
	if len(l.Attributes) > 0 {
		var err error
		if attributes, err = json.Marshal(l.Attributes); err != nil {
			return leadRow{}, fmt.Errorf("encode attributes: %w", err)
		}
		if hasEscapedNUL(attributes) {
			return leadRow{}, errors.New("attributes contain a NUL character, which the database cannot store; remove it")
		}
	}
	return leadRow{
		ID: l.ID, LeadIntegrationID: l.IntegrationID, OrgID: l.OrgID, ExternalID: l.ExternalID, Source: l.Source,
		Name: l.Name, Email: l.Email, Phone: l.Phone, Message: l.Message,
		Attributes: string(attributes), ReceivedAt: dbTime(l.ReceivedAt),
	}, nil
}

func (r leadRow) toLead() (Lead, error) {
	l := Lead{
		ID: r.ID, IntegrationID: r.LeadIntegrationID, OrgID: r.OrgID, ExternalID: r.ExternalID, Source: r.Source,
		Name: r.Name, Email: r.Email, Phone: r.Phone, Message: r.Message, ReceivedAt: r.ReceivedAt.UTC(),
	}
	// Most leads have none: skip the decoder for the stored "{}".
	if r.Attributes == "{}" {
		return l, nil
	}
	if err := json.Unmarshal([]byte(r.Attributes), &l.Attributes); err != nil {
		return Lead{}, fmt.Errorf("decode attributes of lead %d: %w", r.ID, err)
	}
	// Stored as {} when there are none, but the domain leaves them nil.
	if len(l.Attributes) == 0 {
		l.Attributes = nil
	}
	return l, nil
}

// hasEscapedNUL reports whether JSON text encodes a NUL character
// (\u0000), which PostgreSQL's JSONB rejects; a literal backslash before
// "u0000" (\\u0000) does not count.
func hasEscapedNUL(text []byte) bool {
	s := string(text)
	for i := strings.Index(s, `u0000`); i >= 0; {
		backslashes := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			backslashes++
		}
		if backslashes%2 == 1 {
			return true
		}
		next := strings.Index(s[i+1:], `u0000`)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

// checkLead says what is missing or wrong in l. It names fields, never
// their values: they may be personal data.
func checkLead(l Lead) error {
	switch {
	case l.IntegrationID == "":
		return errors.New("no lead integration ID given")
	case l.ExternalID == "":
		return errors.New("lead has no external ID: give the partner's ID of the lead")
	case l.Source == "":
		return errors.New("lead has no source")
	case l.ReceivedAt.IsZero():
		return errors.New("lead has no receive time")
	}
	for _, f := range []struct{ name, value string }{
		{"external ID", l.ExternalID}, {"source", l.Source}, {"name", l.Name},
		{"email", l.Email}, {"phone", l.Phone}, {"message", l.Message},
	} {
		// PostgreSQL text holds neither; SQLite would, so check here to
		// make both backends refuse the same leads.
		if !utf8.ValidString(f.value) {
			return fmt.Errorf("lead %s is not valid UTF-8", f.name)
		}
		if strings.IndexByte(f.value, 0) >= 0 {
			return fmt.Errorf("lead %s contains a NUL character, which the database cannot store; remove it", f.name)
		}
	}
	return nil
}

// AddLead stores l once per (IntegrationID, ExternalID), in one
// transaction:
//   - a lead that cannot be stored as given gets an error wrapping
//     ErrInvalidLead, and nothing is stored;
//   - the lead integration must exist, be a lead integration and not be
//     deleted; otherwise the error wraps ErrNotFound and nothing is stored;
//   - l.OrgID is taken from the integration row;
//   - a repeated external ID stores nothing and returns Duplicate with the
//     original's LeadID (concurrent repeats too: one of them stores);
//   - when the lead integration's status, read in the same transaction, is
//     active, the lead gets a pending delivery for every CRM integration of
//     the org that is not deleted (paused and failing ones included: they
//     deliver after they recover).
func (s *Store) AddLead(ctx context.Context, l Lead) (IntakeResult, error) {
	if err := checkLead(l); err != nil {
		return IntakeResult{}, fmt.Errorf("add lead to %s: %w (%w)", l.IntegrationID, err, ErrInvalidLead)
	}
	row, err := toLeadRow(l)
	if err != nil {
		return IntakeResult{}, fmt.Errorf("add lead to %s: %w (%w)", l.IntegrationID, err, ErrInvalidLead)
	}
	res, err := s.dialect.addLead(ctx, s, row)
	if err != nil {
		return IntakeResult{}, fmt.Errorf("add lead to %s: %w", l.IntegrationID, err)
	}
	return res, nil
}

// checkLeadIntegration says, wrapping ErrNotFound, why leads cannot arrive
// through the integration of row, if they cannot.
func checkLeadIntegration(row integrationRow) error {
	switch {
	case row.Kind != string(integration.KindLead):
		return fmt.Errorf("%q is a %s integration, not a lead integration: %w", row.ID, row.Kind, ErrNotFound)
	case row.Status == string(integration.StatusDeleted):
		return fmt.Errorf("lead integration %q is deleted: %w", row.ID, ErrNotFound)
	}
	return nil
}

// CountLeads returns how many leads the lead integration has stored.
func (s *Store) CountLeads(ctx context.Context, leadIntegrationID string) (int64, error) {
	var n int64
	q := s.db.Rebind(`SELECT COUNT(*) FROM leads WHERE lead_integration_id = ?`)
	if err := sqlx.GetContext(ctx, s.db, &n, q, leadIntegrationID); err != nil {
		return 0, fmt.Errorf("count leads of %s: %w", leadIntegrationID, err)
	}
	return n, nil
}
