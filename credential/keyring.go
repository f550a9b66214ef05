// Package credential seals CRM credentials for storage at rest with
// AES-256-GCM.
//
// A sealed value is nonce || ciphertext || tag, where the 12-byte nonce is
// random per Seal. The integration ID is passed as associated data, so a
// ciphertext copied onto another integration's row fails to open instead of
// silently authorizing the wrong CRM account.
//
// Production reads the key from the environment variable named by KeyEnv
// (base64 of 32 random bytes, e.g. `openssl rand -base64 32`); the dev stack
// keeps one in a file created on first start (LoadOrCreateKeyFile).
package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyEnv is the environment variable that holds the base64-encoded
// encryption key.
const KeyEnv = "INTEGRATIONS_ENCRYPTION_KEY"

// KeySize is the key length AES-256 needs, in bytes.
const KeySize = 32

// ErrOpen is returned (wrapped) when a ciphertext does not open: it was
// sealed with another key or for another integration, or it was altered.
var ErrOpen = errors.New("credentials do not decrypt: wrong encryption key, wrong integration, or the stored ciphertext was altered")

// Keyring seals and opens credentials with one AES-256-GCM key. It is safe
// for concurrent use.
type Keyring struct {
	aead cipher.AEAD
}

// NewKeyring returns a Keyring for key, which must be exactly KeySize bytes.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, AES-256 needs exactly %d: generate one with `openssl rand -base64 32` and set %s", len(key), KeySize, KeyEnv)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("create GCM: %w", err)
	}
	return &Keyring{aead: aead}, nil
}

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

// Seal encrypts plaintext bound to associatedData, which must be the
// integration ID the credentials belong to. The result is a fresh random
// nonce followed by the GCM ciphertext and tag.
func (k *Keyring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	if len(associatedData) == 0 {
		// Unbound ciphertexts could be moved between integrations unnoticed.
		return nil, errors.New("seal credentials: associated data is empty: pass the integration ID")
	}
	nonceSize := k.aead.NonceSize()
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("seal credentials: generate nonce: %w", err)
	}
	return k.aead.Seal(out, out, plaintext, associatedData), nil
}

// Open decrypts a ciphertext made by Seal with the same key and associated
// data. Failures wrap ErrOpen; no error ever contains plaintext.
func (k *Keyring) Open(ciphertext, associatedData []byte) ([]byte, error) {
	if len(associatedData) == 0 {
		return nil, errors.New("open credentials: associated data is empty: pass the integration ID")
	}
	nonceSize := k.aead.NonceSize()
	if len(ciphertext) < nonceSize+k.aead.Overhead() {
		return nil, fmt.Errorf("open credentials: ciphertext is %d bytes, shorter than nonce and tag: %w", len(ciphertext), ErrOpen)
	}
	plaintext, err := k.aead.Open(nil, ciphertext[:nonceSize], ciphertext[nonceSize:], associatedData)
	if err != nil {
		// GCM's own error says nothing more useful than ErrOpen.
		return nil, fmt.Errorf("open credentials: %w", ErrOpen)
	}
	return plaintext, nil
}
