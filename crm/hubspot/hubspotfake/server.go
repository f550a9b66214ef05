// Package hubspotfake is a fake HubSpot: an HTTP server speaking the parts
// of HubSpot's API that the HubSpot connector (package crm/hubspot) calls,
// with HubSpot's documented bodies, status codes and headers, plus a control
// API and its Go Client to play the HubSpot customer's part (and HubSpot's
// bad days). It backs the connector's tests and the connector contract suite
// (crm/crmtest), and `integrations dev` can run it so a HubSpot integration
// can be taken through its whole lifecycle, OAuth consent included, without
// a HubSpot account. The connector and the fake share no code: a mismatch
// between them fails a test instead of hiding behind shared constants.
//
// # Accounts
//
// An account is a HubSpot portal (hub ID) with one installed app: either a
// private app, whose static token ("pat-na1-...") the control API hands out,
// or our OAuth app, installed through the consent page (or the control API)
// and holding a refresh token and access tokens that expire after
// AccessTokenLifetime. The app's scopes are the account's scopes. An account
// also has its contact properties: HubSpot's standard ones (email,
// firstname, lastname, phone, company, message, ...) and any created through
// the properties API or the control API.
//
// # The HubSpot API
//
// Authenticated with "Authorization: Bearer <token>" (a private-app token or
// an OAuth access token):
//
//	GET  /crm/v3/properties/contacts/{name}       200 property; 404 OBJECT_NOT_FOUND; needs crm.objects.contacts.read,
//	                                              crm.objects.contacts.write or crm.schemas.contacts.read
//	POST /crm/v3/properties/contacts              body {name,label,type,fieldType,groupName,hasUniqueValue}
//	                                              → 201 property; 409 OBJECT_ALREADY_EXISTS; needs crm.schemas.contacts.write
//	POST /crm/v3/objects/contacts/batch/upsert    body {"inputs":[{"id","idProperty","objectWriteTraceId","properties"}]}
//	                                              → 200 / 207 {"status","results","errors","numErrors",...}; needs crm.objects.contacts.write
//
// A bad token answers 401 with category INVALID_AUTHENTICATION and the
// header X-HubSpot-Auth-Failure; an expired OAuth access token 401
// EXPIRED_AUTHENTICATION ("The OAuth token used to make this call expired N
// second(s) ago."); a missing scope 403 MISSING_SCOPES with
// errors[].context.requiredScopes. Every answer to an authenticated call
// carries X-HubSpot-RateLimit-Max, -Remaining and -Interval-Milliseconds
// (and, for private apps, -Daily and -Daily-Remaining); going over the
// account's limit (DefaultLimit, or the one the control API sets) answers
// 429 {"status":"error","errorType":"RATE_LIMIT","policyName":
// "TEN_SECONDLY_ROLLING",...} without a Retry-After header, which HubSpot's
// documentation does not promise. Only these /crm/ calls count towards the
// limit and appear in the call log; the OAuth and token-info endpoints do
// neither.
//
// The batch upsert takes 1 to MaxBatchInputs inputs (none: 200 with no
// results). idProperty must name a property with unique values, or be
// email (HubSpot's own identifier of contacts, matched case-insensitively),
// else 400 "Unable to perform update/upsert by non-unique ... property"; an
// ID twice in a batch is 400 "Duplicate IDs"; a property the account lacks
// is 400 VALIDATION_ERROR with PROPERTY_DOESNT_EXIST; an email without "@"
// (or one matching the refuse rule) is 400 VALIDATION_ERROR "Property
// values were not valid: [...INVALID_EMAIL...]" for the whole batch, as
// HubSpot was seen to answer; a record matching the reject rule is refused
// alone, in a 207 whose errors carry context.objectWriteTraceId. A record
// that would give a contact an email another contact holds (a new contact,
// or a changed email) is refused alone, as HubSpot refuses a duplicate
// contact: category CONFLICT, "Contact already exists. Existing ID: <id>",
// errors [{"message": "A contact with email ... already exists. Existing
// ID: <id>", "in": "email"}]. A value of another unique property that
// another contact holds is refused the same way, naming that property in
// errors[].in (HubSpot's body for this case is unconfirmed). A contact
// upserted by email with a new value of a unique property (our lead key)
// takes that value and frees the old one. Results do not come in request
// order (the fake answers them in reverse, since HubSpot does not promise
// the order), each with the input's objectWriteTraceId. Like HubSpot,
// messages quote the offending value: the connector must never pass them
// on.
//
// # OAuth
//
//	GET  /oauth/authorize                         the consent page: client_id, redirect_uri, scope, optional_scope, state
//	POST /oauth/authorize                         the page's form: decision=allow (or deny), hub_id optional
//	                                              → 302 redirect_uri?code=...&state=... (or error=access_denied)
//	POST /oauth/v1/token                          form grant_type=authorization_code|refresh_token, client_id, client_secret,
//	                                              redirect_uri, code | refresh_token
//	                                              → 200 {"access_token","refresh_token","expires_in":1800,"token_type","hub_id","scopes"}
//	                                              → 400 {"status":"BAD_AUTH_CODE"|"BAD_REFRESH_TOKEN"|"BAD_CLIENT_ID"|...,"message"}
//	GET  /oauth/v1/access-tokens/{token}          200 {"token","user","hub_id","app_id","scopes","expires_in",...}; 404 unknown
//	POST /oauth/v2/private-apps/get/access-token-info  body {"tokenKey"} → 200 {"userId","hubId","appId","scopes"}
//
// Allowing the consent page installs the app on a new account with every
// scope asked for (scope and optional_scope), or reinstalls it on the
// account named by hub_id (restoring a revoked grant). Codes are single-use
// and bound to the client and redirect URI; the only OAuth client is
// DevClientID / DevClientSecret. Refreshing keeps the refresh token (as
// HubSpot does) and mints a new access token.
//
// # The control API
//
// For tests and the CLI. It has no authentication: the fake is a development
// tool and must never be exposed publicly. Accounts are addressed by hub ID.
//
//	POST   /control/accounts                      body CreateAccountRequest → 201 Account (a private-app token, or an OAuth code)
//	GET    /control/accounts/{hub}                200 Account
//	POST   /control/accounts/{hub}/revoke         the token stops working; the OAuth grant is uninstalled (refresh refused)
//	POST   /control/accounts/{hub}/restore        undoes revoke
//	POST   /control/accounts/{hub}/drop-scope     body {"scope"} → 409 if the account lacks it
//	POST   /control/accounts/{hub}/add-scope      body {"scope"}
//	POST   /control/accounts/{hub}/expire-tokens  every OAuth access token of the account expires now
//	POST   /control/accounts/{hub}/properties     body Property: create a contact property (no scope needed)
//	DELETE /control/accounts/{hub}/properties/{name}
//	GET    /control/accounts/{hub}/faults         200 Faults
//	POST   /control/accounts/{hub}/faults         body FaultsUpdate, merged → 200 Faults
//	DELETE /control/accounts/{hub}/faults         200 no faults
//	GET    /control/accounts/{hub}/records        200 RecordStats, contacts per idProperty value
//	GET    /control/accounts/{hub}/contacts/{key} 200 Contact: the properties of the contact holding that value of a
//	                                              unique property (else of the one created by it)
//	GET    /control/accounts/{hub}/calls          200 [Call]: the last 1000 /crm/ API calls, oldest first
//
// Faults act on the account's calls: fail_next answers the next calls of any
// endpoint (OAuth ones included) with fail_status; rate_limit_next answers
// the next batch upserts 429; limit_calls/limit_window_ms replace
// DefaultLimit; the reject and refuse rules refuse records one by one (207)
// or whole batches (400); introspection_unavailable makes the token-info
// endpoints answer 404, as if HubSpot had withdrawn them.
//
// Accounts, tokens and properties are kept in the state file when there is
// one (0600: it holds tokens); contacts, faults and call logs live in memory
// only. Every control error is JSON {"error": "...", "code": "..."} and never
// contains a token.
package hubspotfake

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// The scopes the fake knows, as HubSpot spells them.
const (
	ScopeOAuth                = "oauth"
	ScopeContactsRead         = "crm.objects.contacts.read"
	ScopeContactsWrite        = "crm.objects.contacts.write"
	ScopeSchemasContactsRead  = "crm.schemas.contacts.read"
	ScopeSchemasContactsWrite = "crm.schemas.contacts.write"
)

// DefaultScopes returns the scopes an account gets when its creation names
// none: contact reads and writes and contact property reads and writes.
func DefaultScopes() []string {
	return []string{ScopeContactsRead, ScopeContactsWrite, ScopeSchemasContactsRead, ScopeSchemasContactsWrite}
}

// The fake's one OAuth client. `integrations dev` configures the HubSpot
// connector with them when it points it at the fake.
const (
	DevClientID     = "hubspotfake-client-id"
	DevClientSecret = "hubspotfake-client-key"
)

// AccessTokenLifetime is how long an OAuth access token lives: HubSpot's
// expires_in of 1800 seconds.
const AccessTokenLifetime = 30 * time.Minute

// authCodeLifetime is how long an authorization code can be exchanged.
const authCodeLifetime = 10 * time.Minute

// MaxBatchInputs is the most inputs one batch upsert takes.
const MaxBatchInputs = 100

// DefaultLimit is an account's burst allowance when no limit is set:
// HubSpot's free and Starter tiers, 100 calls per 10 s.
var DefaultLimit = Limit{Calls: 100, Window: 10 * time.Second}

// DefaultDailyLimit is a private app's daily allowance (free tier).
const DefaultDailyLimit = 250_000

// Limit is a call allowance per rolling window.
type Limit struct {
	Calls  int
	Window time.Duration
}

// Account is a HubSpot account with our app installed, as the control API
// shows it.
type Account struct {
	HubID  int64    `json:"hub_id"`
	Scopes []string `json:"scopes"`
	// Revoked: the private-app token was deleted, or the OAuth app
	// uninstalled.
	Revoked bool `json:"revoked"`
	// PrivateAppToken is the account's private-app token; empty for an
	// account connected through OAuth.
	PrivateAppToken string `json:"private_app_token,omitempty"`
	// OAuth: the account was connected through OAuth (DevClientID).
	OAuth     bool      `json:"oauth"`
	CreatedAt time.Time `json:"created_at"`
	// Code is a fresh authorization code for the account's OAuth grant,
	// in the answer to a create that asked for one; it is never stored
	// in the state file.
	Code string `json:"code,omitempty"`
}

func (a Account) clone() Account {
	a.Scopes = slices.Clone(a.Scopes)
	return a
}

// Property is a contact property, as HubSpot's properties API shows it.
type Property struct {
	Name           string    `json:"name"`
	Label          string    `json:"label"`
	Type           string    `json:"type"`
	FieldType      string    `json:"fieldType"`
	GroupName      string    `json:"groupName"`
	Description    string    `json:"description"`
	HasUniqueValue bool      `json:"hasUniqueValue"`
	HubspotDefined bool      `json:"hubspotDefined"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// standardProperties are HubSpot's own contact properties the fake knows.
var standardProperties = []string{
	"email", "firstname", "lastname", "phone", "mobilephone", "company", "website", "message",
	"address", "city", "state", "zip", "country", "jobtitle", "lifecyclestage", "hs_lead_status",
}

func standardProperty(name string) Property {
	return Property{Name: name, Label: name, Type: "string", FieldType: "text", GroupName: "contactinformation", HubspotDefined: true}
}

// portal is an account with what the fake keeps about it.
type portal struct {
	Account
	// RefreshTokens are the OAuth grant's refresh tokens (one per
	// consent).
	RefreshTokens []string `json:"refresh_tokens,omitempty"`
	// Properties are the properties created on top of HubSpot's own.
	Properties map[string]Property `json:"properties,omitempty"`
}

// accessToken is one OAuth access token.
type accessToken struct {
	Token     string    `json:"token"`
	HubID     int64     `json:"hub_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// authCode is one authorization code, kept in memory only.
type authCode struct {
	hubID       int64
	redirectURI string
	expiresAt   time.Time
}

// stateFile is the JSON document a persistent Server keeps.
type stateFile struct {
	Accounts     []portal      `json:"accounts"`
	AccessTokens []accessToken `json:"access_tokens"`
	LastHubID    int64         `json:"last_hub_id"`
}

// Server is the fake HubSpot. It is safe for concurrent use.
type Server struct {
	state crmfake.StateFile
	// now is the fake's clock; tests of this package move it.
	now func() time.Time
	// sleep waits out the latency fault.
	sleep func(time.Duration)

	mu        sync.Mutex
	portals   map[int64]*portal
	lastHubID int64
	// private maps private-app tokens to hub IDs; refresh maps refresh
	// tokens to hub IDs; access holds OAuth access tokens.
	private map[string]int64
	refresh map[string]int64
	access  map[string]accessToken
	codes   map[string]authCode
	books   map[int64]*book
}

// NewServer returns a fake HubSpot. With statePath "" it keeps everything in
// memory; otherwise it loads accounts, tokens and properties from that JSON
// file (if present) and rewrites it after every change to them, so `integrations
// dev` keeps its HubSpot accounts across restarts. Contacts, faults and call
// logs are never written to it.
func NewServer(statePath string) (*Server, error) {
	s := &Server{
		state: crmfake.StateFile{Path: statePath, Name: "HubSpot fake", Fresh: "no accounts"},
		now:   time.Now, sleep: time.Sleep,
		portals: map[int64]*portal{}, lastHubID: 20_000_000,
		private: map[string]int64{}, refresh: map[string]int64{}, access: map[string]accessToken{},
		codes: map[string]authCode{}, books: map[int64]*book{},
	}
	var state stateFile
	if _, err := s.state.Load(&state); err != nil {
		return nil, err
	}
	corrupt := s.state.Corrupt
	s.lastHubID = max(s.lastHubID, state.LastHubID)
	for i := range state.Accounts {
		p := state.Accounts[i]
		if p.HubID <= 0 {
			return nil, corrupt(fmt.Sprintf("account %d has no hub ID", i))
		}
		if _, dup := s.portals[p.HubID]; dup {
			return nil, corrupt(fmt.Sprintf("hub ID %d appears twice", p.HubID))
		}
		s.portals[p.HubID] = &p
		s.lastHubID = max(s.lastHubID, p.HubID)
		if p.PrivateAppToken != "" {
			s.private[p.PrivateAppToken] = p.HubID
		}
		for _, rt := range p.RefreshTokens {
			s.refresh[rt] = p.HubID
		}
	}
	for _, at := range state.AccessTokens {
		if _, ok := s.portals[at.HubID]; !ok {
			return nil, corrupt(fmt.Sprintf("an access token belongs to unknown hub ID %d", at.HubID))
		}
		s.access[at.Token] = at
	}
	return s, nil
}

// save writes the state file (see crmfake.StateFile.Save). Callers hold
// s.mu.
func (s *Server) save() error {
	if s.state.Path == "" {
		return nil
	}
	state := stateFile{LastHubID: s.lastHubID, Accounts: make([]portal, 0, len(s.portals)), AccessTokens: make([]accessToken, 0, len(s.access))}
	for _, p := range s.portals {
		state.Accounts = append(state.Accounts, *p)
	}
	slices.SortFunc(state.Accounts, func(a, b portal) int { return cmp.Compare(a.HubID, b.HubID) })
	now := s.now()
	for _, at := range s.access {
		// Long-expired tokens are not worth keeping.
		if now.Sub(at.ExpiresAt) < 24*time.Hour {
			state.AccessTokens = append(state.AccessTokens, at)
		}
	}
	slices.SortFunc(state.AccessTokens, func(a, b accessToken) int { return cmp.Compare(a.Token, b.Token) })
	return s.state.Save(state)
}

// change runs fn on the state under the lock and saves it; when saving
// fails, the error is returned (the in-memory change stays: the fake is a
// development tool, and the next change retries the write).
func (s *Server) change(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fn(); err != nil {
		return err
	}
	return s.save()
}

// newPortalLocked adds an account; callers hold s.mu.
func (s *Server) newPortalLocked(scopes []string, oauth bool) *portal {
	s.lastHubID++
	p := &portal{Account: Account{
		HubID: s.lastHubID, Scopes: scopes, OAuth: oauth,
		CreatedAt: s.now().UTC().Truncate(time.Second),
	}, Properties: map[string]Property{}}
	if !oauth {
		p.PrivateAppToken = "pat-na1-" + crmfake.RandomHex(18)
		s.private[p.PrivateAppToken] = p.HubID
	}
	s.portals[p.HubID] = p
	return p
}

// newCodeLocked issues an authorization code for hubID; callers hold s.mu.
func (s *Server) newCodeLocked(hubID int64, redirectURI string) string {
	code := "hfc-" + crmfake.RandomHex(16)
	s.codes[code] = authCode{hubID: hubID, redirectURI: redirectURI, expiresAt: s.now().Add(authCodeLifetime)}
	return code
}

// portalLocked returns the account with hub ID id; callers hold s.mu.
func (s *Server) portalLocked(id int64) (*portal, error) {
	p, ok := s.portals[id]
	if !ok {
		return nil, errUnknownAccount
	}
	return p, nil
}

// bookLocked returns the account's book, creating it; callers hold s.mu.
func (s *Server) bookLocked(id int64) *book {
	b, ok := s.books[id]
	if !ok {
		b = newBook()
		s.books[id] = b
	}
	return b
}

// property returns the account's property name: one of its own, or one of
// HubSpot's standard ones. Callers hold s.mu.
func (p *portal) property(name string) (Property, bool) {
	if prop, ok := p.Properties[name]; ok {
		return prop, true
	}
	if slices.Contains(standardProperties, name) {
		return standardProperty(name), true
	}
	return Property{}, false
}

func (p *portal) hasScope(scopes ...string) bool {
	for _, s := range scopes {
		if slices.Contains(p.Scopes, s) {
			return true
		}
	}
	return false
}

// correlationID is a fresh UUID-shaped ID, as HubSpot puts in every error.
func correlationID() string {
	h := crmfake.RandomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Handler returns the HTTP handler serving the HubSpot API, the OAuth pages
// and the control API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()

	// OAuth.
	mux.HandleFunc("GET /oauth/authorize", s.handleConsentPage)
	mux.HandleFunc("POST /oauth/authorize", s.handleConsent)
	mux.HandleFunc("POST /oauth/v1/token", s.handleToken)
	mux.HandleFunc("GET /oauth/v1/access-tokens/{token}", s.handleAccessTokenInfo)
	mux.HandleFunc("POST /oauth/v2/private-apps/get/access-token-info", s.handlePrivateTokenInfo)

	// CRM API.
	mux.HandleFunc("GET /crm/v3/properties/contacts/{name}", s.crmCall(s.handleGetProperty))
	mux.HandleFunc("POST /crm/v3/properties/contacts", s.crmCall(s.handleCreateProperty))
	mux.HandleFunc("POST /crm/v3/objects/contacts/batch/upsert", s.crmCall(s.handleBatchUpsert))

	// Control API.
	mux.HandleFunc("POST /control/accounts", s.handleCreateAccount)
	mux.HandleFunc("GET /control/accounts/{hub}", s.control(s.controlAccount))
	mux.HandleFunc("POST /control/accounts/{hub}/revoke", s.control(s.controlRevoke(true)))
	mux.HandleFunc("POST /control/accounts/{hub}/restore", s.control(s.controlRevoke(false)))
	mux.HandleFunc("POST /control/accounts/{hub}/drop-scope", s.control(s.controlScope(false)))
	mux.HandleFunc("POST /control/accounts/{hub}/add-scope", s.control(s.controlScope(true)))
	mux.HandleFunc("POST /control/accounts/{hub}/expire-tokens", s.control(s.controlExpireTokens))
	mux.HandleFunc("POST /control/accounts/{hub}/properties", s.control(s.controlCreateProperty))
	mux.HandleFunc("DELETE /control/accounts/{hub}/properties/{name}", s.control(s.controlDeleteProperty))
	mux.HandleFunc("GET /control/accounts/{hub}/faults", s.control(s.controlGetFaults))
	mux.HandleFunc("POST /control/accounts/{hub}/faults", s.control(s.controlSetFaults))
	mux.HandleFunc("DELETE /control/accounts/{hub}/faults", s.control(s.controlClearFaults))
	mux.HandleFunc("GET /control/accounts/{hub}/records", s.control(s.controlRecords))
	mux.HandleFunc("GET /control/accounts/{hub}/contacts/{key}", s.control(s.controlContact))
	mux.HandleFunc("GET /control/accounts/{hub}/calls", s.control(s.controlCalls))

	return notFoundJSON(mux)
}

// notFoundJSON answers requests no route matches in HubSpot's error shape,
// without echoing the path (which may hold a token).
func notFoundJSON(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		writeHubSpotError(w, http.StatusNotFound, hubspotError{Category: "OBJECT_NOT_FOUND",
			Message: "no such endpoint in the HubSpot fake; see the documentation of package hubspotfake"})
	})
}

// hubspotError is HubSpot's error body.
type hubspotError struct {
	Status        string              `json:"status"`
	Message       string              `json:"message"`
	CorrelationID string              `json:"correlationId"`
	Category      string              `json:"category,omitempty"`
	SubCategory   string              `json:"subCategory,omitempty"`
	Context       map[string][]string `json:"context,omitempty"`
	Errors        []errorDetail       `json:"errors,omitempty"`
	Links         map[string]string   `json:"links,omitempty"`
	// ErrorType and PolicyName are what a 429 carries instead of a
	// category.
	ErrorType  string `json:"errorType,omitempty"`
	PolicyName string `json:"policyName,omitempty"`
}

// errorDetail is one entry of an error's errors.
type errorDetail struct {
	Message string              `json:"message"`
	Code    string              `json:"code,omitempty"`
	In      string              `json:"in,omitempty"`
	Context map[string][]string `json:"context,omitempty"`
}

func writeHubSpotError(w http.ResponseWriter, status int, e hubspotError) {
	e.Status = "error"
	if e.CorrelationID == "" {
		e.CorrelationID = correlationID()
	}
	fake.WriteJSON(w, status, e)
}

// fake is how the shared plumbing names the fake. Its JSON answers carry
// HubSpot's content type.
var fake = crmfake.Fake{Name: "HubSpot fake", DevURL: "http://127.0.0.1:8091", ContentType: "application/json;charset=utf-8"}

var errUnknownAccount = &crmfake.Error{Status: http.StatusNotFound, Code: "unknown_account",
	Message: "no HubSpot fake account has that hub ID: create one with POST /control/accounts"}

func parseHubID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, crmfake.BadRequest("the hub ID must be a positive number, e.g. 20000001")
	}
	return id, nil
}
