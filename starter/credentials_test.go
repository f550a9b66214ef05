package starter_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// testBundle is a migrated store and the keys of a rotation: the old one,
// which sealed what is stored, and the new one.
type testBundle struct {
	ctx            context.Context
	store          *store.Store
	oldKey, newKey []byte
	old            *credential.Keyring
	now            time.Time
}

func setup(t *testing.T, db testenv.Database) *testBundle {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	require.NoError(t, st.Migrate(ctx))
	b := &testBundle{ctx: ctx, store: st, oldKey: newKey(t), newKey: newKey(t), now: time.Now().UTC()}
	b.old = b.keyring(t, b.oldKey)
	return b
}

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, credential.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return key
}

func (b *testBundle) keyring(t *testing.T, active []byte, old ...[]byte) *credential.Keyring {
	t.Helper()
	kr, err := credential.NewKeyring(active, old...)
	require.NoError(t, err)
	return kr
}

// add stores raw for id sealed by seal, promoted unless candidate.
func (b *testBundle) add(t *testing.T, id string, seal store.SealFunc, candidate bool) store.Credential {
	t.Helper()
	cred, err := b.store.AddCandidateCredential(b.ctx, id, seal, b.now)
	require.NoError(t, err)
	if !candidate {
		_, err = b.store.PromoteCredential(b.ctx, id, cred.Version, b.now)
		require.NoError(t, err)
	}
	cred, err = b.store.CredentialVersion(b.ctx, id, cred.Version)
	require.NoError(t, err)
	return cred
}

// legacy seals as the service did before key IDs.
func legacy(t *testing.T, key, raw []byte, id string) store.SealFunc {
	t.Helper()
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return func(int) ([]byte, string, error) {
		nonce := make([]byte, aead.NonceSize())
		_, err := rand.Read(nonce)
		return aead.Seal(nonce, nonce, raw, []byte(id)), "", err
	}
}

// rewrapper is a starter that only needs the store and a keyring.
func (b *testBundle) rewrapper(kr *credential.Keyring) *starter.Starter {
	return &starter.Starter{Store: b.store, Keyring: kr}
}

// TestRewrapCredentials is the rotation: after a new key is added and
// rewrap ran, every credential opens with the new key alone.
func TestRewrapCredentials(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		want := map[store.CredentialKey]string{}
		keep := func(c store.Credential, raw string) {
			want[store.CredentialKey{IntegrationID: c.IntegrationID, Version: c.Version}] = raw
		}
		// What a service that ran with the old key holds: a legacy
		// version from before key IDs, format 1 versions current and
		// candidate, across integrations.
		for i := range 3 {
			id := fmt.Sprintf("crm-%d", i)
			raw := fmt.Sprintf(`{"api_key":"legacy-%d"}`, i)
			keep(b.add(t, id, legacy(t, b.oldKey, []byte(raw), id), false), raw)
			raw = fmt.Sprintf(`{"api_key":"current-%d"}`, i)
			keep(b.add(t, id, b.old.Sealer([]byte(raw), id), false), raw)
			raw = fmt.Sprintf(`{"api_key":"candidate-%d"}`, i)
			keep(b.add(t, id, b.old.Sealer([]byte(raw), id), true), raw)
		}
		// Rotation: the new key is active, the old one opens only. A
		// version authorized meanwhile is sealed with the new key.
		rotated := b.keyring(t, b.newKey, b.oldKey)
		keep(b.add(t, "crm-new", rotated.Sealer([]byte(`{"api_key":"fresh"}`), "crm-new"), false), `{"api_key":"fresh"}`)

		report, err := b.rewrapper(rotated).RewrapCredentials(b.ctx)
		require.NoError(t, err)
		require.Equal(t, starter.RewrapReport{KeyID: credential.KeyIDOf(b.newKey).String(), Resealed: 9, AlreadyCurrent: 1}, report)

		// The old key gone: every version opens with the new key alone,
		// holds what it held, and says so in key_id.
		alone := b.keyring(t, b.newKey)
		creds, err := b.store.ListCredentials(b.ctx, store.CredentialKey{}, store.MaxCredentialPage)
		require.NoError(t, err)
		require.Len(t, creds, len(want))
		for _, c := range creds {
			raw, err := alone.Open(c.Ciphertext, c.IntegrationID, c.Version)
			require.NoError(t, err, "%s version %d", c.IntegrationID, c.Version)
			require.Equal(t, want[store.CredentialKey{IntegrationID: c.IntegrationID, Version: c.Version}], string(raw))
			require.Equal(t, credential.KeyIDOf(b.newKey).String(), c.KeyID)
			named, ok := credential.SealedWith(c.Ciphertext)
			require.True(t, ok)
			require.Equal(t, credential.KeyIDOf(b.newKey), named)
		}
		// Nothing else changed: candidates stay candidates, current stays current.
		current, err := b.store.CurrentCredential(b.ctx, "crm-1")
		require.NoError(t, err)
		require.Equal(t, 2, current.Version)
		candidate, err := b.store.CredentialVersion(b.ctx, "crm-1", 3)
		require.NoError(t, err)
		require.True(t, candidate.Candidate())

		// Again: nothing to do.
		report, err = b.rewrapper(alone).RewrapCredentials(b.ctx)
		require.NoError(t, err)
		require.Equal(t, starter.RewrapReport{KeyID: credential.KeyIDOf(b.newKey).String(), AlreadyCurrent: 10}, report)
	})
}

func TestRewrapReportsWhatDoesNotOpen(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		lost := newKey(t)
		b.add(t, "crm-ok", b.old.Sealer([]byte(`{"api_key":"ok"}`), "crm-ok"), false)
		orphan := b.add(t, "crm-lost", b.keyring(t, lost).Sealer([]byte(`{"api_key":"lost-secret"}`), "crm-lost"), false)

		report, err := b.rewrapper(b.keyring(t, b.newKey, b.oldKey)).RewrapCredentials(b.ctx)
		require.ErrorIs(t, err, starter.ErrRewrapIncomplete)
		require.ErrorContains(t, err, credential.OldKeysEnv)
		require.Equal(t, 1, report.Resealed)
		require.Equal(t, 1, report.Failed)
		require.Len(t, report.Failures, 1)
		f := report.Failures[0]
		require.Equal(t, "crm-lost", f.IntegrationID)
		require.Equal(t, 1, f.Version)
		require.Contains(t, f.Error, credential.KeyIDOf(lost).String(), "names the missing key")
		for _, text := range []string{f.Error, err.Error()} {
			require.NotContains(t, text, "lost-secret")
			for _, key := range [][]byte{lost, b.oldKey, b.newKey} {
				require.False(t, bytes.Contains([]byte(text), key))
			}
		}
		got, err := b.store.CredentialVersion(b.ctx, "crm-lost", 1)
		require.NoError(t, err)
		require.Equal(t, orphan, got, "left as it was")

		// Without any key there is nothing to rewrap with.
		_, err = b.rewrapper(nil).RewrapCredentials(b.ctx)
		require.ErrorContains(t, err, credential.KeyEnv)
	})
}
