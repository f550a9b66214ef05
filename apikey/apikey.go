// Package apikey is what an HTTP API key is: how one is issued (printed
// once, stored only as its SHA-256 by package store), what it looks like
// (iak_<id>_<secret>), and how a presented key is checked. An org key sees
// and commands the integrations of its org only; an admin key, an
// operator's, every org's. The API (package api) asks Authenticate on
// every operator request; the CLI's api-key commands issue and revoke.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// Prefix starts every key, so a leaked one is recognisable (and secret
// scanners can be taught it).
const Prefix = "iak_"

// The parts of a key after Prefix: the ID, public (it is what `api-key
// list` shows and `revoke` takes), and the secret, 256 random bits.
const (
	idBytes     = 8
	secretBytes = 32
	// keyLen is the length of a whole key.
	keyLen = len(Prefix) + 2*idBytes + 1 + 2*secretBytes
)

// ErrUnauthorized is wrapped by every refusal of a presented key:
// ErrMalformed, ErrUnknown and ErrRevoked.
var ErrUnauthorized = errors.New("unauthorized")

// The reasons Authenticate refuses a key; each wraps ErrUnauthorized.
var (
	ErrMalformed = fmt.Errorf("%w: not an API key", ErrUnauthorized)
	ErrUnknown   = fmt.Errorf("%w: unknown API key", ErrUnauthorized)
	ErrRevoked   = fmt.Errorf("%w: revoked API key", ErrUnauthorized)
)

// ErrInvalidSpec is wrapped by Issue's errors about what it was asked for
// (a bad org or name, admin and org both or neither).
var ErrInvalidSpec = errors.New("invalid API key request")

// Spec is what a key is issued for: an org's key (OrgID), or an admin key.
type Spec struct {
	OrgID string
	Admin bool
	// Name is who holds it (a person, a backend, a script); it is the
	// recorded actor of the key's commands.
	Name string
}

// Validate checks a spec before anything is generated or stored.
func (s Spec) Validate() error {
	switch {
	case s.Admin && s.OrgID != "":
		return fmt.Errorf("%w: an admin key sees every org: give --admin or --org, not both", ErrInvalidSpec)
	case !s.Admin && s.OrgID == "":
		return fmt.Errorf("%w: give the org the key is for (--org ORG), or --admin for an operator's key", ErrInvalidSpec)
	}
	if !s.Admin {
		if err := integration.ValidateID("org id", s.OrgID); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
	}
	if err := integration.ValidateID("key name", s.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return nil
}

// Issue generates a key for spec and stores its hash; the key itself is
// returned to be shown once, and exists nowhere else. The error wraps
// ErrInvalidSpec for a bad spec and store.ErrNameInUse when a working key
// of the org (or another admin key) has the name.
func Issue(ctx context.Context, st *store.Store, spec Spec, now time.Time) (store.APIKey, string, error) {
	if err := spec.Validate(); err != nil {
		return store.APIKey{}, "", err
	}
	raw := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return store.APIKey{}, "", fmt.Errorf("generate API key: %w", err)
	}
	id := hex.EncodeToString(raw[:idBytes])
	key := Prefix + id + "_" + hex.EncodeToString(raw[idBytes:])
	k := store.APIKey{ID: id, OrgID: spec.OrgID, Admin: spec.Admin, Name: spec.Name, Hash: Hash(key), CreatedAt: now}
	if err := st.AddAPIKey(ctx, k); err != nil {
		return store.APIKey{}, "", fmt.Errorf("issue API key %q: %w", spec.Name, err)
	}
	stored, err := st.APIKey(ctx, id)
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("issue API key %q: read it back: %w", spec.Name, err)
	}
	return stored, key, nil
}

// Hash is what the store keeps of a key: its SHA-256.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// Parse returns the ID of a key of the right form, or ErrMalformed. It
// reads nothing and never echoes the key.
func Parse(key string) (id string, err error) {
	if len(key) != keyLen || !strings.HasPrefix(key, Prefix) {
		return "", ErrMalformed
	}
	rest := key[len(Prefix):]
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*idBytes || len(secret) != 2*secretBytes || !lowerHex(id) || !lowerHex(secret) {
		return "", ErrMalformed
	}
	return id, nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Authenticate checks a presented key and returns the stored key it is:
// the error wraps ErrMalformed, ErrUnknown or ErrRevoked (all
// ErrUnauthorized) for a key that does not work, anything else for a
// store that cannot answer. The key's hash is compared in constant time;
// the lookup is by its public ID.
func Authenticate(ctx context.Context, st *store.Store, key string) (store.APIKey, error) {
	id, err := Parse(key)
	if err != nil {
		return store.APIKey{}, err
	}
	k, err := st.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, ErrUnknown
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("authenticate API key %s: %w", id, err)
	}
	if subtle.ConstantTimeCompare(Hash(key), k.Hash) != 1 {
		// The right ID with another secret: as good as unknown.
		return store.APIKey{}, ErrUnknown
	}
	if k.Revoked() {
		return store.APIKey{}, ErrRevoked
	}
	return k, nil
}

// Register stores a key that exists already (the dev stack's admin key,
// kept in its data dir, on a database that does not know it yet) for
// spec, and returns it as stored. Errors as Issue's, and ErrMalformed for
// a key of the wrong form.
func Register(ctx context.Context, st *store.Store, key string, spec Spec, now time.Time) (store.APIKey, error) {
	if err := spec.Validate(); err != nil {
		return store.APIKey{}, err
	}
	id, err := Parse(key)
	if err != nil {
		return store.APIKey{}, err
	}
	k := store.APIKey{ID: id, OrgID: spec.OrgID, Admin: spec.Admin, Name: spec.Name, Hash: Hash(key), CreatedAt: now}
	if err := st.AddAPIKey(ctx, k); err != nil {
		return store.APIKey{}, fmt.Errorf("register API key %q: %w", spec.Name, err)
	}
	return st.APIKey(ctx, id)
}

// Allows reports whether key k may see and command an integration of
// org: an admin key every org's, an org key its own org's only.
func Allows(k store.APIKey, org string) bool { return k.Admin || (k.OrgID != "" && k.OrgID == org) }
