package salesforcefake

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// Bounds of the fault settings, generous for tests yet small enough that a
// typo cannot hang a dev stack for hours.
const (
	maxFaultCount     = 1_000_000
	maxLatencyMS      = 60_000
	defaultFailStatus = http.StatusServiceUnavailable
	defaultRejectCode = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
)

// Faults are the failures the fake simulates for one org. The control API
// merges changes into them and DELETE resets them to DefaultFaults.
type Faults struct {
	// FailNext answers the org's next FailNext calls of the identity
	// service, the REST API and the token endpoint with FailStatus (a
	// Salesforce outage), counting down per call.
	FailNext int `json:"fail_next"`
	// FailStatus is the status of a failed call, 500..599 (default 503).
	FailStatus int `json:"fail_status"`
	// LimitExceededNext answers the org's next REST calls 403
	// REQUEST_LIMIT_EXCEEDED, counting down per call, after FailNext.
	LimitExceededNext int `json:"limit_exceeded_next"`
	// LockNext refuses the next LockNext upserted records with
	// UNABLE_TO_LOCK_ROW, as when another process holds the rows.
	LockNext int `json:"lock_next"`
	// LatencyMS delays every REST call by this many milliseconds.
	LatencyMS int `json:"latency_ms"`
	// RejectField and RejectContains form the reject rule: a record whose
	// Lead field RejectField (e.g. Email) contains RejectContains is
	// refused with RejectCode (default FIELD_CUSTOM_VALIDATION_EXCEPTION,
	// as a validation rule of the org refuses it; INVALID_EMAIL_ADDRESS
	// plays an address Salesforce does not take,
	// INSUFFICIENT_ACCESS_OR_READONLY a record the user's sharing keeps it
	// from editing).
	RejectField    string `json:"reject_field"`
	RejectContains string `json:"reject_contains"`
	RejectCode     string `json:"reject_code"`
	// RefuseField and RefuseContains refuse a whole upsert call carrying a
	// record whose field RefuseField contains RefuseContains: 400
	// JSON_PARSER_ERROR, nothing stored.
	RefuseField    string `json:"refuse_field"`
	RefuseContains string `json:"refuse_contains"`
}

// DefaultFaults returns the faults of an org nobody has set any on.
func DefaultFaults() Faults {
	return Faults{FailStatus: defaultFailStatus, RejectCode: defaultRejectCode}
}

// FaultsUpdate is a change to an org's Faults, the body of POST
// /control/orgs/{id}/faults: nil fields keep their current value. Setting a
// rule's field to "" removes the rule.
type FaultsUpdate struct {
	FailNext          *int    `json:"fail_next,omitempty"`
	FailStatus        *int    `json:"fail_status,omitempty"`
	LimitExceededNext *int    `json:"limit_exceeded_next,omitempty"`
	LockNext          *int    `json:"lock_next,omitempty"`
	LatencyMS         *int    `json:"latency_ms,omitempty"`
	RejectField       *string `json:"reject_field,omitempty"`
	RejectContains    *string `json:"reject_contains,omitempty"`
	RejectCode        *string `json:"reject_code,omitempty"`
	RefuseField       *string `json:"refuse_field,omitempty"`
	RefuseContains    *string `json:"refuse_contains,omitempty"`
}

// apply returns f changed by u, or an error naming the first invalid field.
// The rules' texts are never echoed.
func (f Faults) apply(u FaultsUpdate) (Faults, error) {
	// Every value is checked; the first problem is reported.
	if err := cmp.Or(
		crmfake.SetInt("fail_next", u.FailNext, 0, maxFaultCount, &f.FailNext),
		crmfake.SetInt("fail_status", u.FailStatus, 500, 599, &f.FailStatus),
		crmfake.SetInt("limit_exceeded_next", u.LimitExceededNext, 0, maxFaultCount, &f.LimitExceededNext),
		crmfake.SetInt("lock_next", u.LockNext, 0, maxFaultCount, &f.LockNext),
		crmfake.SetInt("latency_ms", u.LatencyMS, 0, maxLatencyMS, &f.LatencyMS),
	); err != nil {
		return Faults{}, err
	}
	if err := rules.Set("reject", u.RejectField, u.RejectContains, &f.RejectField, &f.RejectContains); err != nil {
		return Faults{}, err
	}
	if err := rules.Set("refuse", u.RefuseField, u.RefuseContains, &f.RefuseField, &f.RefuseContains); err != nil {
		return Faults{}, err
	}
	if u.RejectCode != nil {
		if !statusCodePattern.MatchString(*u.RejectCode) {
			return Faults{}, crmfake.BadRequest("reject_code must be a Salesforce status code such as INVALID_EMAIL_ADDRESS or FIELD_CUSTOM_VALIDATION_EXCEPTION")
		}
		f.RejectCode = *u.RejectCode
	}
	return f, nil
}

// rules are the reject and refuse rules of Faults, which name a Lead field
// the connector writes.
var rules = crmfake.Rules{
	Key:     "field",
	Valid:   func(field string) bool { return slices.Contains(writableFields(), field) },
	Want:    fmt.Sprintf("a Lead field the connector writes (%v)", writableFields()),
	Example: "Email",
}

// Call is one API call in an org's call log: when it arrived (by the fake's
// clock), what it was, the status it was answered with, and how many
// records it carried.
type Call struct {
	At      time.Time `json:"at"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Status  int       `json:"status"`
	Records int       `json:"records,omitempty"`
}

// Lead is what the fake holds of one lead, as GET /control/orgs/{id}/leads
// reports it: its Salesforce ID, how often it was upserted, and its fields.
type Lead struct {
	ID      string         `json:"id"`
	Upserts int            `json:"upserts"`
	Fields  map[string]any `json:"fields"`
}

// Leads is the answer of GET /control/orgs/{id}/leads: how many leads the
// org holds, how many upserts it accepted, and its leads by external ID.
// A lead with more than one upsert was delivered more than once; harmless,
// since upserts by external ID are idempotent, but worth counting.
type Leads struct {
	Leads   int             `json:"leads"`
	Upserts int             `json:"upserts"`
	ByKey   map[string]Lead `json:"by_key"`
}

// book is one org's leads, faults, API usage and call log, in memory only.
// It is guarded by the server's lock.
type book struct {
	leads   map[string]*Lead
	upserts int
	faults  Faults
	// usage holds when each counted API call of the current window
	// arrived, oldest first.
	usage []time.Time
	calls crmfake.CallLog[Call]
}

func newBook() *book { return &book{leads: map[string]*Lead{}, faults: DefaultFaults()} }

func (b *book) logCall(c Call) { b.calls.Add(c) }

func (b *book) callLog() []Call { return b.calls.List() }

// used returns how many calls the window ending at now holds.
func (b *book) used(now time.Time, window time.Duration) int {
	cut := 0
	for cut < len(b.usage) && !b.usage[cut].After(now.Add(-window)) {
		cut++
	}
	b.usage = b.usage[cut:]
	return len(b.usage)
}

// failNext uses up one fail_next count, returning the status to answer
// with, or 0 to answer normally.
func (b *book) failNext() int {
	if b.faults.FailNext == 0 {
		return 0
	}
	b.faults.FailNext--
	return b.faults.FailStatus
}

func (b *book) leadStats() Leads {
	st := Leads{Leads: len(b.leads), Upserts: b.upserts, ByKey: make(map[string]Lead, len(b.leads))}
	for key, l := range b.leads {
		fields := make(map[string]any, len(l.Fields))
		for k, v := range l.Fields {
			fields[k] = v
		}
		st.ByKey[key] = Lead{ID: l.ID, Upserts: l.Upserts, Fields: fields}
	}
	return st
}

// bookLocked returns the org's book, creating it; callers hold s.mu.
func (s *Server) bookLocked(orgID string) *book {
	b, ok := s.books[orgID]
	if !ok {
		b = newBook()
		s.books[orgID] = b
	}
	return b
}

// orgBook runs f on a known org and its book under the server's lock.
func (s *Server) orgBook(orgID string, f func(*Org, *book) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orgs[orgID]
	if !ok {
		return errUnknownOrg
	}
	return f(o, s.bookLocked(orgID))
}

// onBook serves a bodyless control request about an org's book: do runs
// on it under the server's lock, and its result is the answer.
func (s *Server) onBook(do func(*book) any) http.HandlerFunc {
	find := func(id string) (any, error) {
		var out any
		err := s.orgBook(id, func(_ *Org, b *book) error {
			out = do(b)
			return nil
		})
		return out, err
	}
	return crmfake.Handle(fake, "id", find, func(out any) any { return out })
}

// handleSetFaults serves POST /control/orgs/{id}/faults: the body is
// checked before the org is looked at, so bad input changes nothing.
func (s *Server) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var u FaultsUpdate
	if err := crmfake.DecodeBody(r, &u, false, `{"fail_next":3,"fail_status":503}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	var f Faults
	err := s.orgBook(r.PathValue("id"), func(_ *Org, b *book) error {
		changed, err := b.faults.apply(u)
		if err != nil {
			return err
		}
		b.faults, f = changed, changed
		return nil
	})
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusOK, f)
}
