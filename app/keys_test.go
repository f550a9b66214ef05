package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/credential"
)

// keyBundle is a data dir with a dev stack's dev.json, and a Config that
// runs against that stack.
type keyBundle struct {
	*configBundle
	dev app.DevInfo
}

func setupKeys(t *testing.T) *keyBundle {
	t.Helper()
	b := &keyBundle{configBundle: setupConfig(t)}
	b.dev = app.DevInfo{TemporalAddress: "127.0.0.1:7999", Namespace: "default", DatabaseURL: "sqlite://" + b.dataDir + "/integrations.db"}
	return b
}

// service builds a store-only service with opts.
func service(t *testing.T, cfg app.Config, opts ...app.Option) (*app.Service, error) {
	t.Helper()
	svc, err := app.New(context.Background(), cfg, opts...)
	if err == nil {
		t.Cleanup(svc.Close)
	}
	return svc, err
}

func requireNoKeyFile(t *testing.T, cfg app.Config) {
	t.Helper()
	_, err := os.Stat(cfg.KeyFile())
	require.ErrorIs(t, err, os.ErrNotExist, "no key file may appear by accident")
}

func TestOnlyDevCreatesAKey(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)
	cfg, err := b.load(t, nil)
	require.NoError(t, err)

	// Without a key and without a dev stack, a process that needs the key
	// refuses, saying what to set, and makes no key file.
	_, err = service(t, cfg, app.WithKeyring())
	require.ErrorIs(t, err, app.ErrNoKey)
	require.ErrorContains(t, err, credential.KeyEnv)
	require.ErrorContains(t, err, "the key the workers use")
	requireNoKeyFile(t, cfg)
	require.Equal(t, "none", cfg.KeySource())

	// A process that needs no key does not need one.
	svc, err := service(t, cfg)
	require.NoError(t, err)
	require.Nil(t, svc.Keyring)

	// dev makes the key; a second dev start keeps it.
	dev, err := service(t, cfg, app.WithDevKeyring())
	require.NoError(t, err)
	require.FileExists(t, cfg.KeyFile())
	again, err := service(t, cfg, app.WithDevKeyring())
	require.NoError(t, err)
	sealed, err := dev.Keyring.Seal([]byte("x"), "id", 1)
	require.NoError(t, err)
	_, err = again.Keyring.Open(sealed, "id", 1)
	require.NoError(t, err, "the dev stack keeps its key across restarts")
}

func TestTheDevStacksKeyOnlyAgainstTheDevStack(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)
	b.writeDevJSON(t, b.dev)
	devCfg, err := b.load(t, nil)
	require.NoError(t, err)
	require.True(t, devCfg.OnDevStack())
	// Against the dev stack, but before dev made its key: refused, never
	// created.
	_, err = service(t, devCfg, app.WithKeyring())
	require.ErrorIs(t, err, app.ErrNoKey)
	require.ErrorContains(t, err, "restart `integrations dev`")
	requireNoKeyFile(t, devCfg)

	dev, err := service(t, devCfg, app.WithDevKeyring())
	require.NoError(t, err)
	cli, err := service(t, devCfg, app.WithKeyring())
	require.NoError(t, err)
	require.Equal(t, "dev stack", devCfg.KeySource())
	sealed, err := cli.Keyring.Seal([]byte("x"), "id", 1)
	require.NoError(t, err)
	_, err = dev.Keyring.Open(sealed, "id", 1)
	require.NoError(t, err, "a CLI on the dev stack seals with the dev stack's key")

	// Another Temporal or another database than the dev stack's: the dev
	// key is not this stack's key.
	for name, env := range map[string]map[string]string{
		"temporal": {"TEMPORAL_ADDRESS": "127.0.0.1:7111"},
		"database": {"DATABASE_URL": "sqlite://" + t.TempDir() + "/other.db"},
	} {
		for k, v := range env {
			b.env[k] = v
		}
		cfg, err := b.load(t, nil)
		require.NoError(t, err)
		require.False(t, cfg.OnDevStack(), name)
		_, err = service(t, cfg, app.WithKeyring())
		require.ErrorIs(t, err, app.ErrNoKey, name)
		require.ErrorContains(t, err, credential.KeyEnv, name)
		require.ErrorContains(t, err, "the dev stack's key", name)
		for k := range env {
			delete(b.env, k)
		}
	}

	// The environment's key wins everywhere.
	b.env[credential.KeyEnv] = base64.StdEncoding.EncodeToString(make([]byte, credential.KeySize))
	b.env["TEMPORAL_ADDRESS"] = "127.0.0.1:7111"
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	svc, err := service(t, cfg, app.WithKeyring())
	require.NoError(t, err)
	require.NotNil(t, svc.Keyring)
	require.Equal(t, "env", cfg.KeySource())
}

// TestOldKeysOpenOnly: INTEGRATIONS_ENCRYPTION_OLD_KEYS join the keyring
// for opening; the active key alone seals.
func TestOldKeysOpenOnly(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)
	oldKey, newKey := bytes.Repeat([]byte{1}, credential.KeySize), bytes.Repeat([]byte{2}, credential.KeySize)
	oldRing, err := credential.NewKeyring(oldKey)
	require.NoError(t, err)
	sealed, err := oldRing.Seal([]byte("x"), "id", 1)
	require.NoError(t, err)

	b.env[credential.KeyEnv] = base64.StdEncoding.EncodeToString(newKey)
	b.env[credential.OldKeysEnv] = " " + base64.StdEncoding.EncodeToString(oldKey) + " "
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	svc, err := service(t, cfg, app.WithKeyring())
	require.NoError(t, err)
	require.Equal(t, credential.KeyIDOf(newKey), svc.Keyring.ActiveKeyID())
	require.Equal(t, []credential.KeyID{credential.KeyIDOf(newKey), credential.KeyIDOf(oldKey)}, svc.Keyring.KeyIDs())
	_, err = svc.Keyring.Open(sealed, "id", 1)
	require.NoError(t, err, "an old key opens")
	again, err := svc.Keyring.Seal([]byte("x"), "id", 1)
	require.NoError(t, err)
	named, _ := credential.SealedWith(again)
	require.Equal(t, credential.KeyIDOf(newKey), named, "the active key seals")

	// A bad old key stops the process, saying which, never what it is.
	b.env[credential.OldKeysEnv] = base64.StdEncoding.EncodeToString(oldKey) + ",c2hvcnQ="
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.ErrorContains(t, err, credential.OldKeysEnv)
	require.ErrorContains(t, err, "key 2 of the list")
	require.NotContains(t, err.Error(), "c2hvcnQ=")
	require.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString(oldKey))
}

// TestTheDevStacksKeyID: dev.json names the key the dev stack runs with;
// a process on that stack whose active key is another refuses to start,
// saying what to unset or set, whether the other key comes from the
// environment or from a key file that is not the one dev started with.
func TestTheDevStacksKeyID(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)
	b.writeDevJSON(t, b.dev)
	devCfg, err := b.load(t, nil)
	require.NoError(t, err)
	dev, err := service(t, devCfg, app.WithDevKeyring())
	require.NoError(t, err)
	info := dev.DevInfo("")
	require.Equal(t, dev.Keyring.ActiveKeyID().String(), info.KeyID, "dev.json names the dev stack's key")
	b.writeDevJSON(t, info)
	raw, err := os.ReadFile(app.DevInfoPath(b.dataDir))
	require.NoError(t, err)
	fileKey, err := os.ReadFile(devCfg.KeyFile())
	require.NoError(t, err)
	require.NotContains(t, string(raw), strings.TrimSpace(string(fileKey)), "an ID, never the key")

	// The dev stack's key, from its file or the environment: accepted.
	cfg, err := b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.NoError(t, err)
	b.env[credential.KeyEnv] = strings.TrimSpace(string(fileKey))
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.NoError(t, err)

	// Another key in the environment of a second terminal: refused.
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, credential.KeySize))
	b.env[credential.KeyEnv] = other
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	svc, err := service(t, cfg, app.WithKeyring())
	require.ErrorIs(t, err, app.ErrNoKey)
	require.Nil(t, svc)
	require.ErrorContains(t, err, "unset "+credential.KeyEnv)
	require.ErrorContains(t, err, info.KeyID)
	require.NotContains(t, err.Error(), other)
	// Off the dev stack (another Temporal), the environment's key is the
	// process's own business.
	b.env["TEMPORAL_ADDRESS"] = "127.0.0.1:7111"
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.NoError(t, err)
	delete(b.env, "TEMPORAL_ADDRESS")
	delete(b.env, credential.KeyEnv)

	// dev started with a key from the environment: the key file is not
	// what it runs with.
	info.KeyID = credential.KeyIDOf(bytes.Repeat([]byte{7}, credential.KeySize)).String()
	b.writeDevJSON(t, info)
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.ErrorIs(t, err, app.ErrNoKey)
	require.ErrorContains(t, err, "set "+credential.KeyEnv+" to the key dev runs with")
	b.env[credential.KeyEnv] = other
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.NoError(t, err, "with that key set, accepted")
	delete(b.env, credential.KeyEnv)

	// dev.json of an older dev names no key: nothing to compare.
	info.KeyID = ""
	b.writeDevJSON(t, info)
	cfg, err = b.load(t, nil)
	require.NoError(t, err)
	_, err = service(t, cfg, app.WithKeyring())
	require.NoError(t, err)
}
