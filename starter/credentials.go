package starter

import (
	"context"
	"errors"
	"fmt"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/store"
)

// rewrapPage is how many stored versions one read of RewrapCredentials
// covers.
const rewrapPage = 200

// RewrapReport is what RewrapCredentials did, in counts and names: never
// a secret.
type RewrapReport struct {
	// KeyID is the active key, which now seals every version but the
	// failed ones.
	KeyID string `json:"key_id"`
	// Resealed versions were sealed with another key, or in the legacy
	// format, and are now sealed with the active key.
	Resealed int `json:"resealed"`
	// AlreadyCurrent versions were sealed with the active key already.
	AlreadyCurrent int `json:"already_current"`
	// Failed versions opened with no key of the keyring; they are left as
	// they are. Failures says which and why.
	Failed   int             `json:"failed"`
	Failures []RewrapFailure `json:"failures,omitempty"`
	// Skipped versions changed while the rewrap ran (discarded, the
	// integration deleted, or rewrapped by another run) and were left to
	// that change.
	Skipped int `json:"skipped,omitempty"`
}

// RewrapFailure names a version that did not open.
type RewrapFailure struct {
	IntegrationID string `json:"integration_id"`
	Version       int    `json:"version"`
	// Error says why and what to do; it holds key IDs, never keys.
	Error string `json:"error"`
}

// ErrRewrapIncomplete is wrapped by RewrapCredentials' error when some
// versions did not open; its report says which.
var ErrRewrapIncomplete = errors.New("some credentials could not be rewrapped")

// RewrapCredentials re-seals every stored credentials version (candidates
// included) with the keyring's active key, page by page, so that older keys
// can then be dropped from the keyring: after it reports no failures, every
// credential opens with the active key alone. Versions sealed with the
// active key already are left as they are, so running it again is cheap
// and changes nothing. A version no key of the keyring opens is counted in
// the report and left alone, and the error then wraps ErrRewrapIncomplete;
// other errors (the database) stop it, with the report of what was done.
func (s *Starter) RewrapCredentials(ctx context.Context) (RewrapReport, error) {
	if s.Keyring == nil {
		return RewrapReport{}, fmt.Errorf("rewrap credentials: no encryption key: set %s to the new key, and %s to the keys it replaces",
			credential.KeyEnv, credential.OldKeysEnv)
	}
	active := s.Keyring.ActiveKeyID().String()
	report := RewrapReport{KeyID: active}
	var after store.CredentialKey
	for {
		page, err := s.Store.ListCredentials(ctx, after, rewrapPage)
		if err != nil {
			return report, fmt.Errorf("rewrap credentials: %w", err)
		}
		for _, cred := range page {
			if err := s.rewrap(ctx, cred, active, &report); err != nil {
				return report, err
			}
		}
		if len(page) < rewrapPage {
			break
		}
		last := page[len(page)-1]
		after = store.CredentialKey{IntegrationID: last.IntegrationID, Version: last.Version}
	}
	if report.Failed > 0 {
		return report, fmt.Errorf("rewrap credentials: %d of %d versions did not open with any configured key (see the report); add their keys to %s and run it again, or re-authorize those integrations: %w",
			report.Failed, report.Failed+report.Resealed+report.AlreadyCurrent+report.Skipped, credential.OldKeysEnv, ErrRewrapIncomplete)
	}
	return report, nil
}

// rewrap re-seals one version and counts the outcome in report.
func (s *Starter) rewrap(ctx context.Context, cred store.Credential, active string, report *RewrapReport) error {
	out, changed, err := s.Keyring.Rewrap(cred.Ciphertext, cred.KeyID, cred.IntegrationID, cred.Version)
	if err != nil {
		report.Failed++
		report.Failures = append(report.Failures, RewrapFailure{IntegrationID: cred.IntegrationID, Version: cred.Version, Error: err.Error()})
		return nil
	}
	if !changed && cred.KeyID == active {
		report.AlreadyCurrent++
		return nil
	}
	// Changed, or sealed with the active key but not recorded so: the
	// row gets the ciphertext and the key ID that says what it is.
	done, err := s.Store.ResealCredential(ctx, cred, out, active)
	if err != nil {
		return fmt.Errorf("rewrap credentials: %w", err)
	}
	if !done {
		report.Skipped++
		return nil
	}
	report.Resealed++
	return nil
}
