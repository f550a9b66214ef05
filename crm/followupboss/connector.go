// Package followupboss is the crm.Connector for Follow Up Boss
// (docs.followupboss.com), written on net/http: an API key per
// integration, one lead per call, no idempotency key.
//
// # What it calls
//
// Every call authenticates with HTTP Basic auth, the customer's API key as
// the user name and an empty password, and identifies our system with the
// X-System and X-System-Key headers from configuration (Config.System,
// Config.SystemKey; without a registered system key Follow Up Boss allows
// half the calls):
//
//	GET  /v1/identity                    validation: 200 the account and user; 401 a bad key; 403 a locked account
//	GET  /v1/people?tags=lead-id:KEY     delivery: was this lead delivered before?
//	POST /v1/events                      delivery: the lead; 200/201 the person, 204 ignored, 400 {"errorMessage"}
//
// # Mapping
//
// A crm.Record becomes one event of type "General Inquiry" (a type that
// starts Follow Up Boss's action plans and automations), as Follow Up Boss
// asks lead providers to send leads:
//
//	source            Record.Source (the partner's source: Follow Up Boss's Lead Flow routes by it)
//	system            Config.System
//	message           Record.Message, then a blank line and "Company: ..." and one "key: value" line per
//	                  attribute (sorted by key; values other than strings as JSON), when there are any
//	person.firstName  Record.FirstName; without first and last name, the first name integration.SplitName
//	                  makes of Record.Name (the words before the last name; none for a single word)
//	person.lastName   Record.LastName; without first and last name, the last name integration.SplitName
//	                  makes of Record.Name (the last word, with particles such as "van" and a suffix
//	                  such as "Jr."; a single word is the last name)
//	person.emails     [{"value": Record.Email}] when there is one
//	person.phones     [{"value": Record.Phone}] when there is one
//	person.tags       ["lead-id:" + Record.Key] (KeyTag): our lead key on the contact
//
// Nothing is required of the partner beyond what intake requires: Follow Up
// Boss names a contact without a name from its email or phone. The partner
// source is stored on the contact by Follow Up Boss when it creates it
// (its source field is set once, on creation) and on every event.
//
// # Deliveries and duplicates
//
// Follow Up Boss has no batch endpoint and no idempotency key, so
// BatchLimit is 1 and the Deliver activity records each lead's outcome as
// soon as its call is answered. Follow Up Boss finds an existing contact by
// email or phone and adds the event to it, so a second event never makes a
// second contact for a lead with an email or a phone; but each event is
// logged on the contact and may notify the agent and start action plans
// again. To keep a push that is repeated (its answer was lost to a timeout,
// or the worker crashed before recording it) from sending the event twice,
// Push first asks for the people tagged KeyTag(Record.Key): a contact that
// carries the tag already holds the lead, which is then delivered with that
// contact's ID and no second event. A repeat still sends a second event
// when the key's user cannot see the contact (an agent's key sees only the
// agent's people), when someone removed the tag or the contact in Follow Up
// Boss meanwhile, or when Follow Up Boss's search has not caught up with an
// event seconds old; a lead with neither email nor phone then makes a
// second contact. A lookup Follow Up Boss refuses as a bad request is
// skipped rather than blocking deliveries.
//
// Outcomes: 200 or 201 is delivered, with the contact's ID. 204 (the
// source's lead flow is archived in Follow Up Boss, which ignored the
// event) is a rejection: the lead is not in Follow Up Boss, the customer's
// own setting put it aside, and sending it again would be ignored again;
// the reason says so, and the guide says how to unarchive. 400 with an
// errorMessage is the lead's rejection, with a reason naming the field
// Follow Up Boss complained about, never its value (Follow Up Boss's
// messages may quote it). 413 is a refusal of the call for what it carries
// (crm.ClassBatchRejected).
//
// # Validation
//
// Validate calls GET /v1/identity and reports crm.CheckCredentials (401:
// expired_credentials), crm.CheckScopes and crm.CheckAPIAccess (403:
// api_disabled). Follow Up Boss API keys have no scopes: a key has the
// access of its user, and an agent's key sees only the agent's people, so
// the scopes check passes and says so. An API key stays valid when the
// account's subscription expires; the account then answers 403 to almost
// every call (POST /v1/events keeps working during a grace period), and to
// every call after it. That is reported as api_disabled, not
// expired_credentials (re-authorizing with another key of the same account
// would not help) nor insufficient_permissions (no permission of the user
// is missing): Follow Up Boss has locked the account's API access, and the
// remediation asks the owner to reactivate the account. The integration
// resumes by itself at the next validation that passes, and the leads
// received meanwhile are delivered then.
//
// # Pacing
//
// Follow Up Boss limits each system's calls per account in a sliding
// 10-second window per context (GET calls count in "global": 250 for a
// registered system, 125 without; POST /v1/events in "POST.events",
// documented as "unlimited*"), and states the limit on every answer in
// X-RateLimit-Limit, -Remaining, -Window (seconds) and -Context. The
// connector paces every call of an account (keyed by a hash of its API
// key) through one crm.Pacer at 95% of the tightest limit known: the
// published global limit to begin with, then whatever the headers say for
// each context. Since every call counts against the one rate, no context
// can be exceeded by our own calls. An answer with no calls remaining holds
// the account for one pacing interval (window / limit); a 429 holds it for
// its Retry-After and is crm.ClassRateLimited, never a failure. While a
// hold longer than crm.DefaultMaxHoldWait (or than the call's context has
// left) lasts, the account's calls fail at once with crm.ClassRateLimited
// and the time left as RetryAfter, rather than wait until their deadline.
// Quota reports the last "global" numbers.
//
// # Errors
//
// Every error is a *crm.Error: 401 crm.ClassAuth, 403 crm.ClassPermission,
// 429 crm.ClassRateLimited with RetryAfter, 5xx, 404, network failures and
// answers that are not Follow Up Boss's crm.ClassTransient. Messages name
// the endpoint and status, never a URL, the API key or lead data.
package followupboss

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// ProviderName is the provider name of Follow Up Boss integrations.
const ProviderName = "followupboss"

// DefaultAPIURL is Follow Up Boss's API, the same for every account.
const DefaultAPIURL = "https://api.followupboss.com"

// EventType is the type of the event each lead is sent as.
const EventType = "General Inquiry"

// keyTagPrefix starts the tag that carries our lead key.
const keyTagPrefix = "lead-id:"

// KeyTag is the tag that carries lead key on its Follow Up Boss contact.
func KeyTag(key string) string { return keyTagPrefix + key }

// The limits Follow Up Boss publishes for the "global" context
// (docs.followupboss.com reference/rate-limiting), per 10-second window.
const (
	registeredGlobalLimit   = 250
	unregisteredGlobalLimit = 125
	limitWindow             = 10 * time.Second
)

// The endpoints the connector calls.
const (
	pathIdentity = "/v1/identity"
	pathPeople   = "/v1/people"
	pathEvents   = "/v1/events"
)

// defaultTimeout bounds every call when Config.HTTPClient is nil.
const defaultTimeout = 20 * time.Second

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 1 << 20

// userAgent names us to Follow Up Boss; its CDN refuses calls without one.
const userAgent = "acme-integrations-followupboss/1"

// credentialsExample is shown in every credentials error.
const credentialsExample = `{"api_key": "..."}`

// credentialsFormat decodes the credentials document strictly, without
// quoting it in its errors.
var credentialsFormat = crm.CredentialsFormat{
	Product: "Follow Up Boss",
	Example: credentialsExample,
	IfEmpty: "provide " + credentialsExample + " with the API key from Admin > API in Follow Up Boss",
}

// Remediation texts, shown to the customer next to a failed check; the
// guide (docs/crms/followupboss.md) holds each of them word for word.
const (
	RemediateCredentials = "In Follow Up Boss, open Admin > API and copy the API key of a user who should send leads into your account (an owner's or admin's key sees every contact), then re-authorize the integration with it. The integration resumes by itself once validation passes."
	RemediateAPIAccess   = "Follow Up Boss has locked API access to the account, usually because its subscription expired: the account owner reactivates the account in Follow Up Boss (or asks Follow Up Boss support why it is locked). The integration resumes by itself at the next validation, and the leads received meanwhile are delivered then."
)

// Rejection reasons of delivered leads; the guide holds each of them.
const (
	ReasonArchivedLeadFlow = "ignored by Follow Up Boss: the lead flow for this lead's source is archived (HTTP 204)"
	ReasonInvalidEmail     = "invalid email (Follow Up Boss answered HTTP 400)"
	ReasonInvalidPhone     = "invalid phone number (Follow Up Boss answered HTTP 400)"
	ReasonInvalidName      = "invalid name (Follow Up Boss answered HTTP 400)"
	ReasonRefused          = "refused by Follow Up Boss (HTTP 400)"
)

// Config is what a Connector needs, from the service's configuration.
type Config struct {
	// APIURL is Follow Up Boss's API, DefaultAPIURL when empty.
	APIURL string
	// System and SystemKey are the X-System and X-System-Key of our
	// registered system; without a valid key Follow Up Boss allows
	// unregisteredGlobalLimit calls per window instead of
	// registeredGlobalLimit.
	System    string
	SystemKey string
	// HTTPClient makes the calls; nil means one with a 20s timeout that
	// keeps idle connections for many integrations at once.
	HTTPClient *http.Client
}

// credentials is the Follow Up Boss credentials document.
type credentials struct {
	APIKey string `json:"api_key"`
}

// Connector is the crm.Connector for Follow Up Boss. It is safe for
// concurrent use.
type Connector struct {
	apiURL     string
	system     string
	systemKey  string
	httpClient *http.Client
	published  crm.Limit
	pacer      *crm.Pacer
	// now is the connector's clock for quotas and holds.
	now func() time.Time

	mu sync.Mutex
	// limits and quotas are what each account's answers said, per
	// rate-limit context, keyed by account (a hash of the API key).
	limits map[string]map[string]crm.Limit
	quotas map[string]map[string]crm.Quota
	// effective is the limit each account is paced at.
	effective map[string]crm.Limit
}

var (
	_ crm.Connector     = (*Connector)(nil)
	_ crm.QuotaReporter = (*Connector)(nil)
)

// NewConnector returns a connector for the Follow Up Boss API of cfg.
func NewConnector(cfg Config) *Connector {
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Timeout: defaultTimeout, Transport: transport}
	}
	apiURL := strings.TrimRight(cfg.APIURL, "/")
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	published := crm.Limit{Calls: unregisteredGlobalLimit, Per: limitWindow}
	if cfg.SystemKey != "" {
		published.Calls = registeredGlobalLimit
	}
	return &Connector{
		apiURL:     apiURL,
		system:     cfg.System,
		systemKey:  cfg.SystemKey,
		httpClient: httpClient,
		published:  published,
		pacer:      crm.NewPacer(published),
		now:        time.Now,
		limits:     map[string]map[string]crm.Limit{},
		quotas:     map[string]map[string]crm.Quota{},
		effective:  map[string]crm.Limit{},
	}
}

// Provider returns ProviderName.
func (c *Connector) Provider() string { return ProviderName }

// DisplayName returns the CRM's name as customers know it.
func (c *Connector) DisplayName() string { return "Follow Up Boss" }

// BatchLimit is 1: Follow Up Boss takes one lead per call.
func (c *Connector) BatchLimit() int { return 1 }

// ParseCredentials checks that raw is {"api_key": "..."} with a usable key
// and no other fields. Its errors never contain the key.
func (c *Connector) ParseCredentials(raw []byte) error {
	_, err := parseCredentials(raw)
	return err
}

func parseCredentials(raw []byte) (credentials, error) {
	var creds credentials
	if err := credentialsFormat.Decode(raw, &creds); err != nil {
		return credentials{}, err
	}
	if err := credentialsFormat.CheckSecret("api_key", creds.APIKey); err != nil {
		return credentials{}, err
	}
	if strings.Contains(creds.APIKey, ":") {
		// Basic auth ends the user name at the first colon.
		return credentials{}, errors.New("Follow Up Boss credentials: api_key contains a colon, which no Follow Up Boss API key has: copy the key again from Admin > API")
	}
	return creds, nil
}

// account is the pacing and quota key of an API key: a hash, so no map
// holds the key itself.
func account(creds credentials) string {
	sum := sha256.Sum256([]byte(creds.APIKey))
	return hex.EncodeToString(sum[:16])
}

// Validate calls GET /v1/identity and reports, in order,
// crm.CheckCredentials, crm.CheckScopes and crm.CheckAPIAccess (see the
// package documentation). Credentials that do not parse (they were checked
// before storage, so a corrupt row) fail the credentials check, asking for
// re-authorization. A non-nil error, a *crm.Error, means validation could
// not run: network failure, 5xx, 429 or an answer that is not Follow Up
// Boss's.
func (c *Connector) Validate(ctx context.Context, raw []byte) ([]integration.Check, error) {
	creds, err := parseCredentials(raw)
	if err != nil {
		return credentialsFailed("the stored credentials are unusable: " + err.Error()), nil
	}
	ans, err := c.call(ctx, creds, http.MethodGet, pathIdentity, "", nil)
	if err != nil {
		return nil, fmt.Errorf("Follow Up Boss validation: %w", err)
	}
	switch ans.status {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return credentialsFailed("Follow Up Boss rejected the API key (HTTP 401): it was deleted or replaced, or its user was removed"), nil
	case http.StatusForbidden:
		return []integration.Check{
			{Name: crm.CheckCredentials, OK: true, Message: "Follow Up Boss accepted the API key"},
			scopesCheck(""),
			{
				Name:        crm.CheckAPIAccess,
				Code:        integration.ReasonAPIDisabled,
				Message:     "Follow Up Boss refuses API access to the account (HTTP 403): the account is locked, usually because its subscription expired",
				Remediation: RemediateAPIAccess,
			},
		}, nil
	default:
		return nil, fmt.Errorf("Follow Up Boss validation: %w", c.statusError(ans, http.MethodGet, pathIdentity))
	}
	var id identityResponse
	if err := json.Unmarshal(ans.body, &id); err != nil || id.Account == nil {
		return nil, fmt.Errorf("Follow Up Boss validation: %w", &crm.Error{Class: crm.ClassTransient, StatusCode: ans.status,
			Err: errors.New("GET /v1/identity did not answer with an account: is the configured API URL Follow Up Boss's?")})
	}
	acct, user := "", ""
	if id.Account.ID != "" {
		acct = " " + string(id.Account.ID)
	}
	if id.User != nil && id.User.ID != "" {
		user = "user " + string(id.User.ID)
	}
	return []integration.Check{
		{Name: crm.CheckCredentials, OK: true, Message: fmt.Sprintf("API key accepted for Follow Up Boss account%s (%s)", acct, cmp.Or(user, "its user"))},
		scopesCheck(user),
		{Name: crm.CheckAPIAccess, OK: true, Message: "the account is active and answers API calls"},
	}, nil
}

// credentialsFailed is the validation of credentials Follow Up Boss (or
// our own check) refused: the other checks cannot be observed.
func credentialsFailed(message string) []integration.Check {
	return crm.CredentialsFailed(message, RemediateCredentials, crm.CheckScopes, crm.CheckAPIAccess)
}

// scopesCheck always passes: Follow Up Boss keys have no scopes. It says
// what the key can see instead; user names the key's user when known.
func scopesCheck(user string) integration.Check {
	whose := "its user"
	if user != "" {
		whose = "its user (" + user + ")"
	}
	return integration.Check{
		Name: crm.CheckScopes,
		OK:   true,
		Message: "Follow Up Boss API keys have no scopes: this key has the access of " + whose +
			"; an agent's or lender's key sees only the people assigned to that user, an owner's or admin's key sees everyone",
	}
}

// Quota returns the "global" numbers Follow Up Boss last reported for the
// account raw belongs to (the context validation and lookups count in), or
// another context's before any, and false before any answer.
func (c *Connector) Quota(raw []byte) (crm.Quota, bool) {
	creds, err := parseCredentials(raw)
	if err != nil {
		return crm.Quota{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	quotas := c.quotas[account(creds)]
	if q, ok := quotas[contextGlobal]; ok {
		return q, true
	}
	for _, q := range quotas {
		return q, true
	}
	return crm.Quota{}, false
}
