package activities_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// passing and failing are what a CRM answers good and bad credentials.
var (
	passing = []integration.Check{{Name: crm.CheckCredentials, OK: true}, {Name: crm.CheckScopes, OK: true}}
	failing = []integration.Check{{Name: crm.CheckCredentials, OK: true}, {Name: crm.CheckScopes, Code: integration.ReasonInsufficientPermissions,
		Message: "missing contacts.write", Remediation: "grant it"}}
)

func (b *testBundle) validate(t *testing.T, version int) ([]integration.Check, error) {
	t.Helper()
	return b.acts.Validate(b.ctx, activities.ValidateInput{IntegrationID: b.crmID, Provider: "fake", CredentialVersion: version})
}

// requireCurrent checks which version is in use, and what it holds.
func (b *testBundle) requireCurrent(t *testing.T, version int, raw string) {
	t.Helper()
	cred, err := b.store.CurrentCredential(b.ctx, b.crmID)
	require.NoError(t, err)
	require.Equal(t, version, cred.Version)
	opened, err := b.kr.Open(cred.Ciphertext, b.crmID, cred.Version)
	require.NoError(t, err)
	require.Equal(t, raw, string(opened))
}

func TestValidateCurrentCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.checks = failing
	// A candidate stored meanwhile is not what a periodic validation uses.
	b.addCandidate(t, `{"token":"candidate"}`)

	checks, err := b.validate(t, 0)
	require.NoError(t, err)
	require.Equal(t, failing, checks)
	require.Equal(t, [][]byte{[]byte(`{"token":"old"}`)}, b.fake.validated)
	// Failing checks of the current credentials change nothing stored.
	b.requireCurrent(t, 1, `{"token":"old"}`)
	_, err = b.store.CredentialVersion(b.ctx, b.crmID, 2)
	require.NoError(t, err, "the candidate is untouched")
}

// TestValidateFillsInTheIntegrationID: a connector writes its remediation
// for any integration ("integrations authorize ID ..."); what status and
// the notifications show is the command to run for this one.
func TestValidateFillsInTheIntegrationID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.checks = []integration.Check{{Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials,
		Message: "rejected", Remediation: "Reconnect (integrations authorize ID --oauth); or with a key: integrations authorize ID --credentials-file FILE"}}

	checks, err := b.validate(t, 0)
	require.NoError(t, err)
	require.Equal(t, "Reconnect (integrations authorize "+b.crmID+" --oauth); or with a key: integrations authorize "+b.crmID+" --credentials-file FILE", checks[0].Remediation)
	require.Contains(t, b.fake.checks[0].Remediation, "authorize ID --oauth", "the connector's own checks are not changed")
}

func TestValidateCandidatePromotedWhenEveryCheckPasses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.checks = passing
	candidate := b.addCandidate(t, `{"token":"new"}`)
	b.requireCurrent(t, 1, `{"token":"old"}`)

	checks, err := b.validate(t, candidate.Version)
	require.NoError(t, err)
	require.Equal(t, passing, checks)
	require.Equal(t, [][]byte{[]byte(`{"token":"new"}`)}, b.fake.validated, "the candidate is what was validated")
	b.requireCurrent(t, 2, `{"token":"new"}`)

	// A retried attempt (the answer was lost) finds it promoted: the same.
	checks, err = b.validate(t, candidate.Version)
	require.NoError(t, err)
	require.Equal(t, passing, checks)
	b.requireCurrent(t, 2, `{"token":"new"}`)
}

func TestValidateCandidateDiscardedWhenAnyCheckFails(t *testing.T) {
	t.Parallel()
	for name, checks := range map[string][]integration.Check{
		"failed":      failing,
		"not checked": {{Name: crm.CheckCredentials, OK: true}, crm.NotChecked(crm.CheckScopes, "the API is down")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.fake.checks = checks
			candidate := b.addCandidate(t, `{"token":"bad"}`)

			got, err := b.validate(t, candidate.Version)
			require.NoError(t, err)
			require.Equal(t, checks, got)
			b.requireCurrent(t, 1, `{"token":"old"}`)
			_, err = b.store.CredentialVersion(b.ctx, b.crmID, candidate.Version)
			require.ErrorIs(t, err, store.ErrNotFound, "a refused key is destroyed")

			// Asked again (a retried attempt): a failed check, not an error.
			again, err := b.validate(t, candidate.Version)
			require.NoError(t, err)
			require.Len(t, again, 1)
			require.False(t, again[0].OK)
			require.Equal(t, integration.ReasonExpiredCredentials, again[0].Code)
			require.Contains(t, again[0].Message, "no longer stored")
			require.Contains(t, again[0].Remediation, "integrations authorize "+b.crmID)
			require.Len(t, b.fake.validated, 1, "the CRM is not asked about a discarded key")
		})
	}
}

func TestValidateCandidateKeptWhenTheCRMCannotBeReached(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.validateErr = &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Err: errors.New("HTTP 503")}
	candidate := b.addCandidate(t, `{"token":"new"}`)

	_, err := b.validate(t, candidate.Version)
	require.ErrorContains(t, err, "HTTP 503")
	var app *temporal.ApplicationError
	require.False(t, errors.As(err, &app) && app.NonRetryable(), "retried")
	b.requireCurrent(t, 1, `{"token":"old"}`)
	got, err := b.store.CredentialVersion(b.ctx, b.crmID, candidate.Version)
	require.NoError(t, err)
	require.True(t, got.Candidate(), "neither promoted nor discarded")
}

func TestValidateWithoutCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.crmID = "crm-none"
	b.fake.checks = passing
	checks, err := b.validate(t, 0)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	require.False(t, checks[0].OK)
	require.Contains(t, checks[0].Message, "no credentials are stored")
	require.Empty(t, b.fake.validated)
}

func TestValidateSaysWhatToFixWhenCredentialsDoNotDecrypt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.checks = passing
	candidate := b.addCandidate(t, `{"token":"new"}`)
	other, err := credential.NewKeyring(bytes.Repeat([]byte{9}, credential.KeySize))
	require.NoError(t, err)
	b.acts.Keyring = other

	for _, version := range []int{0, candidate.Version} {
		_, err := b.validate(t, version)
		var app *temporal.ApplicationError
		require.ErrorAs(t, err, &app)
		require.True(t, app.NonRetryable())
		require.Equal(t, "CredentialDecrypt", app.Type())
		require.Contains(t, app.Message(), b.kr.ActiveKeyID().String())
		require.Contains(t, app.Message(), credential.OldKeysEnv)
		require.NotContains(t, app.Message(), "token")
	}
	require.Empty(t, b.fake.validated)
	got, err := b.store.CredentialVersion(b.ctx, b.crmID, candidate.Version)
	require.NoError(t, err)
	require.True(t, got.Candidate(), "kept: the fix is the worker's key, not new credentials")

	// With the old key back among the keyring's old keys, it opens.
	rotated, err := credential.NewKeyring(bytes.Repeat([]byte{9}, credential.KeySize), zeroKey)
	require.NoError(t, err)
	b.acts.Keyring = rotated
	checks, err := b.validate(t, candidate.Version)
	require.NoError(t, err)
	require.Equal(t, passing, checks)
}

func TestValidateOpensLegacyCiphertexts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.checks = passing
	b.crmID = "crm-legacy"
	// Sealed as before key IDs (nonce || ciphertext, the ID as associated
	// data) and stored as the migration leaves such rows.
	block, err := aes.NewCipher(zeroKey)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	nonce := make([]byte, aead.NonceSize())
	legacy := aead.Seal(bytes.Clone(nonce), nonce, []byte(`{"token":"legacy"}`), []byte(b.crmID))
	cred, err := b.store.AddCandidateCredential(b.ctx, b.crmID, func(int) ([]byte, string, error) { return legacy, "", nil }, t0())
	require.NoError(t, err)
	_, err = b.store.PromoteCredential(b.ctx, b.crmID, cred.Version, t0())
	require.NoError(t, err)

	_, err = b.validate(t, 0)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte(`{"token":"legacy"}`)}, b.fake.validated)

	// The same ciphertext on a row that names a key (stored since key
	// IDs; copied onto a newer version, say) does not open: the legacy
	// form binds no version, so it is tried for rows without a key ID only.
	moved, err := b.store.AddCandidateCredential(b.ctx, b.crmID, func(int) ([]byte, string, error) { return legacy, b.kr.ActiveKeyID().String(), nil }, t0())
	require.NoError(t, err)
	_, err = b.store.PromoteCredential(b.ctx, b.crmID, moved.Version, t0())
	require.NoError(t, err)
	_, err = b.validate(t, 0)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, "CredentialDecrypt", app.Type())
	require.True(t, app.NonRetryable())
	require.Len(t, b.fake.validated, 1, "the CRM is not asked with what did not open")
}

// TestValidateRefreshesAnExpiredGrant: the CRM rejects the current access
// token (Salesforce's tokens just stop working), the grant refreshes, and
// the refreshed token passes: no pause, and the refreshed credentials are
// the current version.
func TestValidateRefreshesAnExpiredGrant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expired := []integration.Check{
		{Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials, Message: "session expired (INVALID_SESSION_ID)"},
		crm.NotChecked(crm.CheckScopes, "the credentials were rejected"),
	}
	b.fake.checksFor = func(raw []byte) []integration.Check {
		if string(raw) == `{"token":"old"}` {
			return expired
		}
		return passing
	}
	b.fake.refreshTo = []byte(`{"token":"new"}`)

	checks, err := b.validate(t, 0)
	require.NoError(t, err)
	require.Equal(t, passing, checks)
	require.Equal(t, [][]byte{[]byte(`{"token":"old"}`), []byte(`{"token":"new"}`)}, b.fake.validated)
	b.requireCurrent(t, 2, `{"token":"new"}`)

	// A grant that no longer refreshes: the rejection stands, nothing stored.
	b.fake.checksFor = func([]byte) []integration.Check { return expired }
	b.fake.refreshTo = nil
	checks, err = b.validate(t, 0)
	require.NoError(t, err)
	require.Equal(t, expired, checks)
	b.requireCurrent(t, 2, `{"token":"new"}`)

	// A token endpoint that cannot be reached (or refuses our client)
	// says nothing about the grant: the validation could not run and is
	// retried; it does not report expired credentials.
	b.fake.refreshErr = &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Err: errors.New("token endpoint answered 503")}
	checks, err = b.validate(t, 0)
	require.Error(t, err)
	require.Nil(t, checks)
	require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
	b.requireCurrent(t, 2, `{"token":"new"}`)
}

// TestRefreshedCredentialsTheStoreRefuses: refreshed credentials the
// store fails to take are offered again a few times; stored at the last
// attempt, they are the current version; never stored, they are still
// what the call goes on with (a CRM that rotates refresh tokens revoked
// the old ones), and the failure is logged without them.
func TestRefreshedCredentialsTheStoreRefuses(t *testing.T) {
	t.Parallel()
	expired := []integration.Check{
		{Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials, Message: "session expired"},
		crm.NotChecked(crm.CheckScopes, "the credentials were rejected"),
	}
	for name, tc := range map[string]struct {
		failures int
		// wantCalls are the store's attempts; wantCurrent the version in
		// use afterwards, and what it holds.
		wantCalls   int
		wantCurrent int
		wantRaw     string
	}{
		"stored at the last attempt": {failures: 2, wantCalls: 3, wantCurrent: 2, wantRaw: `{"token":"new"}`},
		"never stored":               {failures: 100, wantCalls: 3, wantCurrent: 1, wantRaw: `{"token":"old"}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var logs bytes.Buffer
			b.acts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			calls := 0
			b.acts.SetRefreshStore(func(ctx context.Context, id string, renews int, seal store.SealFunc, at time.Time) (store.Credential, error) {
				calls++
				if calls <= tc.failures {
					return store.Credential{}, errors.New("database is locked")
				}
				return b.store.AddCurrentCredential(ctx, id, renews, seal, at)
			}, time.Millisecond)
			b.fake.checksFor = func(raw []byte) []integration.Check {
				if string(raw) == `{"token":"old"}` {
					return expired
				}
				return passing
			}
			b.fake.refreshTo = []byte(`{"token":"new"}`)

			checks, err := b.validate(t, 0)
			require.NoError(t, err)
			require.Equal(t, passing, checks, "the refreshed credentials are what the call went on with")
			require.Equal(t, [][]byte{[]byte(`{"token":"old"}`), []byte(`{"token":"new"}`)}, b.fake.validated)
			require.Equal(t, tc.wantCalls, calls)
			b.requireCurrent(t, tc.wantCurrent, tc.wantRaw)
			if tc.wantCurrent == 1 {
				require.Contains(t, logs.String(), "refreshed credentials not stored")
				require.Contains(t, logs.String(), "attempts=3")
				require.NotContains(t, logs.String(), "token", "no credentials in the log")
				_, err := b.store.CredentialVersion(b.ctx, b.crmID, 2)
				require.ErrorIs(t, err, store.ErrNotFound, "nothing stored")
			}
		})
	}

	// An activity whose context ends while it waits to try again stops
	// trying at once.
	t.Run("context ends", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx, cancel := context.WithCancel(b.ctx)
		defer cancel()
		calls := 0
		b.acts.SetRefreshStore(func(context.Context, string, int, store.SealFunc, time.Time) (store.Credential, error) {
			calls++
			cancel()
			return store.Credential{}, errors.New("database is locked")
		}, time.Hour)
		b.fake.checksFor = func(raw []byte) []integration.Check {
			if string(raw) == `{"token":"old"}` {
				return expired
			}
			return passing
		}
		b.fake.refreshTo = []byte(`{"token":"new"}`)
		checks, err := b.acts.Validate(ctx, activities.ValidateInput{IntegrationID: b.crmID, Provider: "fake"})
		require.NoError(t, err)
		require.Equal(t, passing, checks)
		require.Equal(t, 1, calls, "no attempt after the context ended")
		b.requireCurrent(t, 1, `{"token":"old"}`)
	})
}
