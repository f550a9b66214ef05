package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// CheckLeadKeyField is the name of the check that the Lead field holding
// our lead key exists, is a unique External ID, and the integration user
// can write it.
const CheckLeadKeyField = "lead_key_field"

// Remediation texts, shown to the customer next to a failed check; the
// guide (docs/crms/salesforce.md) quotes each verbatim.
const (
	RemediateCredentials = "Reconnect Salesforce: authorize the integration again (integrations authorize ID --oauth) and sign in to Salesforce as the integration user; the integration resumes by itself once validation passes."
	// RemediateCredentialsSandbox is RemediateCredentials for a sandbox
	// org, which signs in only at the sandbox login.
	RemediateCredentialsSandbox = "Reconnect your Salesforce sandbox: authorize the integration again (integrations authorize ID --oauth --sandbox) and sign in to the sandbox org as the integration user; the integration resumes by itself once validation passes."
	RemediateAPIAccess          = "Turn API access on: your Salesforce edition must include the API (Enterprise, Unlimited, Performance or Developer Edition, or Professional Edition with API access), and the integration user's profile or a permission set must have the \"API Enabled\" permission. The integration resumes by itself at the next validation."
	RemediatePermissions        = "In Salesforce Setup, give the integration user's profile or a permission set the Read, Create and Edit object permissions on Leads, and Edit access to the Lead fields the message names. The integration resumes by itself at the next validation."
	RemediateLeadKeyField       = "In Salesforce Setup, open Object Manager, then Lead, then Fields & Relationships, and click New: create a Text field of length 255 labelled \"Integrations Lead Key\" with the field name Integrations_Lead_Key__c, tick \"Unique\" and \"External ID\", and make it visible and editable for the integration user's profile. The integration resumes by itself at the next validation."
)

// mappedFields are the standard Lead fields Push writes, besides the lead
// key field.
var mappedFields = []string{"FirstName", "LastName", "Company", "Email", "Phone", "Description", "LeadSource"}

// Validate asks Salesforce, with the stored access token, whether the
// integration can deliver, and reports four checks in order:
//
//   - crm.CheckCredentials (expired_credentials): the identity service
//     (GET /services/oauth2/userinfo) accepts the token, or, when it
//     answers neither yes nor no, the REST API does.
//   - crm.CheckAPIAccess (api_disabled): the Lead describe is not refused
//     with API_DISABLED_FOR_ORG or API_CURRENTLY_DISABLED.
//   - crm.CheckScopes (insufficient_permissions): the user can read,
//     create and edit Leads (describe's createable and updateable) and
//     write every Lead field the mapping fills; the message names the
//     missing object permission ("Create", "Edit", "Read") or fields.
//   - CheckLeadKeyField (insufficient_permissions): the lead key field
//     exists, is marked External ID and Unique, and the user can write it.
//
// Checks an earlier failure hides are crm.NotChecked. A token Salesforce
// no longer takes fails the credentials check, whether its session timed
// out or the connection was revoked: Salesforce answers both alike, so the
// caller refreshes (crm.Refresher) and validates again before it believes
// the connection is gone. A non-nil error, a *crm.Error, means validation
// could not run: no answer, 5xx, REQUEST_LIMIT_EXCEEDED, an answer that is
// not Salesforce's.
func (c *Connector) Validate(ctx context.Context, raw []byte) ([]integration.Check, error) {
	creds, err := c.parseCredentials(raw)
	if err != nil {
		return credentialsFailed("the stored credentials are unusable: "+err.Error(), false), nil
	}

	// The identity service's answer counts for the org only when the
	// connector already knows which it is.
	key, known := c.knownAccount(creds)
	if !known {
		key = ""
	}
	identity, err := c.userinfo(ctx, creds, key)
	if err != nil {
		return nil, err
	}
	if identity.refused {
		return credentialsFailed(fmt.Sprintf("Salesforce's identity service refused the access token for %s (%s): the session expired or the connection was revoked", creds.describeOrg(), badOAuthToken), creds.sandbox()), nil
	}
	// The org the identity service named, or the grant.
	key, _ = c.knownAccount(creds)

	const op = "Lead describe"
	a, err := c.call(ctx, creds, key, op, http.MethodGet, c.dataURL(creds, "/sobjects/Lead/describe"), nil)
	if err != nil {
		return nil, err
	}
	code, _ := firstError(a.body)
	credsOK := integration.Check{Name: crm.CheckCredentials, OK: true, Message: identity.message(creds)}
	switch {
	case a.status == http.StatusOK:
		var d describe
		if err := json.Unmarshal(a.body, &d); err != nil || d.Name != "Lead" {
			return nil, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
				Err: errors.New("salesforce Lead describe: the answer is not a describe of Lead: is the instance URL Salesforce's?")}
		}
		return []integration.Check{credsOK, apiAccessOK(), c.permissionsCheck(d), c.leadKeyFieldCheck(d)}, nil
	case a.status == http.StatusUnauthorized:
		return credentialsFailed(fmt.Sprintf("Salesforce's REST API refused the access token for %s (%s): the session expired or the connection was revoked",
			creds.describeOrg(), cmpOr(code, "HTTP 401")), creds.sandbox()), nil
	case a.status == http.StatusForbidden && (code == codeAPIDisabledForOrg || code == codeAPICurrentlyDisabled):
		because := "API access is disabled"
		return []integration.Check{credsOK, apiAccessFailed(creds, code), crm.NotChecked(crm.CheckScopes, because), crm.NotChecked(CheckLeadKeyField, because)}, nil
	case a.status == http.StatusForbidden && code == codeRequestLimitExceeded:
		c.hold(key, c.now().Add(c.cfg.Pacing.Hold), code)
		return nil, c.httpError(op, a.status, a.body)
	case a.status == http.StatusForbidden, a.status == http.StatusNotFound:
		// The user may not describe Lead at all: no Read on it, or an access
		// rule of the org.
		why := "the integration user cannot read Leads: its profile or permission sets lack the Lead object permission \"Read\""
		if a.status == http.StatusForbidden {
			why = fmt.Sprintf("Salesforce refused the integration user access to Leads (%s): its profile or permission sets lack the Lead object permission \"Read\"", cmpOr(code, "HTTP 403"))
		}
		return []integration.Check{credsOK, apiAccessOK(), permissionsFailed(why), crm.NotChecked(CheckLeadKeyField, "the integration user cannot read Leads")}, nil
	}
	return nil, c.httpError(op, a.status, a.body)
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// identityResult is what the identity service said about the token.
type identityResult struct {
	// refused: the token is not accepted.
	refused bool
	// confirmed: the service answered the user; userID and orgID are its.
	confirmed     bool
	userID, orgID string
}

func (r identityResult) message(creds credentials) string {
	env := ""
	if creds.sandbox() {
		env = " (sandbox)"
	}
	if r.confirmed {
		return fmt.Sprintf("the access token works for Salesforce user %s of org %s%s", r.userID, r.orgID, env)
	}
	return fmt.Sprintf("the Salesforce REST API accepts the access token for %s", creds.describeOrg())
}

// userinfo asks the identity service about the token, and records the org
// it names for the token's pacing (or that it named none). A 401, or its
// 403 "Bad_OAuth_Token", refuses it; another 4xx leaves the question to
// the REST API (the token may lack the identity scope); 5xx and no answer
// are errors. key is the pacing key its answer is observed for ("": none
// known yet).
func (c *Connector) userinfo(ctx context.Context, creds credentials, key string) (identityResult, error) {
	result, err := c.askUserinfo(ctx, creds, key)
	org := ""
	if err == nil && result.confirmed {
		org = result.orgID
	}
	c.rememberOrg(creds.AccessToken, org)
	return result, err
}

func (c *Connector) askUserinfo(ctx context.Context, creds credentials, key string) (identityResult, error) {
	const op = "identity check"
	a, err := c.call(ctx, creds, key, op, http.MethodGet, strings.TrimRight(creds.InstanceURL, "/")+"/services/oauth2/userinfo", nil)
	if err != nil {
		return identityResult{}, err
	}
	switch {
	case a.status == http.StatusOK:
		var info struct {
			UserID string `json:"user_id"`
			OrgID  string `json:"organization_id"`
		}
		if json.Unmarshal(a.body, &info) != nil || !idPattern.MatchString(info.UserID) || !idPattern.MatchString(info.OrgID) {
			return identityResult{}, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
				Err: errors.New("salesforce identity check: the answer names no user: is the instance URL Salesforce's?")}
		}
		return identityResult{confirmed: true, userID: info.UserID, orgID: info.OrgID}, nil
	case a.status == http.StatusUnauthorized,
		a.status == http.StatusForbidden && strings.TrimSpace(string(a.body)) == badOAuthToken:
		return identityResult{refused: true}, nil
	case a.status == http.StatusRequestTimeout, a.status >= 500:
		return identityResult{}, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
			Err: fmt.Errorf("salesforce identity check: Salesforce answered HTTP %d", a.status)}
	}
	return identityResult{}, nil
}

// describe is the part of a Lead describe the checks read.
type describe struct {
	Name       string          `json:"name"`
	Createable bool            `json:"createable"`
	Updateable bool            `json:"updateable"`
	Fields     []describeField `json:"fields"`
}

type describeField struct {
	Name       string `json:"name"`
	Createable bool   `json:"createable"`
	Updateable bool   `json:"updateable"`
	ExternalID bool   `json:"externalId"`
	Unique     bool   `json:"unique"`
}

func (d describe) field(name string) (describeField, bool) {
	i := slices.IndexFunc(d.Fields, func(f describeField) bool { return f.Name == name })
	if i < 0 {
		return describeField{}, false
	}
	return d.Fields[i], true
}

// writable reports whether the user can write f wherever it can write
// Leads at all: a field is only createable where the object is.
func (d describe) writable(f describeField) bool {
	return (!d.Createable || f.Createable) && (!d.Updateable || f.Updateable)
}

// credentialsFailed is the validation of credentials Salesforce (or our own
// check) refused: the other checks cannot be observed. A sandbox org's
// remediation reconnects at the sandbox login.
func credentialsFailed(message string, sandbox bool) []integration.Check {
	remediation := RemediateCredentials
	if sandbox {
		remediation = RemediateCredentialsSandbox
	}
	return crm.CredentialsFailed(message, remediation, crm.CheckAPIAccess, crm.CheckScopes, CheckLeadKeyField)
}

func apiAccessOK() integration.Check {
	return integration.Check{Name: crm.CheckAPIAccess, OK: true, Message: "the REST API is enabled for the org and the integration user"}
}

func apiAccessFailed(creds credentials, code string) integration.Check {
	msg := fmt.Sprintf("the REST API is not enabled for %s (%s): its edition has no API access", creds.describeOrg(), code)
	if code == codeAPICurrentlyDisabled {
		msg = fmt.Sprintf("API access is disabled for the integration user of %s (%s): its profile lacks the \"API Enabled\" permission", creds.describeOrg(), code)
	}
	return integration.Check{Name: crm.CheckAPIAccess, Code: integration.ReasonAPIDisabled, Message: msg, Remediation: RemediateAPIAccess}
}

func permissionsFailed(message string) integration.Check {
	return integration.Check{Name: crm.CheckScopes, Code: integration.ReasonInsufficientPermissions, Message: message, Remediation: RemediatePermissions}
}

// permissionsCheck checks the user's object permissions on Lead and its
// access to the fields the mapping writes.
func (c *Connector) permissionsCheck(d describe) integration.Check {
	var missing []string
	if !d.Createable {
		missing = append(missing, `"Create"`)
	}
	if !d.Updateable {
		missing = append(missing, `"Edit"`)
	}
	var unseen, readOnly []string
	for _, name := range mappedFields {
		f, ok := d.field(name)
		switch {
		case !ok:
			unseen = append(unseen, name)
		case !d.writable(f):
			readOnly = append(readOnly, name)
		}
	}
	var problems []string
	if len(missing) > 0 {
		noun := "permission"
		if len(missing) > 1 {
			noun = "permissions"
		}
		problems = append(problems, "the integration user's profile or permission sets lack the Lead object "+noun+" "+strings.Join(missing, " and "))
	}
	if len(unseen) > 0 {
		problems = append(problems, "the integration user cannot see the Lead fields "+strings.Join(unseen, ", ")+" (field-level security)")
	}
	if len(readOnly) > 0 {
		problems = append(problems, "the integration user cannot edit the Lead fields "+strings.Join(readOnly, ", ")+" (field-level security)")
	}
	if len(problems) > 0 {
		return permissionsFailed(strings.Join(problems, "; "))
	}
	return integration.Check{Name: crm.CheckScopes, OK: true,
		Message: "the integration user can read, create and edit Leads and every Lead field the delivery writes"}
}

// leadKeyFieldCheck checks the field the upsert matches on.
func (c *Connector) leadKeyFieldCheck(d describe) integration.Check {
	name := LeadKeyField
	fail := func(message string) integration.Check {
		return integration.Check{Name: CheckLeadKeyField, Code: integration.ReasonInsufficientPermissions, Message: message, Remediation: RemediateLeadKeyField}
	}
	f, ok := d.field(name)
	switch {
	case !ok:
		return fail(fmt.Sprintf("the Lead field %s does not exist, or the integration user cannot see it: deliveries match leads on it", name))
	case !f.ExternalID && !f.Unique:
		return fail(fmt.Sprintf("the Lead field %s is not marked \"External ID\" and \"Unique\"", name))
	case !f.ExternalID:
		return fail(fmt.Sprintf("the Lead field %s is not marked \"External ID\"", name))
	case !f.Unique:
		// Without Unique, two deliveries racing could create a lead twice.
		return fail(fmt.Sprintf("the Lead field %s is not marked \"Unique\"", name))
	case !d.writable(f):
		return fail(fmt.Sprintf("the integration user cannot edit the Lead field %s (field-level security)", name))
	}
	return integration.Check{Name: CheckLeadKeyField, OK: true, Message: fmt.Sprintf("the Lead field %s is a unique External ID the integration user can write", name)}
}
