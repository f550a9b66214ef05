// Package credential seals CRM credentials for storage at rest with
// AES-256-GCM, under a keyring that supports key rotation.
//
// A sealed value (format 1) is
//
//	0x01 || key ID (8 bytes) || nonce (12 bytes) || GCM ciphertext and tag
//
// where the key ID is the first 8 bytes of a SHA-256 of the key (KeyIDOf),
// so a ciphertext names the key that opens it, and the nonce is random per
// Seal. The associated data binds the header, the integration ID and the
// credentials version: a ciphertext copied onto another integration's row,
// or onto another version of the same integration, fails to open instead of
// silently authorizing the wrong CRM account or reviving a superseded key.
//
// A Keyring holds one active key, which seals, and any number of older
// keys, which only open. Rotating is: make the new key active
// (INTEGRATIONS_ENCRYPTION_KEY), list the old one in
// INTEGRATIONS_ENCRYPTION_OLD_KEYS, run `integrations credentials rewrap`
// (Rewrap re-seals each ciphertext under the active key), then drop the old
// key. Ciphertexts sealed before key IDs existed (nonce || ciphertext, the
// integration ID as associated data) still open with any key of the ring,
// for rows stored without a key ID only (OpenStored), and Rewrap turns them
// into format 1.
//
// Production reads the keys from the environment variables KeyEnv and
// OldKeysEnv (base64 of 32 random bytes each, e.g. `openssl rand -base64
// 32`); the dev stack keeps its key in a file created on first start
// (LoadOrCreateKeyFile). No error of this package contains key material or
// plaintext.
package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// KeyEnv is the environment variable that holds the base64-encoded active
// encryption key, the one that seals.
const KeyEnv = "INTEGRATIONS_ENCRYPTION_KEY"

// OldKeysEnv is the environment variable that holds older keys, which
// open what they sealed but never seal: comma-separated base64, for the
// time between a rotation and the rewrap that follows it.
const OldKeysEnv = "INTEGRATIONS_ENCRYPTION_OLD_KEYS"

// KeySize is the key length AES-256 needs, in bytes.
const KeySize = 32

// ErrOpen is returned (wrapped) when a ciphertext does not open: it was
// sealed with another key, for another integration or version, or it was
// altered.
var ErrOpen = errors.New("credentials do not decrypt: wrong encryption key, wrong integration or version, or the stored ciphertext was altered")

// ErrUnknownKey is returned (wrapped, together with ErrOpen) when a
// ciphertext names a key ID the keyring does not hold; the message names
// that key ID and the variable to put the key in.
var ErrUnknownKey = errors.New("sealed with a key that is not configured")

// KeyIDSize is the length of a key ID, in bytes.
const KeyIDSize = 8

// KeyID names a key without revealing it: the first KeyIDSize bytes of a
// SHA-256 over a fixed label and the key. Its String form (16 hex digits)
// is what the store's key_id column, the rewrap report and errors show.
type KeyID [KeyIDSize]byte

// String is the key ID in hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// keyIDLabel separates key IDs from any other hash of the key.
const keyIDLabel = "integrations credential key id v1\x00"

// KeyIDOf returns the key ID of key.
func KeyIDOf(key []byte) KeyID {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key)
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// Keyring seals with one active AES-256-GCM key and opens with it or any
// older key it holds. It is safe for concurrent use.
type Keyring struct {
	active KeyID
	// keys holds every key by ID; order lists the IDs, active first, for
	// ciphertexts that name no key (legacy).
	keys  map[KeyID]cipher.AEAD
	order []KeyID
}

// NewKeyring returns a Keyring whose active key is active and which also
// opens what the old keys sealed. Every key must be exactly KeySize bytes;
// an old key equal to the active one, or listed twice, is ignored.
func NewKeyring(active []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{keys: map[KeyID]cipher.AEAD{}}
	for i, key := range append([][]byte{active}, old...) {
		which := "the active encryption key (" + KeyEnv + ")"
		if i > 0 {
			which = fmt.Sprintf("old encryption key %d of %s", i, OldKeysEnv)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("%s is %d bytes, AES-256 needs exactly %d: generate one with `openssl rand -base64 32`", which, len(key), KeySize)
		}
		id := KeyIDOf(key)
		if _, dup := k.keys[id]; dup {
			continue
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("create AES cipher for %s: %w", which, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("create GCM for %s: %w", which, err)
		}
		k.keys[id] = aead
		k.order = append(k.order, id)
	}
	k.active = k.order[0]
	return k, nil
}

// ActiveKeyID is the ID of the key Seal uses.
func (k *Keyring) ActiveKeyID() KeyID { return k.active }

// KeyIDs lists the IDs of every key the keyring holds, the active one
// first.
func (k *Keyring) KeyIDs() []KeyID { return slices.Clone(k.order) }

// ParseKey decodes a base64 key (standard alphabet, padded or not; leading
// and trailing whitespace ignored) and checks it is KeySize bytes. Its errors
// never contain the input, since the input is the secret.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("encryption key is empty: set %s to base64 of %d random bytes (`openssl rand -base64 32`)", KeyEnv, KeySize)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Unpadded keys are common when copied from tools that strip '='.
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("encryption key is not valid base64: use base64 of %d random bytes (`openssl rand -base64 32`)", KeySize)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key decodes to %d bytes, AES-256 needs exactly %d: generate one with `openssl rand -base64 32`", len(key), KeySize)
	}
	return key, nil
}

// ParseKeys decodes a comma-separated list of base64 keys, as
// OldKeysEnv holds them (blanks around commas ignored; an empty list is no
// keys). Errors name the position of a bad key, never its value.
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		key, err := ParseKey(part)
		if err != nil {
			return nil, fmt.Errorf("key %d of the list: %w", i+1, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// LoadOrCreateKeyFile returns the key stored base64-encoded in path. If the
// file does not exist it creates it (mode 0600, parent directories 0700)
// holding a fresh random key, so the dev stack needs no setup yet keeps
// decrypting the credentials it stored before a restart. Concurrent callers
// all end up with the same key: the file is published with a hard link,
// which fails if another process got there first.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create directory for key file %s: %w", path, err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate encryption key: %w", err)
	}
	// Write to a temporary file first so no reader ever sees a half-written key.
	tmp, err := os.CreateTemp(dir, ".keyfile-*")
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created the key meanwhile: use theirs.
			return readKeyFile(path)
		}
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	return key, nil
}

// ReadKeyFile returns the key stored base64-encoded in path, never creating
// it: for processes that use the dev stack's key but must not make one.
func ReadKeyFile(path string) ([]byte, error) { return readKeyFile(path) }

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w (delete the file to generate a new key; credentials sealed with the old key will then need re-authorizing)", path, err)
	}
	return key, nil
}
