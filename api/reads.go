package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// listParams are the query parameters GET /v1/integrations takes.
var listParams = []string{"org", "kind", "status", "limit"}

// list answers GET /v1/integrations: the key's org unless an admin key
// asks for another (or none).
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

// get answers GET /v1/integrations/{id}; another org's integration is
// 404, exactly as an unknown one.
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

// eventParams are the query parameters GET /v1/integrations/{id}/events
// takes.
var eventParams = []string{"after", "limit"}

// events answers a page of an integration's transition history, with a
// Link to the next page when the page is full.
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
