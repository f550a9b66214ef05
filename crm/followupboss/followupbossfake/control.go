package followupbossfake

import "net/http"

// handleGetFaults serves GET /control/keys/{key}/faults.
func (s *Server) handleGetFaults(w http.ResponseWriter, r *http.Request) {
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b.currentFaults())
}

// handleSetFaults serves POST /control/keys/{key}/faults. The body is
// checked before the account is looked at, so bad input changes nothing.
func (s *Server) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var u FaultsUpdate
	if err := decodeBody(r, &u, false, `{"fail_next":3,"fail_status":503}`); err != nil {
		writeControlError(w, err)
		return
	}
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	f, err := b.updateFaults(u)
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// handleClearFaults serves DELETE /control/keys/{key}/faults.
func (s *Server) handleClearFaults(w http.ResponseWriter, r *http.Request) {
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b.clearFaults())
}

// handleSetLimits serves POST /control/keys/{key}/limits.
func (s *Server) handleSetLimits(w http.ResponseWriter, r *http.Request) {
	var l Limits
	if err := decodeBody(r, &l, false, `{"limit":3,"window_seconds":1}`); err != nil {
		writeControlError(w, err)
		return
	}
	if err := l.check(); err != nil {
		writeControlError(w, err)
		return
	}
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	b.setLimits(l)
	writeJSON(w, http.StatusOK, l)
}

// handleClearLimits serves DELETE /control/keys/{key}/limits.
func (s *Server) handleClearLimits(w http.ResponseWriter, r *http.Request) {
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	b.setLimits(Limits{})
	writeJSON(w, http.StatusOK, Limits{})
}

// handleRecords serves GET /control/keys/{key}/records.
func (s *Server) handleRecords(w http.ResponseWriter, r *http.Request) {
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b.stats())
}

// handleEvents serves GET /control/keys/{key}/events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b.eventLog())
}

// handleCalls serves GET /control/keys/{key}/calls.
func (s *Server) handleCalls(w http.ResponseWriter, r *http.Request) {
	b, err := s.book(r.PathValue("key"))
	if err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b.callLog())
}
