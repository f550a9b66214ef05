package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// keyedHandler is an operator route: it runs once the request's API key
// is known to work.
type keyedHandler func(w http.ResponseWriter, r *http.Request, key store.APIKey)

// apiKeyRealm names the API keys in WWW-Authenticate (intake tokens are
// realm "lead intake").
const apiKeyRealm = `Bearer realm="integrations API"`

// authenticated runs next for a request with a working API key, and
// answers 401 for the rest, before anything is read or stored. Every
// request it admits is logged with the key's ID and name (never the key):
// who called what, for the audit trail beside the recorded actor.
func (h *handler) authenticated(next keyedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", apiKeyRealm)
			writeError(w, http.StatusUnauthorized, "missing API key: send the header Authorization: Bearer <key> (issued by `integrations api-key create`)")
			return
		}
		key, err := apikey.Authenticate(r.Context(), h.starter.Store, token)
		if err != nil {
			if !errors.Is(err, apikey.ErrUnauthorized) {
				h.internal(w, "authenticate", err)
				return
			}
			w.Header().Set("WWW-Authenticate", apiKeyRealm+`, error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, unauthorizedMessage(err))
			return
		}
		started := h.now()
		// The body limit is set on the server's own writer, which closes
		// the connection after an oversized body; decode's limit, on the
		// recorder below, could not tell it to.
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next(rec, r, key)
		h.logger.Info("api request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"key_id", key.ID, "key_name", key.Name, "key_org", key.OrgID, "admin", key.Admin,
			"duration_ms", h.now().Sub(started).Milliseconds())
	}
}

// unauthorizedMessage says what to do about a key that does not work.
func unauthorizedMessage(err error) string {
	switch {
	case errors.Is(err, apikey.ErrRevoked):
		return "this API key is revoked: ask an operator for a new one (`integrations api-key create`)"
	case errors.Is(err, apikey.ErrMalformed):
		return "malformed API key: send the whole key `integrations api-key create` printed (iak_...), as Authorization: Bearer <key>"
	}
	return "unknown API key: check it, or ask an operator for one (`integrations api-key create`)"
}

// integration reads the integration of the request's {id} for key: an
// integration of another org than an org key's is answered 404, exactly
// as an unknown ID is, so a key learns nothing about other orgs. It
// answers the error itself (ok false).
func (h *handler) integration(w http.ResponseWriter, r *http.Request, key store.APIKey) (integration.State, bool) {
	id := r.PathValue("id")
	if err := integration.ValidateID("integration id", id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return integration.State{}, false
	}
	st, err := h.starter.Store.Get(r.Context(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.internal(w, "read integration", err)
		return integration.State{}, false
	}
	if err != nil || !apikey.Allows(key, st.OrgID) {
		writeError(w, http.StatusNotFound, notFoundMessage(id))
		return integration.State{}, false
	}
	return st, true
}

// notFoundMessage is the one answer to an ID a key cannot see, whether no
// integration has it or another org's does.
func notFoundMessage(id string) string {
	return fmt.Sprintf("integration not found: no integration has id %s; list yours with GET /v1/integrations", id)
}

// statusRecorder remembers the status a handler answered, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status and sends it.
func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection (read
// deadlines, MaxBytesReader's close).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

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
