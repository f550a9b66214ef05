package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
)

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

// internal answers 500 without the cause, which goes to the log only: it
// may name tables, hosts or a CRM's answer.
func (h *handler) internal(w http.ResponseWriter, op string, err error) {
	h.logger.Error("request failed", "op", op, "error", err)
	writeError(w, http.StatusInternalServerError, op+" failed; see the server log")
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}: every error of the API has this shape.
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
