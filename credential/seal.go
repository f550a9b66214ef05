package credential

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// formatV1 is the first byte of a ciphertext with a key ID header.
const formatV1 byte = 0x01

// headerSize is the format byte and the key ID.
const headerSize = 1 + KeyIDSize

// GCM's standard nonce and tag sizes, which cipher.NewGCM uses.
const (
	nonceSize = 12
	tagSize   = 16
)

// Seal encrypts plaintext with the active key, bound to the integration
// and the credentials version it is stored as: the result opens only for
// that pair. It is format 1: header, fresh random nonce, GCM ciphertext and
// tag.
func (k *Keyring) Seal(plaintext []byte, integrationID string, version int) ([]byte, error) {
	if err := checkBinding(integrationID, version); err != nil {
		return nil, fmt.Errorf("seal credentials: %w", err)
	}
	aead := k.keys[k.active]
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(plaintext)+tagSize)
	out[0] = formatV1
	copy(out[1:headerSize], k.active[:])
	nonce := out[headerSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal credentials: generate nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, associatedData(out[:headerSize], integrationID, version)), nil
}

// Sealer returns a function that seals plaintext for integrationID and
// the version it is given, under the active key, and names that key: what
// the store's credential adds (store.SealFunc) call once they have
// allocated the version. It holds plaintext until it is dropped.
func (k *Keyring) Sealer(plaintext []byte, integrationID string) func(version int) (ciphertext []byte, keyID string, err error) {
	return func(version int) ([]byte, string, error) {
		ciphertext, err := k.Seal(plaintext, integrationID, version)
		if err != nil {
			return nil, "", err
		}
		return ciphertext, k.active.String(), nil
	}
}

// Open decrypts a ciphertext that Seal made for the same integration and
// version with any key of the keyring. It never tries the legacy format
// (sealed before key IDs, bound to the integration only, so it would open
// on any version row): a stored row's ciphertext opens with OpenStored,
// which tries that format for rows stored without a key ID only. Failures
// wrap ErrOpen, and also ErrUnknownKey when the ciphertext names a key the
// keyring lacks; no error contains plaintext or key material.
func (k *Keyring) Open(ciphertext []byte, integrationID string, version int) ([]byte, error) {
	plaintext, _, err := k.open(ciphertext, false, integrationID, version)
	return plaintext, err
}

// OpenStored decrypts a stored row's ciphertext, as Open does; keyID is
// the row's key ID (store.Credential.KeyID). Only a row without one,
// stored before key IDs existed, may hold the legacy format, so only then
// is it tried: a legacy ciphertext copied onto a row sealed since, of
// another version, does not open.
func (k *Keyring) OpenStored(ciphertext []byte, keyID, integrationID string, version int) ([]byte, error) {
	plaintext, _, err := k.open(ciphertext, keyID == "", integrationID, version)
	return plaintext, err
}

// Rewrap opens a stored row's ciphertext (as OpenStored does; keyID is
// the row's key ID) and seals it again under the active key for the same
// integration and version, unless it is already format 1 under the active
// key; changed reports whether out is a new ciphertext. It never returns
// the plaintext.
func (k *Keyring) Rewrap(ciphertext []byte, keyID, integrationID string, version int) (out []byte, changed bool, err error) {
	plaintext, opened, err := k.open(ciphertext, keyID == "", integrationID, version)
	if err != nil {
		return nil, false, err
	}
	defer clear(plaintext)
	if opened.format1 && opened.key == k.active {
		return ciphertext, false, nil
	}
	out, err = k.Seal(plaintext, integrationID, version)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// SealedWith returns the key ID a ciphertext's header names, and false for
// a legacy ciphertext (no header). It does not authenticate anything: only
// Open tells whether that key really sealed it.
func SealedWith(ciphertext []byte) (KeyID, bool) {
	var id KeyID
	if len(ciphertext) < headerSize+nonceSize+tagSize || ciphertext[0] != formatV1 {
		return id, false
	}
	copy(id[:], ciphertext[1:headerSize])
	return id, true
}

// openedWith is how a ciphertext opened.
type openedWith struct {
	key KeyID
	// format1 is false for a legacy ciphertext.
	format1 bool
}

// open opens a format 1 ciphertext, or, when legacy allows it, one sealed
// before key IDs.
func (k *Keyring) open(ciphertext []byte, legacy bool, integrationID string, version int) ([]byte, openedWith, error) {
	if err := checkBinding(integrationID, version); err != nil {
		return nil, openedWith{}, fmt.Errorf("open credentials: %w", err)
	}
	what := fmt.Sprintf("open credentials of %s version %d", integrationID, version)
	if len(ciphertext) < nonceSize+tagSize {
		return nil, openedWith{}, fmt.Errorf("%s: the ciphertext is %d bytes, shorter than nonce and tag: %w", what, len(ciphertext), ErrOpen)
	}
	id, headed := SealedWith(ciphertext)
	if headed {
		if aead, ok := k.keys[id]; ok {
			body := ciphertext[headerSize:]
			ad := associatedData(ciphertext[:headerSize], integrationID, version)
			if plaintext, err := aead.Open(nil, body[:nonceSize], body[nonceSize:], ad); err == nil {
				return plaintext, openedWith{key: id, format1: true}, nil
			}
		}
	}
	// A legacy ciphertext starts with a random nonce, which looks like a
	// header one time in 256; so whatever the first byte, try the legacy
	// form before giving up, where it may be one.
	if legacy {
		for _, kid := range k.order {
			if plaintext, err := k.keys[kid].Open(nil, ciphertext[:nonceSize], ciphertext[nonceSize:], []byte(integrationID)); err == nil {
				return plaintext, openedWith{key: kid}, nil
			}
		}
	}
	switch {
	case headed && k.keys[id] == nil:
		return nil, openedWith{}, fmt.Errorf("%s: %w: it names key ID %s, and the configured keys are %s: put that key in %s (comma-separated base64) or make it %s: %w",
			what, ErrUnknownKey, id, k.idList(), OldKeysEnv, KeyEnv, ErrOpen)
	case headed:
		return nil, openedWith{}, fmt.Errorf("%s: sealed with key ID %s, but not for this integration and version, or altered since; re-authorize the integration: %w",
			what, id, ErrOpen)
	case !legacy:
		return nil, openedWith{}, fmt.Errorf("%s: not sealed with a key ID, yet stored since key IDs exist (its row names one), so altered or moved there; re-authorize the integration: %w",
			what, ErrOpen)
	}
	return nil, openedWith{}, fmt.Errorf("%s: sealed before key IDs, and none of the configured keys (%s) opens it: put the key it was sealed with in %s, or re-authorize the integration: %w",
		what, k.idList(), OldKeysEnv, ErrOpen)
}

// idList names the keyring's keys, for errors.
func (k *Keyring) idList() string {
	ids := make([]string, len(k.order))
	for i, id := range k.order {
		ids[i] = id.String()
		if id == k.active {
			ids[i] += " (active)"
		}
	}
	return strings.Join(ids, ", ")
}

// associatedData binds a format 1 ciphertext: its header, then the
// integration ID (length-prefixed, so no two pairs encode alike) and the
// version.
func associatedData(header []byte, integrationID string, version int) []byte {
	ad := make([]byte, 0, len(header)+4+len(integrationID)+8)
	ad = append(ad, header...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(integrationID)))
	ad = append(ad, integrationID...)
	return binary.BigEndian.AppendUint64(ad, uint64(version))
}

// checkBinding refuses what would leave a ciphertext unbound.
func checkBinding(integrationID string, version int) error {
	switch {
	case integrationID == "":
		// Unbound ciphertexts could be moved between integrations unnoticed.
		return errors.New("no integration ID given: pass the integration the credentials belong to")
	case version <= 0:
		return fmt.Errorf("credentials version %d is not positive: pass the version they are stored as", version)
	}
	return nil
}
