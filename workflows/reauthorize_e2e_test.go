package workflows_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/store"
)

// requireCurrentKey checks which version of the CRM integration's
// credentials is in use and which sandbox key it holds.
func (b *flowBundle) requireCurrentKey(t *testing.T, id string, version int, key string) {
	t.Helper()
	cred, err := b.stack.Store.CurrentCredential(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, version, cred.Version, "the credentials in use")
	raw, err := b.stack.Keyring.Open(cred.Ciphertext, id, cred.Version)
	require.NoError(t, err)
	require.JSONEq(t, string(teststack.Credentials(key)), string(raw))
}

// records is how many records the sandbox account of key holds.
func (b *flowBundle) records(t *testing.T, key string) int {
	t.Helper()
	stats, err := b.stack.Sandbox.Records(b.ctx, key)
	require.NoError(t, err)
	return stats.Records
}

// TestReauthorizeKeepsTheWorkingKey is issue 9's "a mistyped key replaces
// a working one", on the whole stack: a key that fails validation, and one
// whose validation cannot reach the CRM, leave an active integration
// active on its old key, and the leads keep reaching the old account; a
// good key then becomes current, and later leads reach its account.
func TestReauthorizeKeepsTheWorkingKey(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupFlow(t, db)
		crmID, oldKey := b.crm(t)
		b.activeLead(t)
		b.requireCurrentKey(t, crmID, 1, oldKey)
		before := b.state(t, crmID)
		require.Equal(t, integration.StatusActive, before.Status)

		// A sandbox key lacking a scope: refused with the failed check,
		// nothing changes, and the refused key is destroyed.
		weak, err := b.stack.Sandbox.CreateAccount(b.ctx, []string{sandboxfake.ScopeContactsRead})
		require.NoError(t, err)
		_, err = b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(weak.APIKey), "alice")
		require.True(t, integration.IsRejection(err), "%v", err)
		require.ErrorContains(t, err, "scopes")
		require.ErrorContains(t, err, sandboxfake.ScopeContactsWrite)
		require.ErrorContains(t, err, "keeps its current credentials")
		require.NotContains(t, err.Error(), weak.APIKey)
		after := b.describe(t, integration.KindCRM, crmID).State
		require.Equal(t, integration.StatusActive, after.Status)
		require.Equal(t, before.Version, after.Version, "no transition")
		b.requireCurrentKey(t, crmID, 1, oldKey)
		_, err = b.stack.Store.CredentialVersion(b.ctx, crmID, 2)
		require.ErrorIs(t, err, store.ErrNotFound, "the refused key is not kept")

		// Leads sent now reach the old account, and only it.
		b.sendLeads(t, 3, "Z")
		b.waitDelivered(t, crmID, 3)
		require.Equal(t, 3, b.records(t, oldKey))
		require.Zero(t, b.records(t, weak.APIKey))

		// A good key whose validation cannot reach the CRM: the command
		// fails, saying to try again; nothing changes.
		unreachable, err := b.stack.Sandbox.CreateAccount(b.ctx, nil)
		require.NoError(t, err)
		_, err = b.stack.Sandbox.SetFaults(b.ctx, unreachable.APIKey, sandboxfake.Faults{FailNext: 1000, FailStatus: 503, FailMe: true})
		require.NoError(t, err)
		_, err = b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(unreachable.APIKey), "alice")
		require.Error(t, err)
		require.False(t, integration.IsRejection(err), "not the integration's refusal: %v", err)
		require.ErrorContains(t, err, "could not be reached")
		require.Equal(t, integration.StatusActive, b.describe(t, integration.KindCRM, crmID).State.Status)
		require.Equal(t, before.Version, b.state(t, crmID).Version)
		b.requireCurrentKey(t, crmID, 1, oldKey)
		_, err = b.stack.Store.CredentialVersion(b.ctx, crmID, 3)
		require.ErrorIs(t, err, store.ErrNotFound, "the unvalidated candidate is withdrawn")

		// A good key: current, and the next leads reach its account.
		good, err := b.stack.Sandbox.CreateAccount(b.ctx, nil)
		require.NoError(t, err)
		st, err := b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(good.APIKey), "alice")
		require.NoError(t, err)
		require.Equal(t, integration.StatusActive, st.Status)
		b.requireCurrentKey(t, crmID, 4, good.APIKey)
		b.sendLeads(t, 2, "Z")
		b.waitDelivered(t, crmID, 5)
		require.Equal(t, 2, b.records(t, good.APIKey))
		require.Equal(t, 3, b.records(t, oldKey), "the old account got nothing more")

		// Only version numbers went through the workflow, never a key.
		history := testenv.HistoryText(t, b.stack.Temporal, integration.WorkflowID(integration.KindCRM, crmID))
		require.Contains(t, history, "credential_version")
		for _, key := range []string{oldKey, weak.APIKey, unreachable.APIKey, good.APIKey} {
			require.NotContains(t, history, key)
			require.NotContains(t, b.stack.Logs.String(), key)
		}
	})
}

// TestDeleteLeavesNoSecrets: deleting integrations leaves no row of theirs
// in crm_credentials or intake_tokens (read from the tables), and a later
// authorize stores nothing.
func TestDeleteLeavesNoSecrets(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupFlow(t, db)
		crmID, key := b.crm(t)
		other, _ := b.crm(t)
		b.activeLead(t)
		// A refused key too, whose version number stays reserved.
		weak, err := b.stack.Sandbox.CreateAccount(b.ctx, []string{sandboxfake.ScopeContactsRead})
		require.NoError(t, err)
		_, err = b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(weak.APIKey), "alice")
		require.True(t, integration.IsRejection(err), "%v", err)
		require.Equal(t, []int{1, 2}, b.stack.StoredVersions(t, crmID))
		require.Equal(t, 1, b.stack.IntakeTokenRows(t, b.lead))

		for _, id := range []string{crmID, b.lead} {
			st, err := b.stack.Starter.Command(b.ctx, id, integration.EventDelete, "alice", "")
			require.NoError(t, err)
			require.Equal(t, integration.StatusDeleted, st.Status)
		}
		require.Empty(t, b.stack.StoredVersions(t, crmID), "no credentials row is left")
		require.Zero(t, b.stack.IntakeTokenRows(t, b.lead), "no intake token row is left")
		require.Equal(t, []int{1}, b.stack.StoredVersions(t, other), "other integrations keep theirs")

		_, err = b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(key), "alice")
		require.True(t, integration.IsRejection(err), "%v", err)
		require.ErrorContains(t, err, "deleted")
		require.Empty(t, b.stack.StoredVersions(t, crmID), "a refused authorize stores nothing")
		var rejection *integration.Rejection
		require.True(t, errors.As(err, &rejection))
	})
}
