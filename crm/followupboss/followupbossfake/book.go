package followupbossfake

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// The rate-limit contexts of the endpoints the fake serves.
const (
	contextGlobal = "global"
	contextEvents = "POST.events"
)

// The default limits per 10-second window (docs.followupboss.com
// reference/rate-limiting): "global" 250 for a registered system and 125
// without a valid X-System-Key; "POST.events" is documented as
// "unlimited*", for which the fake allows eventsLimit.
const (
	defaultWindow     = 10 * time.Second
	registeredLimit   = 250
	unregisteredLimit = 125
	eventsLimit       = 1000
)

// Bounds of the fault and limit settings, generous for tests yet small
// enough that a typo cannot hang a dev stack for hours.
const (
	maxFaultCount        = 1_000_000
	maxLatencyMS         = 60_000
	maxRetryAfterSeconds = 3600
	maxWindowSeconds     = 3600
	maxLimit             = 1_000_000
	defaultFailStatus    = http.StatusServiceUnavailable
	defaultRetryAfter    = 1
)

// MatchFields returns the event fields a reject or refuse rule can test:
// "name" is firstName and lastName joined by a space, "email" and "phone"
// match any of the person's.
func MatchFields() []string {
	return []string{"source", "firstName", "lastName", "name", "email", "phone", "message"}
}

// Faults are the failures the fake simulates on one account's API calls
// (see the package documentation for the order they apply in). The control
// API merges changes into them and DELETE resets them to DefaultFaults.
type Faults struct {
	// FailNext answers the next FailNext calls, whatever their endpoint,
	// with FailStatus, counting down per call.
	FailNext int `json:"fail_next"`
	// FailStatus is the status of a failed call, 400..599 (default 503).
	FailStatus int `json:"fail_status"`
	// LatencyMS delays every call by this many milliseconds.
	LatencyMS int `json:"latency_ms"`
	// RateLimitNext answers the next RateLimitNext calls to /v1/people or
	// /v1/events 429, counting down per call.
	RateLimitNext int `json:"rate_limit_next"`
	// RetryAfterSeconds is the Retry-After of such a 429 (default 1).
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// RejectField and RejectContains form the reject rule: an event whose
	// field (one of MatchFields) contains RejectContains is answered 400
	// with an errorMessage quoting the value, and stores nothing.
	RejectField    string `json:"reject_field"`
	RejectContains string `json:"reject_contains"`
	// RefuseField and RefuseContains form the refuse rule: such an event is
	// answered 413, as a request the API will not take at all.
	RefuseField    string `json:"refuse_field"`
	RefuseContains string `json:"refuse_contains"`
	// ArchivedSources are the sources whose lead flow is archived: their
	// events are answered 204 with no body and ignored.
	ArchivedSources []string `json:"archived_sources"`
}

// DefaultFaults returns the faults of an account nobody has set any on.
func DefaultFaults() Faults {
	return Faults{FailStatus: defaultFailStatus, RetryAfterSeconds: defaultRetryAfter, ArchivedSources: []string{}}
}

// FaultsUpdate is a change to an account's Faults, the body of POST
// /control/keys/{key}/faults: nil fields keep their value. Setting a rule's
// field to "" removes the rule.
type FaultsUpdate struct {
	FailNext          *int      `json:"fail_next,omitempty"`
	FailStatus        *int      `json:"fail_status,omitempty"`
	LatencyMS         *int      `json:"latency_ms,omitempty"`
	RateLimitNext     *int      `json:"rate_limit_next,omitempty"`
	RetryAfterSeconds *int      `json:"retry_after_seconds,omitempty"`
	RejectField       *string   `json:"reject_field,omitempty"`
	RejectContains    *string   `json:"reject_contains,omitempty"`
	RefuseField       *string   `json:"refuse_field,omitempty"`
	RefuseContains    *string   `json:"refuse_contains,omitempty"`
	ArchivedSources   *[]string `json:"archived_sources,omitempty"`
}

// apply returns f changed by u, or an error naming the first invalid field;
// nothing changes on an error, and a rule's text is never echoed.
func (f Faults) apply(u FaultsUpdate) (Faults, error) {
	// Every value is checked; the first problem is reported.
	if err := cmp.Or(
		crmfake.SetInt("fail_next", u.FailNext, 0, maxFaultCount, &f.FailNext),
		crmfake.SetInt("fail_status", u.FailStatus, 400, 599, &f.FailStatus),
		crmfake.SetInt("latency_ms", u.LatencyMS, 0, maxLatencyMS, &f.LatencyMS),
		crmfake.SetInt("rate_limit_next", u.RateLimitNext, 0, maxFaultCount, &f.RateLimitNext),
		crmfake.SetInt("retry_after_seconds", u.RetryAfterSeconds, 1, maxRetryAfterSeconds, &f.RetryAfterSeconds),
	); err != nil {
		return Faults{}, err
	}
	if err := rules.Set("reject", u.RejectField, u.RejectContains, &f.RejectField, &f.RejectContains); err != nil {
		return Faults{}, err
	}
	if err := rules.Set("refuse", u.RefuseField, u.RefuseContains, &f.RefuseField, &f.RefuseContains); err != nil {
		return Faults{}, err
	}
	if u.ArchivedSources != nil {
		f.ArchivedSources = slices.Clone(*u.ArchivedSources)
		if f.ArchivedSources == nil {
			f.ArchivedSources = []string{}
		}
	}
	return f, nil
}

// rules are the reject and refuse rules of Faults, which name one of
// MatchFields.
var rules = crmfake.Rules{
	Key:     "field",
	Valid:   func(field string) bool { return slices.Contains(MatchFields(), field) },
	Want:    "one of " + strings.Join(MatchFields(), ", "),
	Example: "email",
}

// Limits overrides Follow Up Boss's limits for one account, the body of
// POST /control/keys/{key}/limits: every context then allows Limit calls
// per WindowSeconds. The zero Limits means the defaults.
type Limits struct {
	Limit         int `json:"limit"`
	WindowSeconds int `json:"window_seconds"`
}

func (l Limits) check() error {
	switch {
	case l.Limit < 1 || l.Limit > maxLimit:
		return crmfake.BadRequest("limit must be between 1 and %d, not %d", maxLimit, l.Limit)
	case l.WindowSeconds < 1 || l.WindowSeconds > maxWindowSeconds:
		return crmfake.BadRequest("window_seconds must be between 1 and %d, not %d (Follow Up Boss states its window in whole seconds)", maxWindowSeconds, l.WindowSeconds)
	}
	return nil
}

// RecordStats is what GET /control/keys/{key}/records reports: the people
// and events the account holds, the events whose person carried each tag
// in the request, and the people holding each tag. A tag in EventsByTag
// with a count above 1 was sent in more than once: the duplicate exposure
// of a CRM without idempotency keys.
type RecordStats struct {
	People      int            `json:"people"`
	Events      int            `json:"events"`
	EventsByTag map[string]int `json:"events_by_tag"`
	PeopleByTag map[string]int `json:"people_by_tag"`
}

// Event is one event the fake received and kept, as GET
// /control/keys/{key}/events shows it, with the lead data it carried (the
// control API is a development tool; the data is the caller's own).
type Event struct {
	ID       int       `json:"id"`
	PersonID int       `json:"person_id"`
	At       time.Time `json:"at"`
	// Status is what the fake answered: 201 (new person) or 200.
	Status    int      `json:"status"`
	Type      string   `json:"type"`
	Source    string   `json:"source"`
	System    string   `json:"system"`
	Message   string   `json:"message"`
	FirstName string   `json:"first_name"`
	LastName  string   `json:"last_name"`
	Emails    []string `json:"emails"`
	Phones    []string `json:"phones"`
	Tags      []string `json:"tags"`
}

// Call is one API call in an account's call log: when it arrived by the
// fake's clock, what it asked for, its rate-limit context and the status
// it was answered with.
type Call struct {
	At      time.Time `json:"at"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Context string    `json:"context"`
	Status  int       `json:"status"`
}

// person is a contact the fake keeps.
type person struct {
	id                  int
	created, updated    time.Time
	firstName, lastName string
	source              string
	emails, phones      []string
	tags                []string
}

// book is one account's people, events, faults, limits, sliding windows and
// call log, in memory only, under its own lock.
type book struct {
	mu         sync.Mutex
	people     []*person
	lastPerson int
	events     []Event
	faults     Faults
	limits     Limits
	// windows holds the times of the calls counted in each context's
	// sliding window, oldest first.
	windows map[string][]time.Time
	calls   crmfake.CallLog[Call]
}

func newBook() *book {
	return &book{faults: DefaultFaults(), windows: map[string][]time.Time{}}
}

func (b *book) logCall(c Call) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls.Add(c)
}

func (b *book) callLog() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls.List()
}

func (b *book) stats() RecordStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := RecordStats{People: len(b.people), Events: len(b.events), EventsByTag: map[string]int{}, PeopleByTag: map[string]int{}}
	for _, e := range b.events {
		for _, tag := range e.Tags {
			st.EventsByTag[tag]++
		}
	}
	for _, p := range b.people {
		for _, tag := range p.tags {
			st.PeopleByTag[tag]++
		}
	}
	return st
}

func (b *book) eventLog() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Event, len(b.events))
	for i, e := range b.events {
		e.Emails, e.Phones, e.Tags = slices.Clone(e.Emails), slices.Clone(e.Phones), slices.Clone(e.Tags)
		out[i] = e
	}
	return out
}

func (b *book) currentFaults() Faults {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.faults
	f.ArchivedSources = slices.Clone(f.ArchivedSources)
	return f
}

func (b *book) updateFaults(u FaultsUpdate) (Faults, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.faults.apply(u)
	if err != nil {
		return Faults{}, err
	}
	b.faults = f
	f.ArchivedSources = slices.Clone(f.ArchivedSources)
	return f, nil
}

func (b *book) clearFaults() Faults {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = DefaultFaults()
	return DefaultFaults()
}

// clearLimits gives the account Follow Up Boss's default limits again.
func (b *book) clearLimits() Limits {
	b.setLimits(Limits{})
	return Limits{}
}

func (b *book) setLimits(l Limits) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limits = l
	// The old windows counted calls against other limits.
	b.windows = map[string][]time.Time{}
}

// takeFailure uses up one fail_next count, returning the status to answer
// with, or 0 to go on.
func (b *book) takeFailure() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.faults.FailNext == 0 {
		return 0
	}
	b.faults.FailNext--
	return b.faults.FailStatus
}

// limitLocked is a context's limit and window for the account; callers
// hold b.mu.
func (b *book) limitLocked(context string, registered bool) (int, time.Duration) {
	if b.limits.Limit > 0 {
		return b.limits.Limit, time.Duration(b.limits.WindowSeconds) * time.Second
	}
	switch {
	case context == contextEvents:
		return eventsLimit, defaultWindow
	case registered:
		return registeredLimit, defaultWindow
	default:
		return unregisteredLimit, defaultWindow
	}
}

// rate is the rate-limit state of one answered call: what the
// X-RateLimit-* headers say, and Retry-After for a 429.
type rate struct {
	context    string
	limit      int
	remaining  int
	window     time.Duration
	limited    bool
	retryAfter int
}

// admit counts a call in its context's sliding window at now, unless a
// rate_limit_next fault (for /v1/people and /v1/events calls, faulted) or
// the window itself refuses it; a refused call is not counted, as Follow
// Up Boss says a 429 "was not processed".
func (b *book) admit(context string, registered, faulted bool, now time.Time) rate {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit, window := b.limitLocked(context, registered)
	r := rate{context: context, limit: limit, window: window}
	times := b.windows[context]
	// A call counts for window after it arrived: (now-window, now].
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-window)) {
		cut++
	}
	times = times[cut:]
	b.windows[context] = times
	switch {
	case faulted && b.faults.RateLimitNext > 0:
		b.faults.RateLimitNext--
		r.limited, r.retryAfter = true, b.faults.RetryAfterSeconds
		return r
	case len(times) >= limit:
		// Room comes when the oldest counted call leaves the window.
		wait := times[0].Add(window).Sub(now)
		r.limited, r.retryAfter = true, max(1, int((wait+time.Second-1)/time.Second))
		return r
	}
	b.windows[context] = append(times, now)
	r.remaining = limit - len(times) - 1
	return r
}
