package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
	"go.temporal.io/sdk/temporal"
)

// freshen refreshes creds ahead of their expiry (crm.RefreshAhead) for a
// connector whose credentials say when they expire (HubSpot's OAuth
// tokens), so a call never goes out with a token about to lapse. A refresh
// that fails leaves creds as they are: the call then meets the CRM's auth
// error, which refreshes (or validates) as before.
func (a *Activities) freshen(ctx context.Context, id string, connector crm.Connector, creds openCredentials) openCredentials {
	if !crm.ExpiresSoon(connector, creds.raw, time.Now()) {
		return creds
	}
	if fresh, ok, _ := a.refresh(ctx, id, connector, creds); ok {
		return fresh
	}
	return creds
}

// credentialsRejected reports whether checks fail the credentials check
// with expired credentials: for a refreshable grant, the sign to refresh
// and look again (Salesforce's tokens carry no expiry and simply stop
// working) before telling the rules the credentials expired.
func credentialsRejected(checks []integration.Check) bool {
	for _, c := range checks {
		if c.Name == crm.CheckCredentials && !c.OK && c.Code == integration.ReasonExpiredCredentials {
			return true
		}
	}
	return false
}

// openCredentials are credentials as a connector takes them, and the
// version they are stored as.
type openCredentials struct {
	raw     []byte
	version int
}

// refresh renews credentials through a Refresher connector, stores the
// result as the new current version (the same grant, renewed), and reports
// whether there is one to retry with. If the credentials were replaced
// meanwhile (re-authorized), those are what it retries with. Credentials
// the store keeps refusing are still what this call goes on with: the CRM
// issued them, and one that rotates refresh tokens revoked the old ones
// with it.
//
// A refresh that failed for a reason other than the grant (the CRM's token
// endpoint down or rate limited, our client misconfigured: any class but
// crm.ClassAuth) is returned as unavailable: it says nothing about the
// customer's grant, so the caller must not report expired credentials.
func (a *Activities) refresh(ctx context.Context, id string, connector crm.Connector, creds openCredentials) (_ openCredentials, ok bool, unavailable error) {
	refresher, ok := connector.(crm.Refresher)
	if !ok {
		return openCredentials{}, false, nil
	}
	fresh, err := refresher.Refresh(ctx, creds.raw)
	if err != nil {
		a.logger().Warn("credential refresh failed", "integration", id, "class", crm.ClassOf(err), "error", err.Error())
		if crm.ClassOf(err) != crm.ClassAuth {
			return openCredentials{}, false, err
		}
		return openCredentials{}, false, nil
	}
	stored, attempts, err := a.storeRefreshed(ctx, id, creds.version, fresh)
	if errors.Is(err, store.ErrSuperseded) {
		// Another grant became current while this one was refreshed:
		// use that one, and let this refresh go.
		current, failure, err := a.credentials(ctx, id)
		if err != nil || failure != nil {
			return openCredentials{}, false, nil
		}
		return *current, true, nil
	}
	if err != nil {
		// Dropping them would lose the grant of a CRM that rotates
		// refresh tokens; kept as the renewal of creds.version, a later
		// refresh in this call may still store its own.
		a.logger().Error("refreshed credentials not stored; this call uses them, later ones refresh again from the stored version",
			"integration", id, "renews", creds.version, "attempts", attempts, "error", err.Error())
		return openCredentials{raw: fresh, version: creds.version}, true, nil
	}
	return openCredentials{raw: fresh, version: stored.Version}, true, nil
}

// Storing refreshed credentials is tried refreshStoreAttempts times, the
// waits between attempts starting at refreshStoreDelay and doubling: a
// database that blips for a moment does not cost a grant, one that is
// down does not hold the activity for long.
const (
	refreshStoreAttempts = 3
	refreshStoreDelay    = 200 * time.Millisecond
)

// storeRefreshed stores refreshed credentials as the renewal of version
// renews, trying again while the store fails for a reason that may pass
// and ctx allows; it returns the stored version, how many attempts it
// made and the last error. A superseded version, or an integration gone
// (not found, deleted), is not tried again: no attempt would change it.
func (a *Activities) storeRefreshed(ctx context.Context, id string, renews int, fresh []byte) (store.Credential, int, error) {
	add := a.Store.AddCurrentCredential
	if a.refreshStore.add != nil {
		add = a.refreshStore.add
	}
	delay := cmp.Or(a.refreshStore.delay, refreshStoreDelay)
	seal := a.Keyring.Sealer(fresh, id)
	for attempt := 1; ; attempt++ {
		cred, err := add(ctx, id, renews, seal, time.Now().UTC())
		if err == nil || attempt == refreshStoreAttempts ||
			errors.Is(err, store.ErrSuperseded) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			return cred, attempt, err
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return store.Credential{}, attempt, err
		case <-timer.C:
		}
		delay *= 2
	}
}

// credentials opens the integration's current credentials; missing ones
// are an auth failure for the workflow to validate, and ones that do not
// decrypt an error that says what to fix.
func (a *Activities) credentials(ctx context.Context, id string) (*openCredentials, *DeliverFailure, error) {
	cred, err := a.Store.CurrentCredential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &DeliverFailure{Class: FailureAuth, Message: "no credentials are stored"}, nil
	}
	if err != nil {
		return nil, nil, &storeError{stage: "load credentials", err: err}
	}
	raw, err := a.Keyring.OpenStored(cred.Ciphertext, cred.KeyID, id, cred.Version)
	if err != nil {
		return nil, nil, decryptError("deliver", cred, err)
	}
	return &openCredentials{raw: raw, version: cred.Version}, nil, nil
}

// decryptError says why stored credentials do not open and what to fix,
// without the details of the keyring (they are in the worker's own
// configuration). It does not heal by retrying, so it is not retryable.
func decryptError(op string, cred store.Credential, err error) error {
	msg := fmt.Sprintf("%s %s: credentials version %d do not decrypt with the configured keys; check %s, or re-authorize the integration",
		op, cred.IntegrationID, cred.Version, credential.KeyEnv)
	if id, ok := credential.SealedWith(cred.Ciphertext); ok && errors.Is(err, credential.ErrUnknownKey) {
		msg = fmt.Sprintf("%s %s: credentials version %d are sealed with encryption key %s, which this worker lacks; add that key to %s",
			op, cred.IntegrationID, cred.Version, id, credential.OldKeysEnv)
	}
	return temporal.NewNonRetryableApplicationError(msg, "CredentialDecrypt", nil)
}
