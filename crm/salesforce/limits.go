package salesforce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
)

// limitInfoHeader is the header every REST answer reports the org's API
// usage in: "api-usage=18/5000", possibly followed by other entries
// ("; per-app-api-usage=17/250(appName=...)").
const limitInfoHeader = "Sforce-Limit-Info"

// parseLimitInfo reads the api-usage entry of a Sforce-Limit-Info value:
// the calls the org used and its allocation. Usage may exceed the
// allocation (Salesforce lets an org burst over it).
func parseLimitInfo(value string) (used, limit int64, ok bool) {
	for _, entry := range strings.FieldsFunc(value, func(r rune) bool { return r == ';' || r == ',' }) {
		name, usage, found := strings.Cut(strings.TrimSpace(entry), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(name), "api-usage") {
			continue
		}
		u, l, found := strings.Cut(strings.TrimSpace(usage), "/")
		if !found {
			return 0, 0, false
		}
		used, err1 := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
		limit, err2 := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
		if err1 != nil || err2 != nil || used < 0 || limit <= 0 {
			return 0, 0, false
		}
		return used, limit, true
	}
	return 0, 0, false
}

// orgPace is what the connector keeps per org besides the pacer: its calls
// in flight, the hold that fails pushes fast, and the allocation last
// reported.
type orgPace struct {
	slots chan struct{}
	// holdUntil is when deliveries may go on; holdCode is Salesforce's
	// reason for it ("" when the connector held for the reserve).
	holdUntil time.Time
	holdCode  string
	// limit is the allocation the org last reported, 0 before any.
	limit int64
}

// org returns the pacing state of an org, creating it.
func (c *Connector) org(key string) *orgPace {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.orgs[key]
	if !ok {
		o = &orgPace{slots: make(chan struct{}, c.cfg.Pacing.Concurrency)}
		c.orgs[key] = o
	}
	return o
}

// hold stops the org's deliveries until until, for code ("" for the
// reserve). The connector keeps its holds itself rather than in the
// pacer, so that an answer showing room again can end them early.
func (c *Connector) hold(key string, until time.Time, code string) {
	o := c.org(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if until.After(o.holdUntil) {
		o.holdUntil, o.holdCode = until, code
	}
}

// admit lets a delivery call of the org go: it fails at once while a hold
// longer than Pacing.MaxWait lasts, waits out a shorter one, then waits
// for a slot among the org's calls in flight and for the pacer. release
// gives the slot back.
func (c *Connector) admit(ctx context.Context, key, op string) (release func(), err error) {
	o := c.org(key)
	c.mu.Lock()
	wait, code := o.holdUntil.Sub(c.now()), o.holdCode
	c.mu.Unlock()
	if wait > c.cfg.Pacing.MaxWait {
		why := "the org's API allocation is almost spent (the reserve for its other users is reached)"
		if code == codeRequestLimitExceeded {
			why = "the org's API allocation is spent"
		}
		return nil, &crm.Error{Class: crm.ClassRateLimited, RetryAfter: wait.Round(time.Second), Code: code,
			Err: fmt.Errorf("salesforce %s: %s: deliveries hold for another %s", op, why, wait.Round(time.Second))}
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, paceError(op, ctx.Err())
		}
	}
	select {
	case o.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, paceError(op, ctx.Err())
	}
	if err := c.pacer.Wait(ctx, key); err != nil {
		<-o.slots
		return nil, paceError(op, err)
	}
	return func() { <-o.slots }, nil
}

// paceError is a delivery that its context ended while it waited for its
// turn, or that the pacer refused at once (a hold or a turn past the
// call's deadline, with the time left): not a failure of Salesforce's, so
// it is a rate limit.
func paceError(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("salesforce %s: %w", op, err)
	}
	var held *crm.Error
	if errors.As(err, &held) && held.Class == crm.ClassRateLimited {
		return &crm.Error{Class: crm.ClassRateLimited, RetryAfter: held.RetryAfter, Err: fmt.Errorf("salesforce %s: %w", op, held.Err)}
	}
	return &crm.Error{Class: crm.ClassRateLimited, RetryAfter: time.Second,
		Err: fmt.Errorf("salesforce %s: the org's pacing would have waited past the call's deadline", op)}
}

// observe reads an answer's Sforce-Limit-Info for the org: the pacer
// follows the allocation it reports; the org holds for Pacing.Hold when
// what remains is within the reserve, and a hold ends when an answer shows
// room again; and when the allocation is lower than the pace the calls so
// far went at (the first answer of an org below Pacing.Published), the next
// call waits one interval at the new pace.
func (c *Connector) observe(key string, header http.Header) {
	used, limit, ok := parseLimitInfo(header.Get(limitInfoHeader))
	if !ok {
		return
	}
	now := c.now()
	p := c.cfg.Pacing
	remaining := max(limit-used, 0)
	o := c.org(key)
	c.mu.Lock()
	previous := o.limit
	o.limit = limit
	if reserve := int64(float64(limit) * p.Reserve); remaining <= reserve {
		if until := now.Add(p.Hold); until.After(o.holdUntil) {
			o.holdUntil, o.holdCode = until, ""
		}
	} else {
		o.holdUntil, o.holdCode = time.Time{}, ""
	}
	c.mu.Unlock()

	pace := crm.Limit{Calls: int(min(limit, int64(^uint32(0)>>1))), Per: p.Window}
	// The pacer's own hold when nothing remains is left out (a nanosecond):
	// the connector holds by itself, above.
	c.pacer.Observe(key, crm.Quota{Remaining: remaining, Limit: limit, Window: windowName(p.Window), ObservedAt: now.UTC()}, pace, time.Nanosecond)
	if (previous == 0 && limit < int64(p.Published)) || (previous > limit) {
		// One interval at the share of the limit crm.Pacer paces at.
		c.pacer.Hold(key, now.Add(time.Duration(float64(p.Window)/(0.95*float64(limit)))))
	}
}

// windowName is how a Quota names the window: "24h", "1s".
func windowName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
