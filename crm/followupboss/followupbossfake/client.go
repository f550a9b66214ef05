package followupbossfake

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/integrations/crm/crmfake"
)

// APIError is an error answer of the fake's control API. Message is the
// fake's explanation, which never contains an API key.
type APIError = crmfake.APIError

// Client calls the fake's control API, for tests, the dev stack and the
// CLI. Its errors never contain an API key, though keys are in its paths.
type Client struct {
	control *crmfake.Client
}

// NewClient returns a control API client for the fake at baseURL (e.g.
// http://127.0.0.1:8093). A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	return &Client{control: crmfake.NewClient(fake, baseURL, httpClient)}
}

// CreateAccount creates an active account with a fresh API key.
func (c *Client) CreateAccount(ctx context.Context) (Account, error) {
	var a Account
	if err := c.control.Do(ctx, http.MethodPost, "/control/accounts", nil, &a, "an account"); err != nil {
		return Account{}, fmt.Errorf("create fake Follow Up Boss account: %w", err)
	}
	return a, nil
}

// RegisterSystem registers a system: calls with its X-System-Key get a
// registered system's limits.
func (c *Client) RegisterSystem(ctx context.Context, system, key string) error {
	var out map[string]string
	if err := c.control.Do(ctx, http.MethodPost, "/control/systems", System{System: system, Key: key}, &out, "a system"); err != nil {
		return fmt.Errorf("register system with the fake Follow Up Boss: %w", err)
	}
	return nil
}

// Account returns the account with API key key.
func (c *Client) Account(ctx context.Context, key string) (Account, error) {
	return c.account(ctx, "look up fake Follow Up Boss account", http.MethodGet, "/control/accounts/", key, "")
}

// Revoke makes key stop authenticating (401).
func (c *Client) Revoke(ctx context.Context, key string) (Account, error) {
	return c.account(ctx, "revoke fake Follow Up Boss API key", http.MethodPost, "/control/keys/", key, "/revoke")
}

// Restore makes a revoked key authenticate again.
func (c *Client) Restore(ctx context.Context, key string) (Account, error) {
	return c.account(ctx, "restore fake Follow Up Boss API key", http.MethodPost, "/control/keys/", key, "/restore")
}

// Expire puts key's account in the grace period of an expired
// subscription: POST /v1/events still works, every other call is 403.
func (c *Client) Expire(ctx context.Context, key string) (Account, error) {
	return c.account(ctx, "expire fake Follow Up Boss account", http.MethodPost, "/control/keys/", key, "/expire")
}

// Lock ends key's account's grace period: every call is 403.
func (c *Client) Lock(ctx context.Context, key string) (Account, error) {
	return c.account(ctx, "lock fake Follow Up Boss account", http.MethodPost, "/control/keys/", key, "/lock")
}

// Reactivate makes key's account active again.
func (c *Client) Reactivate(ctx context.Context, key string) (Account, error) {
	return c.account(ctx, "reactivate fake Follow Up Boss account", http.MethodPost, "/control/keys/", key, "/reactivate")
}

// Faults returns the faults set on key's account.
func (c *Client) Faults(ctx context.Context, key string) (Faults, error) {
	var f Faults
	err := c.keyDo(ctx, "read fake Follow Up Boss faults", http.MethodGet, key, "/faults", nil, &f, "faults")
	return f, err
}

// UpdateFaults applies u to key's faults (nil fields keep their value) and
// returns the result. Invalid values change nothing.
func (c *Client) UpdateFaults(ctx context.Context, key string, u FaultsUpdate) (Faults, error) {
	var f Faults
	err := c.keyDo(ctx, "set fake Follow Up Boss faults", http.MethodPost, key, "/faults", u, &f, "faults")
	return f, err
}

// ClearFaults removes every fault from key's account.
func (c *Client) ClearFaults(ctx context.Context, key string) error {
	return c.keyDo(ctx, "clear fake Follow Up Boss faults", http.MethodDelete, key, "/faults", nil, &Faults{}, "faults")
}

// SetLimits makes every rate-limit context of key's account allow
// l.Limit calls per l.WindowSeconds.
func (c *Client) SetLimits(ctx context.Context, key string, l Limits) error {
	return c.keyDo(ctx, "set fake Follow Up Boss limits", http.MethodPost, key, "/limits", l, &Limits{}, "limits")
}

// ClearLimits gives key's account Follow Up Boss's default limits again.
func (c *Client) ClearLimits(ctx context.Context, key string) error {
	return c.keyDo(ctx, "clear fake Follow Up Boss limits", http.MethodDelete, key, "/limits", nil, &Limits{}, "limits")
}

// Records reports the people and events key's account holds.
func (c *Client) Records(ctx context.Context, key string) (RecordStats, error) {
	var st RecordStats
	err := c.keyDo(ctx, "read fake Follow Up Boss records", http.MethodGet, key, "/records", nil, &st, "record counts")
	return st, err
}

// Events returns every event key's account received and kept, oldest first.
func (c *Client) Events(ctx context.Context, key string) ([]Event, error) {
	var events []Event
	err := c.keyDo(ctx, "read fake Follow Up Boss events", http.MethodGet, key, "/events", nil, &events, "an event list")
	return events, err
}

// Calls returns the last 1000 API calls made with key, oldest first.
func (c *Client) Calls(ctx context.Context, key string) ([]Call, error) {
	var calls []Call
	err := c.keyDo(ctx, "read fake Follow Up Boss calls", http.MethodGet, key, "/calls", nil, &calls, "a call log")
	return calls, err
}

var errEmptyKey = errors.New("API key is empty: pass the api_key of an account made with POST /control/accounts")

// account calls prefix+key+suffix and decodes the account it answers with;
// op describes the operation in errors.
func (c *Client) account(ctx context.Context, op, method, prefix, key, suffix string) (Account, error) {
	var a Account
	if err := c.control.DoOn(ctx, op, method, prefix, key, suffix, errEmptyKey, nil, &a, "an account"); err != nil {
		return Account{}, err
	}
	return a, nil
}

// keyDo calls /control/keys/{key}+suffix and decodes the answer into out.
func (c *Client) keyDo(ctx context.Context, op, method, key, suffix string, body, out any, what string) error {
	return c.control.DoOn(ctx, op, method, "/control/keys/", key, suffix, errEmptyKey, body, out, what)
}
