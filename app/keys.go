package app

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/acme/integrations/credential"
)

// ErrNoKey is wrapped by the error of a process that needs the credentials
// key (it seals or opens credentials) and has none it may use.
var ErrNoKey = errors.New("no encryption key")

// KeyFile is where the dev stack keeps its encryption key.
func (c Config) KeyFile() string { return filepath.Join(c.DataDir, "encryption.key") }

// OnDevStack reports whether this process runs against the dev stack of
// its data dir: dev.json is there, and the effective Temporal address and
// database URL are the ones it names.
func (c Config) OnDevStack() bool {
	return c.Dev != nil && c.Temporal.Address == c.Dev.TemporalAddress && c.DatabaseURL == c.Dev.DatabaseURL
}

// KeySource says which key a process of this configuration would use:
// "env" (INTEGRATIONS_ENCRYPTION_KEY), "dev stack" (DATA-DIR/encryption.key)
// or "none".
func (c Config) KeySource() string {
	switch {
	case c.EncryptionKey != "":
		return "env"
	case c.OnDevStack():
		return "dev stack"
	}
	return "none"
}

// CheckKey loads the credentials key as a worker, serve or authorize of
// this configuration would (never creating one) and returns its key ID
// (credential.KeyIDOf: safe to show, it is not the key), or the refusal
// such a process would meet: no key, or one that is not the dev stack's.
func (c Config) CheckKey() (keyID string, err error) {
	ring, err := c.keyring(false)
	if err != nil {
		return "", err
	}
	return ring.ActiveKeyID().String(), nil
}

// keyring loads the credentials key: INTEGRATIONS_ENCRYPTION_KEY, else the
// dev stack's DATA-DIR/encryption.key when this process runs against that
// stack. Only dev (create) makes the file when it is missing; any other
// process without a key it may use gets ErrNoKey, saying what to set,
// before it seals anything with a key nobody else has; so does one on the
// dev stack whose key is not the one dev.json names (checkDevKey). The
// keys in INTEGRATIONS_ENCRYPTION_OLD_KEYS join it for opening only (a
// rotation under way).
func (c Config) keyring(create bool) (*credential.Keyring, error) {
	var key []byte
	var err error
	switch {
	case c.EncryptionKey != "":
		key, err = credential.ParseKey(c.EncryptionKey)
	case c.DataDir == "" && (create || c.Dev != nil):
		// A key file relative to wherever the process happens to run
		// would be a key nobody else has.
		return nil, fmt.Errorf("%w: no data dir for the dev stack's key: set the data dir, or %s", ErrNoKey, credential.KeyEnv)
	case create:
		key, err = credential.LoadOrCreateKeyFile(c.KeyFile())
	case c.OnDevStack():
		key, err = credential.ReadKeyFile(c.KeyFile())
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: the dev stack's key %s is missing: restart `integrations dev`, or set %s to the key its workers use",
				ErrNoKey, c.KeyFile(), credential.KeyEnv)
		}
	case c.Dev == nil:
		return nil, fmt.Errorf("%w: set %s to the key the workers use (base64 of %d bytes); no dev stack runs in %s (no dev.json), and only `integrations dev` makes a key",
			ErrNoKey, credential.KeyEnv, credential.KeySize, c.DataDir)
	default:
		return nil, fmt.Errorf("%w: set %s to the key the workers use (base64 of %d bytes); %s is the dev stack's key, for its own Temporal (%s) and database only, and this process uses Temporal %s and database %s",
			ErrNoKey, credential.KeyEnv, credential.KeySize, c.KeyFile(), c.Dev.TemporalAddress, c.Temporal.Address, RedactURL(c.DatabaseURL))
	}
	if err != nil {
		return nil, fmt.Errorf("load encryption key: %w", err)
	}
	old, err := credential.ParseKeys(c.EncryptionOldKeys)
	if err != nil {
		return nil, fmt.Errorf("load old encryption keys (%s): %w", credential.OldKeysEnv, err)
	}
	ring, err := credential.NewKeyring(key, old...)
	if err != nil {
		return nil, err
	}
	if err := c.checkDevKey(ring); err != nil {
		return nil, err
	}
	return ring, nil
}

// checkDevKey refuses a keyring whose active key is not the one the dev
// stack of the data dir runs with, when this process runs against that
// stack: what it sealed, its worker could not open (an environment's key
// in a second terminal, or a key file that is not the one dev started
// with). dev.json of an older dev names no key: nothing to compare.
func (c Config) checkDevKey(ring *credential.Keyring) error {
	if !c.OnDevStack() || c.Dev.KeyID == "" {
		return nil
	}
	active := ring.ActiveKeyID().String()
	if active == c.Dev.KeyID {
		return nil
	}
	if c.EncryptionKey != "" {
		return fmt.Errorf("%w: %s (key ID %s) is not the key of the dev stack in %s, which seals with key ID %s: unset %s to use the dev stack's key, or set it to the key `integrations dev` was started with",
			ErrNoKey, credential.KeyEnv, active, c.DataDir, c.Dev.KeyID, credential.KeyEnv)
	}
	return fmt.Errorf("%w: %s (key ID %s) is not the key the dev stack in %s runs with (key ID %s: dev was started with %s set, or the file changed since): set %s to the key dev runs with, or restart `integrations dev`",
		ErrNoKey, c.KeyFile(), active, c.DataDir, c.Dev.KeyID, credential.KeyEnv, credential.KeyEnv)
}
