package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
)

// leadExample is the intake body an error points partners to.
const leadExample = `{"external_id": "partner-lead-1", "source": "...", "name": "...", "email": "...", "phone": "...", "message": "...", "attributes": {}}`

// intake accepts a lead from a partner: 202 when stored (and routed, once
// the integration is active), 200 for a repeated external_id, stored once.
// The happy path costs two queries (token, then the lead in one statement);
// telling an unknown integration (404) from a wrong token (401) is done on
// the error path only. Each token is paced (429 over its rate), after it is
// checked: nobody without it can spend its partner's budget. Storing and
// routing the lead is bounded by the command timeout (504).
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
	// Bounded as a command is: during setup a lead is told to the
	// workflow, which answers once the change is projected.
	ctx, cancel := context.WithTimeout(r.Context(), h.commandTimeout)
	defer cancel()
	out, err := h.starter.Intake(ctx, id, lead)
	if timedOut(ctx, err) {
		h.logger.Warn("intake timed out", "op", "intake", "integration", id, "timeout", h.commandTimeout.String(), "error", err.Error())
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("the lead for %s was not confirmed within %s: it may have been accepted; send it again with the same external_id, which is stored once", id, h.commandTimeout))
		return
	}
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
