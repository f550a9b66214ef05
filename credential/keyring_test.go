package credential

import (
	"bytes"
	"crypto/rand"
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

	sealed, err := bundle.keyring.Seal([]byte(secret), []byte("crm-1"))
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "supersecret")
	require.Len(t, sealed, 12+len(secret)+16, "nonce + ciphertext + tag")

	opened, err := bundle.keyring.Open(sealed, []byte("crm-1"))
	require.NoError(t, err)
	require.Equal(t, secret, string(opened))

	// A second seal of the same plaintext uses a fresh nonce.
	again, err := bundle.keyring.Seal([]byte(secret), []byte("crm-1"))
	require.NoError(t, err)
	require.NotEqual(t, sealed, again)

	// A keyring rebuilt from the same key opens it: nothing lives in memory only.
	rebuilt, err := NewKeyring(bundle.key)
	require.NoError(t, err)
	opened, err = rebuilt.Open(again, []byte("crm-1"))
	require.NoError(t, err)
	require.Equal(t, secret, string(opened))
}

func TestKeyringEmptyPlaintext(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal(nil, []byte("crm-1"))
	require.NoError(t, err)
	opened, err := bundle.keyring.Open(sealed, []byte("crm-1"))
	require.NoError(t, err)
	require.Empty(t, opened)
}

func TestKeyringTamperDetection(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), []byte("crm-1"))
	require.NoError(t, err)

	// Flipping any single byte (nonce, body or tag) must be detected.
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		_, err := bundle.keyring.Open(tampered, []byte("crm-1"))
		require.ErrorIs(t, err, ErrOpen, "byte %d", i)
		require.NotContains(t, err.Error(), "supersecret")
	}

	_, err = bundle.keyring.Open(sealed[:len(sealed)-1], []byte("crm-1"))
	require.ErrorIs(t, err, ErrOpen, "truncated")
	_, err = bundle.keyring.Open(sealed[:10], []byte("crm-1"))
	require.ErrorIs(t, err, ErrOpen, "shorter than a nonce")
	require.Contains(t, err.Error(), "shorter than nonce and tag")
}

func TestKeyringWrongAssociatedData(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), []byte("crm-1"))
	require.NoError(t, err)

	_, err = bundle.keyring.Open(sealed, []byte("crm-2"))
	require.ErrorIs(t, err, ErrOpen)
	require.NotContains(t, err.Error(), "supersecret")

	_, err = bundle.keyring.Open(sealed, nil)
	require.ErrorContains(t, err, "pass the integration ID")
	_, err = bundle.keyring.Seal([]byte(secret), nil)
	require.ErrorContains(t, err, "pass the integration ID")
}

func TestKeyringWrongKey(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	other := setup(t)

	sealed, err := bundle.keyring.Seal([]byte(secret), []byte("crm-1"))
	require.NoError(t, err)
	_, err = other.keyring.Open(sealed, []byte("crm-1"))
	require.ErrorIs(t, err, ErrOpen)
}

func TestNewKeyringKeyLength(t *testing.T) {
	t.Parallel()

	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		_, err := NewKeyring(make([]byte, n))
		require.Error(t, err, "%d bytes", n)
		require.ErrorContains(t, err, "needs exactly 32")
	}
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
	sealed, err := first.Seal([]byte(secret), []byte("crm-1"))
	require.NoError(t, err)
	second, err := NewKeyring(reused)
	require.NoError(t, err)
	opened, err := second.Open(sealed, []byte("crm-1"))
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
