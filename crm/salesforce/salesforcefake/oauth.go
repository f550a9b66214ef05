package salesforcefake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultScope is what a consent grants when the request names no scope.
const defaultScope = "api refresh_token"

// maxFormBytes bounds an OAuth form post.
const maxFormBytes = 64 << 10

// TokenResponse is the token endpoint's answer (and that of POST
// /control/orgs/{id}/tokens): Salesforce's fields, with no expires_in.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Signature    string `json:"signature"`
	Scope        string `json:"scope"`
	InstanceURL  string `json:"instance_url"`
	ID           string `json:"id"`
	TokenType    string `json:"token_type"`
	IssuedAt     string `json:"issued_at"`
}

func newRefreshToken() string { return "5Aep861" + randomString(idAlphabet, 80) }

func newAccessToken(orgID string) string { return orgID + "!" + randomString(tokenAlphabet, 96) }

// baseURL is the fake's URL as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// loginBase is the URL of the org's login: the root for production orgs,
// TestLoginPath for sandboxes.
func loginBase(base string, o *Org) string {
	if o.Sandbox {
		return base + TestLoginPath
	}
	return base
}

// issueLocked makes an access token for g and the token response that
// carries it; withRefresh adds the grant's refresh token. clientSecret
// signs the response as Salesforce does (empty: the grant's app's secret,
// if registered). Callers hold s.mu.
func (s *Server) issueLocked(base string, o *Org, g *grant, withRefresh bool, clientSecret string) TokenResponse {
	issued := s.now()
	access := newAccessToken(o.ID)
	s.sessions[access] = &session{grant: g, issuedAt: issued}
	resp := TokenResponse{
		AccessToken: access,
		Scope:       g.Scope,
		InstanceURL: base + "/instance/" + o.Instance,
		ID:          loginBase(base, o) + "/id/" + o.ID + "/" + o.UserID,
		TokenType:   "Bearer",
		IssuedAt:    strconv.FormatInt(issued.UnixMilli(), 10),
	}
	if withRefresh {
		resp.RefreshToken = g.RefreshToken
	}
	if clientSecret == "" {
		clientSecret = s.apps[g.ClientID].ClientSecret
	}
	mac := hmac.New(sha256.New, []byte(clientSecret))
	mac.Write([]byte(resp.ID + resp.IssuedAt))
	resp.Signature = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return resp
}

// sessionLocked returns the session of a usable access token and its org.
// Callers hold s.mu.
func (s *Server) sessionLocked(token string) (*session, *Org, bool) {
	sess, ok := s.sessions[token]
	if !ok {
		return nil, nil, false
	}
	o, ok := s.orgs[sess.grant.OrgID]
	switch {
	case !ok, sess.grant.Revoked, o.refuses(sess.grant), sess.expired:
		return nil, nil, false
	case !s.now().Before(sess.issuedAt.Add(o.sessionTimeout())):
		return nil, nil, false
	}
	return sess, o, true
}

// usableGrantLocked reports whether g can still be refreshed. Callers hold
// s.mu.
func (s *Server) usableGrantLocked(g *grant) (*Org, bool) {
	o, ok := s.orgs[g.OrgID]
	if !ok || g.Revoked || o.refuses(g) {
		return nil, false
	}
	return o, true
}

// bearerToken reads "Authorization: Bearer <token>" (or Salesforce's older
// "OAuth <token>").
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth")) {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func isAbsoluteURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// authorizeRequest is what the consent page was asked for.
type authorizeRequest struct {
	ResponseType string
	ClientID     string
	RedirectURI  string
	State        string
	Scope        string
	Sandbox      bool
}

func readAuthorizeRequest(v url.Values, sandbox bool) authorizeRequest {
	return authorizeRequest{
		ResponseType: v.Get("response_type"), ClientID: v.Get("client_id"),
		RedirectURI: v.Get("redirect_uri"), State: v.Get("state"), Scope: v.Get("scope"), Sandbox: sandbox,
	}
}

// checkLocked says what is wrong with an authorize request, as
// Salesforce's error page would ("" when nothing). Callers hold s.mu.
func (s *Server) checkLocked(req authorizeRequest) string {
	switch {
	case req.ResponseType != "code":
		return "unsupported_response_type: this fake plays the web-server flow only (response_type=code)"
	case req.ClientID == "":
		return "invalid_client_id: client identifier invalid (client_id is missing)"
	case !isAbsoluteURL(req.RedirectURI):
		return "redirect_uri_mismatch: redirect_uri must be an absolute http(s) URL"
	}
	if len(s.apps) == 0 {
		return ""
	}
	app, ok := s.apps[req.ClientID]
	switch {
	case !ok:
		return "invalid_client_id: client identifier invalid"
	case len(app.CallbackURLs) > 0 && !slices.Contains(app.CallbackURLs, req.RedirectURI):
		return "redirect_uri_mismatch: redirect_uri must match configuration"
	}
	return ""
}

var consentPage = template.Must(template.New("consent").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Allow Access? | Fake Salesforce</title></head>
<body>
<h1>Allow Access?</h1>
<p>The app <strong>{{.ClientID}}</strong> is asking to access your {{if .Sandbox}}sandbox {{end}}Salesforce org:</p>
<ul><li>Manage user data via APIs (api)</li><li>Perform requests at any time (refresh_token, offline_access)</li></ul>
<form method="post">
<input type="hidden" name="response_type" value="{{.ResponseType}}">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="scope" value="{{.Scope}}">
<label>Org ID (blank: a new {{if .Sandbox}}sandbox{{else}}production{{end}} org with every permission)
<input type="text" name="org_id" value=""></label>
<button type="submit" name="action" value="allow">Allow</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>
</body></html>
`))

var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Error | Fake Salesforce</title></head>
<body><h1>OAuth Error</h1><p>{{.}}</p></body></html>
`))

func writePage(w http.ResponseWriter, status int, page *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = page.Execute(w, data)
}

// handleAuthorizePage serves the consent page.
func (s *Server) handleAuthorizePage(sandbox bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := readAuthorizeRequest(r.URL.Query(), sandbox)
		s.mu.Lock()
		problem := s.checkLocked(req)
		s.mu.Unlock()
		if problem != "" {
			writePage(w, http.StatusBadRequest, errorPage, problem)
			return
		}
		writePage(w, http.StatusOK, consentPage, req)
	}
}

// handleAuthorizeForm serves the consent page's form: allow issues a code
// for the chosen (or a new) org and redirects to the callback with it.
func (s *Server) handleAuthorizeForm(sandbox bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			writePage(w, http.StatusBadRequest, errorPage, "the consent form could not be read")
			return
		}
		req := readAuthorizeRequest(r.PostForm, sandbox)
		s.mu.Lock()
		defer s.mu.Unlock()
		if problem := s.checkLocked(req); problem != "" {
			writePage(w, http.StatusBadRequest, errorPage, problem)
			return
		}
		back, _ := url.Parse(req.RedirectURI)
		q := back.Query()
		if req.State != "" {
			q.Set("state", req.State)
		}
		switch r.PostForm.Get("action") {
		case "deny":
			q.Set("error", "access_denied")
			q.Set("error_description", "end-user denied authorization")
		case "allow":
			orgID := strings.TrimSpace(r.PostForm.Get("org_id"))
			var o *Org
			if orgID == "" {
				created, err := s.createOrgLocked(OrgUpdate{Sandbox: &sandbox})
				if err != nil {
					writePage(w, http.StatusInternalServerError, errorPage, "the fake could not create an org: "+err.Error())
					return
				}
				o = created
			} else {
				var ok bool
				if o, ok = s.orgs[orgID]; !ok || o.Sandbox != sandbox {
					why := "no org with that ID logs in here (production orgs log in at the root, sandbox orgs under " + TestLoginPath + ")"
					switch {
					case ok && o.Sandbox:
						why += ": it is a sandbox org; start again with `integrations authorize ID --oauth --sandbox`"
					case ok:
						why += ": it is a production org; start again with `integrations authorize ID --oauth`, without --sandbox"
					}
					writePage(w, http.StatusBadRequest, errorPage, why)
					return
				}
			}
			code := "aPrx" + randomString(idAlphabet, 60) + "=="
			s.codes[code] = &authCode{orgID: o.ID, clientID: req.ClientID, redirectURI: req.RedirectURI,
				scope: firstNonEmpty(req.Scope, defaultScope), sandbox: sandbox, expiresAt: s.now().Add(codeLifetime)}
			q.Set("code", code)
		default:
			writePage(w, http.StatusBadRequest, errorPage, "choose Allow or Deny")
			return
		}
		back.RawQuery = q.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// clientProblemLocked checks a token or introspection request's client
// credentials, returning the OAuth error code and description, or "".
// Callers hold s.mu.
func (s *Server) clientProblemLocked(form url.Values) (code, description string) {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if id == "" {
		return "invalid_client_id", "client identifier invalid"
	}
	if len(s.apps) == 0 {
		if secret == "" {
			return "invalid_client", "invalid client credentials"
		}
		return "", ""
	}
	app, ok := s.apps[id]
	switch {
	case !ok:
		return "invalid_client_id", "client identifier invalid"
	case !hmac.Equal([]byte(app.ClientSecret), []byte(secret)):
		return "invalid_client", "invalid client credentials"
	}
	return "", ""
}

// handleToken serves the token endpoint of the production login (sandbox
// false) or the sandbox login.
func (s *Server) handleToken(sandbox bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
			return
		}
		form := r.PostForm
		s.mu.Lock()
		defer s.mu.Unlock()
		if code, desc := s.clientProblemLocked(form); code != "" {
			writeOAuthError(w, http.StatusBadRequest, code, desc)
			return
		}
		switch form.Get("grant_type") {
		case "authorization_code":
			s.exchangeLocked(w, r, form, sandbox)
		case "refresh_token":
			s.refreshLocked(w, r, form, sandbox)
		default:
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		}
	}
}

func (s *Server) exchangeLocked(w http.ResponseWriter, r *http.Request, form url.Values, sandbox bool) {
	c, ok := s.codes[form.Get("code")]
	if !ok || c.sandbox != sandbox || c.clientID != form.Get("client_id") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		return
	}
	// Single use: the first exchange spends it, whatever its outcome.
	delete(s.codes, form.Get("code"))
	o, exists := s.orgs[c.orgID]
	switch {
	case !s.now().Before(c.expiresAt):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "expired authorization code")
		return
	case c.redirectURI != form.Get("redirect_uri"):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri must match configuration")
		return
	case !exists:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
		return
	}
	g := &grant{RefreshToken: newRefreshToken(), OrgID: o.ID, ClientID: c.clientID, Scope: c.scope, CreatedAt: s.now().UTC()}
	s.grants[g.RefreshToken] = g
	if err := s.save(); err != nil {
		delete(s.grants, g.RefreshToken)
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "the fake could not save its state")
		return
	}
	fake.WriteJSON(w, http.StatusOK, s.issueLocked(baseURL(r), o, g, true, form.Get("client_secret")))
}

func (s *Server) refreshLocked(w http.ResponseWriter, r *http.Request, form url.Values, sandbox bool) {
	g, ok := s.grants[form.Get("refresh_token")]
	if !ok || g.ClientID != form.Get("client_id") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "expired access/refresh token")
		return
	}
	o, usable := s.usableGrantLocked(g)
	if o == nil {
		o = s.orgs[g.OrgID]
	}
	if status := s.bookLocked(g.OrgID).failNext(); status != 0 {
		writeOAuthError(w, status, "temporarily_unavailable", "the service is temporarily unavailable (simulated with fail_next)")
		return
	}
	if !usable || o.Sandbox != sandbox {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "expired access/refresh token")
		return
	}
	rotated := false
	if o.RotateRefreshTokens {
		delete(s.grants, g.RefreshToken)
		g.RefreshToken = newRefreshToken()
		s.grants[g.RefreshToken] = g
		rotated = true
		if err := s.save(); err != nil {
			writeOAuthError(w, http.StatusInternalServerError, "server_error", "the fake could not save its state")
			return
		}
	}
	fake.WriteJSON(w, http.StatusOK, s.issueLocked(baseURL(r), o, g, rotated, form.Get("client_secret")))
}

// introspection is the introspection endpoint's answer.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	Sub       string `json:"sub,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Nbf       int64  `json:"nbf,omitempty"`
}

func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code, desc := s.clientProblemLocked(r.PostForm); code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	token := r.PostForm.Get("token")
	if sess, o, ok := s.sessionLocked(token); ok {
		fake.WriteJSON(w, http.StatusOK, introspection{Active: true, Scope: sess.grant.Scope, ClientID: sess.grant.ClientID,
			Username: o.Username, Sub: baseURL(r) + "/id/" + o.ID + "/" + o.UserID, TokenType: "access_token",
			Exp: sess.issuedAt.Add(o.sessionTimeout()).Unix(), Iat: sess.issuedAt.Unix(), Nbf: sess.issuedAt.Unix()})
		return
	}
	if g, ok := s.grants[token]; ok {
		if o, usable := s.usableGrantLocked(g); usable {
			fake.WriteJSON(w, http.StatusOK, introspection{Active: true, Scope: g.Scope, ClientID: g.ClientID,
				Username: o.Username, Sub: baseURL(r) + "/id/" + o.ID + "/" + o.UserID, TokenType: "refresh_token",
				Iat: g.CreatedAt.Unix(), Nbf: g.CreatedAt.Unix()})
			return
		}
	}
	fake.WriteJSON(w, http.StatusOK, introspection{Active: false})
}

// handleRevoke serves the revocation endpoint: revoking either token of a
// grant revokes the grant, for good.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
		return
	}
	token := r.Form.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	var g *grant
	if sess, ok := s.sessions[token]; ok {
		g = sess.grant
	} else if found, ok := s.grants[token]; ok {
		g = found
	}
	if g == nil {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_token_type", "this token type is not supported")
		return
	}
	g.Revoked = true
	if err := s.save(); err != nil {
		g.Revoked = false
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "the fake could not save its state")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// userinfo is the identity service's answer.
type userinfo struct {
	Sub               string `json:"sub"`
	UserID            string `json:"user_id"`
	OrganizationID    string `json:"organization_id"`
	PreferredUsername string `json:"preferred_username"`
	Nickname          string `json:"nickname"`
	Name              string `json:"name"`
	Email             string `json:"email"`
	EmailVerified     bool   `json:"email_verified"`
	Zoneinfo          string `json:"zoneinfo"`
	Locale            string `json:"locale"`
	UserType          string `json:"user_type"`
	Active            bool   `json:"active"`
	IsAppInstalled    bool   `json:"is_app_installed"`
	UpdatedAt         string `json:"updated_at"`
}

// handleUserinfo serves the identity service at a login (instance "") or
// an org's instance. A token it does not accept is 403 "Bad_OAuth_Token";
// fail_next applies, since it names the org.
func (s *Server) handleUserinfo(instance string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		arrived := s.now().UTC()
		token, _ := bearerToken(r)
		s.mu.Lock()
		_, o, ok := s.sessionLocked(token)
		if ok && instance != "" && o.Instance != instance {
			ok = false
		}
		if !ok {
			s.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("Bad_OAuth_Token"))
			return
		}
		b := s.bookLocked(o.ID)
		status := http.StatusOK
		if failed := b.failNext(); failed != 0 {
			status = failed
		}
		b.logCall(Call{At: arrived, Method: r.Method, Path: "/services/oauth2/userinfo", Status: status})
		info := userinfo{
			Sub: loginBase(baseURL(r), o) + "/id/" + o.ID + "/" + o.UserID, UserID: o.UserID, OrganizationID: o.ID,
			PreferredUsername: o.Username, Nickname: "integration", Name: "Integration User", Email: o.Username,
			EmailVerified: true, Zoneinfo: "America/Los_Angeles", Locale: "en_US", UserType: "STANDARD",
			Active: true, IsAppInstalled: true, UpdatedAt: o.CreatedAt.Format(time.RFC3339),
		}
		s.mu.Unlock()
		if status != http.StatusOK {
			w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(http.StatusText(status)))
			return
		}
		fake.WriteJSON(w, http.StatusOK, info)
	}
}
