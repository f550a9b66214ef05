package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrDeleted is wrapped by the errors of writes refused because the
// integration is deleted: it keeps no new secrets.
var ErrDeleted = errors.New("the integration is deleted")

// ErrSuperseded is wrapped by AddCurrentCredential's error when the version
// it renews is no longer the current one.
var ErrSuperseded = errors.New("the credentials were replaced meanwhile")

// Credential is one stored version of a CRM integration's credentials,
// sealed before it reaches the store.
//
// A version starts either as a candidate (an authorize stored it; PromotedAt
// nil) or current at once (a refreshed token of the current grant). A
// candidate is used only once validation promoted it; the current
// credentials are the promoted version with the highest (GrantVersion,
// Version).
type Credential struct {
	IntegrationID string
	Version       int
	// GrantVersion is the authorization the version belongs to: its own
	// Version for an authorized one, the renewed version's GrantVersion
	// for a refreshed one.
	GrantVersion int
	// KeyID names the key that sealed Ciphertext (as package credential
	// prints it); "" for the legacy format, sealed before key IDs.
	KeyID      string
	Ciphertext []byte
	CreatedAt  time.Time
	// PromotedAt is when validation promoted the version, or when it was
	// stored current; nil for a candidate.
	PromotedAt *time.Time
}

// Candidate reports whether c awaits validation (is not promoted).
func (c Credential) Candidate() bool { return c.PromotedAt == nil }

// SealFunc seals credentials for the version the store allocates for
// them, so the ciphertext can be bound to it, and names the key that
// sealed it; (*credential.Keyring).Sealer makes one. The store calls it
// once, inside the transaction that inserts the row.
type SealFunc func(version int) (ciphertext []byte, keyID string, err error)

// credentialRow is a row of crm_credentials.
type credentialRow struct {
	IntegrationID string       `db:"integration_id"`
	Version       int          `db:"version"`
	GrantVersion  int          `db:"grant_version"`
	KeyID         string       `db:"key_id"`
	Ciphertext    []byte       `db:"ciphertext"`
	CreatedAt     time.Time    `db:"created_at"`
	PromotedAt    sql.NullTime `db:"promoted_at"`
}

// credentialColumns lists the columns of crm_credentials in credentialRow
// order.
const credentialColumns = `integration_id, version, grant_version, key_id, ciphertext, created_at, promoted_at`

// currentOrder orders an integration's promoted versions newest grant
// first: the first row is the current credentials.
const currentOrder = ` ORDER BY grant_version DESC, version DESC LIMIT 1`

func (r credentialRow) toCredential() Credential {
	return Credential{
		IntegrationID: r.IntegrationID, Version: r.Version, GrantVersion: r.GrantVersion, KeyID: r.KeyID,
		Ciphertext: r.Ciphertext, CreatedAt: r.CreatedAt.UTC(), PromotedAt: timePtr(r.PromotedAt),
	}
}

// AddCandidateCredential stores the next version (1, 2, ...) of the
// integration's credentials as a candidate, sealed by seal for that
// version, and returns it. A candidate is never used until
// PromoteCredential makes it current. It is refused, with an error wrapping
// ErrDeleted and nothing stored, once the integration is projected deleted.
// Concurrent adds get distinct versions.
func (s *Store) AddCandidateCredential(ctx context.Context, integrationID string, seal SealFunc, at time.Time) (Credential, error) {
	return s.addCredential(ctx, "add candidate credentials", integrationID, 0, seal, at)
}

// AddCurrentCredential stores the next version of the integration's
// credentials, current at once, as the renewal of version renews (a
// refreshed OAuth token of the same grant), and returns it; the grant's
// earlier versions are wiped (CredentialVersion no longer finds them).
// renews must
// still be the current version: otherwise (re-authorized or refreshed
// meanwhile) nothing is stored and the error wraps ErrSuperseded; for a
// version that is not stored (deleted integration) it wraps ErrNotFound.
func (s *Store) AddCurrentCredential(ctx context.Context, integrationID string, renews int, seal SealFunc, at time.Time) (Credential, error) {
	if renews <= 0 {
		return Credential{}, fmt.Errorf("add current credentials of %s: the renewed version %d is not positive; pass the version that was refreshed", integrationID, renews)
	}
	return s.addCredential(ctx, "add current credentials", integrationID, renews, seal, at)
}

// addCredential inserts a candidate (renews 0) or a renewal of renews.
func (s *Store) addCredential(ctx context.Context, op, integrationID string, renews int, seal SealFunc, at time.Time) (Credential, error) {
	if integrationID == "" {
		return Credential{}, fmt.Errorf("%s: no integration ID given", op)
	}
	if seal == nil {
		return Credential{}, fmt.Errorf("%s of %s: no seal function given; seal the credentials for the version", op, integrationID)
	}
	var cred Credential
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Adds of one integration take turns, so each reads the latest
		// version before it writes the next; and with the delete of an
		// integration's secrets (Project), so none is added after it.
		if err := s.dialect.lockSecrets(ctx, tx, integrationID); err != nil {
			return err
		}
		if err := checkNotDeleted(ctx, tx, integrationID); err != nil {
			return err
		}
		var next int
		q := tx.Rebind(`SELECT COALESCE(MAX(version), 0) + 1 FROM crm_credentials WHERE integration_id = ?`)
		if err := sqlx.GetContext(ctx, tx, &next, q, integrationID); err != nil {
			return fmt.Errorf("read latest version: %w", err)
		}
		row := credentialRow{IntegrationID: integrationID, Version: next, GrantVersion: next, CreatedAt: dbTime(at)}
		if renews > 0 {
			current, err := currentCredential(ctx, tx, integrationID)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("version %d: %w", renews, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if current.Version != renews {
				return fmt.Errorf("version %d is no longer current (version %d is): %w", renews, current.Version, ErrSuperseded)
			}
			row.GrantVersion = current.GrantVersion
			row.PromotedAt = sql.NullTime{Time: dbTime(at), Valid: true}
		}
		var err error
		if row.Ciphertext, row.KeyID, err = seal(next); err != nil {
			return fmt.Errorf("seal version %d: %w", next, err)
		}
		if len(row.Ciphertext) == 0 {
			return errors.New("the ciphertext is empty; seal the credentials first")
		}
		if _, err := sqlx.NamedExecContext(ctx, tx, `INSERT INTO crm_credentials (`+credentialColumns+`)
VALUES (:integration_id, :version, :grant_version, :key_id, :ciphertext, :created_at, :promoted_at)`, row); err != nil {
			return fmt.Errorf("insert version %d: %w", next, err)
		}
		if renews > 0 {
			// The grant's earlier tokens are spent: wipe them as a
			// discarded candidate is wiped (the rows stay, so their
			// numbers are never reused), rather than keep a sealed copy
			// of the grant for every refresh (HubSpot's: ~50 a day).
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE crm_credentials
SET ciphertext = substr(ciphertext, 1, 0), key_id = '', discarded_at = ?
WHERE integration_id = ? AND grant_version = ? AND version < ? AND discarded_at IS NULL`),
				dbTime(at), integrationID, row.GrantVersion, next); err != nil {
				return fmt.Errorf("wipe the renewed tokens of grant %d: %w", row.GrantVersion, err)
			}
		}
		cred = row.toCredential()
		return nil
	})
	if err != nil {
		return Credential{}, fmt.Errorf("%s of %s: %w", op, integrationID, err)
	}
	return cred, nil
}

// checkNotDeleted refuses, with ErrDeleted, when integrationID is
// projected deleted. An integration not projected yet is not deleted:
// secrets may be stored before its first projection lands.
func checkNotDeleted(ctx context.Context, tx *sqlx.Tx, integrationID string) error {
	var n int
	q := tx.Rebind(`SELECT COUNT(*) FROM integrations WHERE id = ? AND status = 'deleted'`)
	if err := sqlx.GetContext(ctx, tx, &n, q, integrationID); err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if n > 0 {
		return ErrDeleted
	}
	return nil
}

// queryer is a pool or a transaction.
type queryer interface {
	sqlx.QueryerContext
	Rebind(query string) string
}

// currentCredential reads the current credentials through q (a pool or a
// transaction); sql.ErrNoRows when none is promoted.
func currentCredential(ctx context.Context, q queryer, integrationID string) (credentialRow, error) {
	var row credentialRow
	err := sqlx.GetContext(ctx, q, &row, q.Rebind(`SELECT `+credentialColumns+` FROM crm_credentials
WHERE integration_id = ? AND promoted_at IS NOT NULL`+currentOrder), integrationID)
	return row, err
}

// CurrentCredential returns the credentials in use: the promoted version
// of the newest grant. The error wraps ErrNotFound when none is promoted
// (none stored, or only candidates).
func (s *Store) CurrentCredential(ctx context.Context, integrationID string) (Credential, error) {
	row, err := currentCredential(ctx, s.db, integrationID)
	if errors.Is(err, sql.ErrNoRows) {
		return Credential{}, fmt.Errorf("current credentials of %s: %w", integrationID, ErrNotFound)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("current credentials of %s: %w", integrationID, err)
	}
	return row.toCredential(), nil
}

// CredentialVersion returns one stored version, candidate or not; the
// error wraps ErrNotFound when it is not stored (never, discarded, or the
// integration deleted).
func (s *Store) CredentialVersion(ctx context.Context, integrationID string, version int) (Credential, error) {
	var row credentialRow
	q := s.db.Rebind(`SELECT ` + credentialColumns + ` FROM crm_credentials
WHERE integration_id = ? AND version = ? AND discarded_at IS NULL`)
	if err := sqlx.GetContext(ctx, s.db, &row, q, integrationID, version); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Credential{}, fmt.Errorf("credentials version %d of %s: %w", version, integrationID, ErrNotFound)
		}
		return Credential{}, fmt.Errorf("credentials version %d of %s: %w", version, integrationID, err)
	}
	return row.toCredential(), nil
}

// PromoteCredential marks a version validated at at, and reports whether
// it is the current credentials afterwards. It is idempotent (promoting a
// promoted version changes nothing, its time included), and never demotes
// a newer grant: a candidate older than the current grant is marked
// promoted but does not become current. The error wraps ErrNotFound when
// the version is not stored.
func (s *Store) PromoteCredential(ctx context.Context, integrationID string, version int, at time.Time) (current bool, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE crm_credentials SET promoted_at = ?
WHERE integration_id = ? AND version = ? AND promoted_at IS NULL AND discarded_at IS NULL`), dbTime(at), integrationID, version)
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update: %w", err)
		} else if n == 0 {
			var stored int
			if err := sqlx.GetContext(ctx, tx, &stored, tx.Rebind(`SELECT COUNT(*) FROM crm_credentials
WHERE integration_id = ? AND version = ? AND discarded_at IS NULL`),
				integrationID, version); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if stored == 0 {
				return ErrNotFound
			}
		}
		row, err := currentCredential(ctx, tx, integrationID)
		if err != nil {
			return fmt.Errorf("read current version: %w", err)
		}
		current = row.Version == version
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("promote credentials version %d of %s: %w", version, integrationID, err)
	}
	return current, nil
}

// DiscardCandidateCredential destroys a version if it is still a candidate
// (one that failed validation, or whose authorize failed), and reports
// whether it did: its ciphertext is wiped at once, and the version reads
// as not stored from then on. Its row stays behind, empty, so no later
// version gets its number and a late reference to it (a delayed
// authorize) cannot reach other credentials. A promoted version is never
// discarded: nothing happens, as for a version not stored.
func (s *Store) DiscardCandidateCredential(ctx context.Context, integrationID string, version int, at time.Time) (bool, error) {
	// substr(x, 1, 0) is the empty byte string in both dialects.
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE crm_credentials
SET ciphertext = substr(ciphertext, 1, 0), key_id = '', discarded_at = ?
WHERE integration_id = ? AND version = ? AND promoted_at IS NULL AND discarded_at IS NULL`), dbTime(at), integrationID, version)
	if err != nil {
		return false, fmt.Errorf("discard candidate credentials version %d of %s: %w", version, integrationID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("discard candidate credentials version %d of %s: %w", version, integrationID, err)
	}
	return n > 0, nil
}

// CredentialKey is the position of a version in the order ListCredentials
// pages through: by integration ID, then version.
type CredentialKey struct {
	IntegrationID string
	Version       int
}

// MaxCredentialPage is the most rows one ListCredentials call returns.
const MaxCredentialPage = 1000

// ListCredentials returns up to limit stored versions of every
// integration, candidates included (discarded ones not), after the key after (the zero key:
// from the start), ordered by integration ID, then version. Pass the key
// of the last row returned to read the next page; fewer than limit rows
// means the end.
func (s *Store) ListCredentials(ctx context.Context, after CredentialKey, limit int) ([]Credential, error) {
	if limit <= 0 || limit > MaxCredentialPage {
		return nil, fmt.Errorf("list credentials: limit %d is out of range: give 1-%d", limit, MaxCredentialPage)
	}
	var rows []credentialRow
	q := s.db.Rebind(`SELECT ` + credentialColumns + ` FROM crm_credentials
WHERE discarded_at IS NULL AND (integration_id > ? OR (integration_id = ? AND version > ?))
ORDER BY integration_id, version LIMIT ?`)
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, after.IntegrationID, after.IntegrationID, after.Version, limit); err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	out := make([]Credential, len(rows))
	for i, row := range rows {
		out[i] = row.toCredential()
	}
	return out, nil
}

// ResealCredential replaces the ciphertext of a stored version with
// ciphertext, sealed with key keyID (the same credentials under another
// key, for a rewrap), if the version still holds old.Ciphertext; it
// reports whether it did. A version changed or deleted meanwhile is left
// alone (false).
func (s *Store) ResealCredential(ctx context.Context, old Credential, ciphertext []byte, keyID string) (bool, error) {
	if len(ciphertext) == 0 {
		return false, fmt.Errorf("reseal credentials version %d of %s: the ciphertext is empty", old.Version, old.IntegrationID)
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE crm_credentials SET ciphertext = ?, key_id = ?
WHERE integration_id = ? AND version = ? AND ciphertext = ? AND discarded_at IS NULL`),
		ciphertext, keyID, old.IntegrationID, old.Version, old.Ciphertext)
	if err != nil {
		return false, fmt.Errorf("reseal credentials version %d of %s: %w", old.Version, old.IntegrationID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("reseal credentials version %d of %s: %w", old.Version, old.IntegrationID, err)
	}
	return n > 0, nil
}

// deleteSecrets destroys an integration's credentials (every version) and
// intake token within tx, once it is deleted.
func (s *Store) deleteSecrets(ctx context.Context, tx *sqlx.Tx, integrationID string) error {
	if err := s.dialect.lockSecrets(ctx, tx, integrationID); err != nil {
		return err
	}
	// Pending OAuth consents too: a callback for a deleted integration
	// must find nothing to complete.
	for _, table := range []string{"crm_credentials", "intake_tokens", "oauth_states", "crm_quotas"} {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM `+table+` WHERE integration_id = ?`), integrationID); err != nil {
			return fmt.Errorf("delete %s rows: %w", table, err)
		}
	}
	return nil
}
