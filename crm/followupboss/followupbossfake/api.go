package followupbossfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxEventBodyBytes is the largest POST /v1/events body the fake takes;
// larger ones are 413. Follow Up Boss documents no limit; leads are at most
// 64 KiB at our intake.
const maxEventBodyBytes = 1 << 20

// apiError is Follow Up Boss's error body.
type apiError struct {
	ErrorMessage string `json:"errorMessage"`
}

// reply is the answer to an API call, worked out before the call is logged
// and written, so the log is complete once the client has its response.
type reply struct {
	status int
	rate   *rate
	body   any // nil: no body (204)
}

func errorReply(status int, format string, args ...any) reply {
	return reply{status: status, body: apiError{ErrorMessage: fmt.Sprintf(format, args...)}}
}

// call is one authenticated API call as an endpoint sees it.
type call struct {
	r       *http.Request
	account Account
	book    *book
	now     time.Time
}

// api wraps an endpoint of rate-limit context context: authentication,
// latency, the outage and rate-limit faults, the sliding window, the call
// log and the rate-limit headers.
func (s *Server) api(context string, serve func(call) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		arrived := s.now().UTC()
		key, ok := basicKey(r.Header.Get("Authorization"))
		if !ok {
			writeUnauthorized(w)
			return
		}
		a, b, ok := s.caller(key)
		if !ok {
			writeUnauthorized(w)
			return
		}
		if ms := b.currentFaults().LatencyMS; ms > 0 {
			s.sleep(time.Duration(ms) * time.Millisecond)
		}
		rep := s.answer(context, call{r: r, account: a, book: b, now: arrived}, serve)
		b.logCall(Call{At: arrived, Method: r.Method, Path: r.URL.Path, Context: context, Status: rep.status})
		if rep.status == http.StatusUnauthorized {
			writeUnauthorized(w)
			return
		}
		if rt := rep.rate; rt != nil {
			h := w.Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(rt.limit))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(rt.remaining))
			h.Set("X-RateLimit-Window", strconv.Itoa(int(rt.window/time.Second)))
			h.Set("X-RateLimit-Context", rt.context)
			if rt.limited {
				h.Set("Retry-After", strconv.Itoa(rt.retryAfter))
			}
		}
		if rep.body == nil {
			w.WriteHeader(rep.status)
			return
		}
		fake.WriteJSON(w, rep.status, rep.body)
	}
}

// answer works out the reply to an authenticated call, in the order the
// package documentation gives. The fake finishes a call even if the client
// has given up on it, as a real CRM would.
func (s *Server) answer(context string, c call, serve func(call) reply) reply {
	if c.account.Revoked {
		return reply{status: http.StatusUnauthorized}
	}
	if status := c.book.takeFailure(); status != 0 {
		return errorReply(status, "Simulated failure (HTTP %d), set with the fake's fail_next fault.", status)
	}
	registered := s.registered(c.r.Header.Get("X-System-Key"))
	faulted := c.r.URL.Path != "/v1/identity"
	rt := c.book.admit(context, registered, faulted, c.now)
	if rt.limited {
		rep := errorReply(http.StatusTooManyRequests, "Too many requests: the %s rate limit of %d calls per %d seconds is exhausted; retry after the Retry-After delay.",
			rt.context, rt.limit, int(rt.window/time.Second))
		rep.rate = &rt
		return rep
	}
	var rep reply
	switch {
	case c.account.State == StateLocked,
		c.account.State == StateExpired && context != contextEvents:
		rep = errorReply(http.StatusForbidden, "Forbidden: this Follow Up Boss account is not active. The account owner can reactivate it.")
	default:
		rep = serve(c)
	}
	rep.rate = &rt
	return rep
}

// basicKey returns the API key of a Basic Authorization header (the user
// name; the password is ignored, as Follow Up Boss ignores it).
func basicKey(header string) (string, bool) {
	scheme, encoded, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", false
	}
	key, _, _ := strings.Cut(string(decoded), ":")
	return key, key != ""
}

// writeUnauthorized answers 401 with no rate-limit headers: Follow Up Boss
// rejects unauthenticated calls before its limiter.
func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Follow Up Boss API"`)
	fake.WriteJSON(w, http.StatusUnauthorized, apiError{ErrorMessage: "Unauthorized: send a valid API key as the Basic auth user name."})
}

// identity is the answer to GET /v1/identity.
type identity struct {
	Account struct {
		ID     int    `json:"id"`
		Domain string `json:"domain"`
		Owner  user   `json:"owner"`
	} `json:"account"`
	User user `json:"user"`
}

type user struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (s *Server) serveIdentity(c call) reply {
	var id identity
	u := user{ID: c.account.UserID, Name: c.account.UserName, Email: c.account.UserEmail}
	id.Account.ID, id.Account.Domain, id.Account.Owner = c.account.ID, c.account.Domain, u
	id.User = u
	return reply{status: http.StatusOK, body: id}
}

// personOut is Follow Up Boss's person object, as the API answers it.
type personOut struct {
	ID        int        `json:"id"`
	Created   time.Time  `json:"created"`
	Updated   time.Time  `json:"updated"`
	Name      string     `json:"name"`
	FirstName string     `json:"firstName"`
	LastName  string     `json:"lastName"`
	Source    string     `json:"source"`
	Emails    []valueOut `json:"emails"`
	Phones    []valueOut `json:"phones"`
	Tags      []string   `json:"tags"`
}

type valueOut struct {
	Value string `json:"value"`
}

func (p *person) out() personOut {
	values := func(vs []string) []valueOut {
		out := make([]valueOut, len(vs))
		for i, v := range vs {
			out[i] = valueOut{Value: v}
		}
		return out
	}
	return personOut{
		ID: p.id, Created: p.created, Updated: p.updated,
		Name:      strings.TrimSpace(p.firstName + " " + p.lastName),
		FirstName: p.firstName, LastName: p.lastName, Source: p.source,
		Emails: values(p.emails), Phones: values(p.phones), Tags: slices.Clone(p.tags),
	}
}

// peopleList is the answer to GET /v1/people.
type peopleList struct {
	Metadata struct {
		Collection string `json:"collection"`
		Offset     int    `json:"offset"`
		Limit      int    `json:"limit"`
		Total      int    `json:"total"`
	} `json:"_metadata"`
	People []personOut `json:"people"`
}

// servePeople answers GET /v1/people, filtered by tags (any of them) when
// asked; limit defaults to 10 and is at most 100, as Follow Up Boss's.
func (s *Server) servePeople(c call) reply {
	q := c.r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return errorReply(http.StatusBadRequest, "Invalid limit: use a number from 1 to 100.")
		}
		limit = n
	}
	var tags []string
	for _, tag := range strings.Split(q.Get("tags"), ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			tags = append(tags, tag)
		}
	}
	c.book.mu.Lock()
	defer c.book.mu.Unlock()
	var list peopleList
	list.Metadata.Collection, list.Metadata.Limit = "people", limit
	list.People = []personOut{}
	for _, p := range c.book.people {
		if len(tags) > 0 && !slices.ContainsFunc(p.tags, func(have string) bool {
			return slices.ContainsFunc(tags, func(want string) bool { return strings.EqualFold(have, want) })
		}) {
			continue
		}
		list.Metadata.Total++
		if len(list.People) < limit {
			list.People = append(list.People, p.out())
		}
	}
	return reply{status: http.StatusOK, body: list}
}

// eventIn is the body of POST /v1/events, as far as the fake reads it.
type eventIn struct {
	Source  string `json:"source"`
	System  string `json:"system"`
	Type    string `json:"type"`
	Message string `json:"message"`
	Person  *struct {
		FirstName string    `json:"firstName"`
		LastName  string    `json:"lastName"`
		Emails    []valueIn `json:"emails"`
		Phones    []valueIn `json:"phones"`
		Tags      []string  `json:"tags"`
	} `json:"person"`
}

type valueIn struct {
	Value string `json:"value"`
}

func values(vs []valueIn) []string {
	var out []string
	for _, v := range vs {
		if v.Value != "" {
			out = append(out, v.Value)
		}
	}
	return out
}

// field returns the values of a MatchFields field.
func (e *eventIn) field(name string) []string {
	p := e.Person
	switch name {
	case "source":
		return []string{e.Source}
	case "message":
		return []string{e.Message}
	case "firstName":
		return []string{p.FirstName}
	case "lastName":
		return []string{p.LastName}
	case "name":
		return []string{p.FirstName + " " + p.LastName}
	case "email":
		return values(p.Emails)
	case "phone":
		return values(p.Phones)
	}
	return nil
}

// matching returns the first value of field containing contains, and
// whether there is one.
func (e *eventIn) matching(field, contains string) (string, bool) {
	if field == "" {
		return "", false
	}
	for _, v := range e.field(field) {
		if strings.Contains(v, contains) {
			return v, true
		}
	}
	return "", false
}

// serveEvent answers POST /v1/events: the body, the refuse rule (413), bad
// data and the reject rule (400, quoting the value as real CRMs often do),
// an archived source (204), then the person is found or created and the
// event recorded (200 or 201 with the person).
func (s *Server) serveEvent(c call) reply {
	data, err := io.ReadAll(io.LimitReader(c.r.Body, maxEventBodyBytes+1))
	if err != nil {
		return errorReply(http.StatusBadRequest, "Could not read the request body.")
	}
	if len(data) > maxEventBodyBytes {
		return errorReply(http.StatusRequestEntityTooLarge, "Request Entity Too Large")
	}
	var ev eventIn
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&ev); err != nil {
		return errorReply(http.StatusBadRequest, "Invalid JSON in the request body.")
	}
	switch {
	case strings.TrimSpace(ev.Type) == "":
		return errorReply(http.StatusBadRequest, "Event type is required.")
	case ev.Person == nil:
		return errorReply(http.StatusBadRequest, "A person is required.")
	}
	emails, phones := values(ev.Person.Emails), values(ev.Person.Phones)
	if len(emails) == 0 && len(phones) == 0 && ev.Person.FirstName == "" && ev.Person.LastName == "" {
		return errorReply(http.StatusBadRequest, "The person needs a name, an email address or a phone number.")
	}
	f := c.book.currentFaults()
	if _, ok := ev.matching(f.RefuseField, f.RefuseContains); ok {
		return errorReply(http.StatusRequestEntityTooLarge, "Request Entity Too Large")
	}
	for _, email := range emails {
		if !strings.Contains(email, "@") {
			return errorReply(http.StatusBadRequest, "Invalid email address: %s", email)
		}
	}
	if v, ok := ev.matching(f.RejectField, f.RejectContains); ok {
		what := map[string]string{"email": "email address", "phone": "phone number", "firstName": "first name", "lastName": "last name"}[f.RejectField]
		if what == "" {
			what = f.RejectField
		}
		return errorReply(http.StatusBadRequest, "Invalid %s: %s", what, v)
	}
	if slices.Contains(f.ArchivedSources, ev.Source) {
		return reply{status: http.StatusNoContent}
	}
	return c.book.record(&ev, emails, phones, c.now)
}

// record finds the event's person by email or phone, or creates one, and
// records the event.
func (b *book) record(ev *eventIn, emails, phones []string, now time.Time) reply {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.findLocked(emails, phones)
	status := http.StatusOK
	if p == nil {
		b.lastPerson++
		p = &person{id: b.lastPerson, created: now, source: ev.Source}
		b.people = append(b.people, p)
		status = http.StatusCreated
	}
	p.updated = now
	if p.firstName == "" && p.lastName == "" {
		p.firstName, p.lastName = ev.Person.FirstName, ev.Person.LastName
	}
	p.emails = addNew(p.emails, emails, strings.EqualFold)
	p.phones = addNew(p.phones, phones, func(a, b string) bool { return digits(a) == digits(b) })
	p.tags = addNew(p.tags, ev.Person.Tags, strings.EqualFold)
	b.events = append(b.events, Event{
		ID: len(b.events) + 1, PersonID: p.id, At: now, Status: status,
		Type: ev.Type, Source: ev.Source, System: ev.System, Message: ev.Message,
		FirstName: ev.Person.FirstName, LastName: ev.Person.LastName,
		Emails: slices.Clone(emails), Phones: slices.Clone(phones), Tags: slices.Clone(ev.Person.Tags),
	})
	return reply{status: status, body: p.out()}
}

// findLocked returns the person with one of the emails (case-insensitive)
// or else one of the phones (by digits), or nil.
func (b *book) findLocked(emails, phones []string) *person {
	for _, p := range b.people {
		for _, e := range emails {
			if slices.ContainsFunc(p.emails, func(have string) bool { return strings.EqualFold(have, e) }) {
				return p
			}
		}
	}
	for _, p := range b.people {
		for _, ph := range phones {
			if d := digits(ph); d != "" && slices.ContainsFunc(p.phones, func(have string) bool { return digits(have) == d }) {
				return p
			}
		}
	}
	return nil
}

// addNew appends the values of add that have no equal in have.
func addNew(have, add []string, equal func(a, b string) bool) []string {
	for _, v := range add {
		if v != "" && !slices.ContainsFunc(have, func(h string) bool { return equal(h, v) }) {
			have = append(have, v)
		}
	}
	return have
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
