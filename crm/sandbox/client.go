package sandbox

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

// maxResponseBytes bounds how much of a response is read.
const maxResponseBytes = 1 << 20

// APIError is an error response from the sandbox. Message is the sandbox's
// explanation, which never contains an API key.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("sandbox CRM answered HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("sandbox CRM answered HTTP %d: %s", e.StatusCode, e.Message)
}

// Client calls the sandbox's control API, for tests and the
// `integrations sandbox account` commands. Errors never contain an API key,
// even though the control API carries keys in its paths.
type Client struct {
	baseURL    string
	httpClient *http.Client
}

// NewClient returns a control API client for the sandbox at baseURL (e.g.
// http://127.0.0.1:8090). A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), httpClient: httpClient}
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

// keyCall calls prefix+key+suffix; op describes the operation in errors.
func (c *Client) keyCall(ctx context.Context, op, method, prefix, key, suffix string, body any) (Account, error) {
	if strings.TrimSpace(key) == "" {
		return Account{}, fmt.Errorf("%s: API key is empty: pass the api_key printed by `integrations sandbox account create`", op)
	}
	a, err := c.call(ctx, method, prefix+url.PathEscape(key)+suffix, body)
	if err != nil {
		return Account{}, fmt.Errorf("%s: %w", op, err)
	}
	return a, nil
}

// call sends one control request and decodes the account it answers with.
func (c *Client) call(ctx context.Context, method, path string, body any) (Account, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return Account{}, fmt.Errorf("encode request: %w", err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reader)
	if err != nil {
		// The URL holds the key; say only what is wrong with the base URL.
		return Account{}, fmt.Errorf("invalid sandbox URL %q: use e.g. http://127.0.0.1:8090", c.baseURL)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return Account{}, fmt.Errorf("reach sandbox CRM at %s: %w", c.baseURL, withoutURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return Account{}, fmt.Errorf("read sandbox response: %w", err)
	}
	if resp.StatusCode >= 300 {
		return Account{}, decodeAPIError(resp.StatusCode, data)
	}
	var a Account
	if err := json.Unmarshal(data, &a); err != nil {
		return Account{}, fmt.Errorf("sandbox response is not an account (HTTP %d): is %s the sandbox CRM?", resp.StatusCode, c.baseURL)
	}
	return a, nil
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

// decodeAPIError turns an error response into an *APIError. A body that is
// not the sandbox's JSON error shape is not echoed: it is unknown text that
// might reflect the request.
func decodeAPIError(status int, data []byte) *APIError {
	var body errorBody
	if err := json.Unmarshal(data, &body); err != nil || body.Error == "" {
		return &APIError{StatusCode: status, Message: http.StatusText(status) + " (not a sandbox error response: is the URL the sandbox CRM?)"}
	}
	return &APIError{StatusCode: status, Code: body.Code, Message: body.Error}
}
