package hubspotfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// maxCRMBodyBytes bounds a CRM API request body: MaxBatchInputs leads of up
// to 64 KiB each plus the JSON around them.
const maxCRMBodyBytes = 8 << 20

// Call is one HubSpot API call (/crm/...) in an account's call log: when it
// arrived by the fake's clock, what it was, the status it was answered
// with, and how many inputs a batch carried.
type Call struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Inputs int       `json:"inputs,omitempty"`
}

// RecordStats is what the records control endpoint reports: how many
// contacts the account holds, how many upserts it accepted, and the upserts
// per key (the idProperty value a contact was created by, Contact.Key;
// upserts of it by another value, such as its email, count there too). A
// key upserted more than once was delivered more than once: harmless, since
// upserts are idempotent, but worth counting in exactly-once tests.
type RecordStats struct {
	Records int            `json:"records"`
	Upserts int            `json:"upserts"`
	ByKey   map[string]int `json:"by_key"`
}

// Contact is what the fake holds for one contact.
type Contact struct {
	ID string `json:"id"`
	// Key and IDProperty are the idProperty value and name the contact was
	// created by; later upserts (by another key value, or by email) leave
	// them as they are.
	Key        string            `json:"key"`
	IDProperty string            `json:"id_property"`
	Properties map[string]string `json:"properties"`
	Upserts    int               `json:"upserts"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// book is one account's contacts, faults, rate-limit window and call log,
// in memory only. Guarded by Server.mu.
type book struct {
	faults   Faults
	contacts map[string]*Contact
	// byValue indexes contacts by property and value, for the unique
	// properties and email.
	byValue map[string]map[string]string
	lastID  int64
	upserts int
	// window holds the accepted calls' arrival times within the current
	// rolling window.
	window    []time.Time
	day       string
	dailyUsed int
	calls     crmfake.CallLog[Call]
}

func newBook() *book {
	return &book{faults: DefaultFaults(), contacts: map[string]*Contact{}, byValue: map[string]map[string]string{}}
}

func (b *book) logCall(c Call) { b.calls.Add(c) }

func (b *book) callLog() []Call { return b.calls.List() }

func (b *book) stats() RecordStats {
	st := RecordStats{Records: len(b.contacts), Upserts: b.upserts, ByKey: make(map[string]int, len(b.contacts))}
	for _, c := range b.contacts {
		st.ByKey[c.Key] += c.Upserts
	}
	return st
}

func (b *book) limit() Limit {
	if b.faults.LimitCalls > 0 && b.faults.LimitWindowMS > 0 {
		return Limit{Calls: b.faults.LimitCalls, Window: time.Duration(b.faults.LimitWindowMS) * time.Millisecond}
	}
	return DefaultLimit
}

// crmRequest is an authenticated CRM API call as a handler sees it.
type crmRequest struct {
	r      *http.Request
	body   []byte
	portal *portal
	book   *book
	now    time.Time
}

// crmReply is a handler's answer; inputs is how many inputs it carried, for
// the call log.
type crmReply struct {
	status int
	body   any
	inputs int
}

func errorReply(status int, e hubspotError) crmReply {
	e.Status = "error"
	e.CorrelationID = correlationID()
	return crmReply{status: status, body: e}
}

// tokenAccount resolves a bearer token to its account. ok is false for a
// token the fake never issued; authErr is set for a known token that no
// longer works (revoked, expired). Callers hold s.mu.
func (s *Server) tokenAccount(token string) (p *portal, authErr *crmReply, ok bool) {
	now := s.now()
	if hub, found := s.private[token]; found {
		p = s.portals[hub]
		if p.Revoked {
			return p, invalidAuthentication(), true
		}
		return p, nil, true
	}
	if at, found := s.access[token]; found {
		p = s.portals[at.HubID]
		switch {
		case p.Revoked:
			return p, invalidAuthentication(), true
		case !now.Before(at.ExpiresAt):
			secs := int(now.Sub(at.ExpiresAt) / time.Second)
			reply := errorReply(http.StatusUnauthorized, hubspotError{
				Category: "EXPIRED_AUTHENTICATION",
				Message:  fmt.Sprintf("The OAuth token used to make this call expired %d second(s) ago.", secs),
				Context:  map[string][]string{"expire time": {at.ExpiresAt.UTC().Format("Mon Jan 02 15:04:05 MST 2006")}},
			})
			return p, &reply, true
		}
		return p, nil, true
	}
	return nil, nil, false
}

func invalidAuthentication() *crmReply {
	reply := errorReply(http.StatusUnauthorized, hubspotError{
		Category: "INVALID_AUTHENTICATION",
		Message:  "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
	})
	return &reply
}

func writeAuthFailure(w http.ResponseWriter, reply crmReply) {
	w.Header().Set("X-HubSpot-Auth-Failure", "401 Unauthorized")
	fake.WriteJSON(w, reply.status, reply.body)
}

func bearer(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// crmCall serves an authenticated HubSpot API call: the token, then the
// latency fault, fail_next, the rate limits, then the handler (scopes, body,
// effect), with the rate-limit headers on the answer and the call in the
// account's log. A token the fake never issued has no account to log in.
func (s *Server) crmCall(handle func(*crmRequest) crmReply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		arrived := s.now().UTC()
		body, readErr := io.ReadAll(io.LimitReader(r.Body, maxCRMBodyBytes+1))

		s.mu.Lock()
		p, authErr, ok := s.tokenAccount(bearer(r.Header.Get("Authorization")))
		if !ok {
			s.mu.Unlock()
			writeAuthFailure(w, *invalidAuthentication())
			return
		}
		b := s.bookLocked(p.HubID)
		latency := time.Duration(b.faults.LatencyMS) * time.Millisecond
		s.mu.Unlock()
		if latency > 0 {
			s.sleep(latency)
		}

		s.mu.Lock()
		header := http.Header{}
		reply := s.serveCRM(r, header, &crmRequest{r: r, body: body, portal: p, book: b, now: arrived}, authErr, readErr, handle)
		b.logCall(Call{At: arrived, Method: r.Method, Path: r.URL.Path, Status: reply.status, Inputs: reply.inputs})
		s.mu.Unlock()

		for k, v := range header {
			w.Header()[k] = v
		}
		if reply.status == http.StatusUnauthorized {
			writeAuthFailure(w, reply)
			return
		}
		fake.WriteJSON(w, reply.status, reply.body)
	}
}

// serveCRM works out the reply to an authenticated call, filling header
// with the rate-limit headers. Callers hold s.mu.
func (s *Server) serveCRM(r *http.Request, header http.Header, req *crmRequest, authErr *crmReply, readErr error,
	handle func(*crmRequest) crmReply) crmReply {
	if authErr != nil {
		return *authErr
	}
	b, p := req.book, req.portal
	if b.faults.FailNext > 0 {
		b.faults.FailNext--
		return errorReply(b.faults.FailStatus, hubspotError{Category: "INTERNAL_ERROR",
			Message: fmt.Sprintf("simulated failure (HTTP %d), set with the HubSpot fake's fail_next fault", b.faults.FailStatus)})
	}

	// The rolling window: accepted calls within the last window count.
	limit := b.limit()
	b.window = slices.DeleteFunc(b.window, func(at time.Time) bool { return !req.now.Before(at.Add(limit.Window)) })
	setLimitHeaders := func() {
		header.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(limit.Calls))
		header.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(0, limit.Calls-len(b.window))))
		header.Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.FormatInt(limit.Window.Milliseconds(), 10))
		if !p.OAuth {
			// OAuth apps' answers carry no daily headers.
			header.Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(DefaultDailyLimit))
			header.Set("X-HubSpot-RateLimit-Daily-Remaining", strconv.Itoa(max(0, DefaultDailyLimit-b.dailyUsed)))
		}
	}
	rateLimited := func(policy string) crmReply {
		setLimitHeaders()
		return errorReply(http.StatusTooManyRequests, hubspotError{ErrorType: "RATE_LIMIT", PolicyName: policy,
			Message: fmt.Sprintf("You have reached your %s limit.", strings.ToLower(policy))})
	}
	if r.URL.Path == pathBatchUpsert && b.faults.RateLimitNext > 0 {
		b.faults.RateLimitNext--
		if b.faults.RetryAfterSeconds > 0 {
			header.Set("Retry-After", strconv.Itoa(b.faults.RetryAfterSeconds))
		}
		return rateLimited("TEN_SECONDLY_ROLLING")
	}
	if len(b.window) >= limit.Calls {
		return rateLimited("TEN_SECONDLY_ROLLING")
	}
	if day := req.now.Format(time.DateOnly); day != b.day {
		b.day, b.dailyUsed = day, 0
	}
	if !p.OAuth && b.dailyUsed >= DefaultDailyLimit {
		return rateLimited("DAILY")
	}
	b.window = append(b.window, req.now)
	b.dailyUsed++
	setLimitHeaders()

	switch {
	case readErr != nil:
		return errorReply(http.StatusBadRequest, hubspotError{Category: "VALIDATION_ERROR", Message: "could not read the request body"})
	case len(req.body) > maxCRMBodyBytes:
		return errorReply(http.StatusRequestEntityTooLarge, hubspotError{Category: "VALIDATION_ERROR",
			Message: fmt.Sprintf("request body is larger than %d bytes", maxCRMBodyBytes)})
	}
	return handle(req)
}

// missingScopes is HubSpot's 403 for a token without the scope a call
// needs.
func missingScopes(scopes ...string) crmReply {
	return errorReply(http.StatusForbidden, hubspotError{
		Category: "MISSING_SCOPES",
		Message:  "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
		Errors:   []errorDetail{{Message: "One or more of the following scopes are required.", Context: map[string][]string{"requiredScopes": scopes}}},
		Links:    map[string]string{"scopes": "https://developers.hubspot.com/scopes"},
	})
}

// The CRM API's paths.
const (
	pathBatchUpsert       = "/crm/v3/objects/contacts/batch/upsert"
	pathContactProperties = "/crm/v3/properties/contacts"
)

// handleGetProperty serves GET /crm/v3/properties/contacts/{name}. HubSpot's
// Properties API specification lists the scopes that may read a contact
// property as alternatives: crm.objects.contacts.read, crm.objects.contacts.write
// and crm.schemas.contacts.read (and sensitive-data scopes the fake does not
// know), but not crm.schemas.contacts.write.
func (s *Server) handleGetProperty(req *crmRequest) crmReply {
	if !req.portal.hasScope(ScopeContactsRead, ScopeContactsWrite, ScopeSchemasContactsRead) {
		return missingScopes(ScopeSchemasContactsRead)
	}
	name := req.r.PathValue("name")
	prop, ok := req.portal.property(name)
	if !ok {
		return errorReply(http.StatusNotFound, hubspotError{Category: "OBJECT_NOT_FOUND",
			Message: fmt.Sprintf("Unable to find property %s on object type 0-1", name)})
	}
	return crmReply{status: http.StatusOK, body: prop}
}

// propertyInput is the body of a property creation.
type propertyInput struct {
	Name           string `json:"name"`
	Label          string `json:"label"`
	Type           string `json:"type"`
	FieldType      string `json:"fieldType"`
	GroupName      string `json:"groupName"`
	Description    string `json:"description"`
	HasUniqueValue bool   `json:"hasUniqueValue"`
}

var propertyNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)

// newProperty checks a property creation and returns the property, or the
// reason it is refused.
func newProperty(in propertyInput, now time.Time) (Property, string) {
	switch {
	case !propertyNamePattern.MatchString(in.Name):
		return Property{}, "name must be lowercase letters, digits and underscores, starting with a letter"
	case in.Label == "":
		return Property{}, "label is required"
	case !slices.Contains([]string{"string", "number", "date", "datetime", "enumeration", "bool"}, in.Type):
		return Property{}, "type must be one of string, number, date, datetime, enumeration, bool"
	case !slices.Contains([]string{"text", "textarea", "number", "date", "select", "radio", "checkbox", "booleancheckbox", "phonenumber"}, in.FieldType):
		return Property{}, "fieldType is not a known field type (e.g. text)"
	case in.GroupName == "":
		return Property{}, "groupName is required (e.g. contactinformation)"
	}
	at := now.UTC().Truncate(time.Millisecond)
	return Property{Name: in.Name, Label: in.Label, Type: in.Type, FieldType: in.FieldType, GroupName: in.GroupName,
		Description: in.Description, HasUniqueValue: in.HasUniqueValue, CreatedAt: at, UpdatedAt: at}, ""
}

// handleCreateProperty serves POST /crm/v3/properties/contacts.
func (s *Server) handleCreateProperty(req *crmRequest) crmReply {
	if !req.portal.hasScope(ScopeSchemasContactsWrite) {
		return missingScopes(ScopeSchemasContactsWrite)
	}
	var in propertyInput
	if err := json.Unmarshal(req.body, &in); err != nil {
		return errorReply(http.StatusBadRequest, hubspotError{Category: "VALIDATION_ERROR", Message: "Invalid input JSON: " + describeJSONError(err)})
	}
	prop, why := newProperty(in, req.now)
	if why != "" {
		return errorReply(http.StatusBadRequest, hubspotError{Category: "VALIDATION_ERROR", Message: "Invalid property: " + why})
	}
	if _, exists := req.portal.property(prop.Name); exists {
		return errorReply(http.StatusConflict, hubspotError{Category: "OBJECT_ALREADY_EXISTS",
			Message: fmt.Sprintf("Property named '%s' already exists.", prop.Name)})
	}
	req.portal.Properties[prop.Name] = prop
	if err := s.save(); err != nil {
		return errorReply(http.StatusInternalServerError, hubspotError{Category: "INTERNAL_ERROR", Message: "the HubSpot fake could not save its state"})
	}
	return crmReply{status: http.StatusCreated, body: prop}
}

// upsertInput is one input of a batch upsert.
type upsertInput struct {
	ID                 string            `json:"id"`
	IDProperty         string            `json:"idProperty"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId,omitempty"`
	Properties         map[string]string `json:"properties"`
}

// upsertResult is one contact in a batch upsert answer.
type upsertResult struct {
	ID                 string            `json:"id"`
	Properties         map[string]string `json:"properties"`
	CreatedAt          time.Time         `json:"createdAt"`
	UpdatedAt          time.Time         `json:"updatedAt"`
	Archived           bool              `json:"archived"`
	New                bool              `json:"new"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId,omitempty"`
}

// batchError is one input's error in a 207 answer (HubSpot's StandardError).
type batchError struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context"`
	Errors   []errorDetail       `json:"errors"`
	Links    map[string]string   `json:"links"`
}

// batchResponse is the answer to a batch upsert.
type batchResponse struct {
	Status      string         `json:"status"`
	Results     []upsertResult `json:"results"`
	Errors      []batchError   `json:"errors,omitempty"`
	NumErrors   int            `json:"numErrors,omitempty"`
	RequestedAt time.Time      `json:"requestedAt"`
	StartedAt   time.Time      `json:"startedAt"`
	CompletedAt time.Time      `json:"completedAt"`
}

// propertyValidity is one entry of the list a "Property values were not
// valid" message embeds.
type propertyValidity struct {
	IsValid bool   `json:"isValid"`
	Message string `json:"message"`
	Error   string `json:"error"`
	Name    string `json:"name"`
}

// propertyValuesNotValid is HubSpot's message for invalid property values:
// a sentence followed by the JSON list of what is wrong, which quotes the
// values.
func propertyValuesNotValid(list []propertyValidity) string {
	data, _ := json.Marshal(list)
	return "Property values were not valid: " + string(data)
}

// rejectCode is the error code the reject and refuse rules answer with.
func rejectCode(property string) string {
	if property == "email" {
		return "INVALID_EMAIL"
	}
	return "INVALID_PROPERTY_VALUE"
}

func invalidValue(property, value string) propertyValidity {
	if property == "email" {
		return propertyValidity{Message: fmt.Sprintf("Email address %s is invalid", value), Error: "INVALID_EMAIL", Name: "email"}
	}
	return propertyValidity{Message: fmt.Sprintf("%s was not a valid value for %s", value, property), Error: rejectCode(property), Name: property}
}

// handleBatchUpsert serves POST /crm/v3/objects/contacts/batch/upsert.
func (s *Server) handleBatchUpsert(req *crmRequest) crmReply {
	if !req.portal.hasScope(ScopeContactsWrite) {
		return missingScopes(ScopeContactsWrite)
	}
	var body struct {
		Inputs []upsertInput `json:"inputs"`
	}
	if err := json.Unmarshal(req.body, &body); err != nil {
		return errorReply(http.StatusBadRequest, hubspotError{Category: "VALIDATION_ERROR", Message: "Invalid input JSON: " + describeJSONError(err)})
	}
	inputs := body.Inputs
	reply := s.upsert(req, inputs)
	reply.inputs = len(inputs)
	return reply
}

// upsert checks a batch as a whole, then upserts its inputs one by one.
func (s *Server) upsert(req *crmRequest, inputs []upsertInput) crmReply {
	p, b, f := req.portal, req.book, req.book.faults
	validation := func(msg string) crmReply {
		return errorReply(http.StatusBadRequest, hubspotError{Category: "VALIDATION_ERROR", Message: msg})
	}
	if len(inputs) > MaxBatchInputs {
		return validation(fmt.Sprintf("Batch input limit exceeded: at most %d inputs per batch, got %d", MaxBatchInputs, len(inputs)))
	}
	seen := map[string]bool{}
	var invalid []propertyValidity
	for i, in := range inputs {
		switch {
		case in.ID == "":
			return validation(fmt.Sprintf("inputs[%d].id is required", i))
		case in.IDProperty == "":
			return validation(fmt.Sprintf("inputs[%d].idProperty is required for an upsert", i))
		}
		if _, ok := p.property(in.IDProperty); !ok {
			invalid = append(invalid, propertyValidity{Message: fmt.Sprintf("Property \"%s\" does not exist", in.IDProperty), Error: "PROPERTY_DOESNT_EXIST", Name: in.IDProperty})
			continue
		}
		if !p.unique(in.IDProperty) {
			return validation(fmt.Sprintf("Unable to perform update/upsert by non-unique 0-1 property %s in portal ID %d", in.IDProperty, p.HubID))
		}
		if in.IDProperty == "email" && !strings.Contains(in.ID, "@") {
			invalid = append(invalid, invalidValue("email", in.ID))
		}
		id := in.IDProperty + "\x00" + uniqueValue(in.IDProperty, in.ID)
		if seen[id] {
			return validation(fmt.Sprintf("Duplicate IDs found in batch input: [%s]. IDs must be unique", in.ID))
		}
		seen[id] = true
		for _, name := range sortedKeys(in.Properties) {
			value := in.Properties[name]
			if _, ok := p.property(name); !ok {
				invalid = append(invalid, propertyValidity{Message: fmt.Sprintf("Property \"%s\" does not exist", name), Error: "PROPERTY_DOESNT_EXIST", Name: name})
				continue
			}
			badEmail := name == "email" && value != "" && !strings.Contains(value, "@")
			refused := f.RefuseProperty == name && strings.Contains(value, f.RefuseContains)
			if badEmail || refused {
				invalid = append(invalid, invalidValue(name, value))
			}
		}
	}
	if len(invalid) > 0 {
		// HubSpot refuses the whole batch for one bad value.
		return validation(propertyValuesNotValid(invalid))
	}

	resp := batchResponse{Status: "COMPLETE", RequestedAt: req.now, StartedAt: req.now, Results: []upsertResult{}}
	for _, in := range inputs {
		if e := s.upsertOne(p, b, in, req.now, &resp); e != nil {
			resp.Errors = append(resp.Errors, *e)
		}
	}
	resp.CompletedAt = s.now().UTC()
	// HubSpot does not promise results in request order: answer them
	// reversed, so a client relying on the order fails its tests here.
	slices.Reverse(resp.Results)
	if f.DropResults {
		resp.Results = []upsertResult{}
	}
	if f.OmitTraceIDs {
		for i := range resp.Results {
			resp.Results[i].ObjectWriteTraceID = ""
		}
		for i := range resp.Errors {
			resp.Errors[i].Context = map[string][]string{}
		}
	}
	if len(resp.Errors) == 0 {
		return crmReply{status: http.StatusOK, body: resp}
	}
	resp.NumErrors = len(resp.Errors)
	return crmReply{status: http.StatusMultiStatus, body: resp}
}

// upsertOne applies one input, adding its result to resp, or returns the
// input's error. The input finds its contact by its idProperty (an email
// case-insensitively); a unique value the contact would take that another
// contact holds refuses the input alone: the email with HubSpot's "Contact
// already exists. Existing ID: ..." (category CONFLICT), any other unique
// property likewise, naming it in errors[].in (HubSpot's body for that case
// is unconfirmed). Unique values a contact gives up are free for others.
func (s *Server) upsertOne(p *portal, b *book, in upsertInput, now time.Time, resp *batchResponse) *batchError {
	f := b.faults
	traceContext := map[string][]string{}
	if in.ObjectWriteTraceID != "" {
		traceContext["objectWriteTraceId"] = []string{in.ObjectWriteTraceID}
	}
	if f.RejectProperty != "" && strings.Contains(in.Properties[f.RejectProperty], f.RejectContains) {
		v := invalidValue(f.RejectProperty, in.Properties[f.RejectProperty])
		return &batchError{Status: "error", Category: "VALIDATION_ERROR", Message: propertyValuesNotValid([]propertyValidity{v}),
			Context: traceContext, Errors: []errorDetail{{Message: v.Message, Code: v.Error, Context: map[string][]string{"propertyName": {v.Name}}}},
			Links: map[string]string{}}
	}
	id, exists := b.byValue[in.IDProperty][uniqueValue(in.IDProperty, in.ID)]
	c := b.contacts[id]

	// What the contact will hold: what it has, the input's properties on
	// top, and the value it is upserted by.
	next := map[string]string{}
	if exists {
		for name, value := range c.Properties {
			next[name] = value
		}
	}
	for name, value := range in.Properties {
		next[name] = value
	}
	next[in.IDProperty] = in.ID
	for _, name := range p.uniqueNames(next) {
		value := next[name]
		if value == "" {
			continue
		}
		if other, taken := b.byValue[name][uniqueValue(name, value)]; taken && other != id {
			return uniqueConflict(name, value, other, traceContext)
		}
	}

	if !exists {
		b.lastID++
		id = strconv.FormatInt(b.lastID, 10)
		c = &Contact{ID: id, Key: in.ID, IDProperty: in.IDProperty, Properties: map[string]string{}, CreatedAt: now}
		b.contacts[id] = c
	}
	for name, old := range c.Properties {
		if p.unique(name) && uniqueValue(name, next[name]) != uniqueValue(name, old) {
			delete(b.byValue[name], uniqueValue(name, old))
		}
	}
	c.Properties = next
	for _, name := range p.uniqueNames(next) {
		if value := next[name]; value != "" {
			b.index(name, uniqueValue(name, value), id)
		}
	}
	c.Upserts++
	c.UpdatedAt = now
	b.upserts++

	props := make(map[string]string, len(c.Properties)+3)
	for k, v := range c.Properties {
		props[k] = v
	}
	props["hs_object_id"] = id
	props["createdate"] = c.CreatedAt.Format(time.RFC3339Nano)
	props["lastmodifieddate"] = c.UpdatedAt.Format(time.RFC3339Nano)
	resp.Results = append(resp.Results, upsertResult{ID: id, Properties: props, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		New: !exists, ObjectWriteTraceID: in.ObjectWriteTraceID})
	return nil
}

// uniqueConflict is the error of an input whose unique value another
// contact holds. Like HubSpot's, its messages quote the value.
func uniqueConflict(name, value, other string, traceContext map[string][]string) *batchError {
	message := "Contact already exists. Existing ID: " + other
	if name != "email" {
		message = fmt.Sprintf("A contact already has this value of the unique property %s. Existing ID: %s", name, other)
	}
	return &batchError{Status: "error", Category: "CONFLICT", Message: message, Context: traceContext,
		Errors: []errorDetail{{Message: fmt.Sprintf("A contact with %s %s already exists. Existing ID: %s", name, value, other), In: name}},
		Links:  map[string]string{}}
}

// unique reports whether a contact property holds unique values: email
// (HubSpot's own identifier of contacts, which upserts may use as their
// idProperty), or a property created with hasUniqueValue. Callers hold
// s.mu.
func (p *portal) unique(name string) bool {
	if name == "email" {
		return true
	}
	prop, ok := p.property(name)
	return ok && prop.HasUniqueValue
}

// uniqueNames returns the unique properties among props' names, email
// first (HubSpot checks it first), then sorted.
func (p *portal) uniqueNames(props map[string]string) []string {
	var names []string
	for _, name := range sortedKeys(props) {
		if name != "email" && p.unique(name) {
			names = append(names, name)
		}
	}
	if _, ok := props["email"]; ok {
		names = append([]string{"email"}, names...)
	}
	return names
}

// uniqueValue is how a unique value is compared: emails case-insensitively
// (HubSpot keeps them in lower case), other values exactly.
func uniqueValue(property, value string) string {
	if property == "email" {
		return strings.ToLower(strings.TrimSpace(value))
	}
	return value
}

func (b *book) index(property, value, id string) {
	m, ok := b.byValue[property]
	if !ok {
		m = map[string]string{}
		b.byValue[property] = m
	}
	m[value] = id
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// describeJSONError explains a JSON decoding failure without quoting the
// body, whose values may be lead data.
func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("syntax error at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("field %s must be a %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &typeErr):
		return "the body must be a JSON object"
	}
	if bytes.Contains([]byte(err.Error()), []byte("unexpected end")) {
		return "unexpected end of input"
	}
	return "not valid JSON"
}
