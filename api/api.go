// Package api is the HTTP interface of the service: health, status reads
// and commands for the backend and scripts. It answers JSON only, and every
// error is a JSON object {"error": "..."} that says what to do.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 64 << 10

// New returns the API handler.
//
//	GET  /healthz                              liveness and database check
//	GET  /v1/integrations?org=&kind=&status=&limit=
//	GET  /v1/integrations/{id}
//	GET  /v1/integrations/{id}/events
//	POST /v1/integrations/{id}/{command}       complete-setup, pause, resume, delete; body {"by","note"}
//	POST /v1/integrations/{id}/authorize       body {"by", "credentials": {...}}
//	POST /v1/integrations/{id}/authorize/oauth body {"by", "sandbox"}: the CRM's consent URL
//	GET  /oauth/callback?state=&code=          where the CRM's consent page sends the browser
func New(s *starter.Starter, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	h := &handler{starter: s, logger: logger, mux: mux}
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /v1/integrations", h.list)
	mux.HandleFunc("GET /v1/integrations/{id}", h.get)
	mux.HandleFunc("GET /v1/integrations/{id}/events", h.events)
	mux.HandleFunc("POST /v1/integrations/{id}/authorize", h.authorize)
	mux.HandleFunc("POST /v1/integrations/{id}/authorize/oauth", h.startOAuth)
	mux.HandleFunc("GET "+OAuthCallbackPath, h.oauthCallback)
	mux.HandleFunc("POST /v1/integrations/{id}/{command}", h.command)
	mux.HandleFunc("POST /v1/lead-integrations/{id}/leads", h.intake)
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
	mux *http.ServeMux
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

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	f, err := parseListFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
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
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return f, errors.New("malformed query string: percent-encode the parameter values")
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(listParams, name) {
			return f, fmt.Errorf("unknown query parameter %q: filter with org, kind, status and limit", name)
		}
		if n := len(q[name]); n > 1 {
			return f, fmt.Errorf("query parameter %q is given %d times: give it once", name, n)
		}
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

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	v, err := h.starter.View(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

const leadExample = `{"external_id": "partner-lead-1", "source": "...", "name": "...", "email": "...", "phone": "...", "message": "...", "attributes": {}}`

// intake accepts a lead from a partner: 202 when stored (and routed, once
// the integration is active), 200 for a repeated external_id, stored once.
// The happy path costs two queries (token, then the lead in one statement);
// telling an unknown integration (404) from a wrong token (401) is done on
// the error path only.
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

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := h.starter.Status(r.Context(), id); err != nil {
		h.fail(w, "events", err)
		return
	}
	changes, err := h.starter.Store.Events(r.Context(), id)
	if err != nil {
		h.internal(w, "events", err)
		return
	}
	if changes == nil {
		changes = []integration.Change{}
	}
	writeJSON(w, http.StatusOK, changes)
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

func (h *handler) command(w http.ResponseWriter, r *http.Request) {
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
	var body commandBody
	if !decode(w, r, &body, commandExample) {
		return
	}
	st, err := h.starter.Command(r.Context(), r.PathValue("id"), event, body.By, body.Note)
	if err != nil {
		h.fail(w, string(event), err)
		return
	}
	h.writeView(w, r, st)
}

func (h *handler) authorize(w http.ResponseWriter, r *http.Request) {
	var body authorizeBody
	if !decode(w, r, &body, authorizeExample) {
		return
	}
	if len(body.Credentials) == 0 || string(body.Credentials) == "null" {
		writeError(w, http.StatusBadRequest, `field "credentials" is required: the provider's credentials document, e.g. {"api_key": "..."}`)
		return
	}
	st, err := h.starter.Authorize(r.Context(), r.PathValue("id"), body.Credentials, body.By)
	if err != nil {
		h.fail(w, "authorize", err)
		return
	}
	h.writeView(w, r, st)
}

// decode reads a JSON object body into dst (an empty body is an empty
// object) and answers the error itself when it cannot; example is the
// body's shape, for the error message.
func decode(w http.ResponseWriter, r *http.Request, dst any, example string) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d KiB: send %s", maxBodyBytes>>10, example))
		} else {
			writeError(w, http.StatusBadRequest, "could not read the request body: send it again")
		}
		return false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeError(w, http.StatusBadRequest, describeBodyError(err, example))
		return false
	}
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) > 0 {
		writeError(w, http.StatusBadRequest, "request body has data after the JSON object: send exactly one object, "+example)
		return false
	}
	return true
}

// describeBodyError explains a JSON decoding error without quoting the
// body: it may hold credentials, and the decoder's messages can quote
// values (a number's literal) and name Go types.
func describeBodyError(err error, example string) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("request body is not valid JSON (syntax error at byte %d): send %s", syntaxErr.Offset, example)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON (unexpected end): send " + example
	case errors.As(err, &typeErr) && typeErr.Field != "":
		want, got := jsonType(typeErr.Type), jsonKind(typeErr)
		if want == got {
			// A number of the right kind that does not fit (1e400, or a
			// fraction for a whole number): "must be a number, not a
			// number" would be no help.
			return fmt.Sprintf("field %q holds a number it cannot take (out of range, or not a whole number): send %s", typeErr.Field, example)
		}
		return fmt.Sprintf("field %q must be a %s, not a %s: send %s", typeErr.Field, want, got, example)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("request body must be a JSON object, not a %s: send %s", jsonKind(typeErr), example)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// Field names are not secret, and naming one catches typos.
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		msg := fmt.Sprintf("unknown field %s: send %s", field, example)
		if field == `"credentials"` {
			msg += "; credentials go to POST /v1/integrations/{id}/authorize"
		}
		return msg
	}
	return "request body is not valid JSON: send " + example
}

// jsonKind is the kind of JSON value a type error is about ("number",
// "array", ...). Value can carry a number's literal ("number 1e400"), so
// only its first word is used.
func jsonKind(err *json.UnmarshalTypeError) string {
	kind, _, _ := strings.Cut(err.Value, " ")
	return kind
}

// jsonType names the JSON type a Go type is decoded from.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "value of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
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
