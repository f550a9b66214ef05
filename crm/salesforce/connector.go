// Package salesforce is the crm.Connector for Salesforce. It delivers our
// leads as Salesforce Leads of the customer's org, upserted by a unique
// External ID field that holds our lead key, through the org's REST API;
// the customer connects the org with OAuth 2.0 (the web-server flow, with
// refresh). It is written on net/http and golang.org/x/oauth2, no
// Salesforce SDK. docs/crms/salesforce.md is the customer's guide to it.
//
// # What it calls
//
//	GET   {login}/services/oauth2/authorize                       the consent page (AuthCodeURL)
//	POST  {login}/services/oauth2/token                           code exchange (Exchange), refresh (Refresh)
//	GET   {instance}/services/oauth2/userinfo                     Validate: is the access token accepted
//	GET   {instance}/services/data/{v}/sobjects/Lead/describe     Validate: API access, Lead permissions, the key field
//	PATCH {instance}/services/data/{v}/composite/sobjects/Lead/{key field}
//	                                                              Push: sObject Collections upsert, up to 200 leads,
//	                                                              "allOrNone": false
//
// {login} is Config.LoginURL, or Config.TestLoginURL for a sandbox org
// (crm.AuthRequest.Sandbox); {instance} is the instance_url of the token
// response, where the org's API lives; {v} is Config.APIVersion (v67.0).
//
// # Credentials
//
// The credentials document is the token response, trimmed: {"access_token",
// "refresh_token", "instance_url", "id", "issued_at", "environment"}, where
// environment ("production" or "sandbox") says which login issued the
// tokens and so refreshes them. instance_url, where the access token and
// every call go, must be on a Salesforce domain (or a configured login's),
// over https; plain http and loopback only when a configured login is on
// loopback itself (the fake, the dev stack). id is stored back but never
// believed: pacing follows the org Salesforce names (see Pacing).
//
// Salesforce access tokens carry no expiry (they last the org's session
// timeout, 2 hours by default), so the connector is no crm.Expirer: an
// access token Salesforce no longer takes
// answers INVALID_SESSION_ID (401), a crm.ClassAuth error on which the
// caller refreshes (crm.Refresher). A refresh that Salesforce refuses
// (invalid_grant: the connection was revoked, the refresh token expired)
// is crm.ClassAuth too, and validation then asks the customer to connect
// again. A refresh keeps the refresh token unless Salesforce rotates it.
//
// # Mapping
//
// Each crm.Record becomes one Lead:
//
//	Integrations_Lead_Key__c  Record.Key, our lead ID: the External ID the upsert matches on (LeadKeyField)
//	LastName                  Record.LastName; without first and last name, the last name integration.SplitName
//	                          makes of Record.Name (its last word, with particles such as "van" and a suffix
//	                          such as "Jr."; a single word is a last name); else "[not provided]"
//	FirstName                 Record.FirstName; without first and last name, the words of Record.Name before
//	                          that last name
//	Company                   Record.Company; else "[not provided]"
//	Email                     Record.Email
//	Phone                     Record.Phone
//	Description               Record.Message
//	LeadSource                Record.Source, the partner's source
//
// LastName and Company are required on a Lead; "[not provided]" is what
// Salesforce's own Web-to-Lead fills them with. Empty values are not sent,
// so a re-delivery never blanks a field. Names, Company, Description and
// LeadSource are cut to their field's length (Salesforce would refuse the
// lead otherwise); Email and Phone never are, since a cut one is wrong
// data: Salesforce refuses such a lead with its reason. Record.Attributes
// are not sent. The org's assignment rules run (Sforce-Auto-Assign is left
// at its default) and its duplicate rules apply.
//
// Deliveries are idempotent on Record.Key: the upsert by External ID
// updates the lead that holds the key, so a batch pushed again creates no
// second lead. Salesforce applies the records of a call one by one and
// answers one result per record in request order (documented); results
// are still checked against the records one to one.
//
// # Errors
//
// A record Salesforce refuses (success false) is crm.RecordRejected, its
// reason built from the error's status code and field names, never from
// its message (Salesforce's messages quote the refused values, which are
// lead data): "invalid email address (INVALID_EMAIL_ADDRESS) in Email".
// Whole-call failures are *crm.Error: 401 crm.ClassAuth; 403
// REQUEST_LIMIT_EXCEEDED (the org's daily API allocation is spent)
// crm.ClassRateLimited with RetryAfter Pacing.Hold, since Salesforce has no
// 429 and no Retry-After; any other 403 (API_DISABLED_FOR_ORG,
// API_CURRENTLY_DISABLED, INSUFFICIENT_ACCESS...), a 404 (no such key
// field) and a 400 that says the org is not set up for us (a field the
// user cannot see, no Create on Lead) crm.ClassPermission; any other 400,
// and 413, crm.ClassBatchRejected (the caller splits the batch); a record
// answering UNABLE_TO_LOCK_ROW fails the call crm.ClassTransient (the
// batch is retried whole, which the upsert makes safe), as do 408, 5xx,
// network failures and malformed answers; and when every record of a call
// is refused for the user's access to Leads, Push asks the Lead describe
// why: a user that lost Create or Edit on Lead fails the call
// crm.ClassPermission (validation names the permission), while leads its
// sharing keeps it from editing are rejected one by one, so one such lead
// never holds up the others. Errors name what failed in Salesforce's terms
// (status, error code, counts), never URLs, tokens or lead data.
//
// # Pacing
//
// Salesforce allots each org a number of API calls per rolling 24 hours
// and reports the org's use on every REST answer, "Sforce-Limit-Info:
// api-usage=N/M". The org is the one Salesforce names for the access token
// (the identity URL of its token response to our exchange or refresh, or
// the identity service, which Push asks once for a token the connector has
// not seen), never the document's id; a token Salesforce names no org for
// is paced per grant. The connector paces its calls per org with a crm.Pacer
// at a little under M per 24 hours (Pacing.Published before the org's
// first answer), holds an org's deliveries for Pacing.Hold (or until an
// answer shows room again) when what remains of the allocation falls to
// Pacing.Reserve of it (left to the org's other users and tools) or
// Salesforce answers REQUEST_LIMIT_EXCEEDED, and keeps at most Pacing.Concurrency calls per
// org in flight (Salesforce allows 25 long-running ones). A hold longer
// than Pacing.MaxWait fails a Push at once with crm.ClassRateLimited and
// the time left, rather than blocking it. Pacing is per process (each
// worker paces its own calls); the reserve, read from the org-wide usage
// Salesforce reports, holds them all. Quota reports the last
// Sforce-Limit-Info of the org. Validation is not paced: it must tell the
// truth while deliveries hold.
package salesforce

import (
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/acme/integrations/crm"
)

// ProviderName is the provider name of Salesforce CRM integrations.
const ProviderName = "salesforce"

// Defaults of Config.
const (
	DefaultLoginURL     = "https://login.salesforce.com"
	DefaultTestLoginURL = "https://test.salesforce.com"
	// DefaultAPIVersion is Summer '26; the sObject Collections upsert
	// needs v46.0 or later.
	DefaultAPIVersion = "v67.0"
)

// LeadKeyField is the Lead field holding our lead key: a custom Text(255)
// field marked Unique and External ID, which the customer creates (the
// guide and RemediateLeadKeyField say how).
const LeadKeyField = "Integrations_Lead_Key__c"

// MaxBatchSize is the most records one Push sends: the sObject Collections
// limit per call, and the connector's BatchLimit.
const MaxBatchSize = 200

// defaultTimeout bounds every call when Config.HTTPClient is nil.
const defaultTimeout = 20 * time.Second

// maxResponseBytes bounds how much of an answer is read: 200 upsert
// results, or a describe of a Lead with many custom fields.
const maxResponseBytes = 8 << 20

// Config is the connector's configuration, from the app's settings. The
// OAuth client (consumer key and secret of the connected app) comes from
// here, never from a request.
type Config struct {
	// LoginURL is the production login (https://login.salesforce.com);
	// TestLoginURL the sandbox login (https://test.salesforce.com).
	LoginURL     string
	TestLoginURL string
	// APIVersion is the REST API version, e.g. "v67.0".
	APIVersion string
	// ClientID and ClientSecret are the connected app's consumer key and
	// secret.
	ClientID     string
	ClientSecret string
	// HTTPClient makes every call; nil means one with a 20 s timeout.
	HTTPClient *http.Client
	// Pacing is how the connector spends an org's API allocation; zero
	// fields take DefaultPacing's.
	Pacing Pacing
}

// Pacing is how the connector spends an org's API allocation.
type Pacing struct {
	// Window is the period of the allocation Sforce-Limit-Info reports:
	// Salesforce's rolling 24 hours.
	Window time.Duration
	// Published is the allocation assumed per Window before an org's first
	// answer: 15,000, a Developer Edition's, the smallest there is.
	Published int
	// Reserve is the share of the allocation left to the org's other users
	// and integrations: when what remains falls to it, deliveries hold.
	Reserve float64
	// Hold is how long deliveries wait when the allocation is low or spent
	// before they try again (an hour: the rolling window frees calls as
	// they age).
	Hold time.Duration
	// MaxWait is the longest a Push waits for a hold to end; a longer hold
	// fails it at once with crm.ClassRateLimited.
	MaxWait time.Duration
	// Concurrency is how many calls per org may be in flight.
	Concurrency int
}

// DefaultPacing returns the pacing for real Salesforce orgs.
func DefaultPacing() Pacing {
	return Pacing{
		Window: 24 * time.Hour, Published: 15_000, Reserve: 0.10,
		Hold: time.Hour, MaxWait: 30 * time.Second, Concurrency: 4,
	}
}

// or fills p's zero fields from d.
func (p Pacing) or(d Pacing) Pacing {
	if p.Window <= 0 {
		p.Window = d.Window
	}
	if p.Published <= 0 {
		p.Published = d.Published
	}
	if p.Reserve <= 0 || p.Reserve >= 1 {
		p.Reserve = d.Reserve
	}
	if p.Hold <= 0 {
		p.Hold = d.Hold
	}
	if p.MaxWait <= 0 {
		p.MaxWait = d.MaxWait
	}
	if p.Concurrency <= 0 {
		p.Concurrency = d.Concurrency
	}
	return p
}

// Connector is the crm.Connector for Salesforce. It is safe for concurrent
// use.
type Connector struct {
	cfg        Config
	httpClient *http.Client
	pacer      *crm.Pacer
	now        func() time.Time

	mu   sync.Mutex
	orgs map[string]*orgPace
	// orgIDs are the orgs Salesforce named for access tokens (see
	// account).
	orgIDs crm.TokenAccounts
}

var (
	_ crm.Connector     = (*Connector)(nil)
	_ crm.Refresher     = (*Connector)(nil)
	_ crm.OAuth         = (*Connector)(nil)
	_ crm.QuotaReporter = (*Connector)(nil)
)

// NewConnector returns a Salesforce connector; empty fields of cfg take
// the defaults (production and test logins, DefaultAPIVersion,
// DefaultPacing). Without ClientID and ClientSecret
// it can still validate and deliver with stored credentials, but it cannot
// connect an org or refresh its tokens; those calls say which settings to
// configure.
func NewConnector(cfg Config) *Connector {
	cfg.LoginURL = strings.TrimRight(orDefault(cfg.LoginURL, DefaultLoginURL), "/")
	cfg.TestLoginURL = strings.TrimRight(orDefault(cfg.TestLoginURL, DefaultTestLoginURL), "/")
	cfg.APIVersion = orDefault(cfg.APIVersion, DefaultAPIVersion)
	cfg.Pacing = cfg.Pacing.or(DefaultPacing())
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	return &Connector{
		cfg:        cfg,
		httpClient: httpClient,
		// The pacer's holds are the connector's pacing intervals (see
		// observe), as long as the token bucket's own waits, so it sleeps
		// them out within the call's deadline whatever their length; the
		// long holds are the connector's own, bounded by Pacing.MaxWait.
		pacer: crm.NewPacer(crm.Limit{Calls: cfg.Pacing.Published, Per: cfg.Pacing.Window}, crm.WithMaxHoldWait(math.MaxInt64)),
		now:   time.Now,
		orgs:  map[string]*orgPace{},
	}
}

func orDefault(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}

// Provider returns ProviderName.
func (c *Connector) Provider() string { return ProviderName }

// DisplayName returns the CRM's name as customers know it.
func (c *Connector) DisplayName() string { return "Salesforce" }

// ParseCredentials checks that raw is a Salesforce credentials document
// (see the package documentation). Its errors name the field at fault and
// never contain a token.
func (c *Connector) ParseCredentials(raw []byte) error {
	_, err := c.parseCredentials(raw)
	return err
}

// BatchLimit returns MaxBatchSize.
func (c *Connector) BatchLimit() int { return MaxBatchSize }

// Quota returns what the org of raw last reported in Sforce-Limit-Info,
// over Pacing.Window, and false before any answer.
func (c *Connector) Quota(raw []byte) (crm.Quota, bool) {
	creds, err := c.parseCredentials(raw)
	if err != nil {
		return crm.Quota{}, false
	}
	// The org Salesforce named for the token, never the document's id.
	key, _ := c.knownAccount(creds)
	return c.pacer.Quota(key)
}

// loginURL is the login of an environment.
func (c *Connector) loginURL(sandbox bool) string {
	if sandbox {
		return c.cfg.TestLoginURL
	}
	return c.cfg.LoginURL
}

// dataURL is the URL of a REST resource of the org, below
// /services/data/{version}.
func (c *Connector) dataURL(creds credentials, resource string) string {
	return strings.TrimRight(creds.InstanceURL, "/") + "/services/data/" + c.cfg.APIVersion + resource
}

// idPattern is a Salesforce record ID, 15 or 18 characters.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`)
