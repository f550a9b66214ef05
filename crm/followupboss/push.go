package followupboss

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// Push delivers one record (BatchLimit is 1): a contact already tagged
// with its key is the record delivered before; otherwise the record goes
// out as an event (see the package documentation for the mapping and the
// outcomes). Whole-call errors are *crm.Error and store nothing; they carry
// the endpoint, status and key, never the API key or the record's data.
func (c *Connector) Push(ctx context.Context, raw []byte, records []crm.Record) ([]crm.RecordResult, error) {
	if len(records) == 0 {
		return nil, nil
	}
	if len(records) > 1 {
		return nil, fmt.Errorf("Follow Up Boss push: %d records: %w (Follow Up Boss takes 1 per call)", len(records), crm.ErrBatchTooLarge)
	}
	rec := records[0]
	creds, err := parseCredentials(raw)
	if err != nil {
		// Unusable stored credentials need re-authorization, which is what
		// an auth error leads to (validation reports the details).
		return nil, fmt.Errorf("Follow Up Boss push of lead %s: %w", rec.Key, &crm.Error{Class: crm.ClassAuth,
			Err: errors.New("the stored credentials are unusable: validate the integration and re-authorize")})
	}
	result, err := c.push(ctx, creds, rec)
	if err != nil {
		return nil, fmt.Errorf("Follow Up Boss push of lead %s: %w", rec.Key, err)
	}
	return []crm.RecordResult{result}, nil
}

func (c *Connector) push(ctx context.Context, creds credentials, rec crm.Record) (crm.RecordResult, error) {
	if id, found, err := c.delivered(ctx, creds, rec.Key); err != nil || found {
		return crm.RecordResult{Key: rec.Key, Status: crm.RecordDelivered, CRMID: id}, err
	}
	body, err := encodeEvent(c.event(rec))
	if err != nil {
		return crm.RecordResult{}, err
	}
	ans, err := c.call(ctx, creds, http.MethodPost, pathEvents, "", body)
	if err != nil {
		return crm.RecordResult{}, err
	}
	switch ans.status {
	case http.StatusOK, http.StatusCreated:
		var p personResponse
		id := ""
		// A 2xx whose body does not parse still took the event; it only
		// lacks the contact's ID.
		if json.Unmarshal(ans.body, &p) == nil {
			id = string(p.ID)
		}
		return crm.RecordResult{Key: rec.Key, Status: crm.RecordDelivered, CRMID: id}, nil
	case http.StatusNoContent:
		return crm.RecordResult{Key: rec.Key, Status: crm.RecordRejected, Reason: ReasonArchivedLeadFlow}, nil
	case http.StatusBadRequest:
		var e errorResponse
		if json.Unmarshal(ans.body, &e) == nil && e.ErrorMessage != "" {
			return crm.RecordResult{Key: rec.Key, Status: crm.RecordRejected, Reason: rejectionReason(e.ErrorMessage)}, nil
		}
		// Not Follow Up Boss's error shape (a proxy's?): nothing says the
		// lead is at fault.
		return crm.RecordResult{}, c.statusError(ans, http.MethodPost, pathEvents)
	case http.StatusRequestEntityTooLarge:
		return crm.RecordResult{}, &crm.Error{Class: crm.ClassBatchRejected, StatusCode: ans.status,
			Err: errors.New("Follow Up Boss refused POST /v1/events as too large (HTTP 413)")}
	}
	return crm.RecordResult{}, c.statusError(ans, http.MethodPost, pathEvents)
}

// delivered looks for a contact carrying the key's tag: one means an
// earlier push delivered the lead. A lookup Follow Up Boss answers 400 or
// 404 is skipped (found false): a change to its search must not stop
// deliveries, at worst an event is repeated. A key with a comma cannot be
// looked up (the tags filter splits on commas) and is not.
func (c *Connector) delivered(ctx context.Context, creds credentials, key string) (id string, found bool, err error) {
	if strings.Contains(key, ",") {
		return "", false, nil
	}
	tag := KeyTag(key)
	query := url.Values{"tags": {tag}, "fields": {"id,tags"}, "limit": {"10"}}.Encode()
	ans, err := c.call(ctx, creds, http.MethodGet, pathPeople, query, nil)
	if err != nil {
		return "", false, err
	}
	switch ans.status {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusNotFound:
		return "", false, nil
	default:
		return "", false, c.statusError(ans, http.MethodGet, pathPeople)
	}
	var list peopleResponse
	if err := json.Unmarshal(ans.body, &list); err != nil || list.People == nil {
		return "", false, &crm.Error{Class: crm.ClassTransient, StatusCode: ans.status,
			Err: errors.New("GET /v1/people did not answer with a list of people: is the configured API URL Follow Up Boss's?")}
	}
	for _, p := range list.People {
		// Only a contact that really carries the tag counts, whatever the
		// filter matched.
		if slices.ContainsFunc(p.Tags, func(t string) bool { return strings.EqualFold(t, tag) }) {
			return string(p.ID), true, nil
		}
	}
	return "", false, nil
}

// event maps a record to Follow Up Boss's event (see the package
// documentation).
func (c *Connector) event(rec crm.Record) eventRequest {
	first, last := rec.FirstName, rec.LastName
	if first == "" && last == "" {
		first, last = integration.SplitName(rec.Name)
	}
	ev := eventRequest{
		Source:  rec.Source,
		System:  c.system,
		Type:    EventType,
		Message: message(rec),
		Person: personRequest{
			FirstName: first,
			LastName:  last,
			Tags:      []string{KeyTag(rec.Key)},
		},
	}
	if rec.Email != "" {
		ev.Person.Emails = []value{{Value: rec.Email}}
	}
	if rec.Phone != "" {
		ev.Person.Phones = []value{{Value: rec.Phone}}
	}
	return ev
}

// message is the event's message: the lead's, then its company and
// attributes, one per line, so the agent sees everything the partner sent.
func message(rec crm.Record) string {
	var details []string
	if rec.Company != "" {
		details = append(details, "Company: "+rec.Company)
	}
	keys := make([]string, 0, len(rec.Attributes))
	for k := range rec.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		details = append(details, k+": "+attributeText(rec.Attributes[k]))
	}
	if len(details) == 0 {
		return rec.Message
	}
	if rec.Message == "" {
		return strings.Join(details, "\n")
	}
	return rec.Message + "\n\n" + strings.Join(details, "\n")
}

// attributeText shows an attribute value: a string as it is, anything
// else as JSON.
func attributeText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	data, err := marshal(v)
	if err != nil {
		return "(a value that is not JSON)"
	}
	return string(data)
}

// encodeEvent encodes the event without HTML escaping: escaping "<" to
// "\u003c" would make a lead six times its size on the wire.
func encodeEvent(ev eventRequest) ([]byte, error) {
	data, err := marshal(ev)
	if err != nil {
		// Encoding errors may quote the value, which is lead data.
		return nil, &crm.Error{Class: crm.ClassBatchRejected, Err: errors.New("the lead cannot be encoded as JSON")}
	}
	return data, nil
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// rejectionReason names what Follow Up Boss's errorMessage is about, never
// quoting it: such messages may quote the rejected value.
func rejectionReason(errorMessage string) string {
	m := strings.ToLower(errorMessage)
	switch {
	case strings.Contains(m, "email"):
		return ReasonInvalidEmail
	case strings.Contains(m, "phone"):
		return ReasonInvalidPhone
	case strings.Contains(m, "name"):
		return ReasonInvalidName
	}
	return ReasonRefused
}

// The wire shapes of the Follow Up Boss API, as the connector sends and
// reads them: its own copy of the API, independent of the fake's.

// identityResponse is the answer to GET /v1/identity.
type identityResponse struct {
	Account *struct {
		ID flexID `json:"id"`
	} `json:"account"`
	User *struct {
		ID flexID `json:"id"`
	} `json:"user"`
}

// flexID is an ID Follow Up Boss sends as a JSON number (its examples do);
// a string is taken too, so a change of type cannot stop validation or
// deliveries. Anything else reads as no ID.
type flexID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *flexID) UnmarshalJSON(data []byte) error {
	var n json.Number
	if err := json.Unmarshal(data, &n); err == nil {
		*id = flexID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil && len(s) <= 64 {
		*id = flexID(s)
		return nil
	}
	*id = ""
	return nil
}

// eventRequest is the body of POST /v1/events.
type eventRequest struct {
	Source  string        `json:"source,omitempty"`
	System  string        `json:"system,omitempty"`
	Type    string        `json:"type"`
	Message string        `json:"message,omitempty"`
	Person  personRequest `json:"person"`
}

type personRequest struct {
	FirstName string   `json:"firstName,omitempty"`
	LastName  string   `json:"lastName,omitempty"`
	Emails    []value  `json:"emails,omitempty"`
	Phones    []value  `json:"phones,omitempty"`
	Tags      []string `json:"tags"`
}

type value struct {
	Value string `json:"value"`
}

// personResponse is the part of a person object the connector reads.
type personResponse struct {
	ID   flexID   `json:"id"`
	Tags []string `json:"tags"`
}

// peopleResponse is the answer to GET /v1/people.
type peopleResponse struct {
	People []personResponse `json:"people"`
}

// errorResponse is Follow Up Boss's error body.
type errorResponse struct {
	ErrorMessage string `json:"errorMessage"`
}
