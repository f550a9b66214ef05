package crm

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a CRM's published call allowance for one account: Calls per
// Per (HubSpot: 100 per 10 s on free portals; Follow Up Boss: 250 per
// 10 s for a registered system).
type Limit struct {
	Calls int
	Per   time.Duration
}

// Quota is what a CRM last reported about an account's allowance, from
// its rate-limit headers (X-HubSpot-RateLimit-*, Sforce-Limit-Info,
// X-RateLimit-*). It is shown in `status`.
type Quota struct {
	// Remaining calls of Limit in the current Window.
	Remaining int64 `json:"remaining"`
	Limit     int64 `json:"limit"`
	// Window is what the numbers are about: "10s" for a rolling burst
	// window, "24h" for a daily allocation.
	Window string `json:"window"`
	// ObservedAt is when the CRM reported it.
	ObservedAt time.Time `json:"observed_at"`
}

// QuotaReporter is implemented by connectors that read their CRM's limit
// headers: the caller stores what an account last reported, for status.
type QuotaReporter interface {
	// Quota returns the last quota the CRM reported for the account raw
	// belongs to, and false before any.
	Quota(raw []byte) (Quota, bool)
}

// pacedShare is the share of a limit the pacer uses: a margin for the
// clock skew between us and the CRM's window, so a healthy integration
// never meets a 429.
const pacedShare = 0.95

// minPaceMargin is the least slack a window gets, whatever its length:
// the time between our limiter letting a call go and the CRM counting it
// varies by an absolute amount (scheduling, a new connection), not by a
// share of the window, so a short window (a test's, or a CRM's per-second
// limit) gets at least this much. For 10 s windows 5% is more.
const minPaceMargin = 250 * time.Millisecond

// DefaultMaxHoldWait is the longest hold Pacer.Wait sleeps out unless
// the pacer is made WithMaxHoldWait: a second, so a window that is spent
// for a moment delays a call a little, while an hour's hold (HubSpot's
// daily limit) fails it at once rather than holding a worker's activity,
// a validation or an authorize until its deadline.
const DefaultMaxHoldWait = time.Second

// PacerOption changes a Pacer made by NewPacer.
type PacerOption func(*Pacer)

// WithMaxHoldWait makes Wait sleep out holds up to d (DefaultMaxHoldWait
// otherwise); a longer one fails the call at once.
func WithMaxHoldWait(d time.Duration) PacerOption {
	return func(p *Pacer) {
		if d >= 0 {
			p.maxHoldWait = d
		}
	}
}

// Pacer paces a connector's calls per CRM account with a token bucket
// (golang.org/x/time/rate) at a little under the account's limit: the
// CRM's published limit to begin with, the limit its headers report once
// known. A CRM that says the window is spent (no calls remaining) or
// answers a rate limit holds the account until the time it names; Wait
// sleeps out a short hold and fails at once, with ClassRateLimited and the
// hold's remaining time as RetryAfter, on a long one or one that outlasts
// the caller's context. A connector keeps one Pacer for all its accounts;
// it is safe for concurrent use.
type Pacer struct {
	published   Limit
	maxHoldWait time.Duration
	now         func() time.Time

	mu       sync.Mutex
	accounts map[string]*accountPace
}

type accountPace struct {
	limiter *rate.Limiter
	limit   Limit
	// holdUntil is when the CRM said calls may go on again.
	holdUntil time.Time
	quota     Quota
	hasQuota  bool
}

// NewPacer returns a pacer starting every account at the published limit.
func NewPacer(published Limit, opts ...PacerOption) *Pacer {
	if published.Calls <= 0 || published.Per <= 0 {
		panic(fmt.Sprintf("crm.NewPacer: limit %+v must have calls and a period", published))
	}
	p := &Pacer{published: published, maxHoldWait: DefaultMaxHoldWait, now: time.Now, accounts: map[string]*accountPace{}}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

func limiterFor(l Limit) *rate.Limiter {
	share := pacedShare * float64(l.Calls) / l.Per.Seconds()
	margined := float64(l.Calls) / (l.Per + minPaceMargin).Seconds()
	// Burst 1: calls are spaced evenly, so no window of Per ever holds
	// more than the limit.
	return rate.NewLimiter(rate.Limit(min(share, margined)), 1)
}

func (p *Pacer) account(key string) *accountPace {
	a, ok := p.accounts[key]
	if !ok {
		a = &accountPace{limiter: limiterFor(p.published), limit: p.published}
		p.accounts[key] = a
	}
	return a
}

// Wait blocks until the account may make its next call. It returns
// ctx.Err() when ctx ends first, and fails at once with a ClassRateLimited
// *Error whose RetryAfter is the time left when the account is held for
// longer than the pacer sleeps out (DefaultMaxHoldWait, or
// WithMaxHoldWait's) or than ctx has left, or when the token bucket's
// next turn comes after ctx's deadline: sleeping until the deadline would
// only turn a known delay into a timeout.
func (p *Pacer) Wait(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	a := p.account(key)
	hold := a.holdUntil.Sub(p.now())
	limiter := a.limiter
	p.mu.Unlock()
	if hold > 0 {
		if hold > p.maxHoldWait || hold > timeLeft(ctx) {
			return &Error{Class: ClassRateLimited, RetryAfter: hold,
				Err: fmt.Errorf("the CRM's rate limit holds the account's calls for another %s", roundDelay(hold))}
		}
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := limiter.Wait(ctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		// The limiter refuses at once a wait past ctx's deadline; the
		// next turn is at most one interval away.
		interval := time.Duration(float64(time.Second) / float64(limiter.Limit()))
		return &Error{Class: ClassRateLimited, RetryAfter: interval,
			Err: fmt.Errorf("the account's pacing would have delayed the call past its deadline (one call per %s)", roundDelay(interval))}
	}
	return nil
}

// timeLeft is how long ctx has until its deadline; without one, forever.
func timeLeft(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return time.Duration(math.MaxInt64)
	}
	return time.Until(deadline)
}

// roundDelay rounds a delay for a message: to the second from a second
// on, to the millisecond below.
func roundDelay(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// Observe records what the CRM reported for the account in an answer.
// limit is the window's size when the CRM states it (zero Calls: keep the
// current one); a quota with nothing remaining holds the account for
// resetIn, or, when the CRM does not say, for one call's share of the
// window: in a rolling window that is when the oldest call leaves it, and
// an account still spent then is held again by the next answer.
func (p *Pacer) Observe(key string, q Quota, limit Limit, resetIn time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.account(key)
	if q.ObservedAt.IsZero() {
		q.ObservedAt = p.now()
	}
	a.quota, a.hasQuota = q, true
	if limit.Calls > 0 && limit.Per > 0 && limit != a.limit {
		a.limit = limit
		a.limiter.SetLimit(limiterFor(limit).Limit())
	}
	if q.Limit > 0 && q.Remaining <= 0 {
		if resetIn <= 0 {
			resetIn = a.limit.Per / time.Duration(a.limit.Calls)
		}
		a.hold(p.now().Add(resetIn))
	}
}

// Hold stops the account's calls until the time a rate-limit answer
// named, so the retry after it does not meet another.
func (p *Pacer) Hold(key string, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.account(key).hold(until)
}

func (a *accountPace) hold(until time.Time) {
	if until.After(a.holdUntil) {
		a.holdUntil = until
	}
}

// Quota returns the account's last reported quota, and false before any.
func (p *Pacer) Quota(key string) (Quota, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.accounts[key]
	if !ok || !a.hasQuota {
		return Quota{}, false
	}
	return a.quota, true
}
