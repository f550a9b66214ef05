package hubspot

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

// Validate reports four checks, in order:
//
//   - crm.CheckCredentials: HubSpot accepts the token (code
//     expired_credentials). Validate does not refresh: its caller does,
//     ahead of the access token's expiry (crm.Expirer) and once more when
//     this check fails, storing what the refresh returns (the Validate
//     activity), so one mechanism serves every OAuth CRM.
//   - crm.CheckScopes: the token has crm.objects.contacts.write (code
//     insufficient_permissions, naming the missing scope). The scopes come
//     from HubSpot's token introspection; where that cannot answer (the
//     private-app token-info endpoint is not in HubSpot's published specs,
//     so it may change or be missing for service keys), an empty batch
//     upsert asks HubSpot itself, which answers MISSING_SCOPES without one.
//   - lead_key_property and lead_source_property: the contact properties
//     KeyProperty (with unique values, which upserts by it need) and
//     SourceProperty exist (code insufficient_permissions). A missing one is
//     created when the token may (crm.schemas.contacts.write); otherwise
//     the check fails saying how to create it in HubSpot.
//
// Rejected credentials hide the rest, which are reported with
// crm.NotChecked. The credentials check rests on an authenticated call (the
// property lookup), never on an introspection alone. A non-nil error, a
// *crm.Error, means validation could not run: network, 5xx, 429.
func (c *Connector) Validate(ctx context.Context, raw []byte) ([]integration.Check, error) {
	creds, err := parseCredentials(raw)
	if err != nil {
		return credentialsFailed(remediateCredentialsToken, "the stored credentials are unusable: "+err.Error()), nil
	}
	v := &validator{c: c, creds: creds}
	checks, err := v.run(ctx)
	var denied *authFailure
	if errors.As(err, &denied) {
		return credentialsFailed(v.remediateCredentials(), denied.message), nil
	}
	if err != nil {
		return nil, fmt.Errorf("hubspot validate: %w", err)
	}
	return checks, nil
}

// authFailure is HubSpot refusing the credentials during validation: the
// credentials check fails with message.
type authFailure struct{ message string }

// Error implements error.
func (e *authFailure) Error() string { return e.message }

// credentialsFailed is the validation of credentials HubSpot (or our own
// check) refused: the other checks cannot be observed.
func credentialsFailed(remediation, message string) []integration.Check {
	return crm.CredentialsFailed(message, remediation, crm.CheckScopes, CheckLeadKeyProperty, CheckLeadSourceProperty)
}

// The names of the contact property checks.
const (
	CheckLeadKeyProperty    = "lead_key_property"
	CheckLeadSourceProperty = "lead_source_property"
)

// validator is one Validate run.
type validator struct {
	c     *Connector
	creds credentials
	// key is the account the calls are paced as, known once the
	// introspection has run.
	key string
}

func (v *validator) remediateCredentials() string {
	if v.creds.oauth() {
		return remediateCredentialsOAuth
	}
	return remediateCredentialsToken
}

func (v *validator) remediateScopes() string {
	if v.creds.oauth() {
		return remediateScopesOAuth
	}
	return remediateScopesToken
}

func (v *validator) run(ctx context.Context) ([]integration.Check, error) {
	info, err := v.introspect(ctx)
	if err != nil {
		return nil, err
	}
	keyProp, err := v.property(ctx, KeyProperty)
	if err != nil {
		return nil, err
	}
	sourceProp, err := v.property(ctx, SourceProperty)
	if err != nil {
		return nil, err
	}

	// HubSpot answered an authenticated call: the credentials work. The
	// account named is the one HubSpot named, never the document's.
	var hub int64
	if info != nil {
		hub = info.HubID
	}
	credsCheck := integration.Check{Name: crm.CheckCredentials, OK: true}
	switch {
	case v.creds.oauth() && hub > 0:
		credsCheck.Message = fmt.Sprintf("HubSpot accepts the OAuth connection to account %d", hub)
	case v.creds.oauth():
		credsCheck.Message = "HubSpot accepts the OAuth connection"
	case hub > 0:
		credsCheck.Message = fmt.Sprintf("HubSpot accepts the private app token for account %d", hub)
	default:
		credsCheck.Message = "HubSpot accepts the token"
	}

	scopes, err := v.scopesCheck(ctx, info)
	if err != nil {
		return nil, err
	}
	keyCheck, err := v.propertyCheck(ctx, keyProp, scopes.OK)
	if err != nil {
		return nil, err
	}
	sourceCheck, err := v.propertyCheck(ctx, sourceProp, scopes.OK)
	if err != nil {
		return nil, err
	}
	return []integration.Check{credsCheck, scopes, keyCheck, sourceCheck}, nil
}

// introspect asks HubSpot which account and scopes the token has; nil when
// the introspection cannot say (the authenticated calls then decide). It
// sets the validator's pacing key: the account HubSpot named for an OAuth
// access token, else the token's own.
func (v *validator) introspect(ctx context.Context) (*tokenInfo, error) {
	if v.creds.oauth() {
		// Not accepted (expired, revoked): nil, and the authenticated
		// calls decide.
		info, err := v.c.introspectHub(ctx, v.creds.accessToken)
		v.key, _ = v.c.knownPaceKey(v.creds)
		return info, err
	}
	v.key = crm.TokenKey(v.creds.accessToken)
	body, _ := json.Marshal(map[string]string{"tokenKey": v.creds.accessToken})
	// The token goes in the body and, for EU tokens, the header too.
	r := request{method: http.MethodPost, path: pathPrivateTokenInfo, what: "HubSpot's private app token introspection",
		token: v.creds.accessToken, body: body, contentType: "application/json", paceKey: v.key}
	a, err := v.c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	switch {
	case a.status == http.StatusOK:
		var info struct {
			HubID  int64    `json:"hubId"`
			Scopes []string `json:"scopes"`
		}
		if json.Unmarshal(a.body, &info) != nil || info.Scopes == nil {
			return nil, nil
		}
		return &tokenInfo{HubID: info.HubID, Scopes: info.Scopes}, nil
	case a.status == http.StatusTooManyRequests, a.status == http.StatusRequestTimeout, a.status >= 500:
		return nil, v.c.classify(r, a)
	}
	// Any other answer (a 401 for a bad token, a 404 for a withdrawn
	// endpoint): the authenticated calls decide.
	return nil, nil
}

// propertyState is what validation found out about one contact property.
type propertyState struct {
	name   string
	exists bool
	unique bool
	// unreadable names the scopes HubSpot said reading it needs.
	unreadable []string
}

// property looks up a contact property.
func (v *validator) property(ctx context.Context, name string) (propertyState, error) {
	r := request{method: http.MethodGet, path: pathContactProperties + "/" + name, what: "the contact property lookup",
		token: v.creds.accessToken, paceKey: v.key}
	a, err := v.c.send(ctx, r)
	if err != nil {
		return propertyState{}, err
	}
	switch a.status {
	case http.StatusOK:
		var p struct {
			Name           string `json:"name"`
			HasUniqueValue bool   `json:"hasUniqueValue"`
		}
		if json.Unmarshal(a.body, &p) != nil || p.Name != name {
			return propertyState{}, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
				Err: errors.New("HubSpot's answer to the contact property lookup is not a property: check INTEGRATIONS_HUBSPOT_API_URL")}
		}
		return propertyState{name: name, exists: true, unique: p.HasUniqueValue}, nil
	case http.StatusNotFound:
		return propertyState{name: name}, nil
	case http.StatusUnauthorized:
		e := v.c.classify(r, a)
		msg := "HubSpot rejected the token (HTTP 401"
		if e.Code != "" {
			msg += ", " + e.Code
		}
		return propertyState{}, &authFailure{message: msg + ")"}
	case http.StatusForbidden:
		scopes := parseAPIError(a.body).requiredScopes()
		if len(scopes) == 0 {
			scopes = []string{ScopeContactsWrite}
		}
		return propertyState{name: name, unreadable: scopes}, nil
	}
	return propertyState{}, v.c.classify(r, a)
}

// scopesCheck checks the required scopes against the introspection's list,
// or, when there is none, against HubSpot's answer to an empty upsert.
func (v *validator) scopesCheck(ctx context.Context, info *tokenInfo) (integration.Check, error) {
	check := integration.Check{Name: crm.CheckScopes}
	if info != nil {
		var missing []string
		for _, s := range RequiredScopes() {
			if !slices.Contains(info.Scopes, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			check.OK = true
			check.Message = "the token has the scope contact upserts need (" + strings.Join(RequiredScopes(), ", ") + ")"
			return check, nil
		}
		check.Code, check.Remediation = integration.ReasonInsufficientPermissions, v.remediateScopes()
		check.Message = fmt.Sprintf("the token lacks scope %s (it has: %s)", strings.Join(missing, ", "), describeScopes(info.Scopes))
		return check, nil
	}

	r := request{method: http.MethodPost, path: pathBatchUpsert, what: "the contacts batch upsert", token: v.creds.accessToken,
		body: []byte(`{"inputs":[]}`), contentType: "application/json", paceKey: v.key}
	a, err := v.c.send(ctx, r)
	if err != nil {
		return check, err
	}
	switch {
	case a.status == http.StatusForbidden:
		missing := parseAPIError(a.body).requiredScopes()
		if len(missing) == 0 {
			missing = RequiredScopes()
		}
		check.Code, check.Remediation = integration.ReasonInsufficientPermissions, v.remediateScopes()
		check.Message = fmt.Sprintf("the token lacks scope %s (HubSpot refused a contact upsert without it)", strings.Join(missing, ", "))
		return check, nil
	case a.status == http.StatusUnauthorized:
		return check, &authFailure{message: "HubSpot rejected the token for contact upserts (HTTP 401)"}
	case a.status == http.StatusTooManyRequests, a.status == http.StatusRequestTimeout, a.status >= 500:
		return check, v.c.classify(r, a)
	}
	// 200, or a 400 for the empty batch: HubSpot let the token upsert.
	check.OK = true
	check.Message = "HubSpot accepts the token for contact upserts (" + strings.Join(RequiredScopes(), ", ") + "); it did not list the token's scopes"
	return check, nil
}

// propertyCheck reports one contact property, creating it when it is
// missing. The creation is tried whatever the introspection listed: HubSpot's
// 403 is the authority on what the token may do. A property the token may
// not read is not checked when the scopes check failed (that failure is the
// reason), and fails as a missing scope when it passed: nothing else would
// say what is wrong (the scopes changed between the calls, or HubSpot asks
// for more than it documents).
func (v *validator) propertyCheck(ctx context.Context, p propertyState, scopesOK bool) (integration.Check, error) {
	name, remediation := CheckLeadSourceProperty, remediateLeadSourceProperty
	purpose := "holds the lead partner's source"
	if p.name == KeyProperty {
		name, remediation = CheckLeadKeyProperty, remediateLeadKeyProperty
		purpose = "holds our lead key, with unique values"
	}
	ok := integration.Check{Name: name, OK: true, Message: fmt.Sprintf("the contact property %s %s", p.name, purpose)}
	switch {
	case len(p.unreadable) > 0 && !scopesOK:
		return crm.NotChecked(name, fmt.Sprintf("the token may not read contact properties (it lacks scope %s)", strings.Join(p.unreadable, ", "))), nil
	case len(p.unreadable) > 0:
		// HubSpot names one of the scopes that read properties; the one
		// to grant is ours, which reads them too.
		return integration.Check{Name: name, Code: integration.ReasonInsufficientPermissions, Remediation: v.remediateScopes(),
			Message: fmt.Sprintf("the token may not read the contact property %s (HubSpot asks for scope %s; %s, which deliveries need, reads it too)",
				p.name, strings.Join(p.unreadable, ", "), ScopeContactsWrite)}, nil
	case p.exists && p.name == KeyProperty && !p.unique:
		return integration.Check{Name: name, Code: integration.ReasonInsufficientPermissions, Remediation: remediateLeadKeyNotUnique,
			Message: fmt.Sprintf("the contact property %s exists but does not require unique values, so contacts cannot be upserted by it", p.name)}, nil
	case p.exists:
		return ok, nil
	}
	refused, err := v.createProperty(ctx, p.name)
	if err != nil {
		return integration.Check{}, err
	}
	if refused != "" {
		return integration.Check{Name: name, Code: integration.ReasonInsufficientPermissions, Remediation: remediation,
			Message: fmt.Sprintf("the contact property %s is missing, and %s", p.name, refused)}, nil
	}
	// Reported like an existing one, so the next validation reads the same.
	return ok, nil
}

// propertyDefinitions are the contact properties the connector creates.
var propertyDefinitions = map[string]map[string]any{
	KeyProperty: {
		"name": KeyProperty, "label": "Lead key (integrations)", "type": "string", "fieldType": "text",
		"groupName": "contactinformation", "hasUniqueValue": true,
		"description": "The lead's ID in our lead integrations: contacts are updated by it. Do not edit.",
	},
	SourceProperty: {
		"name": SourceProperty, "label": "Lead source (integrations)", "type": "string", "fieldType": "text",
		"groupName":   "contactinformation",
		"description": "The lead partner's source value, set by our lead integrations.",
	},
}

// createProperty creates one of our contact properties, returning why
// HubSpot refused to ("" when it is there now). An existing one (409,
// created meanwhile) is fine, unless it is the key and not unique, which the
// next validation reports. A refusal of the definition itself (400) is
// reported like a missing scope: the customer can still create the property
// by hand, where retrying would never help.
func (v *validator) createProperty(ctx context.Context, name string) (refused string, err error) {
	body, _ := json.Marshal(propertyDefinitions[name])
	r := request{method: http.MethodPost, path: pathContactProperties, what: "the contact property creation",
		token: v.creds.accessToken, body: body, contentType: "application/json", paceKey: v.key}
	a, err := v.c.send(ctx, r)
	if err != nil {
		return "", err
	}
	switch a.status {
	case http.StatusCreated, http.StatusOK, http.StatusConflict:
		return "", nil
	case http.StatusForbidden:
		return fmt.Sprintf("the token may not create it (it lacks scope %s)", ScopeSchemasContactsWrite), nil
	case http.StatusBadRequest:
		why := "HubSpot refused to create it (HTTP 400"
		if code := parseAPIError(a.body).code(); code != "" {
			why += ", " + code
		}
		return why + ")", nil
	case http.StatusUnauthorized:
		return "", &authFailure{message: "HubSpot rejected the token for the contact property creation (HTTP 401)"}
	}
	return "", v.c.classify(r, a)
}

// describeScopes lists scopes for a message.
func describeScopes(scopes []string) string {
	var named []string
	for _, s := range scopes {
		if namePattern.MatchString(s) {
			named = append(named, s)
		}
	}
	if len(named) == 0 {
		return "no scopes"
	}
	return strings.Join(named, ", ")
}
