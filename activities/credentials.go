package activities

import (
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
	if fresh, ok := a.refresh(ctx, id, connector, creds); ok {
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
// meanwhile (re-authorized), those are what it retries with.
func (a *Activities) refresh(ctx context.Context, id string, connector crm.Connector, creds openCredentials) (openCredentials, bool) {
	refresher, ok := connector.(crm.Refresher)
	if !ok {
		return openCredentials{}, false
	}
	fresh, err := refresher.Refresh(ctx, creds.raw)
	if err != nil {
		a.logger().Warn("credential refresh failed", "integration", id, "class", crm.ClassOf(err), "error", err.Error())
		return openCredentials{}, false
	}
	stored, err := a.Store.AddCurrentCredential(ctx, id, creds.version, a.Keyring.Sealer(fresh, id), time.Now().UTC())
	if errors.Is(err, store.ErrSuperseded) {
		// Another grant became current while this one was refreshed:
		// use that one, and let this refresh go.
		current, failure, err := a.credentials(ctx, id)
		if err != nil || failure != nil {
			return openCredentials{}, false
		}
		return *current, true
	}
	if err != nil {
		a.logger().Error("refreshed credentials not stored", "integration", id, "error", err.Error())
		return openCredentials{}, false
	}
	return openCredentials{raw: fresh, version: stored.Version}, true
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
