// Package sandbox is the crm.Connector for the sandbox CRM, and the template
// for a connector: a new CRM's connector (crm/hubspot, crm/salesforce, ...)
// copies its shape.
//
//   - The package holds the connector only. It owns everything it needs to
//     speak the CRM's API (paths, required scopes, batch limit, the wire
//     shapes it sends and reads) and imports no fake: the fake CRM it is
//     tested against, crm/sandbox/sandboxfake, is a separate package that
//     implements the same API from the CRM's side, so a mismatch between the
//     two fails a test instead of hiding behind constants they share.
//   - ParseCredentials checks the credentials document strictly and never
//     echoes its values; Validate maps the CRM's answers to the crm.Check*
//     checks with remediation texts; Push maps the CRM's per-record results
//     to crm.RecordResult and whole-call failures to a classified *crm.Error
//     that carries status codes, error codes, counts and keys, never
//     credentials or lead PII, and never the CRM's URL or address either:
//     errors reach customers (crm.Error's rendering), so they name what
//     the CRM answered, and a failed connection is crm.NetworkError.
//   - connector_test.go and push_test.go cover what is particular to this
//     CRM (its messages, its error codes, servers that misbehave);
//     contract_test.go runs the shared connector contract suite,
//     crm/crmtest, against the connector and its fake.
//
// The sandbox CRM API, as this connector uses it (see package sandboxfake
// for the full API and its control side):
//
//	GET  /api/v1/me              → 200 {"account_id","scopes","api_enabled"}; 401 for a bad key
//	POST /api/v1/contacts/batch  body {"contacts":[record...]}, 1 to BatchLimit records
//	                             → 200 {"results":[{"key","status":"created"|"updated"|"rejected","id","error"}]}
//
// authenticated with "Authorization: Bearer <api key>"; errors are JSON
// {"error": "...", "code": "..."}.
package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// ProviderName is the provider name of sandbox CRM integrations.
const ProviderName = "sandbox"

// The scopes the service needs on a sandbox account.
const (
	ScopeContactsRead  = "contacts.read"
	ScopeContactsWrite = "contacts.write"
)

// RequiredScopes returns the scopes the service needs on a sandbox account.
func RequiredScopes() []string { return []string{ScopeContactsRead, ScopeContactsWrite} }

// MaxBatchSize is the most records one Push sends: the sandbox CRM's limit
// per contacts batch, and the connector's BatchLimit.
const MaxBatchSize = 100

// The sandbox CRM API's endpoints.
const (
	pathMe            = "/api/v1/me"
	pathContactsBatch = "/api/v1/contacts/batch"
)

// defaultTimeout bounds every call when the caller passes no *http.Client
// of its own.
const defaultTimeout = 10 * time.Second

// maxResponseBytes bounds how much of a CRM API response is read.
const maxResponseBytes = 1 << 20

// credentialsExample is shown in every credentials error.
const credentialsExample = `{"api_key": "sbx_..."}`

// credentialsFormat decodes the credentials document strictly, without
// quoting it in its errors.
var credentialsFormat = crm.CredentialsFormat{
	Product: "sandbox",
	Example: credentialsExample,
	IfEmpty: "provide " + credentialsExample + " with the key from the sandbox CRM",
}

// Remediation texts, shown to the customer next to a failed check.
const (
	remediateCredentials = "Re-authorize the integration with a valid API key (integrations authorize ID --credentials-file FILE)"
	remediateScopes      = "Grant the API key the missing scopes in the CRM, or re-authorize with a key that has them (integrations authorize ID --credentials-file FILE); the integration resumes by itself once validation passes"
	remediateAPIAccess   = "Turn API access back on in the CRM account's settings; the integration resumes by itself at the next validation"
)

// credentials is the sandbox credentials document.
type credentials struct {
	APIKey string `json:"api_key"`
}

// Connector is the crm.Connector for the sandbox CRM.
type Connector struct {
	baseURL    string
	httpClient *http.Client
}

var _ crm.Connector = (*Connector)(nil)

// NewConnector returns a connector for the sandbox CRM API at baseURL (e.g.
// http://127.0.0.1:8090). A nil httpClient means one with a 10s timeout
// that keeps up to 64 idle connections to the sandbox: many CRM
// integrations push at once, and the standard transport's 2 per host would
// open and close a connection for most calls.
func NewConnector(baseURL string, httpClient *http.Client) *Connector {
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Timeout: defaultTimeout, Transport: transport}
	}
	return &Connector{baseURL: strings.TrimRight(baseURL, "/"), httpClient: httpClient}
}

// Provider returns ProviderName.
func (c *Connector) Provider() string { return ProviderName }

// DisplayName returns the CRM's name as customers know it.
func (c *Connector) DisplayName() string { return "sandbox CRM" }

// ParseCredentials checks that raw is {"api_key": "..."} with a non-empty
// key and no other fields. Its errors never contain the key.
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
	return creds, nil
}

// Validate calls GET /api/v1/me with the credentials and reports three
// checks, in order: crm.CheckCredentials (a 401 fails it with code
// expired_credentials), crm.CheckScopes (missing RequiredScopes fail it
// with insufficient_permissions) and crm.CheckAPIAccess (api_enabled false
// fails it with api_disabled). When the credentials fail, the other two
// cannot be observed and are reported with crm.NotChecked. Credentials that
// do not parse (they were checked before storage, so this means a corrupt
// row) fail the credentials check the same way, asking for re-authorization.
//
// A non-nil error, a *crm.Error, means validation could not run: network
// failure, 5xx, 429 (with its Retry-After) or an unexpected response.
func (c *Connector) Validate(ctx context.Context, raw []byte) ([]integration.Check, error) {
	creds, err := parseCredentials(raw)
	if err != nil {
		return credentialsFailed("the stored credentials are unusable: " + err.Error()), nil
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+pathMe, nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox validate: %w", errBadURL)
	}
	req.Header.Set("Authorization", "Bearer "+creds.APIKey)
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox validate: %w", crm.NetworkError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("sandbox validate: %w", &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode, Err: fmt.Errorf("read response: %w", err)})
	}

	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		msg := "the sandbox CRM rejected the API key (HTTP 401)"
		var body errorBody
		if json.Unmarshal(data, &body) == nil && body.Error != "" && body.Code != "" {
			// A well-formed sandbox error; redact anyway in case it quotes the request.
			msg += ": " + strings.ReplaceAll(body.Error, creds.APIKey, "[redacted]")
		}
		return credentialsFailed(msg), nil
	case resp.StatusCode != http.StatusOK:
		// The body is not echoed: an unknown server may reflect the request headers.
		return nil, fmt.Errorf("sandbox validate: %w", &crm.Error{
			Class:      crm.ClassForStatus(resp.StatusCode),
			StatusCode: resp.StatusCode,
			Code:       errorCode(data),
			RetryAfter: crm.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Err:        fmt.Errorf("the sandbox CRM answered %s to the account lookup", resp.Status),
		})
	}

	var me meResponse
	if err := json.Unmarshal(data, &me); err != nil || me.AccountID == "" {
		return nil, fmt.Errorf("sandbox validate: %w", &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode,
			Err: errors.New("the account lookup did not answer with an account: check that INTEGRATIONS_SANDBOX_URL is the sandbox CRM")})
	}
	return []integration.Check{
		{Name: crm.CheckCredentials, OK: true, Message: fmt.Sprintf("API key accepted for sandbox account %s", me.AccountID)},
		scopesCheck(me),
		apiAccessCheck(me),
	}, nil
}

// credentialsFailed is the validation of credentials the sandbox (or our own
// check) refused: the other checks cannot be observed.
func credentialsFailed(message string) []integration.Check {
	return crm.CredentialsFailed(message, remediateCredentials, crm.CheckScopes, crm.CheckAPIAccess)
}

func scopesCheck(me meResponse) integration.Check {
	var missing []string
	for _, scope := range RequiredScopes() {
		if !slices.Contains(me.Scopes, scope) {
			missing = append(missing, scope)
		}
	}
	if len(missing) > 0 {
		return integration.Check{
			Name:        crm.CheckScopes,
			Code:        integration.ReasonInsufficientPermissions,
			Message:     fmt.Sprintf("the API key lacks scope %s (it has: %s)", strings.Join(missing, ", "), describeScopes(me.Scopes)),
			Remediation: remediateScopes,
		}
	}
	return integration.Check{Name: crm.CheckScopes, OK: true, Message: "has the required scopes " + strings.Join(RequiredScopes(), ", ")}
}

func apiAccessCheck(me meResponse) integration.Check {
	if !me.APIEnabled {
		return integration.Check{
			Name:        crm.CheckAPIAccess,
			Code:        integration.ReasonAPIDisabled,
			Message:     fmt.Sprintf("API access is disabled for sandbox account %s", me.AccountID),
			Remediation: remediateAPIAccess,
		}
	}
	return integration.Check{Name: crm.CheckAPIAccess, OK: true, Message: "API access is enabled"}
}

// BatchLimit returns MaxBatchSize.
func (c *Connector) BatchLimit() int { return MaxBatchSize }

// Push upserts records as sandbox contacts keyed by Record.Key with POST
// /api/v1/contacts/batch. Created and updated contacts are
// crm.RecordDelivered with the sandbox's contact ID; rejected ones are
// crm.RecordRejected with the sandbox's reason.
//
// Whole-call errors are *crm.Error: 401 (or credentials that no longer
// parse) crm.ClassAuth; 403 (API access disabled, missing contacts.write)
// crm.ClassPermission; 429 crm.ClassRateLimited with its Retry-After; a
// 413 for the batch, or a 400 the sandbox explains with an error code,
// crm.ClassBatchRejected (the batch is refused for what it carries: the
// caller splits it); everything else (network, timeout, 5xx, a 400 that is
// not the sandbox's, a malformed response) crm.ClassTransient. They carry
// status codes, the sandbox's error code, counts and keys, never the API
// key, the records' contents or the sandbox's URL.
func (c *Connector) Push(ctx context.Context, raw []byte, records []crm.Record) ([]crm.RecordResult, error) {
	if len(records) == 0 {
		return nil, nil
	}
	if len(records) > MaxBatchSize {
		return nil, fmt.Errorf("sandbox push: %d records: %w (at most %d)", len(records), crm.ErrBatchTooLarge, MaxBatchSize)
	}
	creds, err := parseCredentials(raw)
	if err != nil {
		// Unusable stored credentials need re-authorization, which is what
		// an auth error leads to (validation reports the details).
		return nil, fmt.Errorf("sandbox push: %w", &crm.Error{Class: crm.ClassAuth,
			Err: errors.New("the stored credentials are unusable: validate the integration and re-authorize")})
	}
	body, err := json.Marshal(contactsBatch{Contacts: records})
	if err != nil {
		// json.Marshal errors may quote the offending value, which is PII.
		return nil, fmt.Errorf("sandbox push: encode %d records: a record's attributes are not JSON-encodable", len(records))
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+pathContactsBatch, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sandbox push: %w", errBadURL)
	}
	req.Header.Set("Authorization", "Bearer "+creds.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox push of %d records: %w", len(records), crm.NetworkError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("sandbox push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode, Err: fmt.Errorf("read response: %w", err)})
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sandbox push of %d records: %w", len(records), pushError(resp, data))
	}

	var answer contactsResponse
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, fmt.Errorf("sandbox push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode,
			Err: errors.New("the contacts batch did not answer with results: check that INTEGRATIONS_SANDBOX_URL is the sandbox CRM")})
	}
	results := make([]crm.RecordResult, len(answer.Results))
	for i, r := range answer.Results {
		results[i] = crm.RecordResult{Key: r.Key, CRMID: r.ID}
		switch r.Status {
		case contactCreated, contactUpdated:
			results[i].Status = crm.RecordDelivered
		case contactRejected:
			results[i].Status = crm.RecordRejected
			results[i].Reason = cmp.Or(r.Error, "rejected by the sandbox CRM without a reason")
			results[i].CRMID = ""
		default:
			results[i].Status = crm.RecordStatus(r.Status)
		}
	}
	if err := crm.CheckResults(records, results); err != nil {
		// Misattributed outcomes would mark the wrong leads delivered.
		return nil, fmt.Errorf("sandbox push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("the sandbox answered malformed results: %w", err)})
	}
	return results, nil
}

// errBadURL is the error of a base URL requests cannot be made to; the URL
// is not quoted, since errors reach customers.
var errBadURL = errors.New("the sandbox CRM's URL is not a valid URL: check INTEGRATIONS_SANDBOX_URL")

// errorCodePattern is what an error code must look like to be quoted.
var errorCodePattern = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// errorCode returns the error code of a sandbox error response, if it has
// one that looks like a code, else "". Only the code is ever quoted: the
// message, or whatever a server that is not the sandbox answered, may echo
// the request, which holds the key and the leads.
func errorCode(data []byte) string {
	var body errorBody
	if json.Unmarshal(data, &body) == nil && errorCodePattern.MatchString(body.Code) {
		return body.Code
	}
	return ""
}

// pushError classifies a non-200 answer to a push. A 413 is the sandbox's
// size limit for a batch, and a 400 with an error code the sandbox refusing
// a batch for what it holds: either way the batch as a whole, which
// crm.ClassBatchRejected asks the caller to split. A 400 without the
// sandbox's error shape comes from something that is not the sandbox (a
// proxy, a wrong URL) and says nothing about the records, so it stays
// transient: an operator sees the sync fail instead of leads rejected.
func pushError(resp *http.Response, data []byte) *crm.Error {
	code := errorCode(data)
	class := crm.ClassForStatus(resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusRequestEntityTooLarge,
		resp.StatusCode == http.StatusBadRequest && code != "":
		class = crm.ClassBatchRejected
	case class == crm.ClassRecordRejected:
		// Any other 4xx for the whole batch is a request the sandbox
		// cannot take, not one bad record; it shows as a sync failure an
		// operator sees.
		class = crm.ClassTransient
	}
	return &crm.Error{
		Class:      class,
		StatusCode: resp.StatusCode,
		Code:       code,
		RetryAfter: crm.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Err:        fmt.Errorf("the sandbox CRM answered %s to the contacts batch", resp.Status),
	}
}

// describeScopes lists an account's scopes for a message.
func describeScopes(scopes []string) string {
	if len(scopes) == 0 {
		return "no scopes"
	}
	return strings.Join(scopes, ", ")
}

// The wire shapes of the sandbox CRM API, as the connector sends and reads
// them. They are the connector's own copy of the API: package sandboxfake
// declares the server's side, and the contract suite checks that they agree.

// meResponse is the answer to GET /api/v1/me.
type meResponse struct {
	AccountID  string   `json:"account_id"`
	Scopes     []string `json:"scopes"`
	APIEnabled bool     `json:"api_enabled"`
}

// contactsBatch is the request body of POST /api/v1/contacts/batch;
// crm.Record's JSON field names are the sandbox's contact fields.
type contactsBatch struct {
	Contacts []crm.Record `json:"contacts"`
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

// errorBody is the JSON shape of every sandbox error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}
