package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/store"
)

// TestReauthorizeRefusedIs409WithTheChecks: new credentials that fail
// validation on an active CRM integration are answered 409 naming the
// failed check, and the integration, its events and the credentials in use
// stay as they were; the refused key is not kept.
func TestReauthorizeRefusedIs409WithTheChecks(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		ctx := context.Background()
		id := testenv.ID("crm")
		b.createCRM(t, id, "acme")
		key := b.sandboxKey(t, nil)
		b.command(t, id, "authorize", authorizeBody(t, "ops", key))
		requireStatus(t, b.command(t, id, "complete-setup", `{"by": "manager"}`), integration.StatusActive, integration.ReasonNone)
		before, err := b.stack.Store.Get(ctx, id)
		require.NoError(t, err)
		events := len(b.events(t, id))
		current, err := b.stack.Store.CurrentCredential(ctx, id)
		require.NoError(t, err)

		weak := b.sandboxKey(t, []string{"contacts.read"})
		msg := b.fail(t, http.StatusConflict, http.MethodPost, integrationPath(id, "authorize"), authorizeBody(t, "ops", weak))
		require.Contains(t, msg, "failed validation")
		require.Contains(t, msg, "scopes")
		require.Contains(t, msg, "contacts.write")
		require.Contains(t, msg, "keeps its current credentials and status active")

		after, err := b.stack.Store.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, before, after)
		require.Len(t, b.events(t, id), events)
		still, err := b.stack.Store.CurrentCredential(ctx, id)
		require.NoError(t, err)
		require.Equal(t, current, still, "the credentials in use are unchanged")
		plain, err := b.stack.Keyring.Open(still.Ciphertext, id, still.Version)
		require.NoError(t, err)
		require.JSONEq(t, string(teststack.Credentials(key)), string(plain))
		_, err = b.stack.Store.CredentialVersion(ctx, id, current.Version+1)
		require.ErrorIs(t, err, store.ErrNotFound, "the refused key is not kept")
		b.requireNoSecret(t, weak)
	})
}
