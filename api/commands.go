package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

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

// command sends complete-setup, pause, resume or delete to the
// integration's workflow and answers its view after it, 409 if refused.
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

// authorize stores credentials as a candidate and validates them: they
// replace the current ones only if validation passes.
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
	if timedOut(ctx, err) {
		h.logger.Warn("command timed out", "op", op, "integration", id, "timeout", h.commandTimeout.String(), "error", err)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("%s of %s did not finish within %s: it may still take effect; see GET /v1/integrations/%s before sending it again", op, id, h.commandTimeout, id))
		return
	}
	h.fail(w, op, err)
}

// timedOut reports whether an operation run in ctx failed for want of
// time: its deadline passed, or the Temporal server stopped waiting for
// the workflow's answer first (a little ahead of that deadline). A caller
// that went away (ctx cancelled) did not time out.
func timedOut(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return true
	}
	return ctx.Err() == nil && errors.Is(err, starter.ErrNoAnswer)
}
