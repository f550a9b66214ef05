package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/integrations/integration"
)

// integrationRow is a row of integrations.
type integrationRow struct {
	ID                  string         `db:"id"`
	Kind                string         `db:"kind"`
	OrgID               string         `db:"org_id"`
	Provider            string         `db:"provider"`
	Name                string         `db:"name"`
	Status              string         `db:"status"`
	Reason              string         `db:"reason"`
	Version             int64          `db:"version"`
	NeedsAttention      bool           `db:"needs_attention"`
	Abandoned           bool           `db:"abandoned"`
	ReminderSent        bool           `db:"reminder_sent"`
	ExpectedSource      string         `db:"expected_source"`
	LastReceivedSource  string         `db:"last_received_source"`
	RevisionRequested   string         `db:"revision_requested"`
	SetupSteps          string         `db:"setup_steps"`
	Validation          sql.NullString `db:"validation"`
	ConsecutiveFailures int            `db:"consecutive_failures"`
	FailingSince        sql.NullTime   `db:"failing_since"`
	LastSyncError       string         `db:"last_sync_error"`
	NextAttemptAt       sql.NullTime   `db:"next_attempt_at"`
	CreatedAt           time.Time      `db:"created_at"`
	UpdatedAt           time.Time      `db:"updated_at"`
}

// integrationColumns lists the columns of integrations in integrationRow
// order.
const integrationColumns = `id, kind, org_id, provider, name, status, reason, version,
	needs_attention, abandoned, reminder_sent, expected_source, last_received_source,
	revision_requested, setup_steps, validation, consecutive_failures, failing_since,
	last_sync_error, next_attempt_at, created_at, updated_at`

func toIntegrationRow(st integration.State) (integrationRow, error) {
	revisions := st.RevisionRequested
	if revisions == nil {
		revisions = []string{}
	}
	revisionsJSON, err := json.Marshal(revisions)
	if err != nil {
		return integrationRow{}, fmt.Errorf("encode revision_requested: %w", err)
	}
	steps := make([]integration.SetupStep, len(st.Setup))
	for i, step := range st.Setup {
		step.At = dbTimePtr(step.At)
		steps[i] = step
	}
	stepsJSON, err := json.Marshal(steps)
	if err != nil {
		return integrationRow{}, fmt.Errorf("encode setup_steps: %w", err)
	}
	var validation sql.NullString
	if st.Validation != nil {
		v := *st.Validation
		v.At = dbTimePtr(v.At)
		b, err := json.Marshal(v)
		if err != nil {
			return integrationRow{}, fmt.Errorf("encode validation: %w", err)
		}
		validation = sql.NullString{String: string(b), Valid: true}
	}
	return integrationRow{
		ID: st.ID, Kind: string(st.Kind), OrgID: st.OrgID, Provider: st.Provider, Name: st.Name,
		Status: string(st.Status), Reason: string(st.Reason), Version: st.Version,
		NeedsAttention: st.NeedsAttention, Abandoned: st.Abandoned, ReminderSent: st.ReminderSent,
		ExpectedSource: st.ExpectedSource, LastReceivedSource: st.LastReceivedSource,
		RevisionRequested: string(revisionsJSON), SetupSteps: string(stepsJSON), Validation: validation,
		ConsecutiveFailures: st.ConsecutiveFailures, FailingSince: nullTime(st.FailingSince),
		LastSyncError: st.LastSyncError, NextAttemptAt: nullTime(st.NextAttemptAt),
		CreatedAt: dbTime(st.CreatedAt), UpdatedAt: dbTime(st.UpdatedAt),
	}, nil
}

func (r integrationRow) toState() (integration.State, error) {
	st := integration.State{
		ID: r.ID, OrgID: r.OrgID, Kind: integration.Kind(r.Kind), Provider: r.Provider, Name: r.Name,
		Status: integration.Status(r.Status), Reason: integration.Reason(r.Reason), Version: r.Version,
		ExpectedSource: r.ExpectedSource, LastReceivedSource: r.LastReceivedSource,
		NeedsAttention: r.NeedsAttention, ReminderSent: r.ReminderSent, Abandoned: r.Abandoned,
		ConsecutiveFailures: r.ConsecutiveFailures, FailingSince: timePtr(r.FailingSince),
		LastSyncError: r.LastSyncError, NextAttemptAt: timePtr(r.NextAttemptAt),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal([]byte(r.RevisionRequested), &st.RevisionRequested); err != nil {
		return integration.State{}, fmt.Errorf("decode revision_requested of %s: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(r.SetupSteps), &st.Setup); err != nil {
		return integration.State{}, fmt.Errorf("decode setup_steps of %s: %w", r.ID, err)
	}
	// Empty lists are stored as [] but the domain leaves them nil.
	if len(st.RevisionRequested) == 0 {
		st.RevisionRequested = nil
	}
	if len(st.Setup) == 0 {
		st.Setup = nil
	}
	for i := range st.Setup {
		st.Setup[i].At = utcPtr(st.Setup[i].At)
	}
	if r.Validation.Valid {
		var v integration.Validation
		if err := json.Unmarshal([]byte(r.Validation.String), &v); err != nil {
			return integration.State{}, fmt.Errorf("decode validation of %s: %w", r.ID, err)
		}
		v.At = utcPtr(v.At)
		st.Validation = &v
	}
	return st, nil
}

// utcPtr puts a decoded time in time.UTC, as column times are.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// eventRow is a row of integration_events.
type eventRow struct {
	IntegrationID string    `db:"integration_id"`
	Version       int64     `db:"version"`
	Event         string    `db:"event"`
	FromStatus    string    `db:"from_status"`
	FromReason    string    `db:"from_reason"`
	ToStatus      string    `db:"to_status"`
	ToReason      string    `db:"to_reason"`
	Actor         string    `db:"actor"`
	ClaimedBy     string    `db:"claimed_by"`
	Note          string    `db:"note"`
	OccurredAt    time.Time `db:"occurred_at"`
}

const eventColumns = `integration_id, version, event, from_status, from_reason, to_status, to_reason, actor, claimed_by, note, occurred_at`

func toEventRow(ch integration.Change) eventRow {
	return eventRow{
		IntegrationID: ch.IntegrationID, Version: ch.Version, Event: string(ch.Event),
		FromStatus: string(ch.FromStatus), FromReason: string(ch.FromReason),
		ToStatus: string(ch.ToStatus), ToReason: string(ch.ToReason),
		Actor: ch.Actor, ClaimedBy: ch.ClaimedBy, Note: ch.Note, OccurredAt: dbTime(ch.At),
	}
}

func (r eventRow) toChange() integration.Change {
	return integration.Change{
		IntegrationID: r.IntegrationID, Version: r.Version, Event: integration.EventType(r.Event),
		FromStatus: integration.Status(r.FromStatus), FromReason: integration.Reason(r.FromReason),
		ToStatus: integration.Status(r.ToStatus), ToReason: integration.Reason(r.ToReason),
		Actor: r.Actor, ClaimedBy: r.ClaimedBy, Note: r.Note, At: r.OccurredAt.UTC(),
	}
}

// Project writes snapshot st and its change record ch in one transaction.
// The integrations row is upserted only when the stored version is lower
// than st.Version, so stale or replayed writes never regress it; the event
// row is inserted unless one exists for that version. applied reports
// whether the integrations row was written.
//
// A snapshot with status deleted also destroys the integration's secrets
// in that transaction: every credentials version and its intake token
// (again, harmlessly, when it is replayed). Deleted is final, so nothing
// needs them any more, and the adds of secrets refuse a deleted
// integration from then on.
//
// The deleted snapshot of a CRM integration also ends its pending
// deliveries as cancelled, in that transaction (again, harmlessly, when it
// is replayed): nothing will deliver them. Intake locks the CRM
// integrations it routes a lead to, so a lead routed while the delete is
// projected is either routed before (and cancelled here) or sees the
// integration deleted and is not routed to it.
func (s *Store) Project(ctx context.Context, st integration.State, ch integration.Change) (applied bool, err error) {
	if err := checkProjection(st, ch); err != nil {
		return false, err
	}
	row, err := toIntegrationRow(st)
	if err != nil {
		return false, fmt.Errorf("project %s version %d: %w", st.ID, st.Version, err)
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		applied, err = upsertIntegration(ctx, tx, row)
		if err != nil {
			return err
		}
		if st.Status == integration.StatusDeleted {
			if err := s.deleteSecrets(ctx, tx, st.ID); err != nil {
				return err
			}
		}
		if err := insertEvent(ctx, tx, toEventRow(ch)); err != nil {
			return err
		}
		if st.Kind == integration.KindCRM && st.Status == integration.StatusDeleted {
			// After the upsert, which waited for the intakes holding the
			// row's lock: their deliveries are committed and seen here.
			return cancelPendingDeliveries(ctx, tx, st.ID, st.UpdatedAt)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("project %s version %d: %w", st.ID, st.Version, err)
	}
	return applied, nil
}

// checkProjection rejects a snapshot the table constraints would reject
// anyway, with a message that says what is wrong.
func checkProjection(st integration.State, ch integration.Change) error {
	switch {
	case st.ID == "":
		return errors.New("project: state has no integration ID")
	case st.Version <= 0:
		return fmt.Errorf("project %s: version %d is not positive", st.ID, st.Version)
	case st.OrgID == "":
		return fmt.Errorf("project %s: state has no org ID", st.ID)
	case ch.IntegrationID != st.ID || ch.Version != st.Version:
		return fmt.Errorf("project %s version %d: change record is for %s version %d; pass the change that produced this state",
			st.ID, st.Version, ch.IntegrationID, ch.Version)
	case ch.Event == "":
		return fmt.Errorf("project %s version %d: change record has no event", st.ID, st.Version)
	}
	if _, err := integration.ParseKind(string(st.Kind)); err != nil {
		return fmt.Errorf("project %s: %w", st.ID, err)
	}
	if _, err := integration.ParseStatus(string(st.Status)); err != nil {
		return fmt.Errorf("project %s: %w", st.ID, err)
	}
	return nil
}

// upsertIntegration writes row unless the stored row has the same or a
// higher version, and reports whether it wrote.
func upsertIntegration(ctx context.Context, ext sqlx.ExtContext, row integrationRow) (bool, error) {
	const q = `INSERT INTO integrations (` + integrationColumns + `)
VALUES (:id, :kind, :org_id, :provider, :name, :status, :reason, :version,
	:needs_attention, :abandoned, :reminder_sent, :expected_source, :last_received_source,
	:revision_requested, :setup_steps, :validation, :consecutive_failures, :failing_since,
	:last_sync_error, :next_attempt_at, :created_at, :updated_at)
ON CONFLICT (id) DO UPDATE SET
	kind = excluded.kind,
	org_id = excluded.org_id,
	provider = excluded.provider,
	name = excluded.name,
	status = excluded.status,
	reason = excluded.reason,
	version = excluded.version,
	needs_attention = excluded.needs_attention,
	abandoned = excluded.abandoned,
	reminder_sent = excluded.reminder_sent,
	expected_source = excluded.expected_source,
	last_received_source = excluded.last_received_source,
	revision_requested = excluded.revision_requested,
	setup_steps = excluded.setup_steps,
	validation = excluded.validation,
	consecutive_failures = excluded.consecutive_failures,
	failing_since = excluded.failing_since,
	last_sync_error = excluded.last_sync_error,
	next_attempt_at = excluded.next_attempt_at,
	updated_at = excluded.updated_at
WHERE integrations.version < excluded.version`
	res, err := sqlx.NamedExecContext(ctx, ext, q, row)
	if err != nil {
		return false, fmt.Errorf("upsert integrations row: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("upsert integrations row: %w", err)
	}
	return n > 0, nil
}

// insertEvent appends row to integration_events unless its version is
// already recorded.
func insertEvent(ctx context.Context, ext sqlx.ExtContext, row eventRow) error {
	const q = `INSERT INTO integration_events (` + eventColumns + `)
VALUES (:integration_id, :version, :event, :from_status, :from_reason, :to_status, :to_reason, :actor, :claimed_by, :note, :occurred_at)
ON CONFLICT (integration_id, version) DO NOTHING`
	if _, err := sqlx.NamedExecContext(ctx, ext, q, row); err != nil {
		return fmt.Errorf("insert integration_events row: %w", err)
	}
	return nil
}

// Get returns the projected state of integration id; the error wraps
// ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, id string) (integration.State, error) {
	var row integrationRow
	q := s.db.Rebind(`SELECT ` + integrationColumns + ` FROM integrations WHERE id = ?`)
	if err := sqlx.GetContext(ctx, s.db, &row, q, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return integration.State{}, fmt.Errorf("integration %q: %w", id, ErrNotFound)
		}
		return integration.State{}, fmt.Errorf("get integration %q: %w", id, err)
	}
	return row.toState()
}

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListFilter selects integrations; zero fields do not filter.
type ListFilter struct {
	OrgID  string
	Kind   integration.Kind
	Status integration.Status
	// Limit caps the rows returned: 0 means DefaultListLimit; at most
	// MaxListLimit.
	Limit int
}

// List returns the integrations f selects, ordered by org_id, then id.
func (s *Store) List(ctx context.Context, f ListFilter) ([]integration.State, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, fmt.Errorf("list integrations: limit %d is out of range: give 1-%d, or 0 for %d", f.Limit, MaxListLimit, DefaultListLimit)
	}
	var where []string
	var args []any
	if f.OrgID != "" {
		where = append(where, "org_id = ?")
		args = append(args, f.OrgID)
	}
	if f.Kind != "" {
		if _, err := integration.ParseKind(string(f.Kind)); err != nil {
			return nil, fmt.Errorf("list integrations: %w", err)
		}
		where = append(where, "kind = ?")
		args = append(args, string(f.Kind))
	}
	if f.Status != "" {
		if _, err := integration.ParseStatus(string(f.Status)); err != nil {
			return nil, fmt.Errorf("list integrations: %w", err)
		}
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	q := `SELECT ` + integrationColumns + ` FROM integrations`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY org_id, id LIMIT ?`
	args = append(args, limit)

	var rows []integrationRow
	if err := sqlx.SelectContext(ctx, s.db, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	states := make([]integration.State, 0, len(rows))
	for _, row := range rows {
		st, err := row.toState()
		if err != nil {
			return nil, fmt.Errorf("list integrations: %w", err)
		}
		states = append(states, st)
	}
	return states, nil
}

// Events returns every recorded change of integration id, oldest version
// first; none (and no error) for an unknown integration. A long-failing
// integration records a change per failed sync: what answers a caller
// reads a bounded page with EventPage instead.
func (s *Store) Events(ctx context.Context, id string) ([]integration.Change, error) {
	var rows []eventRow
	q := s.db.Rebind(`SELECT ` + eventColumns + ` FROM integration_events WHERE integration_id = ? ORDER BY version`)
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, id); err != nil {
		return nil, fmt.Errorf("events of integration %q: %w", id, err)
	}
	return toChanges(rows), nil
}

// Event page limits, as List's.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

// EventFilter selects a page of an integration's changes.
type EventFilter struct {
	// After is the version the page starts after (0: from the first).
	After int64
	// Limit caps the changes returned: 0 means DefaultEventLimit; at most
	// MaxEventLimit.
	Limit int
}

// EventPage returns up to f.Limit changes of integration id with a version
// above f.After, oldest first, and whether more follow (then the next page
// starts after the last one returned). None (and no error) for an unknown
// integration.
func (s *Store) EventPage(ctx context.Context, id string, f EventFilter) (changes []integration.Change, more bool, err error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultEventLimit
	case limit < 0 || limit > MaxEventLimit:
		return nil, false, fmt.Errorf("events of integration %q: limit %d is out of range: give 1-%d, or 0 for %d", id, f.Limit, MaxEventLimit, DefaultEventLimit)
	}
	if f.After < 0 {
		return nil, false, fmt.Errorf("events of integration %q: after %d is negative: give a version, or 0 for the first page", id, f.After)
	}
	var rows []eventRow
	// One row beyond the page says whether another page follows.
	q := s.db.Rebind(`SELECT ` + eventColumns + ` FROM integration_events WHERE integration_id = ? AND version > ? ORDER BY version LIMIT ?`)
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, id, f.After, limit+1); err != nil {
		return nil, false, fmt.Errorf("events of integration %q after version %d: %w", id, f.After, err)
	}
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	return toChanges(rows), more, nil
}

func toChanges(rows []eventRow) []integration.Change {
	changes := make([]integration.Change, len(rows))
	for i, row := range rows {
		changes[i] = row.toChange()
	}
	return changes
}

// nullTime is an optional time as the store writes it.
func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: dbTime(*t), Valid: true}
}

// timePtr is an optional time as the store returns it: UTC.
func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
