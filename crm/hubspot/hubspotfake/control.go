package hubspotfake

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/acme/integrations/crm/crmfake"
)

// Bounds of the fault settings: generous for tests, small enough that a
// typo cannot hang a dev stack for hours.
const (
	maxFaultCount        = 1_000_000
	maxLatencyMS         = 60_000
	maxRetryAfterSeconds = 3600
	maxLimitCalls        = 100_000
	maxLimitWindowMS     = 24 * 3600 * 1000
	defaultFailStatus    = http.StatusServiceUnavailable
)

// Faults are the failures the fake simulates on one account.
type Faults struct {
	// FailNext answers the account's next FailNext calls, of any
	// endpoint (OAuth token and introspection included), with
	// FailStatus (400..599, default 503).
	FailNext   int `json:"fail_next"`
	FailStatus int `json:"fail_status"`
	// LatencyMS delays every /crm/ call by this many milliseconds.
	LatencyMS int `json:"latency_ms"`
	// RateLimitNext answers the next batch upserts 429, with a
	// Retry-After of RetryAfterSeconds when that is not 0 (HubSpot
	// documents no Retry-After).
	RateLimitNext     int `json:"rate_limit_next"`
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// LimitCalls per LimitWindowMS replaces DefaultLimit (both 0:
	// DefaultLimit).
	LimitCalls    int `json:"limit_calls"`
	LimitWindowMS int `json:"limit_window_ms"`
	// The reject rule refuses, one by one (207), every input whose
	// property RejectProperty contains RejectContains.
	RejectProperty string `json:"reject_property"`
	RejectContains string `json:"reject_contains"`
	// The refuse rule refuses, as a whole (400), every batch with an
	// input whose property RefuseProperty contains RefuseContains.
	RefuseProperty string `json:"refuse_property"`
	RefuseContains string `json:"refuse_contains"`
	// IntrospectionUnavailable makes both token-info endpoints answer
	// 404.
	IntrospectionUnavailable bool `json:"introspection_unavailable"`
	// OmitTraceIDs leaves objectWriteTraceId out of results and errors.
	OmitTraceIDs bool `json:"omit_trace_ids"`
	// DropResults answers upserts with no results, though it stores
	// the records.
	DropResults bool `json:"drop_results"`
}

// DefaultFaults returns the faults of an account nobody has set any on.
func DefaultFaults() Faults { return Faults{FailStatus: defaultFailStatus} }

// FaultsUpdate is a change to an account's Faults: nil fields keep their
// value. Setting a rule's property to "" removes the rule.
type FaultsUpdate struct {
	FailNext                 *int    `json:"fail_next,omitempty"`
	FailStatus               *int    `json:"fail_status,omitempty"`
	LatencyMS                *int    `json:"latency_ms,omitempty"`
	RateLimitNext            *int    `json:"rate_limit_next,omitempty"`
	RetryAfterSeconds        *int    `json:"retry_after_seconds,omitempty"`
	LimitCalls               *int    `json:"limit_calls,omitempty"`
	LimitWindowMS            *int    `json:"limit_window_ms,omitempty"`
	RejectProperty           *string `json:"reject_property,omitempty"`
	RejectContains           *string `json:"reject_contains,omitempty"`
	RefuseProperty           *string `json:"refuse_property,omitempty"`
	RefuseContains           *string `json:"refuse_contains,omitempty"`
	IntrospectionUnavailable *bool   `json:"introspection_unavailable,omitempty"`
	OmitTraceIDs             *bool   `json:"omit_trace_ids,omitempty"`
	DropResults              *bool   `json:"drop_results,omitempty"`
}

// apply returns f changed by u, or an error naming the first invalid field.
func (f Faults) apply(u FaultsUpdate) (Faults, error) {
	// Every value is checked; the first problem is reported.
	if err := cmp.Or(
		crmfake.SetInt("fail_next", u.FailNext, 0, maxFaultCount, &f.FailNext),
		crmfake.SetInt("fail_status", u.FailStatus, 400, 599, &f.FailStatus),
		crmfake.SetInt("latency_ms", u.LatencyMS, 0, maxLatencyMS, &f.LatencyMS),
		crmfake.SetInt("rate_limit_next", u.RateLimitNext, 0, maxFaultCount, &f.RateLimitNext),
		crmfake.SetInt("retry_after_seconds", u.RetryAfterSeconds, 0, maxRetryAfterSeconds, &f.RetryAfterSeconds),
		crmfake.SetInt("limit_calls", u.LimitCalls, 0, maxLimitCalls, &f.LimitCalls),
		crmfake.SetInt("limit_window_ms", u.LimitWindowMS, 0, maxLimitWindowMS, &f.LimitWindowMS),
	); err != nil {
		return Faults{}, err
	}
	if (f.LimitCalls == 0) != (f.LimitWindowMS == 0) {
		return Faults{}, crmfake.BadRequest("limit_calls and limit_window_ms go together: set both (e.g. 3 and 1000), or both to 0 for the default limit")
	}
	if err := rules.Set("reject", u.RejectProperty, u.RejectContains, &f.RejectProperty, &f.RejectContains); err != nil {
		return Faults{}, err
	}
	if err := rules.Set("refuse", u.RefuseProperty, u.RefuseContains, &f.RefuseProperty, &f.RefuseContains); err != nil {
		return Faults{}, err
	}
	for _, b := range []struct{ v, dst *bool }{
		{u.IntrospectionUnavailable, &f.IntrospectionUnavailable}, {u.OmitTraceIDs, &f.OmitTraceIDs}, {u.DropResults, &f.DropResults},
	} {
		if b.v != nil {
			*b.dst = *b.v
		}
	}
	return f, nil
}

// rules are the reject and refuse rules of Faults, which name a contact
// property.
var rules = crmfake.Rules{
	Key:     "property",
	Valid:   propertyNamePattern.MatchString,
	Want:    "a property name such as email",
	Example: "email",
}

// CreateAccountRequest is the body of POST /control/accounts.
type CreateAccountRequest struct {
	// Scopes absent means DefaultScopes; [] an account with no scopes.
	Scopes []string `json:"scopes"`
	// OAuth connects the account through OAuth instead of a private
	// app; the answer then holds an authorization code for RedirectURI
	// (required), to exchange at the token endpoint.
	OAuth       bool   `json:"oauth,omitempty"`
	RedirectURI string `json:"redirect_uri,omitempty"`
	// Properties are contact properties the account has from the start.
	Properties []Property `json:"properties,omitempty"`
}

var scopePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,99}$`)

func checkScope(scope string) error {
	if !scopePattern.MatchString(scope) {
		return crmfake.BadRequest("scope is not a HubSpot scope name, e.g. %s", ScopeContactsWrite)
	}
	return nil
}

func (s *Server) handleCreateAccount(w http.ResponseWriter, r *http.Request) {
	var req CreateAccountRequest
	if err := crmfake.DecodeBody(r, &req, true, `{"scopes":["crm.objects.contacts.write"],"oauth":true,"redirect_uri":"http://127.0.0.1:8080/oauth/callback"}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	scopes := DefaultScopes()
	if req.Scopes != nil {
		scopes = []string{}
		for _, sc := range req.Scopes {
			if err := checkScope(sc); err != nil {
				fake.WriteError(w, err)
				return
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	if req.OAuth {
		u, err := url.Parse(req.RedirectURI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fake.WriteError(w, crmfake.BadRequest("an OAuth account needs redirect_uri, the absolute http(s) callback its code is bound to"))
			return
		}
	} else if req.RedirectURI != "" {
		fake.WriteError(w, crmfake.BadRequest("redirect_uri is for OAuth accounts only: set oauth to true, or drop it"))
		return
	}
	now := s.now()
	props := make([]Property, 0, len(req.Properties))
	for _, in := range req.Properties {
		prop, why := newProperty(propertyInput{Name: in.Name, Label: in.Label, Type: in.Type, FieldType: in.FieldType,
			GroupName: in.GroupName, Description: in.Description, HasUniqueValue: in.HasUniqueValue}, now)
		if why != "" {
			fake.WriteError(w, crmfake.BadRequest("property %q: %s", in.Name, why))
			return
		}
		props = append(props, prop)
	}
	var out Account
	err := s.change(func() error {
		p := s.newPortalLocked(scopes, req.OAuth)
		for _, prop := range props {
			p.Properties[prop.Name] = prop
		}
		out = p.Account.clone()
		if req.OAuth {
			out.Code = s.newCodeLocked(p.HubID, req.RedirectURI)
		}
		return nil
	})
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusCreated, out)
}

// control serves a control request on one account, under s.mu: fn returns
// the answer, or an error; changed saves the state.
func (s *Server) control(fn func(r *http.Request, p *portal) (out any, changed bool, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := parseHubID(r.PathValue("hub"))
		if err != nil {
			fake.WriteError(w, err)
			return
		}
		s.mu.Lock()
		p, err := s.portalLocked(id)
		var out any
		var changed bool
		if err == nil {
			out, changed, err = fn(r, p)
		}
		if err == nil && changed {
			err = s.save()
		}
		s.mu.Unlock()
		if err != nil {
			fake.WriteError(w, err)
			return
		}
		fake.WriteJSON(w, http.StatusOK, out)
	}
}

func (s *Server) controlAccount(_ *http.Request, p *portal) (any, bool, error) {
	return p.Account.clone(), false, nil
}

func (s *Server) controlRevoke(revoked bool) func(*http.Request, *portal) (any, bool, error) {
	return func(_ *http.Request, p *portal) (any, bool, error) {
		p.Revoked = revoked
		return p.Account.clone(), true, nil
	}
}

// scopeRequest is the body of drop-scope and add-scope.
type scopeRequest struct {
	Scope string `json:"scope"`
}

func (s *Server) controlScope(add bool) func(*http.Request, *portal) (any, bool, error) {
	return func(r *http.Request, p *portal) (any, bool, error) {
		var req scopeRequest
		if err := crmfake.DecodeBody(r, &req, false, `{"scope":"`+ScopeContactsWrite+`"}`); err != nil {
			return nil, false, err
		}
		if err := checkScope(req.Scope); err != nil {
			return nil, false, err
		}
		i := slices.Index(p.Scopes, req.Scope)
		switch {
		case add && i < 0:
			p.Scopes = append(p.Scopes, req.Scope)
		case !add && i < 0:
			// Strict rather than idempotent: a typo should not look like success.
			return nil, false, &crmfake.Error{Status: http.StatusConflict, Code: "scope_not_held",
				Message: fmt.Sprintf("account %d does not have scope %s (it has: %s)", p.HubID, req.Scope, strings.Join(p.Scopes, ", "))}
		case !add:
			p.Scopes = slices.Delete(p.Scopes, i, i+1)
		}
		return p.Account.clone(), true, nil
	}
}

func (s *Server) controlExpireTokens(_ *http.Request, p *portal) (any, bool, error) {
	now := s.now()
	for token, at := range s.access {
		if at.HubID == p.HubID && now.Before(at.ExpiresAt) {
			at.ExpiresAt = now
			s.access[token] = at
		}
	}
	return p.Account.clone(), true, nil
}

func (s *Server) controlCreateProperty(r *http.Request, p *portal) (any, bool, error) {
	var in propertyInput
	if err := crmfake.DecodeBody(r, &in, false, `{"name":"my_key","label":"My key","type":"string","fieldType":"text","groupName":"contactinformation","hasUniqueValue":true}`); err != nil {
		return nil, false, err
	}
	prop, why := newProperty(in, s.now())
	if why != "" {
		return nil, false, crmfake.BadRequest("invalid property: %s", why)
	}
	if _, exists := p.property(prop.Name); exists {
		return nil, false, &crmfake.Error{Status: http.StatusConflict, Code: "property_exists",
			Message: fmt.Sprintf("account %d already has a contact property %s", p.HubID, prop.Name)}
	}
	p.Properties[prop.Name] = prop
	return prop, true, nil
}

func (s *Server) controlDeleteProperty(r *http.Request, p *portal) (any, bool, error) {
	name := r.PathValue("name")
	if _, own := p.Properties[name]; !own {
		if slices.Contains(standardProperties, name) {
			return nil, false, &crmfake.Error{Status: http.StatusConflict, Code: "standard_property",
				Message: fmt.Sprintf("%s is one of HubSpot's own contact properties, which cannot be deleted", name)}
		}
		return nil, false, &crmfake.Error{Status: http.StatusNotFound, Code: "unknown_property",
			Message: fmt.Sprintf("account %d has no contact property %s", p.HubID, name)}
	}
	delete(p.Properties, name)
	return map[string]string{"deleted": name}, true, nil
}

func (s *Server) controlGetFaults(_ *http.Request, p *portal) (any, bool, error) {
	return s.bookLocked(p.HubID).faults, false, nil
}

func (s *Server) controlSetFaults(r *http.Request, p *portal) (any, bool, error) {
	var u FaultsUpdate
	if err := crmfake.DecodeBody(r, &u, false, `{"fail_next":3,"fail_status":503}`); err != nil {
		return nil, false, err
	}
	b := s.bookLocked(p.HubID)
	f, err := b.faults.apply(u)
	if err != nil {
		return nil, false, err
	}
	b.faults = f
	return f, false, nil
}

func (s *Server) controlClearFaults(_ *http.Request, p *portal) (any, bool, error) {
	b := s.bookLocked(p.HubID)
	b.faults = DefaultFaults()
	return b.faults, false, nil
}

func (s *Server) controlRecords(_ *http.Request, p *portal) (any, bool, error) {
	return s.bookLocked(p.HubID).stats(), false, nil
}

// controlContact finds the contact that holds key as the value of one of
// the account's unique properties (other than email) now, else the one
// created by key.
func (s *Server) controlContact(r *http.Request, p *portal) (any, bool, error) {
	key := r.PathValue("key")
	b := s.bookLocked(p.HubID)
	c := b.contactByKey(key)
	if c == nil {
		return nil, false, &crmfake.Error{Status: http.StatusNotFound, Code: "unknown_contact",
			Message: fmt.Sprintf("account %d holds no contact upserted by that key", p.HubID)}
	}
	out := *c
	out.Properties = make(map[string]string, len(c.Properties))
	for k, v := range c.Properties {
		out.Properties[k] = v
	}
	return out, false, nil
}

// contactByKey is the contact holding key as a unique value other than an
// email, else the first one (by ID) created by key; nil when none.
func (b *book) contactByKey(key string) *Contact {
	properties := make([]string, 0, len(b.byValue))
	for name := range b.byValue {
		if name != "email" {
			properties = append(properties, name)
		}
	}
	slices.Sort(properties)
	for _, name := range properties {
		if id, ok := b.byValue[name][key]; ok {
			return b.contacts[id]
		}
	}
	var found *Contact
	for _, c := range b.contacts {
		if c.Key == key && (found == nil || contactIDLess(c.ID, found.ID)) {
			found = c
		}
	}
	return found
}

// contactIDLess orders the fake's contact IDs (decimal, no leading zeros).
func contactIDLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func (s *Server) controlCalls(_ *http.Request, p *portal) (any, bool, error) {
	return s.bookLocked(p.HubID).callLog(), false, nil
}
