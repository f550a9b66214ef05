package followupbossfake

import (
	"net/http"

	"github.com/acme/integrations/crm/crmfake"
)

// handleSetLimits serves POST /control/keys/{key}/limits.
func (s *Server) handleSetLimits(w http.ResponseWriter, r *http.Request) {
	var l Limits
	if err := crmfake.DecodeBody(r, &l, false, `{"limit":3,"window_seconds":1}`); err != nil {
		fake.WriteError(w, err)
		return
	}
	if err := l.check(); err != nil {
		fake.WriteError(w, err)
		return
	}
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		fake.WriteError(w, err)
		return
	}
	b.setLimits(l)
	fake.WriteJSON(w, http.StatusOK, l)
}
