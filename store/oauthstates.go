package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// OAuthState is a pending OAuth consent of a CRM integration: what the
// callback needs to finish it. The state value is never stored, only its
// SHA-256 (StateHash).
type OAuthState struct {
	StateHash     []byte
	IntegrationID string
	Provider      string
	// Sandbox: the CRM's test environment was asked for.
	Sandbox     bool
	RedirectURL string
	// RequestedBy is who asked for the consent URL (an API key's name):
	// the authorize's actor. ClaimedBy is who the request said acts (its
	// "by"), kept beside it as a claim.
	RequestedBy string
	ClaimedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// oauthStateRow is a row of oauth_states.
type oauthStateRow struct {
	StateHash     []byte       `db:"state_hash"`
	IntegrationID string       `db:"integration_id"`
	Provider      string       `db:"provider"`
	Sandbox       bool         `db:"sandbox"`
	RedirectURL   string       `db:"redirect_url"`
	RequestedBy   string       `db:"requested_by"`
	ClaimedBy     string       `db:"claimed_by"`
	CreatedAt     time.Time    `db:"created_at"`
	ExpiresAt     time.Time    `db:"expires_at"`
	UsedAt        sql.NullTime `db:"used_at"`
}

func (r oauthStateRow) toOAuthState() OAuthState {
	return OAuthState{
		StateHash: r.StateHash, IntegrationID: r.IntegrationID, Provider: r.Provider, Sandbox: r.Sandbox,
		RedirectURL: r.RedirectURL, RequestedBy: r.RequestedBy, ClaimedBy: r.ClaimedBy, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
}

const oauthStateColumns = `state_hash, integration_id, provider, sandbox, redirect_url, requested_by, claimed_by, created_at, expires_at, used_at`

// AddOAuthState stores a pending consent.
func (s *Store) AddOAuthState(ctx context.Context, st OAuthState) error {
	switch {
	case len(st.StateHash) != sha256.Size:
		return fmt.Errorf("add OAuth state for %s: the hash is %d bytes, not %d: store sha256.Sum256(state), never the state", st.IntegrationID, len(st.StateHash), sha256.Size)
	case st.IntegrationID == "" || st.Provider == "" || st.RedirectURL == "":
		return errors.New("add OAuth state: it needs an integration, a provider and a redirect URL")
	case !st.ExpiresAt.After(st.CreatedAt):
		return fmt.Errorf("add OAuth state for %s: it must expire after it is created", st.IntegrationID)
	}
	q := s.db.Rebind(`INSERT INTO oauth_states (` + oauthStateColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`)
	if _, err := s.db.ExecContext(ctx, q, st.StateHash, st.IntegrationID, st.Provider, st.Sandbox, st.RedirectURL,
		st.RequestedBy, st.ClaimedBy, dbTime(st.CreatedAt), dbTime(st.ExpiresAt)); err != nil {
		return fmt.Errorf("add OAuth state for %s: %w", st.IntegrationID, err)
	}
	return nil
}

// ConsumeOAuthState marks the pending consent whose state hashes to
// stateHash used at now and returns it, in one statement, so of two
// callbacks with the same state only one gets it. A state that is unknown,
// used already or expired at now gives an error wrapping ErrNotFound, and
// changes nothing.
func (s *Store) ConsumeOAuthState(ctx context.Context, stateHash []byte, now time.Time) (OAuthState, error) {
	var row oauthStateRow
	q := s.db.Rebind(`UPDATE oauth_states SET used_at = ?
WHERE state_hash = ? AND used_at IS NULL AND expires_at > ?
RETURNING ` + oauthStateColumns)
	if err := sqlx.GetContext(ctx, s.db, &row, q, dbTime(now), stateHash, dbTime(now)); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return OAuthState{}, fmt.Errorf("OAuth state: unknown, used or expired: %w", ErrNotFound)
		}
		return OAuthState{}, fmt.Errorf("consume OAuth state: %w", err)
	}
	return row.toOAuthState(), nil
}

// CountOAuthStates returns how many consents of the integration are
// stored, used or not (for tests and operators).
func (s *Store) CountOAuthStates(ctx context.Context, integrationID string) (int, error) {
	var n int
	q := s.db.Rebind(`SELECT COUNT(*) FROM oauth_states WHERE integration_id = ?`)
	if err := sqlx.GetContext(ctx, s.db, &n, q, integrationID); err != nil {
		return 0, fmt.Errorf("count OAuth states of %s: %w", integrationID, err)
	}
	return n, nil
}

// PurgeOAuthStates deletes the consents that were used, or expired, before
// before, and counts them: nothing needs them (a state opens nothing once
// used or expired), and without it they would stay until their integration
// is deleted. The retention job runs it with a margin (a day), so a
// callback just refused still finds why in the table for a while.
func (s *Store) PurgeOAuthStates(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM oauth_states WHERE used_at < ? OR expires_at < ?`), dbTime(before), dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("purge OAuth states used or expired before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge OAuth states: %w", err)
	}
	return n, nil
}
