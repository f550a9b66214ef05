package sandboxfake

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// MaxBatchSize is the most contacts one POST /api/v1/contacts/batch
// accepts.
const MaxBatchSize = 100

// maxContactsBodyBytes bounds a contacts batch: MaxBatchSize leads of up to
// 64 KiB each (the intake limit) plus the JSON around them.
const maxContactsBodyBytes = 8 << 20

// maxContactKeyBytes bounds a contact key; our lead IDs are far shorter.
const maxContactKeyBytes = 256

// Bounds of the fault settings, generous for tests yet small enough that a
// typo cannot hang a dev stack for hours.
const (
	maxFaultCount         = 1_000_000
	maxLatencyMS          = 60_000
	maxRetryAfterSeconds  = 3600
	defaultFailStatus     = http.StatusServiceUnavailable
	defaultRetryAfterSecs = 1
)

// RejectFields returns the contact fields a reject rule (and a refuse
// rule) can test.
func RejectFields() []string { return []string{"source", "name", "email", "phone", "message"} }

// DefaultRefuseStatus is the status a refuse rule answers with unless told
// otherwise: the sandbox refusing a batch for what it carries.
const DefaultRefuseStatus = http.StatusBadRequest

// Faults are the failures the sandbox simulates on one account's contacts
// calls (not on GET /api/v1/me unless FailMe says so, so validation keeps
// telling the truth about credentials during an outage). The control API
// merges changes into them and DELETE resets them to DefaultFaults.
type Faults struct {
	// FailNext answers the next FailNext contacts calls with FailStatus,
	// counting down per call.
	FailNext int `json:"fail_next"`
	// FailStatus is the status of a failed call, 400..599 (default 503).
	FailStatus int `json:"fail_status"`
	// LatencyMS delays every contacts call by this many milliseconds.
	LatencyMS int `json:"latency_ms"`
	// FailMe extends FailNext to GET /api/v1/me: the next FailNext calls of
	// either API answer FailStatus, so validation cannot run either. Off,
	// an outage of the contacts API leaves validation untouched.
	FailMe bool `json:"fail_me"`
	// RateLimitNext answers the next RateLimitNext contacts calls with 429,
	// counting down per call; it is used up before FailNext.
	RateLimitNext int `json:"rate_limit_next"`
	// RetryAfterSeconds is the Retry-After of a 429, 0 for none (default 1).
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// RejectField and RejectContains form the reject rule: a contact whose
	// field (source, name, email, phone or message) contains RejectContains
	// (case-sensitive) is rejected. Both empty: no rule.
	RejectField    string `json:"reject_field"`
	RejectContains string `json:"reject_contains"`
	// RefuseField and RefuseContains form the refuse rule: a contacts call
	// carrying a contact whose field contains RefuseContains is refused as
	// a whole, every time, with RefuseStatus (default 400, code
	// batch_refused; a 5xx, code simulated_failure, makes the calls that
	// carry that contact fail as in an outage that spares all others).
	// Nothing of such a call is stored. Both empty: no rule.
	RefuseField    string `json:"refuse_field"`
	RefuseContains string `json:"refuse_contains"`
	RefuseStatus   int    `json:"refuse_status"`
}

// DefaultFaults returns the faults of an account nobody has set any on: no
// failures, and the defaults a later fail_next / rate_limit_next / refuse
// rule uses.
func DefaultFaults() Faults {
	return Faults{FailStatus: defaultFailStatus, RetryAfterSeconds: defaultRetryAfterSecs, RefuseStatus: DefaultRefuseStatus}
}

// FaultsUpdate is a change to an account's Faults, the body of POST
// /control/keys/{key}/faults: nil fields keep their current value. Setting
// RejectField (RefuseField) to "" removes the reject (refuse) rule.
type FaultsUpdate struct {
	FailNext          *int    `json:"fail_next,omitempty"`
	FailStatus        *int    `json:"fail_status,omitempty"`
	LatencyMS         *int    `json:"latency_ms,omitempty"`
	FailMe            *bool   `json:"fail_me,omitempty"`
	RateLimitNext     *int    `json:"rate_limit_next,omitempty"`
	RetryAfterSeconds *int    `json:"retry_after_seconds,omitempty"`
	RejectField       *string `json:"reject_field,omitempty"`
	RejectContains    *string `json:"reject_contains,omitempty"`
	RefuseField       *string `json:"refuse_field,omitempty"`
	RefuseContains    *string `json:"refuse_contains,omitempty"`
	RefuseStatus      *int    `json:"refuse_status,omitempty"`
}

// apply returns f changed by u, or an error naming the first invalid field.
// Values are checked before anything changes, and the rule's text is never
// echoed.
func (f Faults) apply(u FaultsUpdate) (Faults, error) {
	// Every value is checked; the first problem is reported.
	if err := cmp.Or(
		crmfake.SetInt("fail_next", u.FailNext, 0, maxFaultCount, &f.FailNext),
		crmfake.SetInt("fail_status", u.FailStatus, 400, 599, &f.FailStatus),
		crmfake.SetInt("latency_ms", u.LatencyMS, 0, maxLatencyMS, &f.LatencyMS),
		crmfake.SetInt("rate_limit_next", u.RateLimitNext, 0, maxFaultCount, &f.RateLimitNext),
		crmfake.SetInt("retry_after_seconds", u.RetryAfterSeconds, 0, maxRetryAfterSeconds, &f.RetryAfterSeconds),
		crmfake.SetInt("refuse_status", u.RefuseStatus, 400, 599, &f.RefuseStatus),
	); err != nil {
		return Faults{}, err
	}
	if u.FailMe != nil {
		f.FailMe = *u.FailMe
	}
	if err := rules.Set("reject", u.RejectField, u.RejectContains, &f.RejectField, &f.RejectContains); err != nil {
		return Faults{}, err
	}
	if err := rules.Set("refuse", u.RefuseField, u.RefuseContains, &f.RefuseField, &f.RefuseContains); err != nil {
		return Faults{}, err
	}
	return f, nil
}

// rules are the reject and refuse rules of Faults, which name one of
// RejectFields.
var rules = crmfake.Rules{
	Key:     "field",
	Valid:   func(field string) bool { return slices.Contains(RejectFields(), field) },
	Want:    "one of " + strings.Join(RejectFields(), ", "),
	Example: "email",
}

// RecordStats is what GET /control/keys/{key}/records reports about an
// account's contacts: how many distinct keys it holds, how many upserts
// (creates plus updates) it accepted, and the upserts per key. A key with
// more than one upsert was delivered more than once; harmless, since upserts
// are idempotent, but worth counting in exactly-once tests.
type RecordStats struct {
	Records int            `json:"records"`
	Upserts int            `json:"upserts"`
	ByKey   map[string]int `json:"by_key"`
}

// Call is one contacts call in an account's call log: when it arrived, the
// status it was answered with and how many contacts it carried (0 when it
// was refused before its body was read).
type Call struct {
	At       time.Time `json:"at"`
	Status   int       `json:"status"`
	Contacts int       `json:"contacts"`
}

// contactBook is one account's contacts, faults and call log. It lives in
// memory only: records are test data that a restart may lose, and writing
// the state file per call would cap throughput at the disk's fsync rate.
// Its own lock keeps accounts from contending with each other.
type contactBook struct {
	mu       sync.Mutex
	contacts map[string]storedContact
	upserts  int
	lastID   int
	faults   Faults
	calls    crmfake.CallLog[Call]
}

// storedContact is what the sandbox keeps of a contact. The contents are
// validated and dropped: nothing needs them, and PII not kept cannot leak.
type storedContact struct {
	id      string
	upserts int
}

func newContactBook() *contactBook {
	return &contactBook{contacts: map[string]storedContact{}, faults: DefaultFaults()}
}

func (b *contactBook) logCall(c Call) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls.Add(c)
}

func (b *contactBook) callLog() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls.List()
}

func (b *contactBook) stats() RecordStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := RecordStats{Records: len(b.contacts), Upserts: b.upserts, ByKey: make(map[string]int, len(b.contacts))}
	for key, c := range b.contacts {
		st.ByKey[key] = c.upserts
	}
	return st
}

func (b *contactBook) currentFaults() Faults {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.faults
}

func (b *contactBook) updateFaults(u FaultsUpdate) (Faults, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.faults.apply(u)
	if err != nil {
		return Faults{}, err
	}
	b.faults = f
	return f, nil
}

// meFailure uses up one fail_next count for a GET /api/v1/me call when
// fail_me is set, returning the status to answer with, or 0 to answer
// normally.
func (b *contactBook) meFailure() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.faults.FailMe || b.faults.FailNext == 0 {
		return 0
	}
	b.faults.FailNext--
	return b.faults.FailStatus
}

func (b *contactBook) clearFaults() Faults {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = DefaultFaults()
	return b.faults
}

// contactIn is one contact of a batch request (crm.Record's fields).
// Attributes stay raw: the sandbox only checks they are an object.
type contactIn struct {
	Key        string          `json:"key"`
	Source     string          `json:"source"`
	Name       string          `json:"name"`
	FirstName  string          `json:"first_name"`
	LastName   string          `json:"last_name"`
	Company    string          `json:"company"`
	Email      string          `json:"email"`
	Phone      string          `json:"phone"`
	Message    string          `json:"message"`
	Attributes json.RawMessage `json:"attributes"`
}

func (c *contactIn) field(name string) string {
	switch name {
	case "source":
		return c.Source
	case "name":
		return c.Name
	case "email":
		return c.Email
	case "phone":
		return c.Phone
	case "message":
		return c.Message
	}
	return ""
}

// contactsRequest is the body of POST /api/v1/contacts/batch.
type contactsRequest struct {
	Contacts []contactIn `json:"contacts"`
}

// The statuses of one contact in a batch response.
const (
	contactCreated  = "created"
	contactUpdated  = "updated"
	contactRejected = "rejected"
)

// contactResult is one contact's outcome in a batch response.
type contactResult struct {
	Key    string `json:"key"`
	Status string `json:"status"`
	ID     string `json:"id,omitempty"`
	Error  string `json:"error,omitempty"`
}

// contactsResponse is the 200 body of POST /api/v1/contacts/batch.
type contactsResponse struct {
	Results []contactResult `json:"results"`
}

// upsert applies a batch under the book's lock, unless a fault answers the
// call first: a rate limit, then a failure, each using up one count, then
// the refuse rule (refused reports that it was that rule). It returns the
// status to answer with and, for 200, the results.
func (b *contactBook) upsert(contacts []contactIn) (status int, retryAfter int, refused bool, results []contactResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.faults.RateLimitNext > 0:
		b.faults.RateLimitNext--
		return http.StatusTooManyRequests, b.faults.RetryAfterSeconds, false, nil
	case b.faults.FailNext > 0:
		b.faults.FailNext--
		return b.faults.FailStatus, 0, false, nil
	case b.refuses(contacts):
		return b.faults.RefuseStatus, 0, true, nil
	}
	results = make([]contactResult, len(contacts))
	for i := range contacts {
		c := &contacts[i]
		if reason := b.rejectReason(c); reason != "" {
			results[i] = contactResult{Key: c.Key, Status: contactRejected, Error: reason}
			continue
		}
		stored, exists := b.contacts[c.Key]
		status := contactUpdated
		if !exists {
			b.lastID++
			stored.id = "ct_" + strconv.Itoa(b.lastID)
			status = contactCreated
		}
		stored.upserts++
		b.contacts[c.Key] = stored
		b.upserts++
		results[i] = contactResult{Key: c.Key, Status: status, ID: stored.id}
	}
	return http.StatusOK, 0, false, results
}

// refuses reports whether the refuse rule refuses a call carrying
// contacts; callers hold b.mu.
func (b *contactBook) refuses(contacts []contactIn) bool {
	f := b.faults
	if f.RefuseField == "" {
		return false
	}
	for i := range contacts {
		if strings.Contains(contacts[i].field(f.RefuseField), f.RefuseContains) {
			return true
		}
	}
	return false
}

// rejectReason says why a contact is refused, or "" to accept it. Reasons
// name the field, never its value: they reach logs and customers.
func (b *contactBook) rejectReason(c *contactIn) string {
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		return "invalid email"
	}
	if f := b.faults; f.RejectField != "" && strings.Contains(c.field(f.RejectField), f.RejectContains) {
		return "rejected by the sandbox reject rule on field " + f.RejectField
	}
	return ""
}

// contactsCaller is what a contacts call needs to know about its account,
// read in one step under the server lock.
type contactsCaller struct {
	revoked    bool
	apiEnabled bool
	canWrite   bool
	book       *contactBook
}

// contactsCaller returns the caller with API key key; ok is false for an
// unknown key. The account's book is created on first use.
func (s *Server) contactsCaller(key string) (contactsCaller, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return contactsCaller{}, false
	}
	return contactsCaller{
		revoked:    a.Revoked,
		apiEnabled: a.APIEnabled,
		canWrite:   slices.Contains(a.Scopes, ScopeContactsWrite),
		book:       s.bookLocked(key),
	}, true
}

// book returns the contact book of the account with API key key.
func (s *Server) book(key string) (*contactBook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[key]; !ok {
		return nil, errUnknownKey
	}
	return s.bookLocked(key), nil
}

// bookLocked returns key's book, creating it; callers hold s.mu.
func (s *Server) bookLocked(key string) *contactBook {
	b, ok := s.books[key]
	if !ok {
		b = newContactBook()
		s.books[key] = b
	}
	return b
}

// contactsReply is the answer to a contacts call, built before it is logged
// and written so the call log is complete by the time the client has its
// response.
type contactsReply struct {
	status     int
	retryAfter int
	err        *crmfake.Error
	body       any
}

// handleContactsBatch serves POST /api/v1/contacts/batch. An account's
// calls are logged whatever their outcome; calls with a missing or unknown
// key have no account to log them in.
func (s *Server) handleContactsBatch(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now().UTC()
	key, ok := bearerKey(r.Header.Get("Authorization"))
	if !ok {
		writeMissingKey(w)
		return
	}
	caller, ok := s.contactsCaller(key)
	if !ok {
		writeInvalidKey(w)
		return
	}
	reply, contacts := s.serveContacts(r, caller)
	caller.book.logCall(Call{At: arrived, Status: reply.status, Contacts: contacts})
	switch {
	case reply.status == http.StatusUnauthorized:
		writeInvalidKey(w)
	case reply.err != nil:
		if reply.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(reply.retryAfter))
		}
		fake.WriteError(w, reply.err)
	default:
		fake.WriteJSON(w, reply.status, reply.body)
	}
}

// serveContacts works out the reply to a contacts call and how many contacts
// it carried. The order: latency (a slow CRM is slow for every call), the
// key, API access and scope, the body, then the fault counters, then the
// upserts. The sandbox finishes a call even if the client has given up on
// it, as a real CRM would: a push that timed out may well have been applied.
func (s *Server) serveContacts(r *http.Request, caller contactsCaller) (contactsReply, int) {
	if ms := caller.book.currentFaults().LatencyMS; ms > 0 {
		s.sleep(time.Duration(ms) * time.Millisecond)
	}
	switch {
	case caller.revoked:
		return contactsReply{status: http.StatusUnauthorized}, 0
	case !caller.apiEnabled:
		return errorReply(&crmfake.Error{Status: http.StatusForbidden, Code: "api_disabled",
			Message: "API access is disabled for this account: enable it in the account settings"}), 0
	case !caller.canWrite:
		return errorReply(&crmfake.Error{Status: http.StatusForbidden, Code: "insufficient_scope",
			Message: "the API key lacks scope " + ScopeContactsWrite + ": grant it, or use a key that has it"}), 0
	}
	req, err := decodeContacts(r)
	if err != nil {
		return errorReply(err), len(req.Contacts)
	}
	status, retryAfter, refused, results := caller.book.upsert(req.Contacts)
	switch {
	case status == http.StatusOK:
		return contactsReply{status: status, body: contactsResponse{Results: results}}, len(req.Contacts)
	case refused && status < 500:
		// Which field, never its value or which contact: the caller
		// finds the contact by splitting the batch.
		return errorReply(&crmfake.Error{Status: status, Code: "batch_refused",
			Message: fmt.Sprintf("the batch was refused: a contact's %s matches the account's refuse rule (simulated); send that contact on its own to find it", caller.book.currentFaults().RefuseField)}), len(req.Contacts)
	case status == http.StatusTooManyRequests:
		reply := errorReply(&crmfake.Error{Status: status, Code: "rate_limited",
			Message: "rate limit exceeded (simulated): retry after the Retry-After delay"})
		reply.retryAfter = retryAfter
		return reply, len(req.Contacts)
	default:
		return errorReply(&crmfake.Error{Status: status, Code: "simulated_failure",
			Message: fmt.Sprintf("simulated failure (HTTP %d), set with the sandbox's fail_next fault", status)}), len(req.Contacts)
	}
}

func errorReply(err *crmfake.Error) contactsReply {
	return contactsReply{status: err.Status, err: err}
}

// decodeContacts reads and checks a batch. Its errors name fields and
// positions, never values: a value may be lead PII. On error, the request
// still holds whatever contacts were decoded, for the call log.
func decodeContacts(r *http.Request) (contactsRequest, *crmfake.Error) {
	const example = `{"contacts":[{"key":"lead_1","source":"partner","email":"a@example.com"}]}`
	var req contactsRequest
	data, err := io.ReadAll(io.LimitReader(r.Body, maxContactsBodyBytes+1))
	if err != nil {
		return req, crmfake.BadRequest("could not read the request body: %v", err)
	}
	if len(data) > maxContactsBodyBytes {
		return req, &crmfake.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("request body is larger than %d bytes: send at most %d contacts per batch", maxContactsBodyBytes, MaxBatchSize)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return contactsRequest{}, crmfake.BadRequest("request body is not valid: %s; send e.g. %s", crmfake.DescribeJSONError(err), example)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return contactsRequest{}, crmfake.BadRequest("request body has data after the JSON object: send exactly one object, e.g. %s", example)
	}
	if n := len(req.Contacts); n == 0 || n > MaxBatchSize {
		return req, crmfake.BadRequest("contacts must hold 1 to %d contacts, not %d: split larger batches", MaxBatchSize, n)
	}
	for i := range req.Contacts {
		c := &req.Contacts[i]
		switch {
		case c.Key == "":
			return req, crmfake.BadRequest("contacts[%d].key is empty: every contact needs its lead ID as key", i)
		case len(c.Key) > maxContactKeyBytes:
			return req, crmfake.BadRequest("contacts[%d].key is longer than %d bytes", i, maxContactKeyBytes)
		}
		if attrs := bytes.TrimSpace(c.Attributes); len(attrs) > 0 && attrs[0] != '{' && !bytes.Equal(attrs, []byte("null")) {
			return req, crmfake.BadRequest("contacts[%d].attributes must be a JSON object", i)
		}
	}
	return req, nil
}
