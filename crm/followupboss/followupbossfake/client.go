package followupbossfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// defaultTimeout bounds every request when the caller passes no
// *http.Client of its own.
const defaultTimeout = 10 * time.Second

// maxControlResponseBytes bounds a control API response.
const maxControlResponseBytes = 64 << 20

// APIError is an error response from the control API. Message is the
// fake's explanation, which never contains an API key.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("fake Follow Up Boss answered HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("fake Follow Up Boss answered HTTP %d: %s", e.StatusCode, e.Message)
}

// Client calls the fake's control API, for tests, the dev stack and the
// CLI. Its errors never contain an API key, though keys are in its paths.
type Client struct {
	baseURL    string
	httpClient *http.Client
}

// NewClient returns a control API client for the fake at baseURL. A nil
// httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), httpClient: httpClient}
}

// CreateAccount creates an active account with a fresh API key.
func (c *Client) CreateAccount(ctx context.Context) (Account, error) {
	var a Account
	if err := c.do(ctx, http.MethodPost, "/control/accounts", nil, &a, "an account"); err != nil {
		return Account{}, fmt.Errorf("create fake Follow Up Boss account: %w", err)
	}
	return a, nil
}

// RegisterSystem registers a system: calls with its X-System-Key get a
// registered system's limits.
func (c *Client) RegisterSystem(ctx context.Context, system, key string) error {
	var out map[string]string
	if err := c.do(ctx, http.MethodPost, "/control/systems", System{System: system, Key: key}, &out, "a system"); err != nil {
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
	if strings.TrimSpace(key) == "" {
		return Account{}, fmt.Errorf("%s: %w", op, errEmptyKey)
	}
	var a Account
	if err := c.do(ctx, method, prefix+url.PathEscape(key)+suffix, nil, &a, "an account"); err != nil {
		return Account{}, fmt.Errorf("%s: %w", op, err)
	}
	return a, nil
}

// keyDo calls /control/keys/{key}+suffix and decodes the answer into out.
func (c *Client) keyDo(ctx context.Context, op, method, key, suffix string, body, out any, what string) error {
	if strings.TrimSpace(key) == "" {
		return fmt.Errorf("%s: %w", op, errEmptyKey)
	}
	if err := c.do(ctx, method, "/control/keys/"+url.PathEscape(key)+suffix, body, out, what); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// do sends one control request and decodes its answer into out; what names
// the expected answer in errors.
func (c *Client) do(ctx context.Context, method, path string, body, out any, what string) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reader)
	if err != nil {
		// The URL holds the key; say only what is wrong with the base URL.
		return fmt.Errorf("invalid fake Follow Up Boss URL %q: use e.g. http://127.0.0.1:8091", c.baseURL)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach fake Follow Up Boss at %s: %w", c.baseURL, withoutURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxControlResponseBytes))
	if err != nil {
		return fmt.Errorf("read fake Follow Up Boss response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var body controlError
		if err := json.Unmarshal(data, &body); err != nil || body.Error == "" {
			// Not the control API's shape: unknown text that might reflect the request.
			return &APIError{StatusCode: resp.StatusCode, Message: http.StatusText(resp.StatusCode) + " (not a control API error: is the URL the fake Follow Up Boss?)"}
		}
		return &APIError{StatusCode: resp.StatusCode, Code: body.Code, Message: body.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("fake Follow Up Boss response is not %s (HTTP %d): is %s the fake Follow Up Boss?", what, resp.StatusCode, c.baseURL)
	}
	return nil
}

// withoutURL strips the request URL (which may hold an API key) from a
// transport error, keeping the cause.
func withoutURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
