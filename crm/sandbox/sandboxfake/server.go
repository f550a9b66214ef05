// Package sandboxfake is the sandbox CRM: a small simulated CRM for the dev
// stack, the end-to-end tests and the benchmark, and the Client of its
// control API. The connector that talks to it is package crm/sandbox; the
// two share no code, so the connector's tests and the connector contract
// suite (crm/crmtest) check the connector against an independent
// implementation of the API, as they will check each real CRM's connector
// against that CRM's fake (crm/<provider>/<provider>fake).
//
// The Server speaks two HTTP APIs:
//
// The CRM API, what the sandbox connector calls, authenticated with
// "Authorization: Bearer <api key>":
//
//	GET  /api/v1/me                          200 {"account_id","scopes","api_enabled"}; 401 for an unknown or revoked key
//	POST /api/v1/contacts/batch              body {"contacts":[{"key","source","name","email","phone","message","attributes"}]}
//	                                         → 200 {"results":[{"key","status":"created"|"updated"|"rejected","id","error"}]}
//
// /api/v1/me answers even when API access is disabled (api_enabled false) so
// validation can tell that apart from bad credentials.
//
// The contacts batch upserts 1 to MaxBatchSize contacts (else 400) by key:
// a key the account already holds is updated, never created twice, and keeps
// its id. Results come one per contact, in order. An unknown or revoked key
// is 401, disabled API access 403 code api_disabled, a key without scope
// contacts.write 403 code insufficient_scope. A body over 8 MiB is refused
// as a whole with 413 code body_too_large, and a batch carrying a contact
// that matches the account's refuse rule (see Faults) with 400 code
// batch_refused: nothing of either is stored, and the errors name no
// contact. A contact is rejected (status "rejected", "error" the reason,
// nothing stored) when its email is present without an "@" ("invalid
// email") or when it matches the account's reject rule (see Faults); the
// reasons never quote the contact's data.
//
// Contacts, faults and call logs live in memory only and are lost when the
// sandbox restarts; only accounts are persisted. Writing the state file on
// every push would cap the sandbox at the disk's sync rate, and the
// benchmark pushes thousands of records a second through it. Each account
// has its own lock, so accounts do not slow one another down.
//
// The control API, what tests and `integrations sandbox ...` use to play the
// CRM customer's part (and the CRM's bad days). It has no authentication: the
// sandbox is a development tool and must never be exposed publicly.
//
//	POST   /control/accounts                 body {"scopes":[...]} optional → 201 account (default scopes contacts.read, contacts.write)
//	GET    /control/accounts/{key}           200 account
//	POST   /control/keys/{key}/revoke        200 account; the key stops authenticating
//	POST   /control/keys/{key}/restore       200 account; the key authenticates again
//	POST   /control/keys/{key}/drop-scope    body {"scope":"x"} → 200 account; 409 if the account lacks x
//	POST   /control/keys/{key}/add-scope     body {"scope":"x"} → 200 account; no-op if it has x already
//	POST   /control/keys/{key}/disable-api   200 account; api_enabled false
//	POST   /control/keys/{key}/enable-api    200 account; api_enabled true
//	GET    /control/keys/{key}/faults        200 Faults
//	POST   /control/keys/{key}/faults        body FaultsUpdate, merged into the account's faults → 200 Faults
//	DELETE /control/keys/{key}/faults        200 DefaultFaults(): no faults
//	GET    /control/keys/{key}/records       200 RecordStats {"records","upserts","by_key":{key: upserts}}
//	GET    /control/keys/{key}/calls         200 [Call], the last 1000 contacts calls, oldest first
//
// Faults apply to contacts calls only, never to /api/v1/me, so validation
// keeps telling the truth about the credentials during a simulated outage;
// only fail_me extends fail_next to /api/v1/me (an outage of the whole CRM,
// during which validation cannot run: an authenticated /me call then uses up
// one fail_next count and answers fail_status). A contacts call is delayed by latency_ms first (whatever its outcome), then
// checked for key, API access and scope, then its body is checked, then
// rate_limit_next (429, Retry-After retry_after_seconds) and after it
// fail_next (fail_status) each answer one call and count down, then the
// refuse rule answers every call that carries a matching contact with
// refuse_status (400 unless set); only then are the contacts upserted. Every contacts call of a known key, failed or not,
// is in its call log.
//
// Revoke, restore, add-scope, disable-api and enable-api are idempotent.
// Every error, on either API, is JSON {"error": "what went wrong and what to
// do", "code": "machine_readable"} with a 4xx or 5xx status; an unknown key
// is 404. No error message ever contains an API key or a contact's data.
package sandboxfake

import (
	"cmp"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// The scopes an account can hold that the service needs.
const (
	ScopeContactsRead  = "contacts.read"
	ScopeContactsWrite = "contacts.write"
)

// DefaultScopes returns the scopes a new account gets when the request names
// none: everything the service needs.
func DefaultScopes() []string { return []string{ScopeContactsRead, ScopeContactsWrite} }

// Account is a sandbox CRM account, as the control API returns it.
type Account struct {
	ID         string    `json:"account_id"`
	APIKey     string    `json:"api_key"`
	Scopes     []string  `json:"scopes"`
	Revoked    bool      `json:"revoked"`
	APIEnabled bool      `json:"api_enabled"`
	CreatedAt  time.Time `json:"created_at"`
}

func (a Account) clone() Account {
	a.Scopes = slices.Clone(a.Scopes)
	return a
}

// Me is the CRM API's answer to GET /api/v1/me.
type Me struct {
	AccountID  string   `json:"account_id"`
	Scopes     []string `json:"scopes"`
	APIEnabled bool     `json:"api_enabled"`
}

// fake is how the shared plumbing names the sandbox.
var fake = crmfake.Fake{Name: "sandbox CRM", DevURL: "http://127.0.0.1:8090"}

// errUnknownKey never names the key: error messages end up in logs.
var errUnknownKey = &crmfake.Error{
	Status:  http.StatusNotFound,
	Code:    "unknown_api_key",
	Message: "no sandbox account has that API key: check the key, or create an account with POST /control/accounts",
}

// stateFile is the JSON document a persistent Server keeps its accounts in.
type stateFile struct {
	Accounts []Account `json:"accounts"`
}

// Server is the simulated CRM. It is safe for concurrent use.
type Server struct {
	state crmfake.StateFile
	// sleep waits out the latency fault; tests replace it to observe the
	// delays asked for without measuring time.
	sleep func(time.Duration)

	mu sync.Mutex
	// accounts is keyed by API key, which is how both APIs address them.
	accounts map[string]*Account
	// books holds each account's contacts, faults and call log, keyed by
	// API key like accounts. Only the map is guarded by mu; each book has
	// its own lock so busy accounts do not serialize on one another.
	books map[string]*contactBook
}

// NewServer returns a sandbox CRM. With statePath "" it keeps accounts in
// memory; otherwise it loads them from that JSON file (if present) and
// rewrites it after every account change, so `integrations dev` keeps its
// sandbox accounts across restarts. The file holds API keys and is written
// 0600. Contacts, faults and call logs are never written to it: see the
// package documentation.
func NewServer(statePath string) (*Server, error) {
	s := &Server{
		state:    crmfake.StateFile{Path: statePath, Name: "sandbox", Fresh: "no sandbox accounts"},
		sleep:    time.Sleep,
		accounts: map[string]*Account{},
		books:    map[string]*contactBook{},
	}
	var state stateFile
	if _, err := s.state.Load(&state); err != nil {
		return nil, err
	}
	for i := range state.Accounts {
		a := state.Accounts[i]
		if a.ID == "" || a.APIKey == "" {
			return nil, s.state.Corrupt(fmt.Sprintf("account %d has no ID or API key", i))
		}
		if _, dup := s.accounts[a.APIKey]; dup {
			return nil, s.state.Corrupt(fmt.Sprintf("account %s repeats another account's API key", a.ID))
		}
		s.accounts[a.APIKey] = &a
	}
	return s, nil
}

// save writes the state file (see crmfake.StateFile.Save). Callers hold
// s.mu.
func (s *Server) save() error {
	if s.state.Path == "" {
		return nil
	}
	state := stateFile{Accounts: make([]Account, 0, len(s.accounts))}
	for _, a := range s.accounts {
		state.Accounts = append(state.Accounts, *a)
	}
	// A stable order keeps the file diffable.
	slices.SortFunc(state.Accounts, func(a, b Account) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return s.state.Save(state)
}

// createAccount adds an account with the given scopes (nil means
// DefaultScopes).
func (s *Server) createAccount(scopes []string) (Account, error) {
	if scopes == nil {
		scopes = DefaultScopes()
	}
	a := Account{
		ID:         "acct_" + crmfake.RandomHex(6),
		APIKey:     "sbx_" + crmfake.RandomHex(16),
		Scopes:     scopes,
		APIEnabled: true,
		CreatedAt:  time.Now().UTC().Truncate(time.Second),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[a.APIKey] = &a
	if err := s.save(); err != nil {
		delete(s.accounts, a.APIKey)
		return Account{}, err
	}
	return a.clone(), nil
}

// account returns the account with API key key.
func (s *Server) account(key string) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[key]
	if !ok {
		return Account{}, errUnknownKey
	}
	return a.clone(), nil
}

// update applies change to a copy of the account with API key key and keeps
// the copy only if change succeeds and the state is saved, so a rejected or
// failed request changes nothing.
func (s *Server) update(key string, change func(*Account) error) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current, ok := s.accounts[key]
	if !ok {
		return Account{}, errUnknownKey
	}
	updated := current.clone()
	if err := change(&updated); err != nil {
		return Account{}, err
	}
	s.accounts[key] = &updated
	if err := s.save(); err != nil {
		s.accounts[key] = current
		return Account{}, err
	}
	return updated.clone(), nil
}

// Handler returns the HTTP handler serving both APIs.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()

	// CRM API.
	mux.HandleFunc("GET /api/v1/me", s.authenticated(s.handleMe))
	mux.HandleFunc("POST /api/v1/contacts/batch", s.handleContactsBatch)

	// Control API.
	mux.HandleFunc("POST /control/accounts", s.handleCreateAccount)
	mux.HandleFunc("GET /control/accounts/{key}", crmfake.Handle(fake, "key", s.account, Account.clone))
	mux.HandleFunc("POST /control/keys/{key}/revoke", s.handleUpdate(func(a *Account) error {
		a.Revoked = true
		return nil
	}))
	mux.HandleFunc("POST /control/keys/{key}/restore", s.handleUpdate(func(a *Account) error {
		a.Revoked = false
		return nil
	}))
	mux.HandleFunc("POST /control/keys/{key}/disable-api", s.handleUpdate(func(a *Account) error {
		a.APIEnabled = false
		return nil
	}))
	mux.HandleFunc("POST /control/keys/{key}/enable-api", s.handleUpdate(func(a *Account) error {
		a.APIEnabled = true
		return nil
	}))
	mux.HandleFunc("POST /control/keys/{key}/drop-scope", s.handleScopeChange(dropScope))
	mux.HandleFunc("POST /control/keys/{key}/add-scope", s.handleScopeChange(addScope))
	mux.HandleFunc("GET /control/keys/{key}/faults", crmfake.Handle(fake, "key", s.book, (*contactBook).currentFaults))
	mux.HandleFunc("POST /control/keys/{key}/faults", crmfake.HandleChange(fake, "key", `{"fail_next":3,"fail_status":503}`, s.book, (*contactBook).updateFaults))
	mux.HandleFunc("DELETE /control/keys/{key}/faults", crmfake.Handle(fake, "key", s.book, (*contactBook).clearFaults))
	mux.HandleFunc("GET /control/keys/{key}/records", crmfake.Handle(fake, "key", s.book, (*contactBook).stats))
	mux.HandleFunc("GET /control/keys/{key}/calls", crmfake.Handle(fake, "key", s.book, (*contactBook).callLog))

	return fake.Fallback(mux, "no such endpoint: the sandbox serves /api/v1/me, /api/v1/contacts/batch and /control/...; see the documentation of package sandboxfake")
}

// authenticated resolves the bearer API key of a CRM API request to its
// account, answering 401 when it is missing, unknown or revoked.
func (s *Server) authenticated(next func(http.ResponseWriter, *http.Request, Account)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearerKey(r.Header.Get("Authorization"))
		if !ok {
			writeMissingKey(w)
			return
		}
		a, err := s.account(key)
		if err != nil || a.Revoked {
			writeInvalidKey(w)
			return
		}
		next(w, r, a)
	}
}

func writeMissingKey(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox"`)
	fake.WriteError(w, &crmfake.Error{Status: http.StatusUnauthorized, Code: "missing_api_key",
		Message: "missing API key: send the header Authorization: Bearer <api key>"})
}

func writeInvalidKey(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token"`)
	fake.WriteError(w, &crmfake.Error{Status: http.StatusUnauthorized, Code: "invalid_api_key",
		Message: "the API key is invalid or has been revoked: authorize again with a valid key"})
}

func bearerKey(header string) (string, bool) {
	scheme, key, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != ""
}

func (s *Server) handleMe(w http.ResponseWriter, _ *http.Request, a Account) {
	b, err := s.book(a.APIKey)
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	if status := b.meFailure(); status != 0 {
		fake.WriteError(w, &crmfake.Error{Status: status, Code: "simulated_failure",
			Message: fmt.Sprintf("simulated failure (HTTP %d), set with the sandbox's fail_next and fail_me faults", status)})
		return
	}
	fake.WriteJSON(w, http.StatusOK, Me{AccountID: a.ID, Scopes: nonNil(a.Scopes), APIEnabled: a.APIEnabled})
}

// createAccountRequest is the optional body of POST /control/accounts.
type createAccountRequest struct {
	// Scopes absent means DefaultScopes; [] means an account with no scopes.
	Scopes []string `json:"scopes"`
}

func (s *Server) handleCreateAccount(w http.ResponseWriter, r *http.Request) {
	var req createAccountRequest
	if err := crmfake.DecodeBody(r, &req, true, `{"scopes":["contacts.read","contacts.write"]}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	var scopes []string
	if req.Scopes != nil {
		scopes = make([]string, 0, len(req.Scopes))
		for _, scope := range req.Scopes {
			if err := checkScope(scope); err != nil {
				fake.WriteError(w, err)
				return
			}
			if !slices.Contains(scopes, scope) {
				scopes = append(scopes, scope)
			}
		}
	}
	a, err := s.createAccount(scopes)
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusCreated, a)
}

// handleUpdate serves a bodyless control operation on one account.
func (s *Server) handleUpdate(change func(*Account) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := s.update(r.PathValue("key"), change)
		if err != nil {
			fake.WriteError(w, err)
			return
		}
		fake.WriteJSON(w, http.StatusOK, a)
	}
}

// scopeRequest is the body of drop-scope and add-scope.
type scopeRequest struct {
	Scope string `json:"scope"`
}

// handleScopeChange serves drop-scope and add-scope: the body is checked
// before the account is looked at, so bad input changes nothing.
func (s *Server) handleScopeChange(change func(a *Account, scope string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req scopeRequest
		if err := crmfake.DecodeBody(r, &req, false, `{"scope":"contacts.write"}`); err != nil {
			fake.WriteError(w, err)
			return
		}
		if err := checkScope(req.Scope); err != nil {
			fake.WriteError(w, err)
			return
		}
		s.handleUpdate(func(a *Account) error { return change(a, req.Scope) })(w, r)
	}
}

func dropScope(a *Account, scope string) error {
	i := slices.Index(a.Scopes, scope)
	if i < 0 {
		// Strict rather than idempotent: a typo should not look like success.
		return &crmfake.Error{Status: http.StatusConflict, Code: "scope_not_held",
			Message: fmt.Sprintf("account %s does not have scope %q (it has: %s); check the spelling", a.ID, scope, describeScopes(a.Scopes))}
	}
	a.Scopes = slices.Delete(a.Scopes, i, i+1)
	return nil
}

func addScope(a *Account, scope string) error {
	if !slices.Contains(a.Scopes, scope) {
		a.Scopes = append(a.Scopes, scope)
	}
	return nil
}

func describeScopes(scopes []string) string {
	if len(scopes) == 0 {
		return "no scopes"
	}
	return strings.Join(scopes, ", ")
}

var scopePattern = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,100}$`)

func checkScope(scope string) error {
	if scope == "" {
		return crmfake.BadRequest(`scope is empty: name one, e.g. {"scope":"contacts.write"}`)
	}
	if !scopePattern.MatchString(scope) {
		return crmfake.BadRequest("scope %q is invalid: use up to 100 letters, digits, '.', '_', ':', '/' or '-', e.g. contacts.write", scope)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
