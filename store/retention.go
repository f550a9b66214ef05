package store

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The lifecycle of lead PII: a lead's payload (the contact fields and the
// attributes) is removed once it is no longer needed, by PurgeLeads (the
// retention job) or on request by EraseContact. What stays is what the
// counts and the audit need: the lead's keys (id, public_id, external_id),
// its source, integration, org and times, and its deliveries' statuses,
// attempts, CRM record IDs and times. The texts a delivery keeps from the
// CRM (the last error and the rejection reason) may quote the payload, so
// they go with it; a cancelled delivery's reason is ours and stays.
//
// A lead's deliveries are found through the CRM integrations of the lead's
// org, which are where intake routes it (an integration never changes its
// org): lead_deliveries is keyed by CRM integration first, and an index on
// lead_id alone would cost every delivery an index entry more.

// Purge reasons, as leads.purge_reason holds them.
const (
	PurgeRetention = "retention"
	PurgeErased    = "erased"
)

// ErasedReason is the reason of a pending delivery that an erasure
// cancelled: no CRM gets the lead after its payload is gone.
const ErasedReason = "erased"

// MaxPurgeBatch caps how many leads one PurgeLeads call purges.
const MaxPurgeBatch = 1000

// ErrInvalidContact is wrapped by EraseContact's errors for a contact that
// names nobody exactly (no email or phone, both, a malformed email); its
// message says what to give, never the value.
var ErrInvalidContact = errors.New("invalid contact")

// clearPayload is the SET clause that removes a lead's payload.
const clearPayload = `name = '', first_name = '', last_name = '', company = '', email = '', phone = '',
	message = '', attributes = '{}', purged_at = ?, purge_reason = ?`

// Purged is what a PurgeLeads call removed.
type Purged struct {
	// Leads is how many leads lost their payload.
	Leads int64 `json:"leads"`
	// Deliveries is how many deliveries of those leads lost their texts
	// (last error, rejection reason).
	Deliveries int64 `json:"lead_deliveries"`
}

// PurgeLeads removes the payload of up to limit (1-MaxPurgeBatch) leads
// received before before whose deliveries are all completed (none is
// pending: delivered, rejected, set aside and cancelled ones are done with
// the payload; a lead routed to no CRM has none), oldest first, and the
// texts of their deliveries, marking them purged at at with reason
// PurgeRetention. A call that purges fewer than limit leads found every
// lead that was due. It is idempotent, and safe beside intake, delivery
// and other purges: a purged lead is never a candidate again, and a lead
// never gains a pending delivery after intake.
func (s *Store) PurgeLeads(ctx context.Context, before time.Time, limit int, at time.Time) (Purged, error) {
	if limit < 1 || limit > MaxPurgeBatch {
		return Purged{}, fmt.Errorf("purge leads: limit %d is out of range: give 1-%d", limit, MaxPurgeBatch)
	}
	var out Purged
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		out = Purged{}
		// NOT EXISTS, an anti join, probing each candidate's pending
		// deliveries through the CRM integrations of its org (the primary
		// key and the partial pending index lead with the integration):
		// both databases plan it as a few index lookups per candidate,
		// PostgreSQL may hash it instead. NOT IN, whose NULL semantics
		// forbid the anti join, had PostgreSQL materialize every pending
		// delivery and rescan that list per candidate once it outgrew
		// work_mem.
		var due []leadKey
		q := tx.Rebind(`SELECT l.id, l.org_id FROM leads l
WHERE l.purged_at IS NULL AND l.received_at < ?
AND NOT EXISTS (SELECT 1 FROM integrations c JOIN lead_deliveries d ON d.crm_integration_id = c.id
	WHERE c.org_id = l.org_id AND d.lead_id = l.id AND d.status = 'pending')
ORDER BY l.received_at
LIMIT ?`)
		if err := sqlx.SelectContext(ctx, tx, &due, q, dbTime(before), limit); err != nil {
			return fmt.Errorf("find leads due: %w", err)
		}
		var err error
		out.Leads, out.Deliveries, err = removePayloads(ctx, tx, due, PurgeRetention, dbTime(at))
		return err
	})
	if err != nil {
		return Purged{}, fmt.Errorf("purge leads received before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return out, nil
}

// Contact names the person an erasure is for, by exactly one of Email and
// Phone. An email matches a lead's email without regard to surrounding
// spaces or the case of ASCII letters; a phone matches a lead's phone
// when both have the same digits, whatever else either has (spaces,
// dashes, brackets, a plus sign): "+1 (555) 010-2000" matches
// "15550102000" but not "555-010-2000", so give the number with the
// country code the partner sent, or erase once per form.
type Contact struct {
	Email string
	Phone string
}

// key returns the leads column to match and the normalized value, or an
// error wrapping ErrInvalidContact that never quotes the value.
func (c Contact) key() (field, value string, err error) {
	switch {
	case c.Email != "" && c.Phone != "":
		return "", "", fmt.Errorf("give an email or a phone, not both: erase each separately (%w)", ErrInvalidContact)
	case c.Email != "":
		email := strings.TrimSpace(c.Email)
		addr, perr := mail.ParseAddress(email)
		if perr != nil || addr.Name != "" || addr.Address != email || len(email) > 320 {
			return "", "", fmt.Errorf("the email is not a plain address such as name@example.com (%w)", ErrInvalidContact)
		}
		return "email", asciiLower(email), nil
	case c.Phone != "":
		digits := asciiDigits(c.Phone)
		if digits == "" || len(c.Phone) > 320 {
			return "", "", fmt.Errorf("the phone has no digits: give the number, e.g. +1 555 010 2000 (%w)", ErrInvalidContact)
		}
		return "phone", digits, nil
	}
	return "", "", fmt.Errorf("give the email or the phone of the person to erase (%w)", ErrInvalidContact)
}

// Erasure is what EraseContact removed, counted per table; never the
// values.
type Erasure struct {
	// Leads is how many leads lost their payload.
	Leads int64 `json:"leads"`
	// Deliveries is how many deliveries of those leads changed: pending
	// ones cancelled, completed ones with texts that lost them.
	Deliveries int64 `json:"lead_deliveries"`
	// Cancelled is how many of those Deliveries were pending and are now
	// cancelled (reason ErasedReason), so that no CRM receives an emptied
	// record.
	Cancelled int64 `json:"cancelled"`
	// InCRMs is how many deliveries of those leads had reached a CRM
	// before: records the customer must erase in the CRM itself.
	InCRMs int64 `json:"in_crms"`
}

// EraseContact removes the payload of every lead whose email or phone
// matches c (see Contact), on every lead integration, with the texts of
// their deliveries, marking them purged at at with reason PurgeErased; their
// pending deliveries become cancelled, reason ErasedReason. All in one
// transaction. An invalid contact (an error wrapping ErrInvalidContact)
// changes nothing. Leads already purged hold no contact and match nothing,
// so erasing again finds nothing.
//
// A delivery that was being pushed when the erasure committed may still
// reach the CRM with the lead as it was (never emptied); its result is
// then not recorded, as the delivery is no longer pending. Records already
// in a CRM are the customer's to erase there.
func (s *Store) EraseContact(ctx context.Context, c Contact, at time.Time) (Erasure, error) {
	field, value, err := c.key()
	if err != nil {
		return Erasure{}, fmt.Errorf("erase: %w", err)
	}
	at = dbTime(at)
	var out Erasure
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		out = Erasure{}
		var matches []leadKey
		q := tx.Rebind(`SELECT id, org_id FROM leads WHERE purged_at IS NULL AND ` + s.dialect.contactKey(field) + ` = ? ORDER BY id`)
		if err := sqlx.SelectContext(ctx, tx, &matches, q, value); err != nil {
			return fmt.Errorf("find the leads: %w", err)
		}
		for batch := range slices.Chunk(matches, MaxPurgeBatch) {
			delivered, err := countDeliveries(ctx, tx, batch, `status = 'delivered'`)
			if err != nil {
				return fmt.Errorf("count deliveries: %w", err)
			}
			out.InCRMs += delivered
			cancelled, err := updateDeliveries(ctx, tx, batch, `status = 'cancelled', reason = ?, last_error = '', completed_at = ?`,
				`status = 'pending'`, ErasedReason, at)
			if err != nil {
				return fmt.Errorf("cancel pending deliveries: %w", err)
			}
			leads, cleared, err := removePayloads(ctx, tx, batch, PurgeErased, at)
			if err != nil {
				return err
			}
			out.Leads += leads
			out.Deliveries += cancelled + cleared
			out.Cancelled += cancelled
		}
		return nil
	})
	if err != nil {
		return Erasure{}, fmt.Errorf("erase the leads of a %s: %w", field, err)
	}
	return out, nil
}

// leadKey is a lead's ID and org: where its deliveries are.
type leadKey struct {
	ID    int64  `db:"id"`
	OrgID string `db:"org_id"`
}

// removePayloads removes the payload of leads (that still have one) and
// the texts of their completed deliveries, within tx, and counts both.
func removePayloads(ctx context.Context, tx *sqlx.Tx, leads []leadKey, reason string, at time.Time) (purged, deliveries int64, err error) {
	if len(leads) == 0 {
		return 0, 0, nil
	}
	// A cancelled delivery's reason is ours (erased, deleted), not the
	// CRM's: it stays.
	deliveries, err = updateDeliveries(ctx, tx, leads, `last_error = '', reason = CASE WHEN status = 'cancelled' THEN reason ELSE '' END`,
		`status <> 'pending' AND (last_error <> '' OR (reason <> '' AND status <> 'cancelled'))`)
	if err != nil {
		return 0, 0, fmt.Errorf("clear delivery texts: %w", err)
	}
	ids := make([]int64, len(leads))
	for i, l := range leads {
		ids[i] = l.ID
	}
	q, args, err := sqlx.In(`UPDATE leads SET `+clearPayload+` WHERE purged_at IS NULL AND id IN (?)`, at, reason, ids)
	if err != nil {
		return 0, 0, fmt.Errorf("remove lead payloads: %w", err)
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(q), args...)
	if err == nil {
		purged, err = res.RowsAffected()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("remove lead payloads: %w", err)
	}
	return purged, deliveries, nil
}

// updateDeliveries applies set (its arguments first in args) to the
// deliveries of leads that satisfy where, and counts them.
func updateDeliveries(ctx context.Context, tx *sqlx.Tx, leads []leadKey, set, where string, args ...any) (int64, error) {
	if len(leads) == 0 {
		return 0, nil
	}
	q, inArgs, err := deliveriesOf(`UPDATE lead_deliveries SET `+set, leads, where, args)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(q), inArgs...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// countDeliveries counts the deliveries of leads that satisfy where.
func countDeliveries(ctx context.Context, tx *sqlx.Tx, leads []leadKey, where string) (int64, error) {
	if len(leads) == 0 {
		return 0, nil
	}
	q, args, err := deliveriesOf(`SELECT COUNT(*) FROM lead_deliveries`, leads, where, nil)
	if err != nil {
		return 0, err
	}
	var n int64
	err = sqlx.GetContext(ctx, tx, &n, tx.Rebind(q), args...)
	return n, err
}

// deliveriesOf completes statement, an UPDATE or SELECT of
// lead_deliveries, with the condition that selects the deliveries of
// leads that satisfy where, and returns it with its arguments (args
// first). It goes through the CRM integrations of the leads' orgs, so that
// each (integration, lead) pair is a primary key lookup.
func deliveriesOf(statement string, leads []leadKey, where string, args []any) (string, []any, error) {
	ids := make([]int64, len(leads))
	orgs := make([]string, 0, 1)
	seen := map[string]bool{}
	for i, l := range leads {
		ids[i] = l.ID
		if !seen[l.OrgID] {
			seen[l.OrgID] = true
			orgs = append(orgs, l.OrgID)
		}
	}
	return sqlx.In(statement+`
WHERE crm_integration_id IN (SELECT id FROM integrations WHERE kind = 'crm' AND org_id IN (?))
AND lead_id IN (?) AND `+where, append(args, orgs, ids)...)
}

// asciiLower lowers the ASCII letters of s and leaves every other
// character as it is: the case folding both databases apply in
// contactKey.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// asciiDigits keeps the ASCII digits of s.
func asciiDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, s)
}
