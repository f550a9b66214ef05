package crmfake

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

// maxAnswerBytes bounds a control API answer; the per-key record counts
// of a benchmarked account, or the leads of a busy org, run to megabytes.
const maxAnswerBytes = 256 << 20

// APIError is an error answer of a fake's control API. Message is the
// fake's explanation, which never contains a key or a token.
type APIError struct {
	// Fake is the Name of the fake that answered.
	Fake       string
	StatusCode int
	Code       string
	Message    string
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s answered HTTP %d", e.Fake, e.StatusCode)
	}
	return fmt.Sprintf("%s answered HTTP %d: %s", e.Fake, e.StatusCode, e.Message)
}

// Client sends a fake's control API requests; each fake's own Client
// wraps one with the operations of its control API. Its errors never
// contain a request URL, whose path may hold an API key.
type Client struct {
	fake       Fake
	baseURL    string
	httpClient *http.Client
}

// NewClient returns a control API client for fake at baseURL (e.g.
// http://127.0.0.1:8090). A nil httpClient means one with a 10s timeout.
func NewClient(fake Fake, baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{fake: fake, baseURL: strings.TrimRight(baseURL, "/"), httpClient: httpClient}
}

// BaseURL returns the fake's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.baseURL }

// HTTPClient returns the *http.Client requests go through.
func (c *Client) HTTPClient() *http.Client { return c.httpClient }

// Do sends one control request (body, when not nil, as JSON) to path
// below the base URL and decodes the answer into out; what names the
// expected answer in errors ("an account"). An error answer is an
// *APIError; one that is not in the control API's shape is not quoted, as
// it is unknown text that might reflect the request.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, what string) error {
	name := c.fake.Name
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
		return fmt.Errorf("invalid %s URL %q: use e.g. %s", name, c.baseURL, c.fake.DevURL)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach %s at %s: %w", name, c.baseURL, WithoutURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read the %s's answer: %w", name, err)
	}
	if resp.StatusCode >= 300 {
		var e ErrorBody
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return &APIError{Fake: name, StatusCode: resp.StatusCode,
				Message: http.StatusText(resp.StatusCode) + " (not a control API error: is the URL the " + name + "?)"}
		}
		return &APIError{Fake: name, StatusCode: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the %s's answer is not %s (HTTP %d): is %s the %s?", name, what, resp.StatusCode, c.baseURL, name)
	}
	return nil
}

// DoOn is Do about one account: the request goes to prefix + id +
// suffix, with id (an API key, an org ID) escaped as one path segment,
// and its errors begin with op. A blank id fails with noID (which says
// what to pass) before any request: the path would name another resource.
func (c *Client) DoOn(ctx context.Context, op, method, prefix, id, suffix string, noID error, body, out any, what string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%s: %w", op, noID)
	}
	if err := c.Do(ctx, method, prefix+url.PathEscape(id)+suffix, body, out, what); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// WithoutURL strips the request URL (which may hold an API key, a code or
// a state) from a transport error, keeping the cause.
func WithoutURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
