package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
)

// HubSpot's API paths, as the connector calls them.
const (
	pathToken             = "/oauth/v1/token"
	pathAccessTokenInfo   = "/oauth/v1/access-tokens/"
	pathPrivateTokenInfo  = "/oauth/v2/private-apps/get/access-token-info"
	pathContactProperties = "/crm/v3/properties/contacts"
	pathBatchUpsert       = "/crm/v3/objects/contacts/batch/upsert"
)

// The rate-limit headers HubSpot sends.
const (
	headerLimitMax            = "X-HubSpot-RateLimit-Max"
	headerLimitRemaining      = "X-HubSpot-RateLimit-Remaining"
	headerLimitInterval       = "X-HubSpot-RateLimit-Interval-Milliseconds"
	headerLimitDaily          = "X-HubSpot-RateLimit-Daily"
	headerLimitDailyRemaining = "X-HubSpot-RateLimit-Daily-Remaining"
)

// dailyRetry is how long a call waits after HubSpot's DAILY limit answered
// without a Retry-After: the daily window resets at midnight in the
// account's time zone, which the connector does not know, so it looks again
// every hour.
const dailyRetry = time.Hour

// request is one call to HubSpot.
type request struct {
	method string
	path   string
	// what names the call in errors, in HubSpot's terms ("the contacts
	// batch upsert"); never a URL.
	what string
	// token is the bearer token; "" sends none.
	token       string
	body        []byte
	contentType string
	// paceKey is the account the call is paced as; "" is not paced.
	paceKey string
}

// answer is HubSpot's answer to a request.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// send makes one call: paced per account, its limit headers observed, a
// 429 holding the account. A transport failure is a transient *crm.Error
// that names no URL or address.
func (c *Connector) send(ctx context.Context, r request) (answer, error) {
	if r.paceKey != "" {
		if err := c.pacer.Wait(ctx, r.paceKey); err != nil {
			var held *crm.Error
			if errors.As(err, &held) {
				// A long hold (the daily limit) fails at once, with the
				// time left as RetryAfter.
				return answer{}, &crm.Error{Class: held.Class, RetryAfter: held.RetryAfter, Err: fmt.Errorf("%s: %w", r.what, held.Err)}
			}
			return answer{}, &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("waiting to call %s: %w", r.what, err)}
		}
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.apiURL+r.path, body)
	if err != nil {
		// The URL may hold a token (introspection): do not quote it.
		return answer{}, fmt.Errorf("%s: the HubSpot API URL is invalid: check INTEGRATIONS_HUBSPOT_API_URL", r.what)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return answer{}, transportError(r.what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return answer{}, &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode, Err: fmt.Errorf("reading HubSpot's answer to %s failed", r.what)}
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: data}
	if r.paceKey != "" {
		c.observe(r.paceKey, a)
	}
	return a, nil
}

// transportError describes a failed call without the URL or address the
// transport's errors carry.
func transportError(what string, err error) *crm.Error {
	detail := "network error"
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var sysErr *os.SyscallError
	switch {
	case errors.Is(err, context.Canceled):
		detail = "the call was canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		detail = "the call timed out"
	case errors.As(err, &dnsErr):
		detail = "the HubSpot host name did not resolve"
	case errors.As(err, &opErr) && errors.As(opErr.Err, &sysErr):
		// "dial: connect: connection refused"; other causes can quote
		// the address.
		detail = opErr.Op + ": " + sysErr.Error()
	case errors.As(err, &opErr):
		detail = opErr.Op + " failed"
	}
	return &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("could not reach HubSpot for %s: %s", what, detail)}
}

// headerInt reads a non-negative integer header; ok is false when it is
// absent or malformed.
func headerInt(h http.Header, name string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64)
	return v, err == nil && v >= 0
}

// observe feeds the pacer what HubSpot's headers say about the account:
// the window's size and what remains of it, and the daily allowance.
func (c *Connector) observe(key string, a answer) {
	now := c.now()
	maxCalls, okMax := headerInt(a.header, headerLimitMax)
	remaining, okRem := headerInt(a.header, headerLimitRemaining)
	intervalMS, okInt := headerInt(a.header, headerLimitInterval)
	if okMax && okRem && maxCalls > 0 {
		window := DefaultLimit.Per
		if okInt && intervalMS > 0 {
			window = time.Duration(intervalMS) * time.Millisecond
		}
		c.pacer.Observe(key, crm.Quota{Remaining: remaining, Limit: maxCalls, Window: window.String(), ObservedAt: now},
			crm.Limit{Calls: int(maxCalls), Per: window}, 0)
	}
	daily, okDaily := headerInt(a.header, headerLimitDaily)
	dailyRemaining, okDailyRem := headerInt(a.header, headerLimitDailyRemaining)
	if okDaily && okDailyRem && daily > 0 {
		c.mu.Lock()
		c.daily[key] = crm.Quota{Remaining: dailyRemaining, Limit: daily, Window: "24h", ObservedAt: now}
		c.mu.Unlock()
	}
}

// apiError is HubSpot's error body. Every field is optional: HubSpot says
// error fields vary between APIs.
type apiError struct {
	Status     string                     `json:"status"`
	Message    string                     `json:"message"`
	Category   string                     `json:"category"`
	ErrorType  string                     `json:"errorType"`
	PolicyName string                     `json:"policyName"`
	Context    map[string]json.RawMessage `json:"context"`
	Errors     []apiErrorDetail           `json:"errors"`
}

// apiErrorDetail is one entry of an error's errors.
type apiErrorDetail struct {
	Message string                     `json:"message"`
	Code    string                     `json:"code"`
	In      string                     `json:"in"`
	Context map[string]json.RawMessage `json:"context"`
}

func parseAPIError(data []byte) apiError {
	var e apiError
	// A body that is not HubSpot's error shape leaves e empty: nothing of
	// it is quoted anyway.
	_ = json.Unmarshal(data, &e)
	return e
}

// contextStrings returns the strings of an error context entry (HubSpot's
// contexts map names to lists of strings), nil when it has another shape.
func contextStrings(ctx map[string]json.RawMessage, name string) []string {
	raw, ok := ctx[name]
	if !ok {
		return nil
	}
	var values []string
	if json.Unmarshal(raw, &values) != nil {
		return nil
	}
	return values
}

// codePattern is what an error code must look like to be quoted; anything
// else from an answer is never repeated.
var codePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{1,63}$`)

// namePattern is what a HubSpot scope or property name must look like to be
// quoted.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,99}$`)

func quotableCode(code string) string {
	if codePattern.MatchString(code) {
		return code
	}
	return ""
}

// code is the error's most specific quotable code.
func (e apiError) code() string {
	for _, c := range []string{e.Category, e.PolicyName, e.ErrorType, e.Status} {
		if c = quotableCode(c); c != "" && c != "error" {
			return c
		}
	}
	return ""
}

// requiredScopes returns the scopes a MISSING_SCOPES error names (those
// that look like scope names).
func (e apiError) requiredScopes() []string {
	var scopes []string
	add := func(ctx map[string]json.RawMessage) {
		for _, name := range []string{"requiredScopes", "missingScopes"} {
			for _, s := range contextStrings(ctx, name) {
				if namePattern.MatchString(s) {
					scopes = append(scopes, s)
				}
			}
		}
	}
	add(e.Context)
	for _, d := range e.Errors {
		add(d.Context)
	}
	return scopes
}

// retryAfter is how long a 429 asks to wait: Retry-After when HubSpot sends
// it (undocumented), an hour for the DAILY policy, else the window
// (-Interval-Milliseconds, 10 s when absent).
func (c *Connector) retryAfter(a answer, e apiError) time.Duration {
	if d := crm.ParseRetryAfter(a.header.Get("Retry-After"), c.now()); d > 0 {
		return d
	}
	if strings.EqualFold(e.PolicyName, "DAILY") {
		return dailyRetry
	}
	if ms, ok := headerInt(a.header, headerLimitInterval); ok && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return DefaultLimit.Per
}

// classify turns an answer that is not a success into a *crm.Error: 401
// auth, 403 permission (naming missing scopes), 429 rate limited (the
// account held until the delay is over), 408 and 5xx transient, anything
// else transient too unless the caller knows better. Only codes and scope
// names are quoted from the body: HubSpot's messages can quote the request.
func (c *Connector) classify(r request, a answer) *crm.Error {
	e := parseAPIError(a.body)
	err := &crm.Error{StatusCode: a.status, Code: e.code()}
	switch {
	case a.status == http.StatusUnauthorized:
		err.Class = crm.ClassAuth
		err.Err = fmt.Errorf("HubSpot refused the token for %s", r.what)
	case a.status == http.StatusForbidden:
		err.Class = crm.ClassPermission
		if scopes := e.requiredScopes(); len(scopes) > 0 {
			err.Err = fmt.Errorf("the token lacks scope %s, which %s needs", strings.Join(scopes, ", "), r.what)
		} else {
			err.Err = fmt.Errorf("HubSpot denied the token access to %s", r.what)
		}
	case a.status == http.StatusTooManyRequests:
		err.Class = crm.ClassRateLimited
		err.RetryAfter = c.retryAfter(a, e)
		if r.paceKey != "" {
			c.pacer.Hold(r.paceKey, c.now().Add(err.RetryAfter))
		}
		policy := quotableCode(e.PolicyName)
		if policy == "" {
			policy = "rate"
		}
		err.Err = fmt.Errorf("HubSpot's %s limit was reached at %s", policy, r.what)
	case a.status == http.StatusNotFound:
		err.Class = crm.ClassTransient
		err.Err = fmt.Errorf("HubSpot answered HTTP 404 for %s: check INTEGRATIONS_HUBSPOT_API_URL", r.what)
	default:
		err.Class = crm.ClassTransient
		err.Err = fmt.Errorf("HubSpot answered HTTP %d for %s", a.status, r.what)
	}
	return err
}
