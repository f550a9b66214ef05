package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Delivery statuses: a delivery is pending until the CRM accepts the lead
// (delivered) or refuses it on its own merits (rejected), until the lead is
// set aside after failing on its own too often (gave up, see
// RecordSoloFailures), or until it is called off (cancelled: its CRM
// integration was deleted, see Project, or its lead erased, reason
// ErasedReason). Every status but pending is final.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryRejected  = "rejected"
	DeliveryGaveUp    = "gave_up"
	DeliveryCancelled = "cancelled"
)

// MaxPendingLimit caps how many deliveries PendingDeliveries returns at
// once.
const MaxPendingLimit = 1000

// MaxDeliveryErrorLength bounds the texts a delivery keeps (bytes): the
// last error, the CRM's record ID and rejection reason. Longer ones are cut.
const MaxDeliveryErrorLength = 2000

// Delivery is a pending delivery of a lead to a CRM integration, with the
// lead's payload.
type Delivery struct {
	Lead Lead
	// Attempts counts the failed attempts so far, an outage's included:
	// a lead with attempts has been in a call that failed.
	Attempts int
}

// DeliveryResult is the CRM's answer for one lead of a batch.
type DeliveryResult struct {
	LeadID int64
	// Status is DeliveryDelivered or DeliveryRejected.
	Status string
	// CRMRecordID is the CRM's ID of the record (delivered leads).
	CRMRecordID string
	// Reason is the CRM's reason for refusing the lead (rejected leads).
	Reason string
}

// DeliveryCounts are a CRM integration's deliveries per status.
type DeliveryCounts struct {
	Pending, Delivered, Rejected, GaveUp, Cancelled int64
	// OldestPendingSince is when the pending delivery of the oldest lead
	// was created; nil when nothing is pending.
	OldestPendingSince *time.Time
	// LastDeliveredAt is when a delivery last completed, delivered or
	// rejected: the last time the CRM answered for a lead, which is a
	// successful sync either way. Nil before the first.
	LastDeliveredAt *time.Time
}

// pendingRow is a pending row of lead_deliveries joined with its lead.
type pendingRow struct {
	leadRow
	Attempts int `db:"attempts"`
}

// pendingFrom is the common start of the dialects' pendingQuery, which
// selects a CRM integration's pending deliveries after a lead ID with their
// leads. The subquery walks lead_deliveries_pending_idx in lead order from
// that ID and stops at the limit; the join with leads that each dialect
// appends then looks up just those leads.
const pendingFrom = `SELECT ` + leadColumns + `, d.attempts
FROM (
	SELECT lead_id, attempts FROM lead_deliveries
	WHERE crm_integration_id = ? AND status = 'pending' AND lead_id > ?
	ORDER BY lead_id
	LIMIT ?
) d `

// PendingDeliveries returns up to limit (1-MaxPendingLimit) pending
// deliveries of the CRM integration, oldest lead first, with their
// payloads.
func (s *Store) PendingDeliveries(ctx context.Context, crmID string, limit int) ([]Delivery, error) {
	return s.PendingDeliveriesAfter(ctx, crmID, 0, limit)
}

// PendingDeliveriesAfter is PendingDeliveries from the first lead after
// afterLeadID: a reader that pages through a backlog passes the last lead
// ID of the previous page, so pages can be read while earlier ones are
// still being delivered.
func (s *Store) PendingDeliveriesAfter(ctx context.Context, crmID string, afterLeadID int64, limit int) ([]Delivery, error) {
	if limit < 1 || limit > MaxPendingLimit {
		return nil, fmt.Errorf("pending deliveries of %s: limit %d is out of range: give 1-%d", crmID, limit, MaxPendingLimit)
	}
	pending, err := s.prepared(ctx, s.dialect.pendingQuery())
	if err != nil {
		return nil, fmt.Errorf("pending deliveries of %s: %w", crmID, err)
	}
	rows, err := pending.QueryContext(ctx, crmID, afterLeadID, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries of %s: %w", crmID, err)
	}
	defer rows.Close()
	out := make([]Delivery, 0, limit)
	for rows.Next() {
		// Scanned field by field rather than through sqlx's reflection:
		// this runs for every lead a CRM integration delivers.
		var row pendingRow
		if err := rows.Scan(append(row.scanFields(), &row.Attempts)...); err != nil {
			return nil, fmt.Errorf("pending deliveries of %s: %w", crmID, err)
		}
		l, err := row.toLead()
		if err != nil {
			return nil, fmt.Errorf("pending deliveries of %s: %w", crmID, err)
		}
		out = append(out, Delivery{Lead: l, Attempts: row.Attempts})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending deliveries of %s: %w", crmID, err)
	}
	return out, nil
}

// checkResults says what is wrong in a batch of delivery results.
func checkResults(results []DeliveryResult) error {
	seen := make(map[int64]bool, len(results))
	for _, r := range results {
		switch r.Status {
		case DeliveryDelivered, DeliveryRejected:
		default:
			return fmt.Errorf("lead %d: unknown delivery result %q: use %s or %s", r.LeadID, r.Status, DeliveryDelivered, DeliveryRejected)
		}
		if seen[r.LeadID] {
			return fmt.Errorf("lead %d has two results: give one per lead", r.LeadID)
		}
		seen[r.LeadID] = true
	}
	return nil
}

// CompleteDeliveries marks the CRM integration's pending deliveries of the
// results' leads delivered or rejected, with the CRM's record ID or
// reason, completed at at. It is idempotent: deliveries already completed
// (and leads never routed to the CRM) are left alone, so a retried batch
// changes nothing. Either every result is recorded or none.
func (s *Store) CompleteDeliveries(ctx context.Context, crmID string, results []DeliveryResult, at time.Time) error {
	if crmID == "" {
		return errors.New("complete deliveries: no CRM integration ID given")
	}
	if err := checkResults(results); err != nil {
		return fmt.Errorf("complete deliveries of %s: %w", crmID, err)
	}
	if len(results) == 0 {
		return nil
	}
	if err := s.dialect.completeDeliveries(ctx, s, crmID, results, dbTime(at)); err != nil {
		return fmt.Errorf("complete deliveries of %s: %w", crmID, err)
	}
	return nil
}

// RecordDeliveryFailure counts a failed attempt for the CRM integration's
// pending deliveries of leadIDs and keeps message as their last error
// (cut to MaxDeliveryErrorLength). Completed deliveries are left alone.
// The message is shown to users and support: it must not hold lead data.
func (s *Store) RecordDeliveryFailure(ctx context.Context, crmID string, leadIDs []int64, message string) error {
	switch {
	case crmID == "":
		return errors.New("record delivery failure: no CRM integration ID given")
	case strings.TrimSpace(message) == "":
		return fmt.Errorf("record delivery failure of %s: no error message given", crmID)
	}
	if len(leadIDs) == 0 {
		return nil
	}
	message = cleanText(message)

	// The range bounds the index scan as in completeQueryPostgres.
	const update = `UPDATE lead_deliveries SET attempts = attempts + 1, last_error = ?
WHERE crm_integration_id = ? AND status = 'pending' AND lead_id BETWEEN ? AND ? AND `
	q, args, err := s.dialect.anyLeadID(update, []any{message, crmID, slices.Min(leadIDs), slices.Max(leadIDs)}, leadIDs)
	if err != nil {
		return fmt.Errorf("record delivery failure of %s: %w", crmID, err)
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("record delivery failure of %s: %w", crmID, err)
	}
	return nil
}

// RecordSoloFailures counts a failure of their own for the CRM
// integration's pending deliveries of leadIDs: each lead was pushed alone
// and failed while the CRM answered the call after it, so the lead, not
// the CRM, is what fails. A delivery whose solo failures reach maxFailures
// (at least 1) is set aside: status gave_up, completed at at, with reason
// (cut to MaxDeliveryErrorLength; shown to users, so no lead data). It
// returns the lead IDs it set aside, sorted. Completed deliveries are left
// alone. Outages never come here: a lead that fails with every other one
// is counted in attempts only (RecordDeliveryFailure).
func (s *Store) RecordSoloFailures(ctx context.Context, crmID string, leadIDs []int64, maxFailures int, reason string, at time.Time) ([]int64, error) {
	switch {
	case crmID == "":
		return nil, errors.New("record solo failures: no CRM integration ID given")
	case maxFailures < 1:
		return nil, fmt.Errorf("record solo failures of %s: the limit %d is not positive", crmID, maxFailures)
	case strings.TrimSpace(reason) == "":
		return nil, fmt.Errorf("record solo failures of %s: no reason given", crmID)
	}
	if len(leadIDs) == 0 {
		return nil, nil
	}
	// The right-hand sides read the row as it was, so every CASE sees the
	// count before this failure; the range bounds the index scan as in
	// RecordDeliveryFailure.
	const update = `UPDATE lead_deliveries SET solo_failures = solo_failures + 1,
	status = CASE WHEN solo_failures + 1 >= ? THEN 'gave_up' ELSE status END,
	completed_at = CASE WHEN solo_failures + 1 >= ? THEN ? ELSE completed_at END,
	reason = CASE WHEN solo_failures + 1 >= ? THEN ? ELSE reason END
WHERE crm_integration_id = ? AND status = 'pending' AND lead_id BETWEEN ? AND ? AND `
	args := []any{maxFailures, maxFailures, dbTime(at), maxFailures, cleanText(reason), crmID, slices.Min(leadIDs), slices.Max(leadIDs)}
	q, args, err := s.dialect.anyLeadID(update, args, leadIDs)
	if err != nil {
		return nil, fmt.Errorf("record solo failures of %s: %w", crmID, err)
	}
	var rows []struct {
		LeadID int64  `db:"lead_id"`
		Status string `db:"status"`
	}
	if err := sqlx.SelectContext(ctx, s.db, &rows, q+` RETURNING lead_id, status`, args...); err != nil {
		return nil, fmt.Errorf("record solo failures of %s: %w", crmID, err)
	}
	var gaveUp []int64
	for _, r := range rows {
		if r.Status == DeliveryGaveUp {
			gaveUp = append(gaveUp, r.LeadID)
		}
	}
	slices.Sort(gaveUp)
	return gaveUp, nil
}

// cancelledReason is the reason of a delivery cancelled by a delete.
const cancelledReason = "the CRM integration was deleted before the lead was delivered"

// cancelPendingDeliveries ends every pending delivery of CRM integration
// crmID as cancelled at at, within tx: the projection of its deleted
// snapshot (see Project). Intake routes to a CRM integration only while
// its row is not deleted, and takes that row's lock (PostgreSQL) or the
// database's (SQLite) to do so, so a lead routed during the delete has
// committed by the time this runs and is cancelled too.
func cancelPendingDeliveries(ctx context.Context, tx *sqlx.Tx, crmID string, at time.Time) error {
	q := tx.Rebind(`UPDATE lead_deliveries SET status = 'cancelled', completed_at = ?, reason = ?
WHERE crm_integration_id = ? AND status = 'pending'`)
	if _, err := tx.ExecContext(ctx, q, dbTime(at), cancelledReason, crmID); err != nil {
		return fmt.Errorf("cancel pending deliveries: %w", err)
	}
	return nil
}

// cleanText makes text from a CRM or its client storable the same way on
// both backends: valid UTF-8 without NUL characters (PostgreSQL text holds
// neither), at most MaxDeliveryErrorLength bytes, cut between characters.
func cleanText(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	n := MaxDeliveryErrorLength
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DeliveryCounts returns the CRM integration's deliveries per status and
// since when the oldest pending one waits.
func (s *Store) DeliveryCounts(ctx context.Context, crmID string) (DeliveryCounts, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int64  `db:"n"`
	}
	q := s.db.Rebind(`SELECT status, COUNT(*) AS n FROM lead_deliveries WHERE crm_integration_id = ? GROUP BY status`)
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, crmID); err != nil {
		return DeliveryCounts{}, fmt.Errorf("count deliveries of %s: %w", crmID, err)
	}
	var counts DeliveryCounts
	for _, row := range rows {
		switch row.Status {
		case DeliveryPending:
			counts.Pending = row.N
		case DeliveryDelivered:
			counts.Delivered = row.N
		case DeliveryRejected:
			counts.Rejected = row.N
		case DeliveryGaveUp:
			counts.GaveUp = row.N
		case DeliveryCancelled:
			counts.Cancelled = row.N
		}
	}
	var err error
	if counts.Pending > 0 {
		// The oldest lead's delivery, found at the head of the index,
		// rather than MIN(created_at) over a possibly long backlog.
		counts.OldestPendingSince, err = s.timeOf(ctx, `SELECT created_at FROM lead_deliveries
WHERE crm_integration_id = ? AND status = 'pending' ORDER BY lead_id LIMIT 1`, crmID)
		if err != nil {
			return DeliveryCounts{}, fmt.Errorf("oldest pending delivery of %s: %w", crmID, err)
		}
	}
	if counts.Delivered+counts.Rejected > 0 {
		// ORDER BY and LIMIT rather than MAX, whose result SQLite does not
		// declare as a time for the driver to parse.
		counts.LastDeliveredAt, err = s.timeOf(ctx, `SELECT completed_at FROM lead_deliveries
WHERE crm_integration_id = ? AND status IN ('delivered', 'rejected') ORDER BY completed_at DESC LIMIT 1`, crmID)
		if err != nil {
			return DeliveryCounts{}, fmt.Errorf("last delivery of %s: %w", crmID, err)
		}
	}
	return counts, nil
}

// HasPending reports whether the CRM integration has a pending delivery.
// It reads the first entry of the index of pending deliveries, so it stays
// cheap however long the backlog: for pollers that wait for one to drain.
func (s *Store) HasPending(ctx context.Context, crmID string) (bool, error) {
	var n int
	q := s.db.Rebind(`SELECT COUNT(*) FROM (SELECT 1 FROM lead_deliveries
WHERE crm_integration_id = ? AND status = 'pending' ORDER BY lead_id LIMIT 1) first`)
	if err := sqlx.GetContext(ctx, s.db, &n, q, crmID); err != nil {
		return false, fmt.Errorf("look for pending deliveries of %s: %w", crmID, err)
	}
	return n > 0, nil
}

// timeOf runs query, which selects one time column, and returns the time of
// its first row in UTC; nil when there is no row (it changed since the
// caller counted).
func (s *Store) timeOf(ctx context.Context, query string, args ...any) (*time.Time, error) {
	var t time.Time
	err := sqlx.GetContext(ctx, s.db, &t, s.db.Rebind(query), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t = t.UTC()
	return &t, nil
}

// CompletionsSince returns when the first of the CRM integrations'
// deliveries completed (delivered or rejected) at or after since, and how
// many of them completed later than that first one (not at the same
// instant): how a backlog drains, for the benchmark. It returns the zero
// time and 0 when none did.
func (s *Store) CompletionsSince(ctx context.Context, crmIDs []string, since time.Time) (first time.Time, after int64, err error) {
	if len(crmIDs) == 0 {
		return time.Time{}, 0, nil
	}
	// ORDER BY and LIMIT rather than MIN, whose result SQLite does not
	// declare as a time for the driver to parse.
	q, args, err := sqlx.In(`SELECT completed_at FROM lead_deliveries
WHERE crm_integration_id IN (?) AND completed_at >= ? ORDER BY completed_at LIMIT 1`, crmIDs, dbTime(since))
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("first completion since %s: %w", since.Format(time.RFC3339), err)
	}
	if err := sqlx.GetContext(ctx, s.db, &first, s.db.Rebind(q), args...); errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, 0, nil
	} else if err != nil {
		return time.Time{}, 0, fmt.Errorf("first completion since %s: %w", since.Format(time.RFC3339), err)
	}
	q, args, err = sqlx.In(`SELECT COUNT(*) FROM lead_deliveries WHERE crm_integration_id IN (?) AND completed_at > ?`, crmIDs, first)
	if err == nil {
		err = sqlx.GetContext(ctx, s.db, &after, s.db.Rebind(q), args...)
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("completions after %s: %w", first.UTC().Format(time.RFC3339Nano), err)
	}
	return first.UTC(), after, nil
}

// DeliveryLatencies returns, shortest first, how long each delivery
// completed (delivered or rejected) at or after since took from intake:
// completed_at - received_at. For the benchmark.
func (s *Store) DeliveryLatencies(ctx context.Context, since time.Time) ([]time.Duration, error) {
	var rows []struct {
		ReceivedAt  time.Time `db:"received_at"`
		CompletedAt time.Time `db:"completed_at"`
	}
	q := s.db.Rebind(`SELECT l.received_at, d.completed_at
FROM lead_deliveries d JOIN leads l ON l.id = d.lead_id
WHERE d.completed_at >= ?`)
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, dbTime(since)); err != nil {
		return nil, fmt.Errorf("delivery latencies: %w", err)
	}
	out := make([]time.Duration, len(rows))
	for i, row := range rows {
		out[i] = row.CompletedAt.Sub(row.ReceivedAt)
	}
	slices.Sort(out)
	return out, nil
}
