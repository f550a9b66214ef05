package salesforcefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxCollectionSize is the most records one sObject Collections call takes.
const MaxCollectionSize = 200

// MinCollectionsUpsertVersion is the first API version with the sObject
// Collections upsert.
const MinCollectionsUpsertVersion = 46

// maxUpsertBodyBytes bounds an upsert call: 200 leads of up to 64 KiB each
// plus the JSON around them.
const maxUpsertBodyBytes = 16 << 20

// statusCodePattern is what a Salesforce status code looks like.
var statusCodePattern = regexp.MustCompile(`^[A-Z][A-Z_]{1,63}$`)

// fieldSpec is a standard Lead field of the fake.
type fieldSpec struct {
	name, label, typ string
	length           int
	writable         bool
	// required: a new lead must have a value (nillable false, no default).
	required  bool
	defaulted bool
}

// leadFields are the fake's standard Lead fields.
var leadFields = []fieldSpec{
	{name: "Id", label: "Lead ID", typ: "id", length: 18},
	{name: "FirstName", label: "First Name", typ: "string", length: 40, writable: true},
	{name: "LastName", label: "Last Name", typ: "string", length: 80, writable: true, required: true},
	{name: "Name", label: "Full Name", typ: "string", length: 121},
	{name: "Company", label: "Company", typ: "string", length: 255, writable: true, required: true},
	{name: "Title", label: "Title", typ: "string", length: 128, writable: true},
	{name: "Email", label: "Email", typ: "email", length: 80, writable: true},
	{name: "Phone", label: "Phone", typ: "phone", length: 40, writable: true},
	{name: "Description", label: "Description", typ: "textarea", length: 32000, writable: true},
	{name: "LeadSource", label: "Lead Source", typ: "picklist", length: 255, writable: true},
	{name: "Status", label: "Status", typ: "picklist", length: 255, writable: true, defaulted: true},
}

// defaultLeadStatus is the Status of a new lead that names none.
const defaultLeadStatus = "Open - Not Contacted"

// writableFields returns the standard Lead fields a client may write.
func writableFields() []string {
	var out []string
	for _, f := range leadFields {
		if f.writable {
			out = append(out, f.name)
		}
	}
	return out
}

// fieldsOf returns the Lead fields the org's user can see: the standard
// ones and the lead key field (when present), less the hidden ones.
func fieldsOf(o *Org) []fieldSpec {
	var out []fieldSpec
	for _, f := range leadFields {
		if !slices.Contains(o.HiddenFields, f.name) {
			out = append(out, f)
		}
	}
	if k := o.LeadKeyField; k.Present && !slices.Contains(o.HiddenFields, k.Name) {
		out = append(out, fieldSpec{name: k.Name, label: "Integrations Lead Key", typ: "string", length: 255, writable: true})
	}
	return out
}

func fieldOf(o *Org, name string) (fieldSpec, bool) {
	for _, f := range fieldsOf(o) {
		if f.name == name {
			return f, true
		}
	}
	return fieldSpec{}, false
}

// apiVersion parses "v67.0" into 67, or false.
func apiVersion(v string) (int, bool) {
	major, minor, ok := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	if !ok || !strings.HasPrefix(v, "v") || minor != "0" {
		return 0, false
	}
	n, err := strconv.Atoi(major)
	return n, err == nil && n >= 20 && n < 1000
}

// apiReply is the answer to a REST call, worked out under the lock and
// written after it.
type apiReply struct {
	status int
	body   any
}

func errorReply(status int, code, message string) apiReply {
	return apiReply{status: status, body: []apiError{{Message: message, ErrorCode: code}}}
}

// serveAPI runs one REST call: the latency fault, the token (which must be
// for this instance), API access for the org and the user, the fail_next
// and limit_exceeded_next faults and the allocation; then serve, which
// answers the call. Every call of a known token is in the org's call log
// and, once authenticated, answers Sforce-Limit-Info.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, records int, serve func(o *Org, b *book) apiReply) {
	arrived := s.now().UTC()
	token, _ := bearerToken(r)
	s.mu.Lock()
	latency := 0
	if sess, ok := s.sessions[token]; ok {
		latency = s.bookLocked(sess.grant.OrgID).faults.LatencyMS
	}
	s.mu.Unlock()
	if latency > 0 {
		s.sleep(time.Duration(latency) * time.Millisecond)
	}

	s.mu.Lock()
	reply, usage := s.apiLocked(r, token, arrived, records, serve)
	s.mu.Unlock()
	if usage != "" {
		w.Header().Set("Sforce-Limit-Info", usage)
	}
	fake.WriteJSON(w, reply.status, reply.body)
}

// apiLocked works out a REST call's reply and its Sforce-Limit-Info value
// ("" before authentication). Callers hold s.mu.
func (s *Server) apiLocked(r *http.Request, token string, arrived time.Time, records int, serve func(o *Org, b *book) apiReply) (apiReply, string) {
	invalid := errorReply(http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
	_, o, ok := s.sessionLocked(token)
	if !ok || o.Instance != r.PathValue("instance") {
		if sess, known := s.sessions[token]; known {
			s.bookLocked(sess.grant.OrgID).logCall(Call{At: arrived, Method: r.Method, Path: r.URL.Path, Status: invalid.status, Records: records})
		}
		return invalid, ""
	}
	b := s.bookLocked(o.ID)
	used := b.used(arrived, o.window())
	reply := func() apiReply {
		switch {
		case !o.APIEnabled:
			return errorReply(http.StatusForbidden, "API_DISABLED_FOR_ORG", "The REST API is not enabled for this Organization.")
		case !o.UserAPIEnabled:
			return errorReply(http.StatusForbidden, "API_CURRENTLY_DISABLED", "API is disabled for this User")
		}
		if status := b.failNext(); status != 0 {
			return errorReply(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable (simulated with fail_next)")
		}
		if b.faults.LimitExceededNext > 0 || used >= o.APILimit {
			if b.faults.LimitExceededNext > 0 {
				b.faults.LimitExceededNext--
			}
			return errorReply(http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		}
		b.usage = append(b.usage, arrived)
		used++
		return serve(o, b)
	}()
	b.logCall(Call{At: arrived, Method: r.Method, Path: r.URL.Path, Status: reply.status, Records: records})
	return reply, fmt.Sprintf("api-usage=%d/%d", used, o.APILimit)
}

// handleNoResource answers a REST resource the fake does not have.
func (s *Server) handleNoResource(w http.ResponseWriter, r *http.Request) {
	s.serveAPI(w, r, 0, func(*Org, *book) apiReply {
		return errorReply(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	})
}

// describeField is one field of a describe answer.
type describeField struct {
	Name              string `json:"name"`
	Label             string `json:"label"`
	Type              string `json:"type"`
	Length            int    `json:"length"`
	Createable        bool   `json:"createable"`
	Updateable        bool   `json:"updateable"`
	Nillable          bool   `json:"nillable"`
	DefaultedOnCreate bool   `json:"defaultedOnCreate"`
	ExternalID        bool   `json:"externalId"`
	Unique            bool   `json:"unique"`
	Custom            bool   `json:"custom"`
	IDLookup          bool   `json:"idLookup"`
}

// describeResult is the answer of GET .../sobjects/Lead/describe.
type describeResult struct {
	Name         string            `json:"name"`
	Label        string            `json:"label"`
	LabelPlural  string            `json:"labelPlural"`
	KeyPrefix    string            `json:"keyPrefix"`
	Custom       bool              `json:"custom"`
	Createable   bool              `json:"createable"`
	Updateable   bool              `json:"updateable"`
	Deletable    bool              `json:"deletable"`
	Queryable    bool              `json:"queryable"`
	Retrieveable bool              `json:"retrieveable"`
	Searchable   bool              `json:"searchable"`
	Fields       []describeField   `json:"fields"`
	URLs         map[string]string `json:"urls"`
}

func (s *Server) handleDescribe(w http.ResponseWriter, r *http.Request) {
	version, sobject := r.PathValue("version"), r.PathValue("sobject")
	s.serveAPI(w, r, 0, func(o *Org, _ *book) apiReply {
		if _, ok := apiVersion(version); !ok || sobject != "Lead" || !o.can(PermissionRead) {
			return errorReply(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		}
		create, edit := o.can(PermissionCreate), o.can(PermissionEdit)
		d := describeResult{
			Name: "Lead", Label: "Lead", LabelPlural: "Leads", KeyPrefix: "00Q",
			Createable: create, Updateable: edit, Deletable: edit, Queryable: true, Retrieveable: true, Searchable: true,
			URLs: map[string]string{
				"sobject":  "/services/data/" + version + "/sobjects/Lead",
				"describe": "/services/data/" + version + "/sobjects/Lead/describe",
			},
		}
		for _, f := range fieldsOf(o) {
			isKey := f.name == o.LeadKeyField.Name
			d.Fields = append(d.Fields, describeField{
				Name: f.name, Label: f.label, Type: f.typ, Length: f.length,
				Createable: f.writable && create, Updateable: f.writable && edit,
				Nillable: !f.required && f.name != "Id", DefaultedOnCreate: f.defaulted || f.name == "Id",
				ExternalID: isKey && o.LeadKeyField.ExternalID, Unique: isKey && o.LeadKeyField.Unique,
				Custom: isKey, IDLookup: f.name == "Id" || (isKey && o.LeadKeyField.ExternalID),
			})
		}
		return apiReply{status: http.StatusOK, body: d}
	})
}

// upsertRequest is the body of the sObject Collections upsert.
type upsertRequest struct {
	AllOrNone bool                         `json:"allOrNone"`
	Records   []map[string]json.RawMessage `json:"records"`
}

// recordError is one error of a record's upsert result.
type recordError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// upsertResult is one record's outcome.
type upsertResult struct {
	ID      string        `json:"id,omitempty"`
	Success bool          `json:"success"`
	Errors  []recordError `json:"errors"`
	Created *bool         `json:"created,omitempty"`
}

// record is one record of an upsert call, decoded: its field values, and
// the fields it clears (JSON null).
type record struct {
	values  map[string]string
	cleared []string
}

func (s *Server) handleUpsert(w http.ResponseWriter, r *http.Request) {
	data, readErr := readAll(r, maxUpsertBodyBytes)
	var req upsertRequest
	parseErr := readErr
	if parseErr == nil {
		parseErr = json.Unmarshal(data, &req)
	}
	version, sobject, field := r.PathValue("version"), r.PathValue("sobject"), r.PathValue("field")
	s.serveAPI(w, r, len(req.Records), func(o *Org, b *book) apiReply {
		if n, ok := apiVersion(version); !ok || n < MinCollectionsUpsertVersion || sobject != "Lead" {
			return errorReply(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		}
		if !o.can(PermissionRead) {
			return errorReply(http.StatusBadRequest, "INVALID_TYPE",
				"sObject type 'Lead' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.")
		}
		keyField, ok := fieldOf(o, field)
		switch {
		case !ok || (field != o.LeadKeyField.Name):
			return errorReply(http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+field)
		case !o.LeadKeyField.ExternalID:
			return errorReply(http.StatusBadRequest, "INVALID_FIELD", "Field name provided, "+field+" is not an External ID or indexed field for Lead")
		}
		if readErr == errTooLarge {
			return errorReply(http.StatusRequestEntityTooLarge, "REQUEST_ENTITY_TOO_LARGE", "the request body is too large")
		}
		if parseErr != nil || !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			return errorReply(http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not a valid sObject Collections request")
		}
		if len(req.Records) > MaxCollectionSize {
			return errorReply(http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
		}
		records := make([]record, len(req.Records))
		for i, raw := range req.Records {
			rec, problem := decodeRecord(o, raw)
			if problem.status != 0 {
				return problem
			}
			records[i] = rec
		}
		if f := b.faults; f.RefuseField != "" {
			for _, rec := range records {
				if strings.Contains(rec.values[f.RefuseField], f.RefuseContains) {
					return errorReply(http.StatusBadRequest, "JSON_PARSER_ERROR",
						"Json Deserialization failed on token 'null' and has left off in the middle of parsing a row (simulated with the refuse rule)")
				}
			}
		}
		return apiReply{status: http.StatusOK, body: b.upsert(o, keyField.name, records, req.AllOrNone, s.now().UTC())}
	})
}

// decodeRecord reads one record of an upsert call. A record the call
// cannot take as a whole (no concrete type, a field the user cannot see, a
// value that is not a string) is the whole call's error.
func decodeRecord(o *Org, raw map[string]json.RawMessage) (record, apiReply) {
	rec := record{values: map[string]string{}}
	var attrs struct {
		Type string `json:"type"`
	}
	if a, ok := raw["attributes"]; !ok || json.Unmarshal(a, &attrs) != nil || attrs.Type == "" {
		return rec, errorReply(http.StatusBadRequest, "INVALID_TYPE", "Must send a concrete entity type.")
	}
	if attrs.Type != "Lead" {
		return rec, errorReply(http.StatusBadRequest, "INVALID_TYPE", "sObject type '"+attrs.Type+"' is not allowed here: this call upserts Lead records only")
	}
	for name, value := range raw {
		if name == "attributes" {
			continue
		}
		f, ok := fieldOf(o, name)
		if !ok {
			return rec, errorReply(http.StatusBadRequest, "INVALID_FIELD", "No such column '"+name+"' on sobject of type Lead")
		}
		if !f.writable {
			return rec, errorReply(http.StatusBadRequest, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: "+name+". Please check the security settings of this field and verify that it is read/write for your profile or permission set.")
		}
		if bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
			rec.cleared = append(rec.cleared, name)
			continue
		}
		var str string
		if err := json.Unmarshal(value, &str); err != nil {
			return rec, errorReply(http.StatusBadRequest, "JSON_PARSER_ERROR", "Cannot deserialize instance of string for field "+name)
		}
		rec.values[name] = str
	}
	return rec, apiReply{}
}

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// upsert applies a call's records in order, as the sObject Collections
// upsert does. Messages quote values, as Salesforce's do.
func (b *book) upsert(o *Org, keyField string, records []record, allOrNone bool, now time.Time) []upsertResult {
	seen := map[string]int{}
	for _, rec := range records {
		if key := rec.values[keyField]; key != "" {
			seen[key]++
		}
	}
	results := make([]upsertResult, len(records))
	staged := make([]*Lead, len(records))
	stagedKeys := make([]string, len(records))
	failed := false
	for i, rec := range records {
		lead, errs := b.stage(o, keyField, rec, seen)
		if len(errs) > 0 {
			results[i] = upsertResult{Errors: errs}
			failed = true
			continue
		}
		created := b.leads[rec.values[keyField]] == nil
		results[i] = upsertResult{ID: lead.ID, Success: true, Errors: []recordError{}, Created: &created}
		staged[i], stagedKeys[i] = lead, rec.values[keyField]
	}
	if allOrNone && failed {
		for i := range results {
			if results[i].Success {
				results[i] = upsertResult{Errors: []recordError{{StatusCode: "ALL_OR_NONE_OPERATION_ROLLED_BACK",
					Message: "Record rolled back because not all records were valid and the request was using AllOrNone header", Fields: []string{}}}}
			}
		}
		return results
	}
	for i, lead := range staged {
		if lead == nil {
			continue
		}
		lead.Upserts++
		lead.Fields["LastModifiedDate"] = now.Format("2006-01-02T15:04:05.000+0000")
		b.leads[stagedKeys[i]] = lead
		b.upserts++
	}
	return results
}

// stage works out the lead a record makes, without storing it, or the
// record's errors.
func (b *book) stage(o *Org, keyField string, rec record, seen map[string]int) (*Lead, []recordError) {
	fail := func(code, message string, fields ...string) (*Lead, []recordError) {
		if fields == nil {
			fields = []string{}
		}
		return nil, []recordError{{StatusCode: code, Message: message, Fields: fields}}
	}
	key := rec.values[keyField]
	switch {
	case key == "":
		return fail("MISSING_ARGUMENT", keyField+" not specified")
	case seen[key] > 1:
		return fail("DUPLICATE_EXTERNAL_ID", "Duplicate external id specified: "+key, keyField)
	}
	existing := b.leads[key]
	if f := b.faults; f.LockNext > 0 {
		b.faults.LockNext--
		return fail("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records: "+key)
	}
	if f := b.faults; f.RejectField != "" && strings.Contains(rec.values[f.RejectField], f.RejectContains) {
		return fail(f.RejectCode, rejectMessage(f.RejectCode, f.RejectField, rec.values[f.RejectField]), f.RejectField)
	}
	if existing == nil && !o.can(PermissionCreate) {
		return fail("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "entity type cannot be inserted: Lead")
	}
	if existing != nil && !o.can(PermissionEdit) {
		return fail("INSUFFICIENT_ACCESS_OR_READONLY", "entity type cannot be updated: Lead")
	}
	lead := &Lead{Fields: map[string]any{}}
	if existing != nil {
		lead.ID, lead.Upserts = existing.ID, existing.Upserts
		for k, v := range existing.Fields {
			lead.Fields[k] = v
		}
	} else {
		lead.ID = newID("00Q")
		lead.Fields["Status"] = defaultLeadStatus
	}
	for _, name := range rec.cleared {
		delete(lead.Fields, name)
	}
	for name, v := range rec.values {
		lead.Fields[name] = v
	}
	var missing []string
	for _, f := range leadFields {
		if v, _ := lead.Fields[f.name].(string); f.required && v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fail("REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(missing, ", ")+"]", missing...)
	}
	for name, v := range rec.values {
		f, _ := fieldOf(o, name)
		if utf8.RuneCountInString(v) > f.length {
			return fail("STRING_TOO_LONG", fmt.Sprintf("%s: data value too large: %s (max length=%d)", f.label, v, f.length), name)
		}
	}
	if email := rec.values["Email"]; email != "" && !emailPattern.MatchString(email) {
		return fail("INVALID_EMAIL_ADDRESS", "Email: invalid email address: "+email, "Email")
	}
	return lead, nil
}

// rejectMessage is the message of the reject rule's code, quoting the
// value as Salesforce does.
func rejectMessage(code, field, value string) string {
	switch code {
	case "INVALID_EMAIL_ADDRESS":
		return field + ": invalid email address: " + value
	case "FIELD_CUSTOM_VALIDATION_EXCEPTION":
		return "This lead cannot be saved: " + field + " " + value + " is not accepted (validation rule Fake_Reject_Rule)"
	case "INSUFFICIENT_ACCESS_OR_READONLY":
		// A record the user's sharing does not let it edit.
		return "insufficient access rights on object id"
	}
	return "The record was refused (simulated): " + field + " is " + value
}
