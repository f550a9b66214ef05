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
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme/integrations/starter"
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
// away from the operator routes. The OAuth callback is in every set: the
// customers' browsers must reach it on the public listener, and a single
// listener (or one reached through a proxy) still serves it.
const (
	// RoutesAll serves the operator routes, partner intake and the OAuth
	// callback.
	RoutesAll Routes = iota
	// RoutesOperator serves the operator routes (API keys) and the OAuth
	// callback.
	RoutesOperator
	// RoutesIntake serves the public routes: partner intake (intake
	// tokens) and the OAuth callback (its single-use state).
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
// what authenticates it; every route set serves it (see Routes).
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
	}
	if h.routes != RoutesOperator {
		mux.HandleFunc("POST /v1/lead-integrations/{id}/leads", h.intake)
	}
	// Where the CRMs send customers' browsers, which reach the public
	// listener only; it needs no key, so it is no operator route.
	mux.HandleFunc("GET "+OAuthCallbackPath, h.oauthCallback)
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

// health answers 200 while the database answers, else 503: what a load
// balancer or orchestrator probes.
func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	if err := h.starter.Store.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
