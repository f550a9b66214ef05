// Package followupbossfake is a fake Follow Up Boss: an HTTP server that
// speaks the part of the Follow Up Boss API (docs.followupboss.com) the
// followupboss connector calls, with the documented bodies, status codes and
// rate-limit headers, plus a control API through which tests and the dev
// stack play the customer's part and the CRM's bad days, and the Client of
// that control API. It shares no code with the connector (crm/followupboss),
// so the connector's tests and the contract suite (crm/crmtest) check the
// connector against an independent implementation of the API.
//
// # The Follow Up Boss API
//
// Every call authenticates with HTTP Basic auth, the API key as the user
// name and an empty password, and identifies the calling system with
// X-System and X-System-Key:
//
//	GET  /v1/identity                      200 {"account":{"id","domain","owner":{...}},"user":{"id","name","email"}}
//	GET  /v1/people?tags=T&fields=..&limit=N
//	                                       200 {"_metadata":{"collection","offset","limit","total"},"people":[person...]}
//	POST /v1/events                        body {"source","system","type","message","person":{"firstName","lastName","emails":[{"value"}],"phones":[{"value"}],"tags":[...]}}
//	                                       201 person (a new person), 200 person (an existing one), 204 empty (the source's lead flow is archived)
//
// A person is {"id","created","updated","name","firstName","lastName",
// "source","emails":[{"value"}],"phones":[{"value"}],"tags":[...]}.
// POST /v1/events looks for an existing person by email (case-insensitive)
// or phone (digits only) and updates it, adding the event's emails, phones
// and tags, as Follow Up Boss does; otherwise it creates one. Every event is
// recorded, so sending the same event twice logs it twice (what the real
// CRM is expected to do; its docs do not say). GET /v1/people?tags= answers
// the people holding any of the comma-separated tags (exact, case-insensitive).
//
// Errors are JSON {"errorMessage": "..."}. A missing, unknown or revoked key
// is 401 with a WWW-Authenticate header and no rate-limit headers. An
// expired account (its grace period, POST /control/keys/{key}/expire)
// answers 403 to every call but POST /v1/events, which keeps working "so
// that there is no data loss"; a locked account (the grace period over,
// POST /control/keys/{key}/lock) answers 403 to every call. A bad event is
// 400 with an errorMessage that, like many real CRMs' messages, quotes the
// offending value: an email without "@" ("Invalid email address: ..."), or
// a field matching the reject rule (Faults). A body over 1 MiB, or a field
// matching the refuse rule, is 413.
//
// # Rate limits
//
// Follow Up Boss limits each system's calls per account in a sliding
// 10-second window per context: GET /v1/identity and GET /v1/people count
// in "global" (250 calls for a registered system, 125 without a valid
// X-System-Key), POST /v1/events in "POST.events" (documented as
// "unlimited*"; the fake allows 1000). Every authenticated answer carries
// X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Window (seconds) and
// X-RateLimit-Context; a call over the limit is 429 with Retry-After
// (seconds until the window has room) and is not counted. POST
// /control/keys/{key}/limits sets one limit for every context of an
// account, e.g. 3 calls per second for a pacing test.
//
// # The control API
//
// The control API has no authentication and must never be exposed
// publicly; keys appear in its paths. Every error is JSON {"error", "code"}.
//
//	POST   /control/accounts                 body {} optional → 201 Account (active, with a fresh API key)
//	GET    /control/accounts/{key}           200 Account
//	POST   /control/keys/{key}/revoke        200 Account; the key stops authenticating (401)
//	POST   /control/keys/{key}/restore       200 Account; the key authenticates again
//	POST   /control/keys/{key}/expire        200 Account; the account's subscription expired: grace period
//	POST   /control/keys/{key}/lock          200 Account; the grace period is over: every call 403
//	POST   /control/keys/{key}/reactivate    200 Account; the account is active again
//	GET    /control/keys/{key}/faults        200 Faults
//	POST   /control/keys/{key}/faults        body FaultsUpdate, merged into the account's faults → 200 Faults
//	DELETE /control/keys/{key}/faults        200 DefaultFaults(): no faults
//	POST   /control/keys/{key}/limits        body {"limit":n,"window_seconds":s} → 200 Limits; every context allows n calls per s
//	DELETE /control/keys/{key}/limits        200 Limits: Follow Up Boss's defaults again
//	GET    /control/keys/{key}/records       200 RecordStats {"people","events","events_by_tag","people_by_tag"}
//	GET    /control/keys/{key}/events        200 [Event], every event received, oldest first (with its lead data)
//	GET    /control/keys/{key}/calls         200 [Call], the last 1000 API calls, oldest first
//	POST   /control/systems                  body {"system","key"} → 201; calls with this X-System-Key get a registered system's limits
//
// Faults apply to the API calls of one account, in this order: latency_ms
// delays every call; fail_next answers the next calls, whatever their
// endpoint, with fail_status (a simulated outage, after authentication so
// it is logged against the account); then the account's state (403);
// rate_limit_next answers the next calls to /v1/people or /v1/events 429
// with Retry-After retry_after_seconds, before the window's own limit;
// only then is the call served. Every API call of a known key, answered
// however, is in its call log with the fake's timestamp.
//
// Accounts and registered systems persist in the state file (written 0600:
// it holds API keys); people, events, faults, limits and call logs live in
// memory only. Each account has its own lock.
package followupbossfake

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// The states of an account's subscription.
const (
	// StateActive: every call is served.
	StateActive = "active"
	// StateExpired: the subscription expired and the account is in its
	// grace period: POST /v1/events still works, every other call is 403.
	StateExpired = "expired"
	// StateLocked: the grace period is over: every call is 403.
	StateLocked = "locked"
)

// Account is a Follow Up Boss account with the one user whose API key the
// integration uses, as the control API returns it.
type Account struct {
	ID        int       `json:"id"`
	Domain    string    `json:"domain"`
	APIKey    string    `json:"api_key"`
	UserID    int       `json:"user_id"`
	UserName  string    `json:"user_name"`
	UserEmail string    `json:"user_email"`
	Revoked   bool      `json:"revoked"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
}

// System is a registered system: the X-System name and X-System-Key a
// vendor gets from Follow Up Boss's system registration.
type System struct {
	System string `json:"system"`
	Key    string `json:"key"`
}

// stateFile is the JSON document a persistent Server keeps.
type stateFile struct {
	Accounts []Account `json:"accounts"`
	Systems  []System  `json:"systems"`
}

// fake is how the shared plumbing names the fake.
var fake = crmfake.Fake{Name: "fake Follow Up Boss", DevURL: "http://127.0.0.1:8093"}

// errUnknownKey never names the key: messages end up in logs.
var errUnknownKey = &crmfake.Error{
	Status:  http.StatusNotFound,
	Code:    "unknown_api_key",
	Message: "no fake Follow Up Boss account has that API key: check the key, or create an account with POST /control/accounts",
}

// Server is the fake Follow Up Boss. It is safe for concurrent use.
type Server struct {
	state crmfake.StateFile
	// now and sleep are the fake's clock; tests replace them to drive the
	// sliding windows and observe latency without measuring time.
	now   func() time.Time
	sleep func(time.Duration)

	mu       sync.Mutex
	accounts map[string]*Account
	systems  map[string]string
	// books holds each account's people, events, faults, limits and call
	// log, keyed by API key. Only the map is guarded by mu.
	books    map[string]*book
	lastAcct int
}

// NewServer returns a fake Follow Up Boss. With statePath "" it keeps
// accounts and systems in memory; otherwise it loads them from that JSON
// file (if present) and rewrites it after every change, so `integrations
// dev` keeps them across restarts. People, events and faults are never
// written: see the package documentation.
func NewServer(statePath string) (*Server, error) {
	s := &Server{
		state:    crmfake.StateFile{Path: statePath, Name: "fake Follow Up Boss", Fresh: "no accounts"},
		now:      time.Now,
		sleep:    time.Sleep,
		accounts: map[string]*Account{},
		systems:  map[string]string{},
		books:    map[string]*book{},
	}
	var state stateFile
	if _, err := s.state.Load(&state); err != nil {
		return nil, err
	}
	corrupt := s.state.Corrupt
	for i := range state.Accounts {
		a := state.Accounts[i]
		switch {
		case a.ID == 0 || a.APIKey == "":
			return nil, corrupt(fmt.Sprintf("account %d has no ID or API key", i))
		case !validState(a.State):
			return nil, corrupt(fmt.Sprintf("account %d has state %q", a.ID, a.State))
		}
		if _, dup := s.accounts[a.APIKey]; dup {
			return nil, corrupt(fmt.Sprintf("account %d repeats another account's API key", a.ID))
		}
		s.accounts[a.APIKey] = &a
		s.lastAcct = max(s.lastAcct, a.ID)
	}
	for _, sys := range state.Systems {
		if sys.System == "" || sys.Key == "" {
			return nil, corrupt("a system has no name or key")
		}
		s.systems[sys.Key] = sys.System
	}
	return s, nil
}

func validState(state string) bool {
	return state == StateActive || state == StateExpired || state == StateLocked
}

// RegisterSystem registers a system, as Follow Up Boss's system
// registration does: calls with its X-System-Key get a registered system's
// rate limits.
func (s *Server) RegisterSystem(system, key string) error {
	if strings.TrimSpace(system) == "" || strings.TrimSpace(key) == "" {
		return crmfake.BadRequest(`system and key must both be set, e.g. {"system":"AcmeLeads","key":"..."}`)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	previous, existed := s.systems[key]
	s.systems[key] = system
	if err := s.save(); err != nil {
		if existed {
			s.systems[key] = previous
		} else {
			delete(s.systems, key)
		}
		return err
	}
	return nil
}

// registered reports whether key is a registered system's X-System-Key.
func (s *Server) registered(key string) bool {
	if key == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.systems[key]
	return ok
}

// save writes the state file (see crmfake.StateFile.Save). Callers hold
// s.mu.
func (s *Server) save() error {
	if s.state.Path == "" {
		return nil
	}
	state := stateFile{Accounts: make([]Account, 0, len(s.accounts)), Systems: make([]System, 0, len(s.systems))}
	for _, a := range s.accounts {
		state.Accounts = append(state.Accounts, *a)
	}
	slices.SortFunc(state.Accounts, func(a, b Account) int { return cmp.Compare(a.ID, b.ID) })
	for key, name := range s.systems {
		state.Systems = append(state.Systems, System{System: name, Key: key})
	}
	slices.SortFunc(state.Systems, func(a, b System) int { return cmp.Compare(a.System+a.Key, b.System+b.Key) })
	return s.state.Save(state)
}

// createAccount adds an active account with a fresh API key.
func (s *Server) createAccount() (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAcct++
	id := s.lastAcct
	domain := "fake" + crmfake.RandomHex(4)
	a := Account{
		ID: id,
		// Real keys are 38 hex digits, e.g. in Follow Up Boss's API examples.
		APIKey:    crmfake.RandomHex(19),
		Domain:    domain,
		UserID:    1,
		UserName:  "Account Owner",
		UserEmail: "owner@" + domain + ".example.com",
		State:     StateActive,
		CreatedAt: s.now().UTC().Truncate(time.Second),
	}
	s.accounts[a.APIKey] = &a
	if err := s.save(); err != nil {
		delete(s.accounts, a.APIKey)
		return Account{}, err
	}
	return a, nil
}

// account returns the account with API key key.
func (s *Server) account(key string) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return Account{}, errUnknownKey
	}
	return *a, nil
}

// update applies change to a copy of the account and keeps it only once
// the state is saved, so a failed request changes nothing.
func (s *Server) update(key string, change func(*Account)) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current, ok := s.accounts[key]
	if !ok {
		return Account{}, errUnknownKey
	}
	updated := *current
	change(&updated)
	s.accounts[key] = &updated
	if err := s.save(); err != nil {
		s.accounts[key] = current
		return Account{}, err
	}
	return updated, nil
}

// book returns the book of the account with API key key.
func (s *Server) book(key string) (*book, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[key]; !ok {
		return nil, errUnknownKey
	}
	return s.bookLocked(key), nil
}

// bookLocked returns key's book, creating it; callers hold s.mu.
func (s *Server) bookLocked(key string) *book {
	b, ok := s.books[key]
	if !ok {
		b = newBook()
		s.books[key] = b
	}
	return b
}

// caller is what an API call needs to know about its account, read in one
// step under the server lock; ok is false for an unknown key.
func (s *Server) caller(key string) (Account, *book, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return Account{}, nil, false
	}
	return *a, s.bookLocked(key), true
}

// Handler returns the HTTP handler serving both APIs.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()

	// Follow Up Boss API.
	mux.HandleFunc("GET /v1/identity", s.api(contextGlobal, s.serveIdentity))
	mux.HandleFunc("GET /v1/people", s.api(contextGlobal, s.servePeople))
	mux.HandleFunc("POST /v1/events", s.api(contextEvents, s.serveEvent))

	// Control API.
	mux.HandleFunc("POST /control/accounts", s.handleCreateAccount)
	mux.HandleFunc("GET /control/accounts/{key}", crmfake.Handle(fake, "key", s.account, func(a Account) Account { return a }))
	mux.HandleFunc("POST /control/keys/{key}/revoke", s.handleUpdate(func(a *Account) { a.Revoked = true }))
	mux.HandleFunc("POST /control/keys/{key}/restore", s.handleUpdate(func(a *Account) { a.Revoked = false }))
	mux.HandleFunc("POST /control/keys/{key}/expire", s.handleUpdate(func(a *Account) { a.State = StateExpired }))
	mux.HandleFunc("POST /control/keys/{key}/lock", s.handleUpdate(func(a *Account) { a.State = StateLocked }))
	mux.HandleFunc("POST /control/keys/{key}/reactivate", s.handleUpdate(func(a *Account) { a.State = StateActive }))
	mux.HandleFunc("GET /control/keys/{key}/faults", crmfake.Handle(fake, "key", s.book, (*book).currentFaults))
	mux.HandleFunc("POST /control/keys/{key}/faults", crmfake.HandleChange(fake, "key", `{"fail_next":3,"fail_status":503}`, s.book, (*book).updateFaults))
	mux.HandleFunc("DELETE /control/keys/{key}/faults", crmfake.Handle(fake, "key", s.book, (*book).clearFaults))
	mux.HandleFunc("POST /control/keys/{key}/limits", s.handleSetLimits)
	mux.HandleFunc("DELETE /control/keys/{key}/limits", crmfake.Handle(fake, "key", s.book, (*book).clearLimits))
	mux.HandleFunc("GET /control/keys/{key}/records", crmfake.Handle(fake, "key", s.book, (*book).stats))
	mux.HandleFunc("GET /control/keys/{key}/events", crmfake.Handle(fake, "key", s.book, (*book).eventLog))
	mux.HandleFunc("GET /control/keys/{key}/calls", crmfake.Handle(fake, "key", s.book, (*book).callLog))
	mux.HandleFunc("POST /control/systems", s.handleRegisterSystem)

	return notFoundAsJSON(mux)
}

// notFoundAsJSON answers requests no route matches in JSON: Follow Up
// Boss's shape under /v1/, the control API's elsewhere. The path is never
// echoed: a control path holds an API key.
func notFoundAsJSON(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			fake.WriteJSON(w, http.StatusNotFound, apiError{ErrorMessage: "Not found: the fake Follow Up Boss serves GET /v1/identity, GET /v1/people and POST /v1/events."})
			return
		}
		fake.WriteError(w, &crmfake.Error{Status: http.StatusNotFound, Code: "not_found",
			Message: "no such endpoint: see the documentation of package followupbossfake"})
	})
}

func (s *Server) handleCreateAccount(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if err := crmfake.DecodeBody(r, &req, true, `{}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	a, err := s.createAccount()
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusCreated, a)
}

// handleUpdate serves a bodyless, idempotent control operation on one
// account.
func (s *Server) handleUpdate(change func(*Account)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := s.update(r.PathValue("key"), change)
		if err != nil {
			fake.WriteError(w, err)
			return
		}
		fake.WriteJSON(w, http.StatusOK, a)
	}
}

func (s *Server) handleRegisterSystem(w http.ResponseWriter, r *http.Request) {
	var sys System
	if err := crmfake.DecodeBody(r, &sys, false, `{"system":"AcmeLeads","key":"..."}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	if err := s.RegisterSystem(sys.System, sys.Key); err != nil {
		fake.WriteError(w, err)
		return
	}
	// The key is the caller's own; echoing the name only is enough.
	fake.WriteJSON(w, http.StatusCreated, map[string]string{"system": sys.System})
}
