package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// OAuthCallbackPath is where the CRMs' consent pages send the customer's
// browser back to, under the service's public URL.
const OAuthCallbackPath = "/oauth/callback"

// oauthBody is the body of POST /v1/integrations/{id}/authorize/oauth.
type oauthBody struct {
	// By is who the caller says acts; the key's name is recorded.
	By string `json:"by"`
	// Sandbox asks for the CRM's test environment (Salesforce sandboxes).
	Sandbox bool `json:"sandbox"`
}

const oauthExample = `{"by": "...", "sandbox": false}`

// startOAuth answers the consent URL of an OAuth connect: the customer
// opens it, consents on the CRM's page, and the CRM sends the browser to
// the callback.
func (h *handler) startOAuth(w http.ResponseWriter, r *http.Request, key store.APIKey) {
	st, ok := h.integration(w, r, key)
	if !ok {
		return
	}
	var body oauthBody
	if !decode(w, r, &body, oauthExample) {
		return
	}
	// The authorize the callback finishes is recorded as the key's
	// holder's, with the body's "by" as their claim, as every command is.
	ctx, cancel, ok := h.commandContext(w, r, body.By)
	if !ok {
		return
	}
	defer cancel()
	consent, err := h.starter.StartOAuth(ctx, st.ID, key.Name, body.Sandbox)
	if err != nil {
		h.fail(w, "authorize", err)
		return
	}
	writeJSON(w, http.StatusOK, consent)
}

// callbackPage is what the customer's browser shows after consenting.
var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

// The callback's pages for the customer, whose browser the CRM sent here:
// what happened and what they can do, in their words. What an operator
// needs (which integration, why, which command) goes to the log.
const (
	pageInvalidLink = "This authorization link is invalid, already used or expired, so nothing changed. Ask whoever sent you this link for a new one."
	pageDenied      = "The CRM did not grant access, so nothing changed. To connect, ask whoever sent you this link for a new one, and allow access on the CRM's page."
	pageRefused     = "The connection could not be finished with this link, so nothing changed. Ask whoever sent you this link for a new one."
	pageTimedOut    = "The connection is taking longer than usual and may still finish: check again in a minute whether the integration is connected. If it is not, ask whoever sent you this link for a new one and start again."
	pageUnavailable = "The connection could not be finished right now, so nothing changed. Try again in a few minutes with a new link from whoever sent you this one."
)

// oauthCallback finishes an OAuth connect: it takes the state and code the
// CRM sent, and answers a page saying how it went. It needs no API key (a
// browser comes here from the CRM): the single-use, expiring state bound
// to one integration is what authenticates it; anything else is refused
// and changes nothing. It runs within the command timeout, as commands do
// (the code exchange, then the validation of an authorize).
func (h *handler) oauthCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ctx, cancel := context.WithTimeout(r.Context(), h.commandTimeout)
	defer cancel()
	st, err := h.starter.FinishOAuth(ctx, q.Get("state"), q.Get("code"), q.Get("error"))
	page := struct{ Title, Message string }{Title: "Not connected"}
	status := http.StatusOK
	switch {
	case err == nil:
		page.Title = "Connected"
		page.Message = fmt.Sprintf("Integration %s is connected: it is now %s%s. You can close this page.", st.ID, st.Status, reasonSuffix(st.Reason))
	case timedOut(ctx, err):
		status, page.Title, page.Message = http.StatusGatewayTimeout, "Still connecting", pageTimedOut
	case errors.Is(err, starter.ErrOAuthState):
		status, page.Message = http.StatusBadRequest, pageInvalidLink
	case errors.Is(err, starter.ErrOAuthDenied):
		status, page.Message = http.StatusConflict, pageDenied
	case errors.Is(err, starter.ErrInvalidInput), errors.Is(err, starter.ErrNotFound):
		status, page.Message = http.StatusBadRequest, pageRefused
	case integration.IsRejection(err):
		status, page.Message = http.StatusConflict, pageRefused
	default:
		status, page.Message = http.StatusBadGateway, pageUnavailable
	}
	if err != nil {
		// The errors name the integration and the operator's next step;
		// they hold neither the code nor the state.
		level := slog.LevelWarn
		if status >= http.StatusInternalServerError {
			level = slog.LevelError
		}
		h.logger.Log(r.Context(), level, "OAuth callback not connected", "op", "oauth callback", "status", status,
			"timeout", h.commandTimeout.String(), "error", err.Error())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = callbackPage.Execute(w, page)
}

func reasonSuffix(r integration.Reason) string {
	if r == "" {
		return ""
	}
	return " (" + string(r) + ")"
}
