package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// upsertInput is one input of a batch upsert, as the connector sends it.
type upsertInput struct {
	ID                 string            `json:"id"`
	IDProperty         string            `json:"idProperty"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId"`
	Properties         map[string]string `json:"properties"`
}

// upsertAnswer is the 200 or 207 body of a batch upsert, as the connector
// reads it.
type upsertAnswer struct {
	Status  string `json:"status"`
	Results []struct {
		ID                 string            `json:"id"`
		ObjectWriteTraceID string            `json:"objectWriteTraceId"`
		Properties         map[string]string `json:"properties"`
	} `json:"results"`
	Errors []apiError `json:"errors"`
}

// attributesHeading introduces the partner's attributes in the message.
const attributesHeading = "Details from the lead partner:"

// contactProperties maps a record to HubSpot contact properties (see the
// package documentation). Empty values are left out, so an update never
// clears what the contact holds.
func contactProperties(r crm.Record) map[string]string {
	first, last := r.FirstName, r.LastName
	if first == "" && last == "" {
		first, last = integration.SplitName(r.Name)
	}
	props := map[string]string{KeyProperty: r.Key}
	set := func(name, value string) {
		if value = strings.TrimSpace(value); value != "" {
			props[name] = value
		}
	}
	set(SourceProperty, r.Source)
	set("firstname", first)
	set("lastname", last)
	set("company", r.Company)
	set("email", r.Email)
	set("phone", r.Phone)
	set("message", messageWithAttributes(r.Message, r.Attributes))
	return props
}

// messageWithAttributes appends the attributes to the message as
// "key: value" lines, sorted by key; strings as they are, other values as
// JSON.
func messageWithAttributes(message string, attrs map[string]any) string {
	message = strings.TrimSpace(message)
	if len(attrs) == 0 {
		return message
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	if message != "" {
		b.WriteString(message)
		b.WriteString("\n\n")
	}
	b.WriteString(attributesHeading)
	for _, k := range keys {
		var value string
		switch v := attrs[k].(type) {
		case string:
			value = v
		case nil:
			value = ""
		default:
			data, err := json.Marshal(v)
			if err != nil {
				// Not JSON-encodable: nothing a lead from intake (JSON) can be.
				continue
			}
			value = string(data)
		}
		b.WriteString("\n")
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(value)
	}
	return b.String()
}

// Push upserts records as HubSpot contacts by KeyProperty in one batch
// upsert, and returns one result per record, in order, matched by key (see
// the package documentation). Whole-call failures are a *crm.Error: 401 (or
// an OAuth access token past its expiry, refused before any call)
// crm.ClassAuth; 403 crm.ClassPermission; 429 crm.ClassRateLimited; a 400,
// 409 or 413 for the batch's content crm.ClassBatchRejected; a missing
// contact property crm.ClassPermission; network, 5xx and answers that do
// not account for every record crm.ClassTransient. They carry status codes,
// HubSpot's codes, counts and scope or property names, never a token or the
// records' contents.
func (c *Connector) Push(ctx context.Context, raw []byte, records []crm.Record) ([]crm.RecordResult, error) {
	if len(records) == 0 {
		return nil, nil
	}
	if len(records) > MaxBatchSize {
		return nil, fmt.Errorf("hubspot push: %d records: %w (at most %d)", len(records), crm.ErrBatchTooLarge, MaxBatchSize)
	}
	creds, err := parseCredentials(raw)
	if err != nil {
		return nil, fmt.Errorf("hubspot push: %w", &crm.Error{Class: crm.ClassAuth,
			Err: errors.New("the stored credentials are unusable: validate the integration and authorize it again")})
	}
	if creds.oauth() && !c.now().Before(creds.expiresAt) {
		// A call would only answer 401: ask for the refresh now.
		return nil, fmt.Errorf("hubspot push: %w", &crm.Error{Class: crm.ClassAuth,
			Err: errors.New("the OAuth access token has expired: refresh it")})
	}

	// One input per key: a key twice in a batch is one lead.
	var inputs []upsertInput
	byKey := map[string]bool{}
	for _, r := range records {
		if r.Key == "" {
			return nil, fmt.Errorf("hubspot push: a record has no key: every record needs its lead ID")
		}
		if byKey[r.Key] {
			continue
		}
		byKey[r.Key] = true
		inputs = append(inputs, upsertInput{ID: r.Key, IDProperty: KeyProperty, ObjectWriteTraceID: r.Key, Properties: contactProperties(r)})
	}

	outcomes := map[string]crm.RecordResult{}
	if err := c.upsert(ctx, creds, inputs, outcomes); err != nil {
		return nil, fmt.Errorf("hubspot push of %d records: %w", len(records), err)
	}
	if missing := unaccounted(inputs, outcomes); len(missing) > 0 && len(inputs) > 1 {
		// HubSpot's answer did not say what became of these: ask about
		// each alone, where the one result or error can only be its own.
		for _, in := range missing {
			err := c.upsert(ctx, creds, []upsertInput{in}, outcomes)
			var refused *batchRefused
			if crm.ClassOf(err) == crm.ClassBatchRejected && errors.As(err, &refused) {
				// A refused batch of one is that record's rejection.
				outcomes[in.ID] = crm.RecordResult{Key: in.ID, Status: crm.RecordRejected, Reason: refused.reason}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("hubspot push of %d records, again one by one: %w", len(records), err)
			}
		}
	}
	if missing := unaccounted(inputs, outcomes); len(missing) > 0 {
		return nil, fmt.Errorf("hubspot push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient,
			Err: fmt.Errorf("HubSpot's answer accounted for %d of %d records; the batch will be pushed again", len(inputs)-len(missing), len(inputs))})
	}
	results := make([]crm.RecordResult, len(records))
	for i, r := range records {
		results[i] = outcomes[r.Key]
	}
	if err := crm.CheckResults(records, results); err != nil {
		return nil, fmt.Errorf("hubspot push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient, Err: err})
	}
	return results, nil
}

// unaccounted returns the inputs without an outcome.
func unaccounted(inputs []upsertInput, outcomes map[string]crm.RecordResult) []upsertInput {
	var missing []upsertInput
	for _, in := range inputs {
		if _, ok := outcomes[in.ID]; !ok {
			missing = append(missing, in)
		}
	}
	return missing
}

// upsert makes one batch upsert call and records the outcomes it accounts
// for; a whole-call failure is returned.
func (c *Connector) upsert(ctx context.Context, creds credentials, inputs []upsertInput, outcomes map[string]crm.RecordResult) error {
	body, err := json.Marshal(map[string]any{"inputs": inputs})
	if err != nil {
		// json.Marshal errors may quote the offending value, which is PII.
		return errors.New("encoding the contacts failed")
	}
	r := request{method: http.MethodPost, path: pathBatchUpsert, what: "the contacts batch upsert", token: creds.accessToken,
		body: body, contentType: "application/json", paceKey: creds.paceKey()}
	a, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	switch a.status {
	case http.StatusOK, http.StatusMultiStatus:
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return batchRefusal(a, len(inputs))
	default:
		return c.classify(r, a)
	}
	var ans upsertAnswer
	if err := json.Unmarshal(a.body, &ans); err != nil {
		return &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
			Err: errors.New("HubSpot's answer to the contacts batch upsert is not a batch result: check INTEGRATIONS_HUBSPOT_API_URL")}
	}
	matchOutcomes(inputs, ans, outcomes)
	return nil
}

// matchOutcomes records what the answer says about each input, by the
// objectWriteTraceId we set (our key), else by the key property a result
// holds; never by position. A record both delivered and refused is left
// unaccounted for. When one input was sent, a lone result or error is its.
func matchOutcomes(inputs []upsertInput, ans upsertAnswer, outcomes map[string]crm.RecordResult) {
	sent := make(map[string]bool, len(inputs))
	for _, in := range inputs {
		sent[in.ID] = true
	}
	found := map[string]crm.RecordResult{}
	conflicted := map[string]bool{}
	note := func(res crm.RecordResult) {
		if prev, dup := found[res.Key]; dup && prev.Status != res.Status {
			conflicted[res.Key] = true
		}
		found[res.Key] = res
	}
	for _, res := range ans.Results {
		key := res.ObjectWriteTraceID
		if !sent[key] {
			key = res.Properties[KeyProperty]
		}
		if !sent[key] && len(inputs) == 1 && len(ans.Results) == 1 && len(ans.Errors) == 0 {
			key = inputs[0].ID
		}
		if sent[key] {
			note(crm.RecordResult{Key: key, Status: crm.RecordDelivered, CRMID: quotableID(res.ID)})
		}
	}
	for _, e := range ans.Errors {
		var keys []string
		for _, name := range []string{"objectWriteTraceId", "ids", "id"} {
			for _, k := range contextStrings(e.Context, name) {
				if sent[k] && !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
		if len(keys) == 0 && len(inputs) == 1 && len(ans.Errors) == 1 && len(ans.Results) == 0 {
			keys = []string{inputs[0].ID}
		}
		for _, k := range keys {
			note(crm.RecordResult{Key: k, Status: crm.RecordRejected, Reason: rejectionReason(e)})
		}
	}
	for key, res := range found {
		if !conflicted[key] {
			outcomes[key] = res
		}
	}
}

// quotableID keeps a HubSpot record ID only if it looks like one (digits).
func quotableID(id string) string {
	if id == "" || len(id) > 32 || strings.ContainsFunc(id, func(r rune) bool { return r < '0' || r > '9' }) {
		return ""
	}
	return id
}

// propertyProblem is one entry of the list HubSpot embeds in "Property
// values were not valid: [...]". Its message quotes the value and is never
// used.
type propertyProblem struct {
	Error string `json:"error"`
	Name  string `json:"name"`
}

// propertyProblems reads the list a validation message embeds, nil when it
// has none.
func propertyProblems(message string) []propertyProblem {
	i := strings.Index(message, "[")
	if i < 0 || !strings.Contains(message[:i], "not valid") {
		return nil
	}
	var list []propertyProblem
	dec := json.NewDecoder(strings.NewReader(message[i:]))
	if dec.Decode(&list) != nil {
		return nil
	}
	return list
}

// codeTexts say what HubSpot's value error codes mean, for reasons.
var codeTexts = map[string]string{
	"INVALID_EMAIL":         "invalid email",
	"PROPERTY_DOESNT_EXIST": "unknown contact property",
	"INVALID_OPTION":        "not one of the property's options",
	"INVALID_INTEGER":       "not a whole number",
	"INVALID_LONG":          "not a whole number",
	"INVALID_FLOAT":         "not a number",
	"INVALID_DATE":          "invalid date",
	"INVALID_DATETIME":      "invalid date and time",
	"READ_ONLY_VALUE":       "read-only property",
	"VALUE_TOO_LONG":        "value too long",
	"CONFLICT":              "another contact already has this email",
}

// describe names a problem in words, with its code and property: "invalid
// email (INVALID_EMAIL) on property email".
func describe(code, property string) string {
	code = quotableCode(code)
	text, ok := codeTexts[code]
	switch {
	case ok:
	case code != "":
		text = "HubSpot refused a value"
	default:
		text = "HubSpot refused the contact"
	}
	if code != "" {
		text += " (" + code + ")"
	}
	if namePattern.MatchString(property) {
		text += " on property " + property
	}
	return text
}

// problem is the first thing a HubSpot error says is wrong, as a code and
// a property name, and how many problems there are.
func problem(e apiError) (code, property string, count int) {
	if list := propertyProblems(e.Message); len(list) > 0 {
		return list[0].Error, list[0].Name, len(list)
	}
	for _, d := range e.Errors {
		if quotableCode(d.Code) != "" {
			name := d.In
			if names := contextStrings(d.Context, "propertyName"); len(names) > 0 {
				name = names[0]
			}
			return d.Code, name, len(e.Errors)
		}
	}
	return e.Category, "", 1
}

// rejectionReason is a refused record's reason: what is wrong, never the
// value.
func rejectionReason(e apiError) string {
	code, property, count := problem(e)
	reason := describe(code, property)
	if count > 1 {
		reason += fmt.Sprintf(" and %d more", count-1)
	}
	return reason
}

// batchRefusal classifies a 400-like answer to a whole batch: our contact
// properties missing (or the key not unique) is a setup problem the
// validation reports, crm.ClassPermission; anything else is the batch's
// content, crm.ClassBatchRejected with the most specific code, so the
// caller splits the batch to find the records at fault.
func batchRefusal(a answer, n int) *crm.Error {
	e := parseAPIError(a.body)
	for _, p := range propertyProblems(e.Message) {
		if p.Error == "PROPERTY_DOESNT_EXIST" {
			return &crm.Error{Class: crm.ClassPermission, StatusCode: a.status, Code: "PROPERTY_DOESNT_EXIST",
				Err: fmt.Errorf("the HubSpot account has no contact property %s: validation creates it, or says how", safeName(p.Name))}
		}
	}
	if strings.Contains(e.Message, "non-unique") {
		return &crm.Error{Class: crm.ClassPermission, StatusCode: a.status, Code: quotableCode(e.Category),
			Err: fmt.Errorf("the contact property %s does not require unique values, so contacts cannot be upserted by it", KeyProperty)}
	}
	code, _, _ := problem(e)
	return &crm.Error{Class: crm.ClassBatchRejected, StatusCode: a.status, Code: quotableCode(code),
		Err: &batchRefused{n: n, reason: rejectionReason(e)}}
}

// batchRefused is the detail of a whole-batch refusal: the batch's size and
// the first problem HubSpot named.
type batchRefused struct {
	n      int
	reason string
}

// Error implements error.
func (e *batchRefused) Error() string {
	noun := "contacts"
	if e.n == 1 {
		noun = "contact"
	}
	return fmt.Sprintf("HubSpot refused the batch of %d %s: %s", e.n, noun, e.reason)
}

// safeName quotes a property name only if it looks like one.
func safeName(name string) string {
	if namePattern.MatchString(name) {
		return name
	}
	return "(unnamed)"
}
