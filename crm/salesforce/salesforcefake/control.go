package salesforcefake

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// OrgUpdate is a change to an org, the body of POST /control/orgs (the
// new org's settings) and POST /control/orgs/{id}: nil fields keep their
// value (or the default, for a new org).
type OrgUpdate struct {
	// Sandbox makes a sandbox org; it can only be set when the org is
	// created.
	Sandbox         *bool         `json:"sandbox,omitempty"`
	APIEnabled      *bool         `json:"api_enabled,omitempty"`
	UserAPIEnabled  *bool         `json:"user_api_enabled,omitempty"`
	LeadPermissions *[]string     `json:"lead_permissions,omitempty"`
	LeadKeyField    *LeadKeyField `json:"lead_key_field,omitempty"`
	HiddenFields    *[]string     `json:"hidden_fields,omitempty"`
	// Revoked true revokes every grant of the org (its tokens stop working
	// and refreshes are refused); false restores them.
	Revoked               *bool  `json:"revoked,omitempty"`
	RotateRefreshTokens   *bool  `json:"rotate_refresh_tokens,omitempty"`
	APILimit              *int   `json:"api_limit,omitempty"`
	APIWindowMS           *int64 `json:"api_window_ms,omitempty"`
	SessionTimeoutSeconds *int   `json:"session_timeout_seconds,omitempty"`
}

var customFieldPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,37}__c$`)

// apply changes o by u, or returns an error naming the first invalid
// field, leaving o as it was.
func (u OrgUpdate) apply(o *Org, creating bool, now time.Time) error {
	changed := o.clone()
	if u.Sandbox != nil {
		if !creating && *u.Sandbox != o.Sandbox {
			return crmfake.BadRequest("an org cannot change between production and sandbox: create another org")
		}
		changed.Sandbox = *u.Sandbox
	}
	setBool := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	setBool(&changed.APIEnabled, u.APIEnabled)
	setBool(&changed.UserAPIEnabled, u.UserAPIEnabled)
	if u.Revoked != nil && *u.Revoked != o.Revoked {
		changed.Revoked, changed.RevokedAt = *u.Revoked, time.Time{}
		if changed.Revoked {
			changed.RevokedAt = now
		}
	}
	setBool(&changed.RotateRefreshTokens, u.RotateRefreshTokens)
	if u.LeadPermissions != nil {
		perms := []string{}
		for _, p := range *u.LeadPermissions {
			if !slices.Contains(LeadPermissions(), p) {
				return crmfake.BadRequest("lead_permissions: %q is not a Lead object permission: use Read, Create or Edit", p)
			}
			if !slices.Contains(perms, p) {
				perms = append(perms, p)
			}
		}
		changed.LeadPermissions = perms
	}
	if u.LeadKeyField != nil {
		f := *u.LeadKeyField
		if f.Name == "" {
			f.Name = o.LeadKeyField.Name
		}
		if !customFieldPattern.MatchString(f.Name) {
			return crmfake.BadRequest("lead_key_field.name must be a custom field's API name, e.g. %s", DefaultLeadKeyField)
		}
		changed.LeadKeyField = f
	}
	if u.HiddenFields != nil {
		hidden := []string{}
		for _, name := range *u.HiddenFields {
			if !slices.Contains(writableFields(), name) && name != changed.LeadKeyField.Name {
				return crmfake.BadRequest("hidden_fields: %q is not a Lead field of the fake: use one of %v or the lead key field", name, writableFields())
			}
			if !slices.Contains(hidden, name) {
				hidden = append(hidden, name)
			}
		}
		changed.HiddenFields = hidden
	}
	if u.APILimit != nil {
		if *u.APILimit < 1 || *u.APILimit > 1_000_000_000 {
			return crmfake.BadRequest("api_limit must be between 1 and 1000000000, not %d", *u.APILimit)
		}
		changed.APILimit = *u.APILimit
	}
	if u.APIWindowMS != nil {
		if *u.APIWindowMS < 1 || *u.APIWindowMS > int64(7*24*time.Hour/time.Millisecond) {
			return crmfake.BadRequest("api_window_ms must be between 1 and 604800000 (7 days), not %d", *u.APIWindowMS)
		}
		changed.APIWindowMS = *u.APIWindowMS
	}
	if u.SessionTimeoutSeconds != nil {
		if *u.SessionTimeoutSeconds < 1 || *u.SessionTimeoutSeconds > 86_400 {
			return crmfake.BadRequest("session_timeout_seconds must be between 1 and 86400, not %d", *u.SessionTimeoutSeconds)
		}
		changed.SessionTimeoutSeconds = *u.SessionTimeoutSeconds
	}
	*o = changed
	return nil
}

// newOrgLocked returns a new org with the defaults; callers hold s.mu.
func (s *Server) newOrgLocked() Org {
	o := Org{
		ID: newID("00D"), UserID: newID("005"),
		APIEnabled: true, UserAPIEnabled: true,
		LeadPermissions: LeadPermissions(),
		LeadKeyField:    LeadKeyField{Name: DefaultLeadKeyField, Present: true, ExternalID: true, Unique: true},
		HiddenFields:    []string{},
		APILimit:        DefaultAPILimit, APIWindowMS: DefaultAPIWindow.Milliseconds(),
		SessionTimeoutSeconds: int(DefaultSessionTimeout / time.Second),
		CreatedAt:             s.now().UTC().Truncate(time.Second),
	}
	o.Username = "integration@" + strings.ToLower(o.ID) + ".example.com"
	return o
}

// createOrgLocked adds an org with the changes u; callers hold s.mu.
func (s *Server) createOrgLocked(u OrgUpdate) (*Org, error) {
	o := s.newOrgLocked()
	if err := u.apply(&o, true, s.now().UTC()); err != nil {
		return nil, err
	}
	prefix := "na"
	if o.Sandbox {
		prefix = "cs"
	}
	for n := len(s.orgs) + 1; ; n++ {
		name := prefix + strconv.Itoa(n)
		if !slices.ContainsFunc(slices.Collect(maps.Values(s.orgs)), func(other *Org) bool { return other.Instance == name }) {
			o.Instance = name
			break
		}
	}
	s.orgs[o.ID] = &o
	if err := s.save(); err != nil {
		delete(s.orgs, o.ID)
		return nil, err
	}
	return &o, nil
}

func (s *Server) handleCreateOrg(w http.ResponseWriter, r *http.Request) {
	var u OrgUpdate
	if err := crmfake.DecodeBody(r, &u, true, `{"sandbox":false}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	s.mu.Lock()
	o, err := s.createOrgLocked(u)
	var out Org
	if err == nil {
		out = o.clone()
	}
	s.mu.Unlock()
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) handleGetOrg(w http.ResponseWriter, r *http.Request) {
	var out Org
	err := s.orgBook(r.PathValue("id"), func(o *Org, _ *book) error {
		out = o.clone()
		return nil
	})
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusOK, out)
}

// handleUpdateOrg serves POST /control/orgs/{id}: the change is kept only
// if it is valid and the state is saved.
func (s *Server) handleUpdateOrg(w http.ResponseWriter, r *http.Request) {
	var u OrgUpdate
	if err := crmfake.DecodeBody(r, &u, false, `{"revoked":true}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	var out Org
	err := s.orgBook(r.PathValue("id"), func(o *Org, _ *book) error {
		before := o.clone()
		if err := u.apply(o, false, s.now().UTC()); err != nil {
			return err
		}
		if err := s.save(); err != nil {
			*o = before
			return err
		}
		out = o.clone()
		return nil
	})
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusOK, out)
}

// controlClientID is the client a grant issued through the control API
// belongs to.
const controlClientID = "fake-control"

// handleIssueTokens serves POST /control/orgs/{id}/tokens: a grant as the
// consent page would make it, without the browser.
func (s *Server) handleIssueTokens(w http.ResponseWriter, r *http.Request) {
	var resp TokenResponse
	err := s.orgBook(r.PathValue("id"), func(o *Org, _ *book) error {
		g := &grant{RefreshToken: newRefreshToken(), OrgID: o.ID, ClientID: controlClientID, Scope: defaultScope, CreatedAt: s.now().UTC()}
		s.grants[g.RefreshToken] = g
		if err := s.save(); err != nil {
			delete(s.grants, g.RefreshToken)
			return err
		}
		resp = s.issueLocked(baseURL(r), o, g, true, "")
		return nil
	})
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusCreated, resp)
}

// expiredTokens is the answer of POST /control/orgs/{id}/expire-tokens.
type expiredTokens struct {
	Expired int `json:"expired"`
}

func (s *Server) handleExpireTokens(w http.ResponseWriter, r *http.Request) {
	n := 0
	err := s.orgBook(r.PathValue("id"), func(o *Org, _ *book) error {
		for _, sess := range s.sessions {
			if sess.grant.OrgID == o.ID && !sess.expired {
				sess.expired = true
				n++
			}
		}
		return nil
	})
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusOK, expiredTokens{Expired: n})
}

func (s *Server) handleCreateApp(w http.ResponseWriter, r *http.Request) {
	var a App
	if err := crmfake.DecodeBody(r, &a, false, `{"client_id":"...","client_secret":"...","callback_urls":["http://127.0.0.1:8080/oauth/callback"]}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	if a.ClientID == "" || a.ClientSecret == "" {
		fake.WriteError(w, crmfake.BadRequest("client_id and client_secret are required: register the connected app's consumer key and secret"))
		return
	}
	for _, cb := range a.CallbackURLs {
		if !isAbsoluteURL(cb) {
			fake.WriteError(w, crmfake.BadRequest("callback_urls must be absolute http(s) URLs"))
			return
		}
	}
	s.mu.Lock()
	before, existed := s.apps[a.ClientID]
	s.apps[a.ClientID] = a
	err := s.save()
	if err != nil {
		if existed {
			s.apps[a.ClientID] = before
		} else {
			delete(s.apps, a.ClientID)
		}
	}
	s.mu.Unlock()
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	fake.WriteJSON(w, http.StatusCreated, a)
}
