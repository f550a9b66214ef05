// Package hubspot is the crm.Connector for HubSpot: it delivers our leads
// as HubSpot contacts, upserted by a unique contact property that holds our
// lead key, and validates that an account can take them. It speaks HubSpot's
// API with net/http (no SDK: they hide the per-record results and the
// rate-limit headers this service depends on) and imports no fake; its
// tests run against package hubspotfake, an independent implementation of
// the same API.
//
// # Credentials
//
// The credentials document is the connector's own JSON:
//
//	{"access_token": "pat-na1-..."}                 a private app's or service key's static token
//	{"access_token": "...", "refresh_token": "...", "expires_at": "2026-12-01T12:30:00Z", "hub_id": 123}
//	                                                 an OAuth connection (Exchange and Refresh write it)
//
// ParseCredentials accepts an OAuth document from a file or the API too
// (the OAuth callback authorizes with Exchange's document the same way),
// but its hub_id is only stored back, never believed: the account a
// token's calls are paced and reported as is the one HubSpot names for the
// token (see Pacing).
//
// OAuth access tokens live 30 minutes (expires_in 1800). The connector is a
// crm.Expirer (the document's expires_at) so the caller refreshes ahead of
// expiry, and a crm.Refresher for when a call answers 401 anyway (HubSpot
// says a 401 is no reliable sign of expiry, so both). Refreshing keeps the
// refresh token unless HubSpot sends a new one.
//
// # What it calls
//
//	POST /oauth/v1/token                                    code exchange and refresh (form; client ID and secret from configuration)
//	GET  /oauth/v1/access-tokens/{token}                    OAuth token introspection: hub ID, scopes
//	POST /oauth/v2/private-apps/get/access-token-info       private-app token introspection (unconfirmed: see Validate)
//	GET  /crm/v3/properties/contacts/{name}                 do our contact properties exist (and is the key unique)?
//	POST /crm/v3/properties/contacts                        create them, when the token may (crm.schemas.contacts.write)
//	POST /crm/v3/objects/contacts/batch/upsert              deliver up to MaxBatchSize leads (by key; repeat leads by email)
//
// # Mapping
//
// A crm.Record becomes one contact upserted with idProperty KeyProperty
// and id Record.Key, so delivering a lead again updates the same contact
// (a lead whose email another contact has updates that one: see Repeat
// leads):
//
//	Key                    integrations_lead_key (a unique-value property) and the objectWriteTraceId
//	Source                 integrations_lead_source (a text property)
//	FirstName, LastName    firstname, lastname; when both are empty, Name split by integration.SplitName
//	                       (the last word, with particles such as "van" and a suffix such as "Jr.",
//	                       lastname, the words before firstname; one word: lastname)
//	Company, Email, Phone  company, email, phone
//	Message, Attributes    message; the attributes follow it as "key: value" lines, sorted by key,
//	                       under "Details from the lead partner:" (HubSpot refuses properties an
//	                       account lacks, so attributes are not properties)
//
// Empty fields are not sent, so they never clear what the contact holds.
// HubSpot requires no contact property, so nothing is filled in for a field
// the partner did not send.
//
// Results are matched to records by the objectWriteTraceId the connector
// sets (our key), then by the key property in the result, never by position:
// HubSpot does not promise the order. Per-record errors of a 207 (matched the
// same way, or by the ID the record was upserted by) are rejections with
// reasons like "invalid email (INVALID_EMAIL) on property email", never the
// value. Records the answer does not account for are pushed again one by
// one; if one still is not accounted for, Push fails as transient and the
// caller pushes the batch again (idempotent).
//
// A whole-batch 400 (HubSpot refuses an upsert batch for one invalid email)
// is crm.ClassBatchRejected with the inner code (INVALID_EMAIL), so the
// caller splits the batch; a missing or non-unique contact property behind a
// 400 is a setup problem, crm.ClassPermission, so the caller validates.
//
// # Repeat leads
//
// HubSpot keeps one contact per email. A lead for a person it already has
// as a contact under another lead key (a partner sending the same person
// again, or two partners) is refused by the upsert by key: category
// CONFLICT, "Contact already exists. Existing ID: ..." (per record in the
// 207, or as a whole-call 409 for a batch of one, while a whole-call 409
// for more is crm.ClassBatchRejected, so the caller splits the batch;
// OBJECT_ALREADY_EXISTS is the newer shape of the same answer). Push
// upserts those records again in a second batch, by idProperty email (HubSpot's own unique identifier of
// contacts) with the same properties, so the existing contact gets the new
// lead's message, source, name and phone and the lead is delivered with
// that contact's ID. Records with one email (compared case-insensitively)
// go in successive batches, in the records' order, since HubSpot refuses an
// ID twice in a batch.
//
// The contact's KeyProperty then holds the newest lead's key: the contact is
// found by that key from now on, and the older lead's key belongs to no
// contact. Pushing the older lead again therefore upserts by its own key,
// is refused the same way, and lands on the same contact through the same
// email fallback (which gives the contact the older key back): still one
// contact, never a second one. A record the email upsert refuses is
// rejected with that refusal's reason, never the value: typically "another
// contact already has this value (CONFLICT) on property
// integrations_lead_key", when the lead's key belongs to one contact and its
// email to another (HubSpot cannot merge them for us). A record refused for
// its email that has none stays rejected; a record the email upsert's
// answer does not account for is never delivered.
//
// # Validation
//
// Four checks (see Validate): crm.CheckCredentials (expired_credentials),
// crm.CheckScopes (insufficient_permissions, naming the missing scope), and
// CheckLeadKeyProperty and CheckLeadSourceProperty (insufficient_permissions):
// the two contact properties exist, the key with unique values. Validation
// creates them where the token may (crm.schemas.contacts.write); otherwise
// the failed check says how to create them in HubSpot. HubSpot has no "API
// disabled" state. Every remediation text is quoted in docs/crms/hubspot.md.
//
// # Pacing
//
// One crm.Pacer for all accounts, keyed by the hub ID HubSpot named for an
// OAuth access token (its token endpoint's answer, or the token
// introspection, which Push asks once per token it has not seen; never the
// document's hub_id, which whoever authorizes writes) or else by a hash of
// the token (private apps and service keys: their own limit), starts at
// HubSpot's published 100 calls per 10 s and
// follows X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds;
// Quota reports -Daily-Remaining of -Daily when HubSpot sends it (private
// apps), else the 10 s window. A 429 is crm.ClassRateLimited after
// Retry-After when HubSpot sends one (undocumented), else after the window
// (-Interval-Milliseconds, 10 s by default), or an hour for the DAILY
// policy, and holds the account that long. While a hold longer than
// crm.DefaultMaxHoldWait (or than the call's context has left) lasts, the
// account's calls (deliveries and validations alike) fail at once with
// crm.ClassRateLimited and the time left as RetryAfter, rather than wait
// until their deadline.
package hubspot

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm"
)

// ProviderName is the provider name of HubSpot CRM integrations.
const ProviderName = "hubspot"

// The HubSpot scopes the connector uses.
const (
	// ScopeContactsWrite is required: the batch upsert needs it.
	ScopeContactsWrite = "crm.objects.contacts.write"
	// ScopeSchemasContactsWrite is optional: with it the connector
	// creates its contact properties itself.
	ScopeSchemasContactsWrite = "crm.schemas.contacts.write"
	// scopeOAuth is the scope every HubSpot OAuth app asks for.
	scopeOAuth = "oauth"
)

// RequiredScopes returns the scopes an account must grant.
func RequiredScopes() []string { return []string{ScopeContactsWrite} }

// The contact properties the connector stores our lead key and the partner
// source in.
const (
	KeyProperty    = "integrations_lead_key"
	SourceProperty = "integrations_lead_source"
)

// MaxBatchSize is the most records one Push sends. HubSpot states no limit
// for the v3 batch upsert; 100 is what its legacy batch endpoint recommends
// and what is widely used. If HubSpot's limit were lower, the 400 it would
// answer is a batch refusal, which the caller splits.
const MaxBatchSize = 100

// DefaultLimit is HubSpot's published burst limit for free and Starter
// accounts (and for OAuth apps per account): 100 calls per 10 s. Headers
// raise it for higher tiers.
var DefaultLimit = crm.Limit{Calls: 100, Per: 10 * time.Second}

// Default URLs of HubSpot.
const (
	DefaultAPIURL  = "https://api.hubapi.com"
	DefaultAuthURL = "https://app.hubspot.com/oauth/authorize"
)

// defaultTimeout bounds every call when the config has no *http.Client.
const defaultTimeout = 20 * time.Second

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 4 << 20

// Remediation texts, shown to the customer next to a failed check. Each
// appears verbatim in docs/crms/hubspot.md (a test keeps them in step).
const (
	remediateCredentialsToken   = "In HubSpot, open Settings > Integrations > Private Apps (or Service Keys), copy the access token of the app you connected, and authorize the integration again with it; the integration resumes by itself once validation passes."
	remediateCredentialsOAuth   = "Reconnect HubSpot: authorize the integration again with OAuth and approve the access HubSpot asks for. The connection stops working when the app is uninstalled from HubSpot or its access is removed. The integration resumes by itself once validation passes."
	remediateScopesToken        = "In HubSpot, open the private app (or service key), add the scope crm.objects.contacts.write (and crm.schemas.contacts.write, so we can create our contact properties) and save; if HubSpot shows a new token, authorize the integration again with it. The integration resumes by itself at the next validation."
	remediateScopesOAuth        = "Reconnect HubSpot with OAuth and approve every access HubSpot asks for, including writing contacts (crm.objects.contacts.write). The integration resumes by itself once validation passes."
	remediateLeadKeyProperty    = "In HubSpot, go to Settings > Properties, choose Contact properties and create a single-line text property with the internal name integrations_lead_key and \"Require unique values for this property\" turned on; or grant the scope crm.schemas.contacts.write and we create it at the next validation."
	remediateLeadSourceProperty = "In HubSpot, go to Settings > Properties, choose Contact properties and create a single-line text property with the internal name integrations_lead_source; or grant the scope crm.schemas.contacts.write and we create it at the next validation."
	remediateLeadKeyNotUnique   = "The contact property integrations_lead_key exists but does not require unique values, and HubSpot cannot change that on an existing property. In HubSpot, go to Settings > Properties, delete (or rename) the contact property integrations_lead_key, then create it again as a single-line text property with \"Require unique values for this property\" turned on, or let us create it (scope crm.schemas.contacts.write)."
)

// Config is what the connector needs: where HubSpot is, the OAuth client
// (from configuration, never from a request), and how to call it.
type Config struct {
	// APIURL is HubSpot's API (DefaultAPIURL); AuthURL its consent page
	// (DefaultAuthURL), a separate host.
	APIURL  string
	AuthURL string
	// ClientID and ClientSecret are our HubSpot app's; without them OAuth
	// is off (private-app tokens still work).
	ClientID     string
	ClientSecret string
	// HTTPClient makes every call; nil means one with a 20 s timeout.
	HTTPClient *http.Client
	// Limit is the published limit each account starts at (zero:
	// DefaultLimit).
	Limit crm.Limit
}

// Connector is the crm.Connector for HubSpot. It is safe for concurrent
// use.
type Connector struct {
	apiURL       string
	authURL      string
	clientID     string
	clientSecret string
	httpClient   *http.Client
	pacer        *crm.Pacer
	// now is the connector's clock, for token expiry.
	now func() time.Time

	mu sync.Mutex
	// daily is the last daily quota HubSpot reported, by pacer key.
	daily map[string]crm.Quota
	// hubs are the accounts HubSpot named for OAuth access tokens (see
	// paceKey).
	hubs crm.TokenAccounts
}

var (
	_ crm.Connector     = (*Connector)(nil)
	_ crm.Refresher     = (*Connector)(nil)
	_ crm.OAuth         = (*Connector)(nil)
	_ crm.Expirer       = (*Connector)(nil)
	_ crm.QuotaReporter = (*Connector)(nil)
)

// New returns a HubSpot connector for cfg; empty URLs mean HubSpot's own.
func New(cfg Config) *Connector {
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	limit := cfg.Limit
	if limit.Calls <= 0 || limit.Per <= 0 {
		limit = DefaultLimit
	}
	orDefault := func(v, def string) string {
		if v = strings.TrimRight(strings.TrimSpace(v), "/"); v == "" {
			return def
		}
		return v
	}
	return &Connector{
		apiURL:       orDefault(cfg.APIURL, DefaultAPIURL),
		authURL:      orDefault(cfg.AuthURL, DefaultAuthURL),
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		httpClient:   httpClient,
		pacer:        crm.NewPacer(limit),
		now:          time.Now,
		daily:        map[string]crm.Quota{},
	}
}

// Provider returns ProviderName.
func (c *Connector) Provider() string { return ProviderName }

// DisplayName returns the CRM's name as customers know it.
func (c *Connector) DisplayName() string { return "HubSpot" }

// BatchLimit returns MaxBatchSize.
func (c *Connector) BatchLimit() int { return MaxBatchSize }

// Quota returns what HubSpot last reported for the account of raw: the
// daily allowance when HubSpot sends one (private apps), else the 10 s
// window. The account is the one HubSpot named for the token (never the
// document's hub_id), so a document cannot read another account's quota.
func (c *Connector) Quota(raw []byte) (crm.Quota, bool) {
	creds, err := parseCredentials(raw)
	if err != nil {
		return crm.Quota{}, false
	}
	key, _ := c.knownPaceKey(creds)
	c.mu.Lock()
	q, ok := c.daily[key]
	c.mu.Unlock()
	if ok {
		return q, true
	}
	return c.pacer.Quota(key)
}
