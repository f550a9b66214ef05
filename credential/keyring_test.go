package credential

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

type testBundle struct {
	key     []byte
	keyring *Keyring
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	key := make([]byte, KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	keyring, err := NewKeyring(key)
	require.NoError(t, err)
	return &testBundle{key: key, keyring: keyring}
}

const secret = `{"api_key":"sbx_supersecretvalue"}`

func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), "crm-1", 1)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "supersecret")
	require.Len(t, sealed, 1+KeyIDSize+12+len(secret)+16, "format byte + key ID + nonce + ciphertext + tag")
	require.Equal(t, byte(0x01), sealed[0], "format 1")
	id := KeyIDOf(bundle.key)
	require.Equal(t, id[:], sealed[1:1+KeyIDSize], "the header names the key")
	named, ok := SealedWith(sealed)
	require.True(t, ok)
	require.Equal(t, id, named)
	require.Equal(t, id, bundle.keyring.ActiveKeyID())

	opened, err := bundle.keyring.Open(sealed, "crm-1", 1)
	require.NoError(t, err)
	require.Equal(t, secret, string(opened))

	// A second seal of the same plaintext uses a fresh nonce.
	again, err := bundle.keyring.Seal([]byte(secret), "crm-1", 1)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again)

	// A keyring rebuilt from the same key opens it: nothing lives in memory only.
	rebuilt, err := NewKeyring(bundle.key)
	require.NoError(t, err)
	opened, err = rebuilt.Open(again, "crm-1", 1)
	require.NoError(t, err)
	require.Equal(t, secret, string(opened))
}

func TestKeyIDOf(t *testing.T) {
	t.Parallel()
	a, b := setup(t), setup(t)
	require.Equal(t, KeyIDOf(a.key), KeyIDOf(bytes.Clone(a.key)), "a key's ID is stable")
	require.NotEqual(t, KeyIDOf(a.key), KeyIDOf(b.key))
	require.Regexp(t, `^[0-9a-f]{16}$`, KeyIDOf(a.key).String())
	// The ID is not a prefix of the key, nor of a plain SHA-256 of it
	// that some other tool might publish.
	id, sum := KeyIDOf(a.key), sha256.Sum256(a.key)
	require.NotEqual(t, a.key[:KeyIDSize], id[:])
	require.NotEqual(t, sum[:KeyIDSize], id[:])
}

func TestKeyringEmptyPlaintext(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal(nil, "crm-1", 1)
	require.NoError(t, err)
	opened, err := bundle.keyring.Open(sealed, "crm-1", 1)
	require.NoError(t, err)
	require.Empty(t, opened)
}

func TestKeyringTamperDetection(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), "crm-1", 1)
	require.NoError(t, err)

	// Flipping any single byte (header, nonce, body or tag) must be detected.
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		_, err := bundle.keyring.Open(tampered, "crm-1", 1)
		require.ErrorIs(t, err, ErrOpen, "byte %d", i)
		require.NotContains(t, err.Error(), "supersecret")
	}

	_, err = bundle.keyring.Open(sealed[:len(sealed)-1], "crm-1", 1)
	require.ErrorIs(t, err, ErrOpen, "truncated")
	_, err = bundle.keyring.Open(sealed[:10], "crm-1", 1)
	require.ErrorIs(t, err, ErrOpen, "shorter than a nonce")
	require.Contains(t, err.Error(), "shorter than nonce and tag")
}

func TestKeyringWrongAssociatedData(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), "crm-1", 2)
	require.NoError(t, err)

	t.Run("AnotherIntegration", func(t *testing.T) {
		t.Parallel()
		_, err := bundle.keyring.Open(sealed, "crm-2", 2)
		require.ErrorIs(t, err, ErrOpen)
		require.NotErrorIs(t, err, ErrUnknownKey)
		require.ErrorContains(t, err, "re-authorize")
		require.NotContains(t, err.Error(), "supersecret")
	})

	t.Run("AnotherVersion", func(t *testing.T) {
		t.Parallel()
		// A row moved to another version (an old key swapped into a newer
		// version number) no longer opens.
		for _, v := range []int{1, 3, 2 << 32} {
			_, err := bundle.keyring.Open(sealed, "crm-1", v)
			require.ErrorIs(t, err, ErrOpen, "version %d", v)
		}
	})

	t.Run("IDAndVersionDoNotRunTogether", func(t *testing.T) {
		t.Parallel()
		// The ID is length-prefixed: "crm-1" version 2 is not "crm-" and
		// some other encoding of the rest.
		_, err := bundle.keyring.Open(sealed, "crm-", 2)
		require.ErrorIs(t, err, ErrOpen)
	})

	t.Run("RefusesUnboundUse", func(t *testing.T) {
		t.Parallel()
		_, err := bundle.keyring.Open(sealed, "", 2)
		require.ErrorContains(t, err, "no integration ID")
		_, err = bundle.keyring.Seal([]byte(secret), "", 2)
		require.ErrorContains(t, err, "no integration ID")
		for _, v := range []int{0, -1} {
			_, err = bundle.keyring.Seal([]byte(secret), "crm-1", v)
			require.ErrorContains(t, err, "not positive")
			_, err = bundle.keyring.Open(sealed, "crm-1", v)
			require.ErrorContains(t, err, "not positive")
		}
	})
}

func TestKeyringWrongKey(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	other := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), "crm-1", 1)
	require.NoError(t, err)
	_, err = other.keyring.Open(sealed, "crm-1", 1)
	require.ErrorIs(t, err, ErrOpen)
	require.ErrorIs(t, err, ErrUnknownKey)
	// It says which key is missing and where to put it, and shows no key.
	require.ErrorContains(t, err, KeyIDOf(bundle.key).String())
	require.ErrorContains(t, err, OldKeysEnv)
	require.ErrorContains(t, err, KeyIDOf(other.key).String()+" (active)")
	for _, key := range [][]byte{bundle.key, other.key} {
		require.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString(key))
		require.NotContains(t, err.Error(), string(key))
	}
}

// legacySeal seals the way the service did before key IDs: nonce ||
// ciphertext || tag, with the integration ID as associated data.
func legacySeal(t *testing.T, key []byte, plaintext, integrationID string) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	nonce := make([]byte, aead.NonceSize())
	_, err = rand.Read(nonce)
	require.NoError(t, err)
	return aead.Seal(nonce, nonce, []byte(plaintext), []byte(integrationID))
}

func TestKeyringLegacyCiphertexts(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	old := setup(t)

	t.Run("OpenForAnyVersionOfTheirIntegration", func(t *testing.T) {
		t.Parallel()
		legacy := legacySeal(t, bundle.key, secret, "crm-1")
		_, named := SealedWith(legacy)
		for v := 1; v <= 3; v++ {
			opened, err := bundle.keyring.OpenStored(legacy, "", "crm-1", v)
			require.NoError(t, err)
			require.Equal(t, secret, string(opened))
		}
		_, err := bundle.keyring.OpenStored(legacy, "", "crm-2", 1)
		require.ErrorIs(t, err, ErrOpen)
		if !named {
			require.ErrorContains(t, err, "sealed before key IDs")
		}
	})

	t.Run("OnlyOnRowsWithoutAKeyID", func(t *testing.T) {
		t.Parallel()
		// A legacy ciphertext copied onto a row sealed since key IDs (one
		// that names a key), of another version, does not open there:
		// neither with that row's key ID, nor through Open or Rewrap.
		legacy := legacySeal(t, bundle.key, secret, "crm-1")
		active := bundle.keyring.ActiveKeyID().String()
		_, err := bundle.keyring.OpenStored(legacy, active, "crm-1", 2)
		require.ErrorIs(t, err, ErrOpen)
		if _, named := SealedWith(legacy); !named {
			require.ErrorContains(t, err, "not sealed with a key ID")
		}
		_, err = bundle.keyring.Open(legacy, "crm-1", 2)
		require.ErrorIs(t, err, ErrOpen)
		out, changed, err := bundle.keyring.Rewrap(legacy, active, "crm-1", 2)
		require.ErrorIs(t, err, ErrOpen)
		require.False(t, changed)
		require.Nil(t, out)
		// What Seal made opens either way.
		sealed, err := bundle.keyring.Seal([]byte(secret), "crm-1", 2)
		require.NoError(t, err)
		for _, keyID := range []string{active, ""} {
			opened, err := bundle.keyring.OpenStored(sealed, keyID, "crm-1", 2)
			require.NoError(t, err)
			require.Equal(t, secret, string(opened))
		}
	})

	t.Run("OpenWithAnOldKey", func(t *testing.T) {
		t.Parallel()
		ring, err := NewKeyring(bundle.key, old.key)
		require.NoError(t, err)
		opened, err := ring.OpenStored(legacySeal(t, old.key, secret, "crm-1"), "", "crm-1", 1)
		require.NoError(t, err)
		require.Equal(t, secret, string(opened))
	})

	t.Run("NonceThatLooksLikeAHeader", func(t *testing.T) {
		t.Parallel()
		// One legacy ciphertext in 256 starts with the format byte.
		var legacy []byte
		for legacy == nil || legacy[0] != 0x01 {
			legacy = legacySeal(t, bundle.key, secret, "crm-1")
		}
		opened, err := bundle.keyring.OpenStored(legacy, "", "crm-1", 1)
		require.NoError(t, err)
		require.Equal(t, secret, string(opened))
	})

	t.Run("TamperedLegacyFails", func(t *testing.T) {
		t.Parallel()
		legacy := legacySeal(t, bundle.key, secret, "crm-1")
		for i := range legacy {
			tampered := bytes.Clone(legacy)
			tampered[i] ^= 0x80
			_, err := bundle.keyring.OpenStored(tampered, "", "crm-1", 1)
			require.ErrorIs(t, err, ErrOpen, "byte %d", i)
		}
	})

	t.Run("RewrapTurnsThemIntoFormat1", func(t *testing.T) {
		t.Parallel()
		legacy := legacySeal(t, bundle.key, secret, "crm-1")
		out, changed, err := bundle.keyring.Rewrap(legacy, "", "crm-1", 4)
		require.NoError(t, err)
		require.True(t, changed)
		named, ok := SealedWith(out)
		require.True(t, ok)
		require.Equal(t, bundle.keyring.ActiveKeyID(), named)
		opened, err := bundle.keyring.Open(out, "crm-1", 4)
		require.NoError(t, err)
		require.Equal(t, secret, string(opened))
		// Now bound to its version too.
		_, err = bundle.keyring.Open(out, "crm-1", 3)
		require.ErrorIs(t, err, ErrOpen)
	})
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := setup(t), setup(t)

	// Before: the old key seals v1 and v2 (v1 legacy).
	v1 := legacySeal(t, oldKey.key, secret, "crm-1")
	v2, err := oldKey.keyring.Seal([]byte(`{"api_key":"second"}`), "crm-1", 2)
	require.NoError(t, err)

	// The key IDs their rows name: none for the legacy v1.
	keyIDs := map[int]string{1: "", 2: KeyIDOf(oldKey.key).String(), 3: KeyIDOf(newKey.key).String()}

	// Rotation: the new key is active, the old one opens only.
	rotated, err := NewKeyring(newKey.key, oldKey.key)
	require.NoError(t, err)
	require.Equal(t, newKey.keyring.ActiveKeyID(), rotated.ActiveKeyID())
	require.Equal(t, []KeyID{KeyIDOf(newKey.key), KeyIDOf(oldKey.key)}, rotated.KeyIDs())
	fresh, err := rotated.Seal([]byte(`{"api_key":"third"}`), "crm-1", 3)
	require.NoError(t, err)
	named, _ := SealedWith(fresh)
	require.Equal(t, KeyIDOf(newKey.key), named, "new seals use the active key")
	for v, ct := range map[int][]byte{1: v1, 2: v2, 3: fresh} {
		_, err := rotated.OpenStored(ct, keyIDs[v], "crm-1", v)
		require.NoError(t, err, "version %d", v)
	}

	// Rewrap: everything under the new key; what already is stays as it is.
	rewrapped := map[int][]byte{}
	for v, ct := range map[int][]byte{1: v1, 2: v2, 3: fresh} {
		out, changed, err := rotated.Rewrap(ct, keyIDs[v], "crm-1", v)
		require.NoError(t, err, "version %d", v)
		require.Equal(t, v != 3, changed, "version %d", v)
		if v == 3 {
			require.Equal(t, fresh, out)
		}
		rewrapped[v] = out
	}

	// The old key gone: everything opens with the new key alone.
	alone, err := NewKeyring(newKey.key)
	require.NoError(t, err)
	for v, want := range map[int]string{1: secret, 2: `{"api_key":"second"}`, 3: `{"api_key":"third"}`} {
		opened, err := alone.Open(rewrapped[v], "crm-1", v)
		require.NoError(t, err, "version %d", v)
		require.Equal(t, want, string(opened))
	}
	// Without rewrap it would not have: the error names the missing key.
	_, err = alone.Open(v2, "crm-1", 2)
	require.ErrorIs(t, err, ErrUnknownKey)
	require.ErrorContains(t, err, KeyIDOf(oldKey.key).String())

	// A rewrap that cannot open says so and returns nothing.
	out, changed, err := alone.Rewrap(v2, keyIDs[2], "crm-1", 2)
	require.ErrorIs(t, err, ErrOpen)
	require.False(t, changed)
	require.Nil(t, out)
}

func TestNewKeyringKeyLength(t *testing.T) {
	t.Parallel()

	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		_, err := NewKeyring(make([]byte, n))
		require.Error(t, err, "%d bytes", n)
		require.ErrorContains(t, err, "needs exactly 32")
		require.ErrorContains(t, err, KeyEnv)
	}
	good := setup(t)
	_, err := NewKeyring(good.key, good.key, make([]byte, 5))
	require.ErrorContains(t, err, "old encryption key 2 of "+OldKeysEnv)

	// An old key equal to the active one is the same key.
	ring, err := NewKeyring(good.key, good.key)
	require.NoError(t, err)
	require.Len(t, ring.KeyIDs(), 1)
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	a, b := setup(t), setup(t)
	enc := base64.StdEncoding.EncodeToString

	keys, err := ParseKeys(enc(a.key) + ", " + base64.RawStdEncoding.EncodeToString(b.key) + ",")
	require.NoError(t, err)
	require.Equal(t, [][]byte{a.key, b.key}, keys)

	for _, empty := range []string{"", " ", ","} {
		keys, err := ParseKeys(empty)
		require.NoError(t, err)
		require.Empty(t, keys)
	}

	_, err = ParseKeys(enc(a.key) + ",not-a-key-at-all")
	require.ErrorContains(t, err, "key 2 of the list")
	require.NotContains(t, err.Error(), "not-a-key-at-all")
	require.NotContains(t, err.Error(), enc(a.key))
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	for name, encoded := range map[string]string{
		"std":        base64.StdEncoding.EncodeToString(bundle.key),
		"raw":        base64.RawStdEncoding.EncodeToString(bundle.key),
		"whitespace": "  " + base64.StdEncoding.EncodeToString(bundle.key) + "\n",
	} {
		key, err := ParseKey(encoded)
		require.NoError(t, err, name)
		require.Equal(t, bundle.key, key, name)
	}

	_, err := ParseKey("")
	require.ErrorContains(t, err, "empty")

	_, err = ParseKey("not base64 at all!!")
	require.ErrorContains(t, err, "not valid base64")
	require.NotContains(t, err.Error(), "not base64 at all", "the key is a secret")

	_, err = ParseKey(base64.StdEncoding.EncodeToString(make([]byte, 16)))
	require.ErrorContains(t, err, "decodes to 16 bytes")
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "encryption.key")

	created, err := LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	require.Len(t, created, KeySize)

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	reused, err := LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, created, reused, "the second call reads the same key back")

	// The key survives a "restart": a keyring from the reloaded key opens
	// what the first one sealed.
	first, err := NewKeyring(created)
	require.NoError(t, err)
	sealed, err := first.Seal([]byte(secret), "crm-1", 1)
	require.NoError(t, err)
	second, err := NewKeyring(reused)
	require.NoError(t, err)
	opened, err := second.Open(sealed, "crm-1", 1)
	require.NoError(t, err)
	require.Equal(t, secret, string(opened))

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files are left behind")
}

func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "encryption.key")

	const callers = 8
	keys := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKeyFile(path) })
	}
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, keys[0], keys[i], "every caller gets the one stored key")
	}
}

func TestLoadOrCreateKeyFileCorrupt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "encryption.key")
	require.NoError(t, os.WriteFile(path, []byte("short"), 0o600))

	_, err := LoadOrCreateKeyFile(path)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "delete the file")

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "short", string(data), "a bad key file is reported, never overwritten")
}

func TestKeyringSealer(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	seal := bundle.keyring.Sealer([]byte(secret), "crm-1")
	for _, v := range []int{1, 7} {
		ciphertext, keyID, err := seal(v)
		require.NoError(t, err)
		require.Equal(t, bundle.keyring.ActiveKeyID().String(), keyID)
		opened, err := bundle.keyring.Open(ciphertext, "crm-1", v)
		require.NoError(t, err, "bound to the version it was given")
		require.Equal(t, secret, string(opened))
		_, err = bundle.keyring.Open(ciphertext, "crm-1", v+1)
		require.ErrorIs(t, err, ErrOpen)
	}
	_, _, err := seal(0)
	require.ErrorContains(t, err, "not positive")
}
