package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
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
	// idempotency key of the record. It is a platform-wide counter: never
	// shown to partners (they get PublicID).
	ID int64
	// PublicID is the lead's opaque ID, "ld_" and 32 hex digits of
	// randomness, unique: what intake answers the partner. AddLead assigns
	// it, whatever the caller set.
	PublicID string
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
	// Contact fields; any may be empty. Name is the whole name as the
	// partner sent it, FirstName and LastName its parts (the partner's, or
	// split from Name by intake), Company the contact's company.
	Name, FirstName, LastName, Company, Email, Phone, Message string
	// Attributes are further free-form fields. They round-trip as JSON, so
	// numbers come back as float64; nil when there are none.
	Attributes map[string]any
	// ReceivedAt is when intake accepted the lead.
	ReceivedAt time.Time
	// PurgedAt is when the payload (the contact fields and attributes) was
	// removed, by the retention job or an erasure; nil while it is kept.
	// AddLead ignores it.
	PurgedAt *time.Time
}

// MaxAttributeDepth bounds how deeply a lead's attributes may nest
// (objects and arrays): SQLite's JSON functions refuse text nested deeper
// than 1000, and no CRM field nests at all.
const MaxAttributeDepth = 32

// IntakeResult is what AddLead did with a lead.
type IntakeResult struct {
	// LeadID is the stored lead's ID; for a duplicate, the original's.
	LeadID int64
	// PublicID is the stored lead's public ID; for a duplicate, the
	// original's.
	PublicID string
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
	ID                int64      `db:"id"`
	PublicID          string     `db:"public_id"`
	LeadIntegrationID string     `db:"lead_integration_id"`
	OrgID             string     `db:"org_id"`
	ExternalID        string     `db:"external_id"`
	Source            string     `db:"source"`
	Name              string     `db:"name"`
	FirstName         string     `db:"first_name"`
	LastName          string     `db:"last_name"`
	Company           string     `db:"company"`
	Email             string     `db:"email"`
	Phone             string     `db:"phone"`
	Message           string     `db:"message"`
	Attributes        string     `db:"attributes"`
	ReceivedAt        time.Time  `db:"received_at"`
	PurgedAt          *time.Time `db:"purged_at"`
}

// leadColumns lists the columns of leads in leadRow order, qualified with
// the alias l so they can be joined.
const leadColumns = `l.id, l.public_id, l.lead_integration_id, l.org_id, l.external_id, l.source,
	l.name, l.first_name, l.last_name, l.company, l.email, l.phone, l.message, l.attributes, l.received_at, l.purged_at`

// scanFields are the destinations of leadColumns in r, for the hot paths
// that scan rows without sqlx's reflection.
func (r *leadRow) scanFields() []any {
	return []any{&r.ID, &r.PublicID, &r.LeadIntegrationID, &r.OrgID, &r.ExternalID, &r.Source,
		&r.Name, &r.FirstName, &r.LastName, &r.Company, &r.Email, &r.Phone, &r.Message, &r.Attributes, &r.ReceivedAt, &r.PurgedAt}
}

// newPublicID returns a fresh public lead ID: "ld_" and 16 random bytes in
// hex, the form the migration gives the leads stored before public IDs
// (00008). 128 bits make a collision as good as impossible; the unique
// index would refuse one.
func newPublicID() string {
	b := make([]byte, 16)
	// crypto/rand.Read never fails (it crashes the program rather than
	// return weak bytes).
	_, _ = rand.Read(b)
	return "ld_" + hex.EncodeToString(b)
}

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
		ID: l.ID, PublicID: l.PublicID, LeadIntegrationID: l.IntegrationID, OrgID: l.OrgID, ExternalID: l.ExternalID, Source: l.Source,
		Name: l.Name, FirstName: l.FirstName, LastName: l.LastName, Company: l.Company,
		Email: l.Email, Phone: l.Phone, Message: l.Message,
		Attributes: string(attributes), ReceivedAt: dbTime(l.ReceivedAt),
	}, nil
}

func (r leadRow) toLead() (Lead, error) {
	l := Lead{
		ID: r.ID, PublicID: r.PublicID, IntegrationID: r.LeadIntegrationID, OrgID: r.OrgID, ExternalID: r.ExternalID, Source: r.Source,
		Name: r.Name, FirstName: r.FirstName, LastName: r.LastName, Company: r.Company,
		Email: r.Email, Phone: r.Phone, Message: r.Message, ReceivedAt: r.ReceivedAt.UTC(),
	}
	if r.PurgedAt != nil {
		at := r.PurgedAt.UTC()
		l.PurgedAt = &at
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
	if depth := AttributeDepth(l.Attributes); depth > MaxAttributeDepth {
		return fmt.Errorf("lead attributes nest %d levels deep, more than %d: flatten them", depth, MaxAttributeDepth)
	}
	for _, f := range []struct{ name, value string }{
		{"external ID", l.ExternalID}, {"source", l.Source}, {"name", l.Name},
		{"first name", l.FirstName}, {"last name", l.LastName}, {"company", l.Company},
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
//   - l.OrgID is taken from the integration row, and the lead gets a fresh
//     PublicID;
//   - a repeated external ID stores nothing and returns Duplicate with the
//     original's LeadID and PublicID (concurrent repeats too: one of them
//     stores);
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
	row.PublicID = newPublicID()
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

// AttributeDepth is how deeply attributes nest: 0 for none, 1 for a flat
// object, one more for each object or array inside.
func AttributeDepth(attributes map[string]any) int {
	if len(attributes) == 0 {
		return 0
	}
	return jsonDepth(attributes)
}

// jsonDepth is the nesting depth of a decoded JSON value.
func jsonDepth(v any) int {
	deepest := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			deepest = max(deepest, jsonDepth(e))
		}
	case []any:
		for _, e := range v {
			deepest = max(deepest, jsonDepth(e))
		}
	default:
		return 0
	}
	return deepest + 1
}

// LeadByPublicID returns the lead whose public ID is publicID, with its
// payload (empty once purged); the error wraps ErrNotFound when there is
// none.
func (s *Store) LeadByPublicID(ctx context.Context, publicID string) (Lead, error) {
	var row leadRow
	q := s.db.Rebind(`SELECT ` + leadColumns + ` FROM leads l WHERE l.public_id = ?`)
	err := sqlx.GetContext(ctx, s.db, &row, q, publicID)
	if errors.Is(err, sql.ErrNoRows) {
		return Lead{}, fmt.Errorf("no lead has public ID %q: %w", publicID, ErrNotFound)
	}
	if err != nil {
		return Lead{}, fmt.Errorf("read lead %s: %w", publicID, err)
	}
	return row.toLead()
}

// originalLead returns the ID and public ID of the lead that row's
// external ID repeats.
func originalLead(ctx context.Context, q queryer, row leadRow) (id int64, publicID string, err error) {
	var original struct {
		ID       int64  `db:"id"`
		PublicID string `db:"public_id"`
	}
	query := q.Rebind(`SELECT id, public_id FROM leads WHERE lead_integration_id = ? AND external_id = ?`)
	if err := sqlx.GetContext(ctx, q, &original, query, row.LeadIntegrationID, row.ExternalID); err != nil {
		return 0, "", fmt.Errorf("find the original of a duplicate lead: %w", err)
	}
	return original.ID, original.PublicID, nil
}
