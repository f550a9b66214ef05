package followupboss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
)

// contextGlobal is Follow Up Boss's rate-limit context of GET calls.
const contextGlobal = "global"

// maxWindow bounds the X-RateLimit-Window the connector believes; Follow Up
// Boss's is 10 seconds.
const maxWindow = time.Hour

// answer is one answer of the API, its body bounded.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// call makes one API call for the account of creds, after the account's
// pacer allows it, and reads what its rate-limit headers say. query is
// already encoded. An error is a *crm.Error: the call got no answer.
func (c *Connector) call(ctx context.Context, creds credentials, method, path, query string, body []byte) (answer, error) {
	acct := account(creds)
	if err := c.pacer.Wait(ctx, acct); err != nil {
		var held *crm.Error
		if errors.As(err, &held) {
			// A hold longer than the pacer sleeps out (a long
			// Retry-After) fails at once, with the time left.
			return answer{}, &crm.Error{Class: held.Class, RetryAfter: held.RetryAfter,
				Err: &callError{msg: fmt.Sprintf("%s %s: %s", method, path, held.Err), cause: held}}
		}
		return answer{}, &crm.Error{Class: crm.ClassTransient,
			Err: &callError{msg: fmt.Sprintf("%s %s: cancelled while waiting for the account's rate limit", method, path), cause: err}}
	}
	target := c.apiURL + path
	if query != "" {
		target += "?" + query
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return answer{}, &crm.Error{Class: crm.ClassTransient,
			Err: fmt.Errorf("%s %s: the configured Follow Up Boss API URL is invalid: check INTEGRATIONS_FOLLOWUPBOSS_API_URL", method, path)}
	}
	req.SetBasicAuth(creds.APIKey, "")
	if c.system != "" {
		req.Header.Set("X-System", c.system)
	}
	if c.systemKey != "" {
		req.Header.Set("X-System-Key", c.systemKey)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return answer{}, &crm.Error{Class: crm.ClassTransient, Err: networkError(method, path, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return answer{}, &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode,
			Err: &callError{msg: fmt.Sprintf("%s %s: the answer was cut off", method, path), cause: err}}
	}
	ans := answer{status: resp.StatusCode, header: resp.Header, body: data}
	c.observe(acct, ans)
	return ans, nil
}

// callError is a failed call's message, which names the endpoint but not
// the URL (ours, or Follow Up Boss's with a query), over its cause for
// errors.Is.
type callError struct {
	msg   string
	cause error
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.cause }

// networkError says how a call without an answer failed: the transport's
// own message quotes the URL and the address dialled.
func networkError(method, path string, err error) error {
	cause := err
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		cause = urlErr.Err
	}
	var netErr net.Error
	what := "Follow Up Boss could not be reached"
	switch {
	case errors.Is(cause, context.Canceled):
		what = "the call was cancelled"
	case errors.Is(cause, context.DeadlineExceeded), errors.As(cause, &netErr) && netErr.Timeout():
		what = "Follow Up Boss did not answer in time"
	}
	return &callError{msg: fmt.Sprintf("%s %s: %s", method, path, what), cause: err}
}

// observe reads an answer's X-RateLimit-* headers into the account's
// quota and pacing: the pacer runs at the tightest limit of any context
// the account's answers named (the published global limit until Follow Up
// Boss states its own), and a 429 holds the account for its Retry-After.
func (c *Connector) observe(acct string, ans answer) {
	now := c.now()
	h := ans.header
	window := windowOf(h)
	if ans.status == http.StatusTooManyRequests {
		c.pacer.Hold(acct, now.Add(retryAfter(ans, window, now)))
	}
	limit, errLimit := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Limit")), 10, 32)
	remaining, errRemaining := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Remaining")), 10, 32)
	if errLimit != nil || errRemaining != nil || limit <= 0 || remaining < 0 {
		// No usable numbers (401s carry none): keep what is known.
		return
	}
	name := strings.TrimSpace(h.Get("X-RateLimit-Context"))
	q := crm.Quota{Remaining: remaining, Limit: limit, Window: window.String(), ObservedAt: now}

	c.mu.Lock()
	if c.limits[acct] == nil {
		c.limits[acct] = map[string]crm.Limit{}
		c.quotas[acct] = map[string]crm.Quota{}
	}
	c.limits[acct][name] = crm.Limit{Calls: int(limit), Per: window}
	c.quotas[acct][name] = q
	effective := c.published
	if l, ok := c.limits[acct][contextGlobal]; ok {
		effective = l
	}
	for _, l := range c.limits[acct] {
		if perSecond(l) < perSecond(effective) {
			effective = l
		}
	}
	previous, known := c.effective[acct]
	if !known {
		previous = c.published
	}
	c.effective[acct] = effective
	c.mu.Unlock()

	if perSecond(effective) < perSecond(previous) {
		// The call just answered went at the old, faster rate, and the
		// limiter counts the time since at that rate: the next call could
		// follow sooner than the new rate allows. Holding it for one
		// interval of the new limit (Per/Calls; the pacer's own intervals
		// are a little longer) keeps every window within the limit.
		c.pacer.Hold(acct, now.Add(effective.Per/time.Duration(effective.Calls)))
	}

	// With nothing remaining, the window has room again once its oldest
	// call leaves it; under our own even pacing that is within one pacing
	// interval. Other traffic on the key may still meet a 429, which then
	// waits out its Retry-After.
	c.pacer.Observe(acct, q, effective, window/time.Duration(limit))
}

// windowOf is the X-RateLimit-Window of an answer, in seconds, or Follow
// Up Boss's 10 seconds when it states none that makes sense.
func windowOf(h http.Header) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Window")))
	if err != nil || secs <= 0 || time.Duration(secs)*time.Second > maxWindow {
		return limitWindow
	}
	return time.Duration(secs) * time.Second
}

func perSecond(l crm.Limit) float64 { return float64(l.Calls) / l.Per.Seconds() }

// retryAfter is how long a 429 asks to wait: its Retry-After, else the
// window.
func retryAfter(ans answer, window time.Duration, now time.Time) time.Duration {
	if d := crm.ParseRetryAfter(ans.header.Get("Retry-After"), now); d > 0 {
		return d
	}
	return window
}

// statusError classifies an answer the caller has no better reading of:
// 401 auth, 403 permission, 429 rate limited, anything else (5xx, a 404
// from a wrong API URL, a 400 that is not about the lead) transient. It
// never quotes the body, which may echo the request.
func (c *Connector) statusError(ans answer, method, path string) *crm.Error {
	e := &crm.Error{Class: crm.ClassTransient, StatusCode: ans.status}
	hint := ""
	switch {
	case ans.status == http.StatusUnauthorized:
		e.Class, hint = crm.ClassAuth, ": the API key was rejected"
	case ans.status == http.StatusForbidden:
		e.Class, hint = crm.ClassPermission, ": API access to the account is refused (it may be locked)"
	case ans.status == http.StatusTooManyRequests:
		e.Class, hint = crm.ClassRateLimited, ": the account's rate limit is exhausted"
		e.RetryAfter = retryAfter(ans, windowOf(ans.header), c.now())
	case ans.status >= 500:
		hint = ": a Follow Up Boss outage"
	}
	e.Err = fmt.Errorf("Follow Up Boss answered %s %s with HTTP %d %s%s", method, path, ans.status, http.StatusText(ans.status), hint)
	return e
}
