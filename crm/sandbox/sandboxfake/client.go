package sandboxfake

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/integrations/crm/crmfake"
)

// APIError is an error answer of the sandbox's control API. Message is
// the sandbox's explanation, which never contains an API key.
type APIError = crmfake.APIError

// Client calls the sandbox's control API, for tests and the
// `integrations sandbox` commands. Errors never contain an API key,
// even though the control API carries keys in its paths.
type Client struct {
	control *crmfake.Client
}

// NewClient returns a control API client for the sandbox at baseURL (e.g.
// http://127.0.0.1:8090). A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	return &Client{control: crmfake.NewClient(fake, baseURL, httpClient)}
}

// CreateAccount creates an account. Nil scopes means DefaultScopes; an
// empty, non-nil slice creates an account with no scopes.
func (c *Client) CreateAccount(ctx context.Context, scopes []string) (Account, error) {
	var body any
	if scopes != nil {
		body = createAccountRequest{Scopes: scopes}
	}
	a, err := c.call(ctx, http.MethodPost, "/control/accounts", body)
	if err != nil {
		return Account{}, fmt.Errorf("create sandbox account: %w", err)
	}
	return a, nil
}

// Account returns the account with API key key.
func (c *Client) Account(ctx context.Context, key string) (Account, error) {
	return c.keyCall(ctx, "look up sandbox account", http.MethodGet, "/control/accounts/", key, "", nil)
}

// Revoke makes key stop authenticating.
func (c *Client) Revoke(ctx context.Context, key string) (Account, error) {
	return c.keyCall(ctx, "revoke sandbox API key", http.MethodPost, "/control/keys/", key, "/revoke", nil)
}

// Restore makes a revoked key authenticate again.
func (c *Client) Restore(ctx context.Context, key string) (Account, error) {
	return c.keyCall(ctx, "restore sandbox API key", http.MethodPost, "/control/keys/", key, "/restore", nil)
}

// DropScope removes scope from key's account; it fails if the account does
// not have it.
func (c *Client) DropScope(ctx context.Context, key, scope string) (Account, error) {
	if scope == "" {
		return Account{}, errors.New("drop sandbox scope: scope is empty: name one, e.g. contacts.write")
	}
	return c.keyCall(ctx, "drop sandbox scope", http.MethodPost, "/control/keys/", key, "/drop-scope", scopeRequest{Scope: scope})
}

// AddScope grants scope to key's account (no-op if it has it).
func (c *Client) AddScope(ctx context.Context, key, scope string) (Account, error) {
	if scope == "" {
		return Account{}, errors.New("add sandbox scope: scope is empty: name one, e.g. contacts.write")
	}
	return c.keyCall(ctx, "add sandbox scope", http.MethodPost, "/control/keys/", key, "/add-scope", scopeRequest{Scope: scope})
}

// DisableAPI turns API access off for key's account.
func (c *Client) DisableAPI(ctx context.Context, key string) (Account, error) {
	return c.keyCall(ctx, "disable sandbox API access", http.MethodPost, "/control/keys/", key, "/disable-api", nil)
}

// EnableAPI turns API access on for key's account.
func (c *Client) EnableAPI(ctx context.Context, key string) (Account, error) {
	return c.keyCall(ctx, "enable sandbox API access", http.MethodPost, "/control/keys/", key, "/enable-api", nil)
}

// Faults returns the faults set on key's account.
func (c *Client) Faults(ctx context.Context, key string) (Faults, error) {
	var f Faults
	err := c.keyDo(ctx, "read sandbox faults", http.MethodGet, key, "/faults", nil, &f, "faults")
	return f, err
}

// SetFaults merges the non-zero fields of f into key's faults and returns
// the result. A zero field leaves the current value alone; to set a value
// back to zero use UpdateFaults, or ClearFaults to remove every fault.
func (c *Client) SetFaults(ctx context.Context, key string, f Faults) (Faults, error) {
	var u FaultsUpdate
	setInt := func(v int) *int {
		if v == 0 {
			return nil
		}
		return &v
	}
	setString := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	u.FailNext, u.FailStatus, u.LatencyMS = setInt(f.FailNext), setInt(f.FailStatus), setInt(f.LatencyMS)
	u.RateLimitNext, u.RetryAfterSeconds = setInt(f.RateLimitNext), setInt(f.RetryAfterSeconds)
	u.RejectField, u.RejectContains = setString(f.RejectField), setString(f.RejectContains)
	u.RefuseField, u.RefuseContains, u.RefuseStatus = setString(f.RefuseField), setString(f.RefuseContains), setInt(f.RefuseStatus)
	if f.FailMe {
		u.FailMe = &f.FailMe
	}
	return c.UpdateFaults(ctx, key, u)
}

// UpdateFaults applies u to key's faults (nil fields keep their value) and
// returns the result. Invalid values change nothing.
func (c *Client) UpdateFaults(ctx context.Context, key string, u FaultsUpdate) (Faults, error) {
	var f Faults
	err := c.keyDo(ctx, "set sandbox faults", http.MethodPost, key, "/faults", u, &f, "faults")
	return f, err
}

// ClearFaults removes every fault from key's account.
func (c *Client) ClearFaults(ctx context.Context, key string) error {
	return c.keyDo(ctx, "clear sandbox faults", http.MethodDelete, key, "/faults", nil, &Faults{}, "faults")
}

// Records reports the contacts key's account holds and how often each was
// upserted.
func (c *Client) Records(ctx context.Context, key string) (RecordStats, error) {
	var st RecordStats
	err := c.keyDo(ctx, "read sandbox records", http.MethodGet, key, "/records", nil, &st, "record counts")
	return st, err
}

// Calls returns the last 1000 contacts calls made with key, oldest first.
func (c *Client) Calls(ctx context.Context, key string) ([]Call, error) {
	var calls []Call
	err := c.keyDo(ctx, "read sandbox calls", http.MethodGet, key, "/calls", nil, &calls, "a call log")
	return calls, err
}

// keyCall calls prefix+key+suffix and decodes the account it answers with;
// op describes the operation in errors.
func (c *Client) keyCall(ctx context.Context, op, method, prefix, key, suffix string, body any) (Account, error) {
	var a Account
	if err := c.control.DoOn(ctx, op, method, prefix, key, suffix, errEmptyKey, body, &a, "an account"); err != nil {
		return Account{}, err
	}
	return a, nil
}

// keyDo calls /control/keys/{key}+suffix and decodes the answer into out,
// which what names in errors.
func (c *Client) keyDo(ctx context.Context, op, method, key, suffix string, body, out any, what string) error {
	return c.control.DoOn(ctx, op, method, "/control/keys/", key, suffix, errEmptyKey, body, out, what)
}

var errEmptyKey = errors.New("API key is empty: pass the api_key printed by `integrations sandbox account create`")

// call sends one control request and decodes the account it answers with.
func (c *Client) call(ctx context.Context, method, path string, body any) (Account, error) {
	var a Account
	err := c.control.Do(ctx, method, path, body, &a, "an account")
	return a, err
}
