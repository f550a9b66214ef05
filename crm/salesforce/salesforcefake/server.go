// Package salesforcefake is a fake Salesforce: the parts of its OAuth 2.0
// service, identity service and REST API that the Salesforce connector
// (package crm/salesforce) calls, answering with the bodies, status codes
// and headers Salesforce documents, plus a control API and its Go Client
// for tests, the dev stack and the CLI to play the customer's part and the
// CRM's bad days. The two packages share no code, so the connector's tests
// and the contract suite (crm/crmtest) check the connector against an
// independent implementation of the API.
//
// # Logins and instances
//
// One Server plays Salesforce's production login (login.salesforce.com) at
// its root, its sandbox login (test.salesforce.com) under TestLoginPath,
// and every org's instance (na1.salesforce.com, or a My Domain) under
// /instance/{name}. A production org logs in at the root only and a sandbox
// org under TestLoginPath only, as a real sandbox user cannot log in at
// login.salesforce.com. An access token works on its org's instance only:
// the instance_url of the token response is where the API lives, and a
// client that calls another instance gets INVALID_SESSION_ID.
//
// # The OAuth service (at the root and under TestLoginPath)
//
//	GET  /services/oauth2/authorize    the consent page (web-server flow: response_type=code, client_id,
//	                                   redirect_uri, state, scope): an HTML form whose "Allow" button posts back
//	POST /services/oauth2/authorize    the form: action=allow (org_id optional: blank makes a new org with every
//	                                   permission) → 302 to redirect_uri?code=...&state=...; action=deny →
//	                                   302 to redirect_uri?error=access_denied&error_description=...&state=...
//	POST /services/oauth2/token        grant_type=authorization_code (code, redirect_uri, client_id, client_secret)
//	                                   or refresh_token (refresh_token, client_id, client_secret) → 200
//	                                   {"access_token","refresh_token","signature","scope","instance_url","id",
//	                                   "token_type","issued_at"} with no expires_in; a refresh answers no
//	                                   refresh_token unless the org rotates them. Errors are 400
//	                                   {"error","error_description"}: invalid_grant (a spent, unknown or expired
//	                                   code, a revoked or unknown refresh token, a redirect_uri that differs from
//	                                   the authorize request's, the other login's org), invalid_client_id,
//	                                   invalid_client, unsupported_grant_type.
//	POST /services/oauth2/introspect   token (+ token_type_hint), client_id, client_secret → 200 {"active":true,
//	                                   "scope","client_id","username","sub","token_type","exp","iat","nbf"} or
//	                                   {"active":false}
//	POST /services/oauth2/revoke       token (access or refresh) → 200; the whole grant is revoked, for good
//	GET  /services/oauth2/userinfo     the identity service: 200 {"sub","user_id","organization_id",
//	                                   "preferred_username",...}; a token it does not accept (unknown, expired,
//	                                   revoked) is 403 with the plain-text body "Bad_OAuth_Token"
//
// Authorization codes are single-use and expire after 15 minutes. Access
// tokens expire after the org's session timeout (2 hours unless set), or at
// once with the control API's expire-tokens. While the fake has no
// registered apps (POST /control/apps) it accepts any client_id with a
// non-empty client_secret, binding each code and grant to the client that
// asked for it; once an app is registered, only registered clients and
// their callback URLs are accepted.
//
// # The REST API (under /instance/{name})
//
//	GET   /services/oauth2/userinfo                          as above
//	GET   /services/data/vXX.X/sobjects/Lead/describe        200 the Lead describe: object "createable",
//	                                                         "updateable", and per field "name", "type",
//	                                                         "length", "createable", "updateable", "nillable",
//	                                                         "externalId", "unique"...; 404 NOT_FOUND without
//	                                                         Read on Lead
//	PATCH /services/data/vXX.X/composite/sobjects/Lead/{ExternalIdField}
//	                                                         sObject Collections upsert, API v46.0 and later:
//	                                                         body {"allOrNone":bool,"records":[{"attributes":
//	                                                         {"type":"Lead"},...}]} with 1 to 200 records → 200
//	                                                         [{"id","success","errors":[{"statusCode","message",
//	                                                         "fields"}],"created"}], one per record in request order
//
// authenticated with "Authorization: Bearer <access token>". A token the
// API does not accept is 401 [{"message":"Session expired or
// invalid","errorCode":"INVALID_SESSION_ID"}]. Every answer to an
// authenticated call carries "Sforce-Limit-Info: api-usage=N/M": the calls
// the org made in its current window (24 hours unless set) against its
// allocation. Whole-call errors are JSON arrays [{"message","errorCode"}]:
// 403 API_DISABLED_FOR_ORG (the org's edition has no API), 403
// API_CURRENTLY_DISABLED (the user's profile lacks "API Enabled"), 403
// REQUEST_LIMIT_EXCEEDED (the allocation is spent: Salesforce has no 429
// and no Retry-After), 400 for a request that is not well formed (a field
// the user cannot see: INVALID_FIELD "No such column ..."; more than 200
// records: EXCEEDED_ID_LIMIT; a record without attributes.type:
// INVALID_TYPE), 404 NOT_FOUND for an external ID field that does not exist
// or that the user cannot see.
//
// Records are upserted one by one in request order, by the external ID
// field's value: a value the org already holds updates that lead (and keeps
// its ID), a new one creates a lead. A record is refused with its own
// errors, and nothing stored for it, for: a missing external ID
// (MISSING_ARGUMENT), the same external ID twice in one call
// (DUPLICATE_EXTERNAL_ID), a new lead without LastName or Company
// (REQUIRED_FIELD_MISSING), a value longer than its field
// (STRING_TOO_LONG), an Email that is not an email address
// (INVALID_EMAIL_ADDRESS), creating without the Lead permission Create
// (CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY "entity type cannot be inserted:
// Lead"), updating without Edit (INSUFFICIENT_ACCESS_OR_READONLY), and the
// reject and lock faults. Like Salesforce's, these messages quote the
// offending values: a client must not pass them on. With allOrNone true
// one refused record rolls back the whole call, the others answering
// ALL_OR_NONE_OPERATION_ROLLED_BACK.
//
// # The control API
//
// For tests, `integrations dev` and the CLI. It has no authentication: the
// fake is a development tool and must never be exposed publicly. Orgs are
// addressed by their ID (00D...).
//
//	POST   /control/apps                  body App → 201 App: register a connected app (client ID, secret, callbacks)
//	POST   /control/orgs                  body OrgUpdate (optional) → 201 Org: a new org, by default with every
//	                                      permission, API access on and the lead key field in place
//	GET    /control/orgs/{id}             200 Org
//	POST   /control/orgs/{id}             body OrgUpdate, merged → 200 Org: revoke or restore its grants, drop
//	                                      permissions, disable the API, remove the lead key field, hide fields,
//	                                      set the API allocation and its window, the session timeout, rotation
//	POST   /control/orgs/{id}/tokens      → 201 a token response for a new grant, as the consent page would give
//	POST   /control/orgs/{id}/expire-tokens → 200 {"expired": n}: every access token of the org expires now
//	GET    /control/orgs/{id}/faults      200 Faults
//	POST   /control/orgs/{id}/faults      body FaultsUpdate, merged → 200 Faults
//	DELETE /control/orgs/{id}/faults      200 DefaultFaults()
//	GET    /control/orgs/{id}/leads       200 Leads {"leads","upserts","by_key":{key:{"id","upserts","fields"}}}
//	GET    /control/orgs/{id}/calls       200 [Call], the org's last 1000 API calls (identity and REST), oldest first
//
// Revoking an org's grants through the control API can be undone (restore),
// unlike a real revocation, so a test can take an integration through a
// revoked grant and back; POST /services/oauth2/revoke is final, as in
// Salesforce. Control errors are JSON {"error","code"} and never contain a
// token or a lead's data.
//
// Orgs, apps and grants (refresh tokens) are kept in the state file when
// there is one, so `integrations dev` keeps its Salesforce connections across
// restarts; access tokens, codes, leads, faults and call logs live in memory
// only, so after a restart every access token has expired and the next call
// refreshes it, as after a session timeout.
package salesforcefake

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// TestLoginPath is where the fake's sandbox login (test.salesforce.com)
// lives: a connector's test login URL is the fake's URL plus this path.
const TestLoginPath = "/test-login"

// Defaults of a new org.
const (
	// DefaultLeadKeyField is the external ID field a new org has on Lead.
	DefaultLeadKeyField = "Integrations_Lead_Key__c"
	// DefaultAPILimit is a new org's API allocation per window: what an
	// Enterprise org with a handful of licences gets per 24 hours.
	DefaultAPILimit = 100_000
	// DefaultAPIWindow is the window of the allocation: Salesforce's
	// rolling 24 hours.
	DefaultAPIWindow = 24 * time.Hour
	// DefaultSessionTimeout is how long an access token works: the session
	// timeout of a new Salesforce org.
	DefaultSessionTimeout = 2 * time.Hour
)

// The Lead object permissions a fake org can hold, as Salesforce's profile
// and permission-set editor names them.
const (
	PermissionRead   = "Read"
	PermissionCreate = "Create"
	PermissionEdit   = "Edit"
)

// LeadPermissions returns the Lead object permissions a new org has: all
// that the service needs.
func LeadPermissions() []string { return []string{PermissionRead, PermissionCreate, PermissionEdit} }

// codeLifetime is how long an authorization code can be exchanged.
const codeLifetime = 15 * time.Minute

// Org is a fake Salesforce org with its one integration user, as the
// control API returns it.
type Org struct {
	ID       string `json:"org_id"`
	UserID   string `json:"user_id"`
	Username string `json:"username"`
	// Sandbox orgs log in under TestLoginPath, production orgs at the root.
	Sandbox bool `json:"sandbox"`
	// Instance names the org's instance: its API lives under
	// /instance/{Instance}.
	Instance string `json:"instance"`
	// APIEnabled false is an edition without API access
	// (API_DISABLED_FOR_ORG).
	APIEnabled bool `json:"api_enabled"`
	// UserAPIEnabled false is a user whose profile lacks "API Enabled"
	// (API_CURRENTLY_DISABLED).
	UserAPIEnabled bool `json:"user_api_enabled"`
	// LeadPermissions are the user's object permissions on Lead.
	LeadPermissions []string `json:"lead_permissions"`
	// LeadKeyField is the external ID field on Lead.
	LeadKeyField LeadKeyField `json:"lead_key_field"`
	// HiddenFields are Lead fields the user cannot see (field-level
	// security): describe leaves them out and writing them is INVALID_FIELD.
	HiddenFields []string `json:"hidden_fields"`
	// Revoked refuses every grant the org had at RevokedAt, and their
	// tokens, until restored; consents given later work.
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// RotateRefreshTokens makes every refresh answer a new refresh token
	// and invalidate the one it was given.
	RotateRefreshTokens bool `json:"rotate_refresh_tokens"`
	// APILimit calls per APIWindowMS milliseconds: the org's allocation.
	APILimit    int   `json:"api_limit"`
	APIWindowMS int64 `json:"api_window_ms"`
	// SessionTimeoutSeconds is how long an access token works.
	SessionTimeoutSeconds int       `json:"session_timeout_seconds"`
	CreatedAt             time.Time `json:"created_at"`
}

// LeadKeyField is the custom field on Lead that holds our lead key.
type LeadKeyField struct {
	Name string `json:"name"`
	// Present false: the field does not exist.
	Present    bool `json:"present"`
	ExternalID bool `json:"external_id"`
	Unique     bool `json:"unique"`
}

func (o Org) clone() Org {
	o.LeadPermissions = slices.Clone(o.LeadPermissions)
	o.HiddenFields = slices.Clone(o.HiddenFields)
	return o
}

func (o *Org) window() time.Duration { return time.Duration(o.APIWindowMS) * time.Millisecond }

func (o *Org) sessionTimeout() time.Duration {
	return time.Duration(o.SessionTimeoutSeconds) * time.Second
}

func (o *Org) can(permission string) bool { return slices.Contains(o.LeadPermissions, permission) }

// refuses reports whether the org's revocation covers g.
func (o *Org) refuses(g *grant) bool { return o.Revoked && !g.CreatedAt.After(o.RevokedAt) }

// App is a connected app registered with the fake.
type App struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	CallbackURLs []string `json:"callback_urls"`
}

// grant is one consent of an org's user to a client: its refresh token,
// and the client it was issued to.
type grant struct {
	RefreshToken string    `json:"refresh_token"`
	OrgID        string    `json:"org_id"`
	ClientID     string    `json:"client_id"`
	Scope        string    `json:"scope"`
	Revoked      bool      `json:"revoked"`
	CreatedAt    time.Time `json:"created_at"`
}

// session is an access token.
type session struct {
	grant    *grant
	issuedAt time.Time
	expired  bool
}

// authCode is an authorization code the consent page issued.
type authCode struct {
	orgID       string
	clientID    string
	redirectURI string
	scope       string
	sandbox     bool
	expiresAt   time.Time
}

// stateFile is the JSON document a persistent Server keeps.
type stateFile struct {
	Orgs   []Org   `json:"orgs"`
	Apps   []App   `json:"apps"`
	Grants []grant `json:"grants"`
}

// Server is the fake Salesforce. It is safe for concurrent use.
type Server struct {
	state crmfake.StateFile
	// now is the fake's clock (call log, token expiry, API windows);
	// sleep waits out the latency fault. Tests replace them.
	now   func() time.Time
	sleep func(time.Duration)

	mu     sync.Mutex
	orgs   map[string]*Org
	apps   map[string]App
	grants map[string]*grant // by refresh token
	// sessions are access tokens, codes authorization codes: memory only.
	sessions map[string]*session
	codes    map[string]*authCode
	books    map[string]*book // by org ID
}

// NewServer returns a fake Salesforce. With statePath "" it keeps
// everything in memory; otherwise it loads orgs, apps and grants from that
// JSON file (if present) and rewrites it after every change to them. The
// file holds refresh tokens and client secrets and is written 0600.
func NewServer(statePath string) (*Server, error) {
	s := &Server{
		state: crmfake.StateFile{Path: statePath, Name: "fake Salesforce", Fresh: "no orgs"},
		now:   time.Now, sleep: time.Sleep,
		orgs: map[string]*Org{}, apps: map[string]App{}, grants: map[string]*grant{},
		sessions: map[string]*session{}, codes: map[string]*authCode{}, books: map[string]*book{},
	}
	var state stateFile
	if _, err := s.state.Load(&state); err != nil {
		return nil, err
	}
	corrupt := s.state.Corrupt
	for i := range state.Orgs {
		o := state.Orgs[i]
		if o.ID == "" || o.Instance == "" {
			return nil, corrupt(fmt.Sprintf("org %d has no ID or instance", i))
		}
		if _, dup := s.orgs[o.ID]; dup {
			return nil, corrupt("org " + o.ID + " appears twice")
		}
		s.orgs[o.ID] = &o
	}
	for _, a := range state.Apps {
		if a.ClientID == "" {
			return nil, corrupt("an app has no client ID")
		}
		s.apps[a.ClientID] = a
	}
	for i := range state.Grants {
		g := state.Grants[i]
		if _, ok := s.orgs[g.OrgID]; !ok || g.RefreshToken == "" {
			return nil, corrupt(fmt.Sprintf("grant %d has no refresh token or names an unknown org", i))
		}
		s.grants[g.RefreshToken] = &g
	}
	return s, nil
}

// save writes the state file (see crmfake.StateFile.Save). Callers hold
// s.mu.
func (s *Server) save() error {
	if s.state.Path == "" {
		return nil
	}
	state := stateFile{Orgs: []Org{}, Apps: []App{}, Grants: []grant{}}
	for _, o := range s.orgs {
		state.Orgs = append(state.Orgs, *o)
	}
	for _, a := range s.apps {
		state.Apps = append(state.Apps, a)
	}
	for _, g := range s.grants {
		state.Grants = append(state.Grants, *g)
	}
	// A stable order keeps the file diffable.
	slices.SortFunc(state.Orgs, func(a, b Org) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(state.Apps, func(a, b App) int { return cmp.Compare(a.ClientID, b.ClientID) })
	slices.SortFunc(state.Grants, func(a, b grant) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.RefreshToken, b.RefreshToken))
	})
	return s.state.Save(state)
}

// Handler returns the HTTP handler serving the OAuth service, the REST API
// and the control API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, prefix := range []string{"", TestLoginPath} {
		sandbox := prefix != ""
		mux.HandleFunc("GET "+prefix+"/services/oauth2/authorize", s.handleAuthorizePage(sandbox))
		mux.HandleFunc("POST "+prefix+"/services/oauth2/authorize", s.handleAuthorizeForm(sandbox))
		mux.HandleFunc("POST "+prefix+"/services/oauth2/token", s.handleToken(sandbox))
		mux.HandleFunc("POST "+prefix+"/services/oauth2/introspect", s.handleIntrospect)
		mux.HandleFunc("POST "+prefix+"/services/oauth2/revoke", s.handleRevoke)
		mux.HandleFunc("GET "+prefix+"/services/oauth2/userinfo", s.handleUserinfo(""))
	}
	mux.HandleFunc("GET /instance/{instance}/services/oauth2/userinfo", func(w http.ResponseWriter, r *http.Request) {
		s.handleUserinfo(r.PathValue("instance"))(w, r)
	})
	mux.HandleFunc("GET /instance/{instance}/services/data/{version}/sobjects/{sobject}/describe", s.handleDescribe)
	mux.HandleFunc("PATCH /instance/{instance}/services/data/{version}/composite/sobjects/{sobject}/{field}", s.handleUpsert)
	// Any other REST resource, as Salesforce answers one it does not have.
	mux.HandleFunc("/instance/{instance}/services/data/", s.handleNoResource)

	mux.HandleFunc("POST /control/apps", s.handleCreateApp)
	mux.HandleFunc("POST /control/orgs", s.handleCreateOrg)
	mux.HandleFunc("GET /control/orgs/{id}", s.handleGetOrg)
	mux.HandleFunc("POST /control/orgs/{id}", s.handleUpdateOrg)
	mux.HandleFunc("POST /control/orgs/{id}/tokens", s.handleIssueTokens)
	mux.HandleFunc("POST /control/orgs/{id}/expire-tokens", s.handleExpireTokens)
	mux.HandleFunc("GET /control/orgs/{id}/faults", s.onBook(func(b *book) any { return b.faults }))
	mux.HandleFunc("POST /control/orgs/{id}/faults", s.handleSetFaults)
	mux.HandleFunc("DELETE /control/orgs/{id}/faults", s.onBook(func(b *book) any {
		b.faults = DefaultFaults()
		return b.faults
	}))
	mux.HandleFunc("GET /control/orgs/{id}/leads", s.onBook(func(b *book) any { return b.leadStats() }))
	mux.HandleFunc("GET /control/orgs/{id}/calls", s.onBook(func(b *book) any { return b.callLog() }))

	// The path is never echoed: an OAuth query may hold a code.
	return fake.Fallback(mux, "no such endpoint: the fake serves /services/oauth2/..., /instance/{name}/services/..., "+TestLoginPath+"/services/oauth2/... and /control/...; see the documentation of package salesforcefake")
}

// fake is how the shared plumbing names the fake. Its JSON answers carry
// Salesforce's content type.
var fake = crmfake.Fake{Name: "fake Salesforce", DevURL: "http://127.0.0.1:8092", ContentType: "application/json;charset=UTF-8"}

var errUnknownOrg = &crmfake.Error{Status: http.StatusNotFound, Code: "unknown_org",
	Message: "no fake Salesforce org has that ID: check it, or create an org with POST /control/orgs"}

// apiError is one error of Salesforce's REST API, as whole-call errors list
// them.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

// writeAPIError answers a REST call with Salesforce's error array.
func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	fake.WriteJSON(w, status, []apiError{{Message: message, ErrorCode: code}})
}

// oauthError is the OAuth service's error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	fake.WriteJSON(w, status, oauthError{Error: code, Description: description})
}

// The alphabet of Salesforce IDs and of the fake's tokens.
const (
	idAlphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	tokenAlphabet = idAlphabet + "._"
)

func randomString(alphabet string, n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		// crypto/rand never fails on supported platforms (Go 1.24+).
		v, _ := rand.Int(rand.Reader, max)
		out[i] = alphabet[v.Int64()]
	}
	return string(out)
}

// newID returns an 18-character Salesforce ID with the given key prefix
// (00D orgs, 005 users, 00Q leads).
func newID(prefix string) string { return prefix + randomString(idAlphabet, 15) }

// readAll reads a request body of at most limit bytes.
func readAll(r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

var errTooLarge = errors.New("request body too large")
