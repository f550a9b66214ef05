// Package api is the HTTP interface of the service: health, status reads
// and commands for the backend and scripts, and lead intake for partners.
// It answers JSON only, and every error is a JSON object {"error": "..."}
// that says what to do.
//
// Every operator route needs an API key (package apikey): an org's key
// sees and commands its org's integrations only, and another org's answer
// exactly as unknown ones; the recorded actor of a command is the key's
// name, the request's "by" a claim kept beside it. Partner intake takes
// the integration's intake token instead, paced per token. Every POST
// body must be application/json, which no cross-site form can send.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 64 << 10

// Defaults of the options, for a handler built without them (and the
// settings of package app, which default to these).
const (
	// DefaultCommandTimeout bounds one command, validation included.
	DefaultCommandTimeout = 60 * time.Second
	// DefaultIntakeRate and DefaultIntakeBurst pace each intake token:
	// leads per second, and how many may arrive at once.
	DefaultIntakeRate  = 50
	DefaultIntakeBurst = 100
)

// Routes selects which routes a handler serves; /healthz is in every one.
type Routes int

// The route sets: a listener of partner intake of its own keeps partners
// away from the operator routes.
const (
	// RoutesAll serves the operator routes and partner intake.
	RoutesAll Routes = iota
	// RoutesOperator serves the operator routes only (API keys).
	RoutesOperator
	// RoutesIntake serves partner intake only (intake tokens).
	RoutesIntake
)

// Option tunes a handler.
type Option func(*handler)

// WithRoutes serves only the routes r selects (default RoutesAll).
func WithRoutes(r Routes) Option { return func(h *handler) { h.routes = r } }

// WithCommandTimeout bounds each command (complete-setup, pause, resume,
// delete, authorize) to d, its validation against the CRM included: a
// command still waiting then is answered 504 (default
// DefaultCommandTimeout).
func WithCommandTimeout(d time.Duration) Option {
	return func(h *handler) {
		if d > 0 {
			h.commandTimeout = d
		}
	}
}

// WithIntakeRate paces each intake token to perSecond leads a second with
// bursts of burst; a lead over it is answered 429 with Retry-After and not
// stored (default DefaultIntakeRate, DefaultIntakeBurst).
func WithIntakeRate(perSecond float64, burst int) Option {
	return func(h *handler) {
		if perSecond > 0 && burst > 0 {
			h.intakeRate, h.intakeBurst = rate.Limit(perSecond), burst
		}
	}
}

// withClock makes the intake pacing read now instead of time.Now (tests).
func withClock(now func() time.Time) Option { return func(h *handler) { h.now = now } }

// New returns the API handler.
//
//	GET  /healthz                              liveness and database check
//	GET  /v1/integrations?org=&kind=&status=&limit=
//	GET  /v1/integrations/{id}
//	GET  /v1/integrations/{id}/events?after=&limit=
//	POST /v1/integrations/{id}/{command}       complete-setup, pause, resume, delete; body {"by","note"}
//	POST /v1/integrations/{id}/authorize       body {"by", "credentials": {...}}
//	POST /v1/integrations/{id}/authorize/oauth body {"by", "sandbox"}: the CRM's consent URL
//	GET  /oauth/callback?state=&code=          where the CRM's consent page sends the browser
//	POST /v1/lead-integrations/{id}/leads      partner intake (its intake token)
//
// Every /v1/integrations route needs an API key (Authorization: Bearer
// iak_...; see package apikey), and an org's key sees its org only; every
// POST body is application/json. The OAuth callback needs no key: a
// browser comes there from the CRM, and the single-use state it carries is
// what authenticates it.
func New(s *starter.Starter, logger *slog.Logger, opts ...Option) http.Handler {
	mux := http.NewServeMux()
	h := &handler{
		starter: s, logger: logger, mux: mux, commandTimeout: DefaultCommandTimeout,
		intakeRate: DefaultIntakeRate, intakeBurst: DefaultIntakeBurst, now: time.Now,
	}
	for _, opt := range opts {
		opt(h)
	}
	h.pacer = newIntakePacer(h.intakeRate, h.intakeBurst)
	mux.HandleFunc("GET /healthz", h.health)
	if h.routes != RoutesIntake {
		mux.HandleFunc("GET /v1/integrations", h.authenticated(h.list))
		mux.HandleFunc("GET /v1/integrations/{id}", h.authenticated(h.get))
		mux.HandleFunc("GET /v1/integrations/{id}/events", h.authenticated(h.events))
		mux.HandleFunc("POST /v1/integrations/{id}/authorize", h.authenticated(h.authorize))
		mux.HandleFunc("POST /v1/integrations/{id}/authorize/oauth", h.authenticated(h.startOAuth))
		mux.HandleFunc("POST /v1/integrations/{id}/{command}", h.authenticated(h.command))
		mux.HandleFunc("GET "+OAuthCallbackPath, h.oauthCallback)
	}
	if h.routes != RoutesOperator {
		mux.HandleFunc("POST /v1/lead-integrations/{id}/leads", h.intake)
	}
	// Everything else lands here, so that it too is answered in JSON (the
	// mux's own 404 and 405 answers are plain text).
	mux.HandleFunc("/", h.noRoute)
	return mux
}

type handler struct {
	starter *starter.Starter
	logger  *slog.Logger
	// mux is asked which methods a path has, to tell a wrong method from
	// an unknown path.
	mux            *http.ServeMux
	routes         Routes
	commandTimeout time.Duration
	intakeRate     rate.Limit
	intakeBurst    int
	pacer          *intakePacer
	now            func() time.Time
}

// noRoute answers a request no route takes: 405 with an Allow header when
// the path exists with another method, else 404.
func (h *handler) noRoute(w http.ResponseWriter, r *http.Request) {
	if h.methodNotAllowed(w, r) {
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s: see the README's HTTP API section", r.Method, r.URL.Path))
}

// methodNotAllowed answers 405 if r's path has a route for another method,
// and reports whether it did.
func (h *handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) bool {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		if method == r.Method {
			continue
		}
		probe := &http.Request{Method: method, URL: r.URL, Host: r.Host, Header: http.Header{}}
		// "/" is the catch-all, and "" a redirect to a cleaned path:
		// neither is a route of this path.
		if _, pattern := h.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, method)
			if method == http.MethodGet {
				allowed = append(allowed, http.MethodHead)
			}
		}
	}
	if len(allowed) == 0 {
		return false
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
	return true
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	if err := h.starter.Store.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// listParams are the query parameters GET /v1/integrations takes.
var listParams = []string{"org", "kind", "status", "limit"}

func (h *handler) list(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	f, err := parseListFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !key.Admin {
		// An org's key lists its own org, and only that.
		if f.OrgID != "" && f.OrgID != key.OrgID {
			writeError(w, http.StatusForbidden, fmt.Sprintf("this API key is for org %s: list without \"org\", or with org=%s; another org's integrations need that org's key", key.OrgID, key.OrgID))
			return
		}
		f.OrgID = key.OrgID
	}
	states, err := h.starter.Store.List(r.Context(), f)
	if err != nil {
		h.internal(w, "list", err)
		return
	}
	views := make([]integration.View, 0, len(states))
	for _, s := range states {
		views = append(views, integration.NewView(s))
	}
	writeJSON(w, http.StatusOK, views)
}

// parseListFilter reads the list filters. Unknown or repeated parameters
// are errors rather than ignored: a typo like ?orgs=acme would otherwise
// list every org's integrations.
func parseListFilter(rawQuery string) (store.ListFilter, error) {
	f := store.ListFilter{Limit: store.DefaultListLimit}
	q, err := parseQuery(rawQuery, listParams, "filter with org, kind, status and limit")
	if err != nil {
		return f, err
	}
	if v := q.Get("org"); v != "" {
		if err := integration.ValidateID("org id", v); err != nil {
			return f, fmt.Errorf("query parameter \"org\": %w", err)
		}
		f.OrgID = v
	}
	if v := q.Get("kind"); v != "" {
		k, err := integration.ParseKind(v)
		if err != nil {
			return f, fmt.Errorf("query parameter \"kind\": %w", err)
		}
		f.Kind = k
	}
	if v := q.Get("status"); v != "" {
		st, err := integration.ParseStatus(v)
		if err != nil {
			return f, fmt.Errorf("query parameter \"status\": %w", err)
		}
		f.Status = st
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return f, fmt.Errorf("query parameter \"limit\" must be a whole number from 1 to %d, not %q", store.MaxListLimit, v)
		}
		f.Limit = n
	}
	return f, nil
}

// parseQuery parses a query string that may hold each of params once;
// hint says how to use them, for the error about an unknown one.
func parseQuery(rawQuery string, params []string, hint string) (url.Values, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("malformed query string: percent-encode the parameter values")
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(params, name) {
			return nil, fmt.Errorf("unknown query parameter %q: %s", name, hint)
		}
		if n := len(q[name]); n > 1 {
			return nil, fmt.Errorf("query parameter %q is given %d times: give it once", name, n)
		}
	}
	return q, nil
}

func (h *handler) get(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	st, ok := h.integration(w, r, key)
	if !ok {
		return
	}
	v, err := h.starter.ViewOf(r.Context(), st)
	if err != nil {
		h.internal(w, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

const leadExample = `{"external_id": "partner-lead-1", "source": "...", "name": "...", "email": "...", "phone": "...", "message": "...", "attributes": {}}`

// intake accepts a lead from a partner: 202 when stored (and routed, once
// the integration is active), 200 for a repeated external_id, stored once.
// The happy path costs two queries (token, then the lead in one statement);
// telling an unknown integration (404) from a wrong token (401) is done on
// the error path only. Each token is paced (429 over its rate), after it is
// checked: nobody without it can spend its partner's budget.
func (h *handler) intake(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := integration.ValidateID("integration id", id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	token, ok := bearerToken(r.Header.Get("Authorization"))
	err := starter.ErrUnauthorized
	if ok {
		err = h.starter.CheckIntakeToken(r.Context(), id, token)
	}
	if err != nil {
		if !errors.Is(err, starter.ErrUnauthorized) {
			h.internal(w, "intake", err)
			return
		}
		if !h.leadIntegrationExists(w, r, id) {
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lead intake"`)
			writeError(w, http.StatusUnauthorized, "missing intake token: send the header Authorization: Bearer <token> (issued by `integrations create lead` or `rotate-intake-token`)")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="lead intake", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "wrong intake token for this integration: use the current token, or ask for a new one (rotate-intake-token)")
		return
	}
	if !h.paced(w, id) {
		return
	}
	var lead starter.Lead
	if !decode(w, r, &lead, leadExample) {
		return
	}
	out, err := h.starter.Intake(r.Context(), id, lead)
	if integration.IsRejection(err) {
		// A deleted integration (its token still matched).
		writeError(w, http.StatusNotFound, fmt.Sprintf("no lead integration has id %s (or it was deleted)", id))
		return
	}
	if err != nil {
		h.fail(w, "intake", err)
		return
	}
	status := http.StatusAccepted
	if out.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

// leadIntegrationExists answers 404 and reports false unless id is a lead
// integration that is not deleted.
func (h *handler) leadIntegrationExists(w http.ResponseWriter, r *http.Request, id string) bool {
	st, err := h.starter.Status(r.Context(), id)
	if err == nil && (st.Kind != integration.KindLead || st.Status == integration.StatusDeleted) {
		err = fmt.Errorf("%w: no lead integration has id %s (or it was deleted)", starter.ErrNotFound, id)
	}
	if err != nil {
		h.fail(w, "intake", err)
		return false
	}
	return true
}

// eventParams are the query parameters GET /v1/integrations/{id}/events
// takes.
var eventParams = []string{"after", "limit"}

func (h *handler) events(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	st, ok := h.integration(w, r, key)
	if !ok {
		return
	}
	f, err := parseEventFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	changes, more, err := h.starter.Store.EventPage(r.Context(), st.ID, f)
	if err != nil {
		h.internal(w, "events", err)
		return
	}
	if more {
		// RFC 8288: where the next page is; the body stays the array.
		next := url.Values{"after": {strconv.FormatInt(changes[len(changes)-1].Version, 10)}, "limit": {strconv.Itoa(f.Limit)}}
		w.Header().Set("Link", fmt.Sprintf(`</v1/integrations/%s/events?%s>; rel="next"`, st.ID, next.Encode()))
	}
	writeJSON(w, http.StatusOK, changes)
}

// parseEventFilter reads the events page parameters; unknown or repeated
// ones are errors, as for the list.
func parseEventFilter(rawQuery string) (store.EventFilter, error) {
	f := store.EventFilter{Limit: store.DefaultEventLimit}
	q, err := parseQuery(rawQuery, eventParams, "page with after and limit")
	if err != nil {
		return f, err
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return f, fmt.Errorf("query parameter \"after\" must be a version (a whole number, 0 or more), not %q", v)
		}
		f.After = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxEventLimit {
			return f, fmt.Errorf("query parameter \"limit\" must be a whole number from 1 to %d, not %q", store.MaxEventLimit, v)
		}
		f.Limit = n
	}
	return f, nil
}

// commandBody is the body of complete-setup, pause, resume and delete.
type commandBody struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

// commandExample is shown in errors about a command body.
const commandExample = `{"by": "...", "note": "..."}`

// authorizeBody is the body of authorize. It has no note: the starter
// records none for an authorization.
type authorizeBody struct {
	By          string          `json:"by"`
	Credentials json.RawMessage `json:"credentials"`
}

// authorizeExample is shown in errors about an authorize body.
const authorizeExample = `{"by": "...", "credentials": {"api_key": "..."}}`

func (h *handler) command(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	event := integration.EventType(r.PathValue("command"))
	switch event {
	case integration.EventCompleteSetup, integration.EventPause, integration.EventResume, integration.EventDelete:
	default:
		// POST /v1/integrations/{id}/events lands here too.
		if h.methodNotAllowed(w, r) {
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown command %q: use complete-setup, pause, resume, delete or authorize", event))
		return
	}
	st, ok := h.integration(w, r, key)
	if !ok {
		return
	}
	var body commandBody
	if !decode(w, r, &body, commandExample) {
		return
	}
	ctx, cancel, ok := h.commandContext(w, r, body.By)
	if !ok {
		return
	}
	defer cancel()
	// The actor is the key's holder; the body's "by" is their claim.
	next, err := h.starter.Command(ctx, st.ID, event, key.Name, body.Note)
	if err != nil {
		h.commandFailed(ctx, w, string(event), st.ID, err)
		return
	}
	h.writeView(w, r, next)
}

func (h *handler) authorize(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	st, ok := h.integration(w, r, key)
	if !ok {
		return
	}
	var body authorizeBody
	if !decode(w, r, &body, authorizeExample) {
		return
	}
	if len(body.Credentials) == 0 || string(body.Credentials) == "null" {
		writeError(w, http.StatusBadRequest, `field "credentials" is required: the provider's credentials document, e.g. {"api_key": "..."}`)
		return
	}
	ctx, cancel, ok := h.commandContext(w, r, body.By)
	if !ok {
		return
	}
	defer cancel()
	next, err := h.starter.Authorize(ctx, st.ID, body.Credentials, key.Name)
	if err != nil {
		h.commandFailed(ctx, w, "authorize", st.ID, err)
		return
	}
	h.writeView(w, r, next)
}

// commandContext is the context a command runs in: bounded by the command
// timeout, carrying the caller's claimed actor. It answers a claim too
// long to record itself (ok false).
func (h *handler) commandContext(w http.ResponseWriter, r *http.Request, claimedBy string) (context.Context, context.CancelFunc, bool) {
	ctx, err := starter.WithClaimedBy(r.Context(), claimedBy)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, h.commandTimeout)
	return ctx, cancel, true
}

// commandFailed answers a failed command: 504 when it ran out of time,
// else as fail does.
func (h *handler) commandFailed(ctx context.Context, w http.ResponseWriter, op, id string, err error) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		h.logger.Warn("command timed out", "op", op, "integration", id, "timeout", h.commandTimeout.String(), "error", err)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("%s of %s did not finish within %s: it may still take effect; see GET /v1/integrations/%s before sending it again", op, id, h.commandTimeout, id))
		return
	}
	h.fail(w, op, err)
}

// fail maps an operation error to a status code.
func (h *handler) fail(w http.ResponseWriter, op string, err error) {
	switch {
	case errors.Is(err, starter.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case integration.IsRejection(err):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, starter.ErrInvalidInput):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		h.internal(w, op, err)
	}
}

func (h *handler) internal(w http.ResponseWriter, op string, err error) {
	h.logger.Error("request failed", "op", op, "error", err)
	writeError(w, http.StatusInternalServerError, op+" failed; see the server log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeView answers a command with the integration as GET shows it.
func (h *handler) writeView(w http.ResponseWriter, r *http.Request, st integration.State) {
	v, err := h.starter.ViewOf(r.Context(), st)
	if err != nil {
		h.internal(w, "view", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// bearerToken reads "Authorization: Bearer <token>"; the scheme name is
// case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
