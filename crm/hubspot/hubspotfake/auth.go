package hubspotfake

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// knownScopes are the scopes the consent page grants.
var knownScopes = []string{ScopeOAuth, ScopeContactsRead, ScopeContactsWrite, ScopeSchemasContactsRead, ScopeSchemasContactsWrite}

// consentRequest is what the consent page is asked for.
type consentRequest struct {
	ClientID      string
	RedirectURI   string
	Scopes        []string
	OptionalScope []string
	State         string
}

// parseConsent checks the parameters of the consent page (query or form).
// Its errors say what is wrong without echoing values.
func parseConsent(v url.Values) (consentRequest, string) {
	req := consentRequest{
		ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"), State: v.Get("state"),
		Scopes: strings.Fields(v.Get("scope")), OptionalScope: strings.Fields(v.Get("optional_scope")),
	}
	switch {
	case req.ClientID != DevClientID:
		return req, "unknown client_id: the HubSpot fake knows one app, " + DevClientID
	case req.RedirectURI == "":
		return req, "redirect_uri is missing"
	case len(req.Scopes) == 0:
		return req, "scope is missing: name the scopes the app needs, separated by spaces"
	}
	u, err := url.Parse(req.RedirectURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return req, "redirect_uri must be an absolute http(s) URL"
	}
	for _, s := range append(slices.Clone(req.Scopes), req.OptionalScope...) {
		if !slices.Contains(knownScopes, s) {
			return req, "the app asks for a scope the HubSpot fake does not know; it knows " + strings.Join(knownScopes, ", ")
		}
	}
	return req, ""
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connect an app to HubSpot (fake)</title></head>
<body>
<h1>Connect an app to your HubSpot account</h1>
<p>This is the HubSpot fake's consent page. The app asks for:</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}{{range .OptionalScope}}<li>{{.}} (optional)</li>{{end}}</ul>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="scope" value="{{.ScopeText}}">
<input type="hidden" name="optional_scope" value="{{.OptionalText}}">
<input type="hidden" name="state" value="{{.State}}">
<p><label>Account (hub ID): <input name="hub_id" placeholder="empty: a new test account"></label></p>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
`))

func writeHTML(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "<!doctype html><html><body><h1>Cannot connect</h1><p>"+template.HTMLEscapeString(message)+"</p></body></html>\n")
}

// handleConsentPage serves GET /oauth/authorize: the page a customer allows
// the app on.
func (s *Server) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	req, why := parseConsent(r.URL.Query())
	if why != "" {
		writeHTML(w, http.StatusBadRequest, why)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = consentPage.Execute(w, struct {
		consentRequest
		ScopeText, OptionalText string
	}{req, strings.Join(req.Scopes, " "), strings.Join(req.OptionalScope, " ")})
}

// handleConsent serves the consent form: allow installs the app and
// redirects with a code, deny redirects with access_denied.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeHTML(w, http.StatusBadRequest, "the consent form could not be read")
		return
	}
	req, why := parseConsent(r.PostForm)
	if why != "" {
		writeHTML(w, http.StatusBadRequest, why)
		return
	}
	redirect, _ := url.Parse(req.RedirectURI)
	q := redirect.Query()
	if req.State != "" {
		q.Set("state", req.State)
	}
	if r.PostForm.Get("decision") != "allow" {
		q.Set("error", "access_denied")
		q.Set("error_description", "the user denied the app access")
		redirect.RawQuery = q.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
		return
	}
	var hubID int64
	if text := strings.TrimSpace(r.PostForm.Get("hub_id")); text != "" {
		id, err := parseHubID(text)
		if err != nil {
			writeHTML(w, http.StatusBadRequest, "the account (hub ID) must be a number, or empty for a new account")
			return
		}
		hubID = id
	}
	scopes := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(req.Scopes), req.OptionalScope...))))
	var code string
	err := s.change(func() error {
		var p *portal
		if hubID != 0 {
			existing, err := s.portalLocked(hubID)
			if err != nil {
				return err
			}
			if !existing.OAuth {
				return crmfake.BadRequest("account %d uses a private app, not OAuth", hubID)
			}
			// Reinstalling the app restores a revoked grant with the
			// scopes consented to now.
			existing.Revoked, existing.Scopes = false, scopes
			p = existing
		} else {
			p = s.newPortalLocked(scopes, true)
		}
		code = s.newCodeLocked(p.HubID, req.RedirectURI)
		return nil
	})
	if err != nil {
		writeHTML(w, http.StatusBadRequest, err.Error())
		return
	}
	q.Set("code", code)
	redirect.RawQuery = q.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	TokenType    string   `json:"token_type"`
	RefreshToken string   `json:"refresh_token"`
	AccessToken  string   `json:"access_token"`
	ExpiresIn    int      `json:"expires_in"`
	HubID        int64    `json:"hub_id"`
	Scopes       []string `json:"scopes"`
}

// oauthError is the token endpoint's error body.
type oauthError struct {
	Status        string `json:"status"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, message string) {
	fake.WriteJSON(w, status, oauthError{Status: code, Message: message, CorrelationID: correlationID()})
}

// failNextLocked uses up one fail_next count of hubID's account, returning
// the status to answer with, or 0. Callers hold s.mu.
func (s *Server) failNextLocked(hubID int64) int {
	b := s.bookLocked(hubID)
	if b.faults.FailNext == 0 {
		return 0
	}
	b.faults.FailNext--
	return b.faults.FailStatus
}

// handleToken serves POST /oauth/v1/token: the authorization-code and
// refresh-token grants.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "BAD_REQUEST", "the form could not be read")
		return
	}
	form := r.Form
	switch {
	case form.Get("client_id") != DevClientID:
		writeOAuthError(w, http.StatusBadRequest, "BAD_CLIENT_ID", "missing or unknown client id")
		return
	case form.Get("client_secret") != DevClientSecret:
		writeOAuthError(w, http.StatusBadRequest, "BAD_CLIENT_SECRET", "missing or invalid client secret")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var p *portal
	var refreshToken string
	switch form.Get("grant_type") {
	case "authorization_code":
		c, ok := s.codes[form.Get("code")]
		if !ok || !now.Before(c.expiresAt) {
			writeOAuthError(w, http.StatusBadRequest, "BAD_AUTH_CODE", "missing or unknown auth code")
			return
		}
		if form.Get("redirect_uri") != c.redirectURI {
			writeOAuthError(w, http.StatusBadRequest, "BAD_REDIRECT_URI", "redirect_uri does not match the one the code was issued for")
			return
		}
		if status := s.failNextLocked(c.hubID); status != 0 {
			writeOAuthError(w, status, "INTERNAL_ERROR", "simulated failure, set with the HubSpot fake's fail_next fault")
			return
		}
		delete(s.codes, form.Get("code"))
		p = s.portals[c.hubID]
		refreshToken = "hfr-" + crmfake.RandomHex(20)
		p.RefreshTokens = append(p.RefreshTokens, refreshToken)
		s.refresh[refreshToken] = p.HubID
	case "refresh_token":
		refreshToken = form.Get("refresh_token")
		hub, ok := s.refresh[refreshToken]
		if ok {
			if status := s.failNextLocked(hub); status != 0 {
				writeOAuthError(w, status, "INTERNAL_ERROR", "simulated failure, set with the HubSpot fake's fail_next fault")
				return
			}
		}
		if !ok || s.portals[hub].Revoked {
			writeOAuthError(w, http.StatusBadRequest, "BAD_REFRESH_TOKEN", "missing or invalid refresh token")
			return
		}
		p = s.portals[hub]
	default:
		writeOAuthError(w, http.StatusBadRequest, "BAD_GRANT_TYPE", "grant_type must be authorization_code or refresh_token")
		return
	}
	at := accessToken{Token: "hfa-" + crmfake.RandomHex(24), HubID: p.HubID, ExpiresAt: now.Add(AccessTokenLifetime)}
	s.access[at.Token] = at
	if err := s.save(); err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "the HubSpot fake could not save its state")
		return
	}
	fake.WriteJSON(w, http.StatusOK, tokenResponse{TokenType: "bearer", RefreshToken: refreshToken, AccessToken: at.Token,
		ExpiresIn: int(AccessTokenLifetime / time.Second), HubID: p.HubID, Scopes: slices.Clone(p.Scopes)})
}

// accessTokenInfo is the answer of GET /oauth/v1/access-tokens/{token}.
type accessTokenInfo struct {
	Token     string   `json:"token"`
	User      string   `json:"user"`
	HubDomain string   `json:"hub_domain"`
	Scopes    []string `json:"scopes"`
	HubID     int64    `json:"hub_id"`
	AppID     int64    `json:"app_id"`
	ExpiresIn int64    `json:"expires_in"`
	UserID    int64    `json:"user_id"`
	TokenType string   `json:"token_type"`
}

// The app and user the fake's tokens belong to.
const (
	fakeAppID  = 4242
	fakeUserID = 7
)

// handleAccessTokenInfo serves GET /oauth/v1/access-tokens/{token}.
func (s *Server) handleAccessTokenInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.access[r.PathValue("token")]
	notFound := func() {
		writeHubSpotError(w, http.StatusNotFound, hubspotError{Category: "OBJECT_NOT_FOUND", Message: "Token not found"})
	}
	if !ok {
		notFound()
		return
	}
	p := s.portals[at.HubID]
	if status := s.failNextLocked(p.HubID); status != 0 {
		writeHubSpotError(w, status, hubspotError{Category: "INTERNAL_ERROR", Message: "simulated failure"})
		return
	}
	now := s.now()
	switch {
	case s.bookLocked(p.HubID).faults.IntrospectionUnavailable, p.Revoked:
		notFound()
	case !now.Before(at.ExpiresAt):
		writeHubSpotError(w, http.StatusUnauthorized, hubspotError{Category: "EXPIRED_AUTHENTICATION",
			Message: fmt.Sprintf("The OAuth token expired %d second(s) ago.", int(now.Sub(at.ExpiresAt)/time.Second))})
	default:
		fake.WriteJSON(w, http.StatusOK, accessTokenInfo{Token: at.Token, User: "owner@hub" + strconv.FormatInt(p.HubID, 10) + ".hubspotfake.test",
			HubDomain: "hub" + strconv.FormatInt(p.HubID, 10) + ".hubspotfake.test", Scopes: slices.Clone(p.Scopes), HubID: p.HubID,
			AppID: fakeAppID, ExpiresIn: int64(at.ExpiresAt.Sub(now) / time.Second), UserID: fakeUserID, TokenType: "access"})
	}
}

// privateTokenInfo is the answer of the private-app token-info endpoint.
type privateTokenInfo struct {
	UserID int64    `json:"userId"`
	HubID  int64    `json:"hubId"`
	AppID  int64    `json:"appId"`
	Scopes []string `json:"scopes"`
}

// handlePrivateTokenInfo serves POST
// /oauth/v2/private-apps/get/access-token-info.
func (s *Server) handlePrivateTokenInfo(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TokenKey string `json:"tokenKey"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || json.Unmarshal(data, &body) != nil || body.TokenKey == "" {
		writeHubSpotError(w, http.StatusBadRequest, hubspotError{Category: "VALIDATION_ERROR", Message: `send {"tokenKey": "<the private app token>"}`})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hub, ok := s.private[body.TokenKey]
	if !ok {
		writeAuthFailure(w, *invalidAuthentication())
		return
	}
	p := s.portals[hub]
	if status := s.failNextLocked(hub); status != 0 {
		writeHubSpotError(w, status, hubspotError{Category: "INTERNAL_ERROR", Message: "simulated failure"})
		return
	}
	switch {
	case s.bookLocked(hub).faults.IntrospectionUnavailable:
		writeHubSpotError(w, http.StatusNotFound, hubspotError{Category: "OBJECT_NOT_FOUND", Message: "Not found"})
	case p.Revoked:
		writeAuthFailure(w, *invalidAuthentication())
	default:
		fake.WriteJSON(w, http.StatusOK, privateTokenInfo{UserID: fakeUserID, HubID: hub, AppID: fakeAppID, Scopes: slices.Clone(p.Scopes)})
	}
}
