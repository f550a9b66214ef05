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
	"strconv"

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
func New(s *starter.Starter, logger *slog.Logger) http.Handler {
	h := &handler{starter: s, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /v1/integrations", h.list)
	mux.HandleFunc("GET /v1/integrations/{id}", h.get)
	mux.HandleFunc("GET /v1/integrations/{id}/events", h.events)
	mux.HandleFunc("POST /v1/integrations/{id}/authorize", h.authorize)
	mux.HandleFunc("POST /v1/integrations/{id}/{command}", h.command)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s: see the README's HTTP API section", r.Method, r.URL.Path))
	})
	return mux
}

type handler struct {
	starter *starter.Starter
	logger  *slog.Logger
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	if err := h.starter.Store.DB().PingContext(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.ListFilter{OrgID: q.Get("org"), Limit: 100}
	if v := q.Get("kind"); v != "" {
		k, err := integration.ParseKind(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		f.Kind = k
	}
	if v := q.Get("status"); v != "" {
		st, err := integration.ParseStatus(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		f.Status = st
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to 1000")
			return
		}
		f.Limit = n
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

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	st, err := h.starter.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, integration.NewView(st))
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

type commandBody struct {
	By          string          `json:"by"`
	Note        string          `json:"note"`
	Credentials json.RawMessage `json:"credentials,omitempty"`
}

func (h *handler) command(w http.ResponseWriter, r *http.Request) {
	event := integration.EventType(r.PathValue("command"))
	switch event {
	case integration.EventCompleteSetup, integration.EventPause, integration.EventResume, integration.EventDelete:
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown command %q: use complete-setup, pause, resume, delete or authorize", event))
		return
	}
	body, ok := decode(w, r)
	if !ok {
		return
	}
	st, err := h.starter.Command(r.Context(), r.PathValue("id"), event, body.By, body.Note)
	if err != nil {
		h.fail(w, string(event), err)
		return
	}
	writeJSON(w, http.StatusOK, integration.NewView(st))
}

func (h *handler) authorize(w http.ResponseWriter, r *http.Request) {
	body, ok := decode(w, r)
	if !ok {
		return
	}
	if len(body.Credentials) == 0 {
		writeError(w, http.StatusBadRequest, `field "credentials" is required: the provider's credentials document, e.g. {"api_key": "..."}`)
		return
	}
	st, err := h.starter.Authorize(r.Context(), r.PathValue("id"), body.Credentials, body.By)
	if err != nil {
		h.fail(w, "authorize", err)
		return
	}
	writeJSON(w, http.StatusOK, integration.NewView(st))
}

// decode reads a JSON command body (an empty body is an empty command).
func decode(w http.ResponseWriter, r *http.Request) (commandBody, bool) {
	var body commandBody
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over %d KiB", maxBodyBytes>>10))
		return body, false
	}
	if len(raw) == 0 {
		return body, true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return body, false
	}
	return body, true
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
