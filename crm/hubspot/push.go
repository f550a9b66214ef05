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

// key is the record's key, which every input carries as its
// objectWriteTraceId (an input by email has the email as its ID).
func (in upsertInput) key() string { return in.ObjectWriteTraceID }

// emailProperty is HubSpot's email contact property, which is also its own
// unique identifier of contacts: upserts may use it as their idProperty.
const emailProperty = "email"

// outcome is what HubSpot's answers said about one record.
type outcome struct {
	result crm.RecordResult
	// emailTaken: refused because another contact holds the record's
	// email (see emailTaken).
	emailTaken bool
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
// upsert, upserts again by email those HubSpot refuses because another
// contact holds their email (repeat leads), and returns one result per
// record, in order, matched by key (see the package documentation).
// Whole-call failures are a *crm.Error: 401 (or an OAuth access token past
// its expiry, refused before any call) crm.ClassAuth; 403
// crm.ClassPermission; 429 crm.ClassRateLimited; a 400, 409 or 413 for the
// batch's content crm.ClassBatchRejected; a missing contact property
// crm.ClassPermission; network, 5xx and answers that do not account for
// every record crm.ClassTransient. They carry status codes, HubSpot's
// codes, counts and scope or property names, never a token or the records'
// contents.
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
	creds.pace = c.paceKey(ctx, creds)

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

	outcomes := map[string]outcome{}
	if err := c.upsertAll(ctx, creds, inputs, outcomes); err != nil {
		return nil, fmt.Errorf("hubspot push of %d records: %w", len(records), err)
	}
	if err := c.upsertRepeats(ctx, creds, inputs, outcomes); err != nil {
		return nil, fmt.Errorf("hubspot push of %d records, repeat leads by email: %w", len(records), err)
	}
	if missing := unaccounted(inputs, outcomes); len(missing) > 0 {
		return nil, fmt.Errorf("hubspot push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient,
			Err: fmt.Errorf("HubSpot's answer accounted for %d of %d records; the batch will be pushed again", len(inputs)-len(missing), len(inputs))})
	}
	results := make([]crm.RecordResult, len(records))
	for i, r := range records {
		results[i] = outcomes[r.Key].result
	}
	if err := crm.CheckResults(records, results); err != nil {
		return nil, fmt.Errorf("hubspot push of %d records: %w", len(records), &crm.Error{Class: crm.ClassTransient, Err: err})
	}
	return results, nil
}

// upsertAll upserts inputs in one batch, then asks about each input the
// answer did not account for alone, where the one result or error can only
// be its own. What is still unaccounted for has no outcome; a whole-call
// failure is returned.
func (c *Connector) upsertAll(ctx context.Context, creds credentials, inputs []upsertInput, outcomes map[string]outcome) error {
	if err := c.upsert(ctx, creds, inputs, outcomes); err != nil {
		return err
	}
	missing := unaccounted(inputs, outcomes)
	if len(missing) == 0 || len(inputs) == 1 {
		return nil
	}
	for _, in := range missing {
		err := c.upsert(ctx, creds, []upsertInput{in}, outcomes)
		var refused *batchRefused
		if crm.ClassOf(err) == crm.ClassBatchRejected && errors.As(err, &refused) {
			// A refused batch of one is that record's rejection.
			outcomes[in.key()] = outcome{result: crm.RecordResult{Key: in.key(), Status: crm.RecordRejected, Reason: refused.reason}}
			continue
		}
		if err != nil {
			return fmt.Errorf("again one by one: %w", err)
		}
	}
	return nil
}

// upsertRepeats upserts again, by email, the records HubSpot refused
// because another contact holds their email: a repeat lead (the same
// person sent again, by the same partner or another) updates that contact,
// which then holds the newest lead's key, and is delivered with its ID. A
// record the email upsert refuses is rejected with that refusal's reason.
// The first refusal no longer stands: a record the email upsert's answer
// does not account for has no outcome, and is never delivered.
func (c *Connector) upsertRepeats(ctx context.Context, creds credentials, inputs []upsertInput, outcomes map[string]outcome) error {
	var repeats []upsertInput
	for _, in := range inputs {
		email := in.Properties[emailProperty]
		if !outcomes[in.key()].emailTaken || email == "" {
			continue
		}
		repeats = append(repeats, upsertInput{ID: email, IDProperty: emailProperty, ObjectWriteTraceID: in.key(), Properties: in.Properties})
	}
	for len(repeats) > 0 {
		// HubSpot refuses a batch that names an ID twice: records with
		// the same email (emails compare case-insensitively) go in
		// successive batches, in the records' order, so the contact ends
		// with the last one's values and key.
		var round, later []upsertInput
		seen := map[string]bool{}
		for _, in := range repeats {
			email := strings.ToLower(in.ID)
			if seen[email] {
				later = append(later, in)
				continue
			}
			seen[email] = true
			round = append(round, in)
			delete(outcomes, in.key())
		}
		if err := c.upsertAll(ctx, creds, round, outcomes); err != nil {
			return err
		}
		repeats = later
	}
	return nil
}

// unaccounted returns the inputs without an outcome.
func unaccounted(inputs []upsertInput, outcomes map[string]outcome) []upsertInput {
	var missing []upsertInput
	for _, in := range inputs {
		if _, ok := outcomes[in.key()]; !ok {
			missing = append(missing, in)
		}
	}
	return missing
}

// upsert makes one batch upsert call and records the outcomes it accounts
// for; a whole-call failure is returned.
func (c *Connector) upsert(ctx context.Context, creds credentials, inputs []upsertInput, outcomes map[string]outcome) error {
	body, err := json.Marshal(map[string]any{"inputs": inputs})
	if err != nil {
		// json.Marshal errors may quote the offending value, which is PII.
		return errors.New("encoding the contacts failed")
	}
	r := request{method: http.MethodPost, path: pathBatchUpsert, what: "the contacts batch upsert", token: creds.accessToken,
		body: body, contentType: "application/json", paceKey: creds.pace}
	a, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	switch a.status {
	case http.StatusOK, http.StatusMultiStatus:
	case http.StatusConflict:
		// HubSpot answers a single contact's creation that duplicates
		// an email with a whole-call 409; for a batch of one, that is
		// the record's own refusal, which the email upsert resolves.
		if e := parseAPIError(a.body); len(inputs) == 1 && emailTaken(e) {
			key := inputs[0].key()
			outcomes[key] = outcome{result: crm.RecordResult{Key: key, Status: crm.RecordRejected, Reason: rejectionReason(e)}, emailTaken: true}
			return nil
		}
		return batchRefusal(a, len(inputs))
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
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

// emailTaken reports whether an error is HubSpot's refusal of a contact
// whose email another contact holds: category CONFLICT ("Contact already
// exists. Existing ID: ...") or OBJECT_ALREADY_EXISTS (the newer shape of
// the same answer), naming no property but email. A conflict on another
// unique property (our lead key) names that property and is not one.
func emailTaken(e apiError) bool {
	switch e.Category {
	case "CONFLICT", "OBJECT_ALREADY_EXISTS":
	default:
		return false
	}
	for _, d := range e.Errors {
		if d.In != "" && d.In != emailProperty {
			return false
		}
	}
	return true
}

// matchOutcomes records what the answer says about each input, by the
// objectWriteTraceId we set (our key), else by the key property a result
// holds, else (errors) by the ID the input was upserted by; never by
// position. A record both delivered and refused is left unaccounted for.
// When one input was sent, a lone result or error is its.
func matchOutcomes(inputs []upsertInput, ans upsertAnswer, outcomes map[string]outcome) {
	sent := make(map[string]bool, len(inputs))
	// byID maps the IDs inputs were upserted by (a key, or an email) to
	// their keys.
	byID := make(map[string]string, len(inputs))
	for _, in := range inputs {
		sent[in.key()] = true
		byID[in.ID] = in.key()
	}
	found := map[string]outcome{}
	conflicted := map[string]bool{}
	note := func(o outcome) {
		key := o.result.Key
		if prev, dup := found[key]; dup && prev.result.Status != o.result.Status {
			conflicted[key] = true
		}
		found[key] = o
	}
	for _, res := range ans.Results {
		key := res.ObjectWriteTraceID
		if !sent[key] {
			key = res.Properties[KeyProperty]
		}
		if !sent[key] && len(inputs) == 1 && len(ans.Results) == 1 && len(ans.Errors) == 0 {
			key = inputs[0].key()
		}
		if sent[key] {
			note(outcome{result: crm.RecordResult{Key: key, Status: crm.RecordDelivered, CRMID: quotableID(res.ID)}})
		}
	}
	for _, e := range ans.Errors {
		var keys []string
		for _, name := range []string{"objectWriteTraceId", "ids", "id"} {
			for _, k := range contextStrings(e.Context, name) {
				if !sent[k] {
					k = byID[k]
				}
				if sent[k] && !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
		if len(keys) == 0 && len(inputs) == 1 && len(ans.Errors) == 1 && len(ans.Results) == 0 {
			keys = []string{inputs[0].key()}
		}
		for _, k := range keys {
			note(outcome{result: crm.RecordResult{Key: k, Status: crm.RecordRejected, Reason: rejectionReason(e)}, emailTaken: emailTaken(e)})
		}
	}
	for key, o := range found {
		if !conflicted[key] {
			outcomes[key] = o
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
	"OBJECT_ALREADY_EXISTS": "another contact already has this email",
}

// valueTaken is the text of a conflict on a unique property other than
// email (our lead key held by another contact).
const valueTaken = "another contact already has this value"

// describe names a problem in words, with its code and property: "invalid
// email (INVALID_EMAIL) on property email".
func describe(code, property string) string {
	code = quotableCode(code)
	text, ok := codeTexts[code]
	switch {
	case ok && (code == "CONFLICT" || code == "OBJECT_ALREADY_EXISTS") && property != "" && property != emailProperty:
		text = valueTaken
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
// a property name, and how many problems there are. Without a detail that
// has a code, it is the error's category and the property its first detail
// is in (a conflict names the unique property that holds the value).
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
	if len(e.Errors) > 0 {
		return e.Category, e.Errors[0].In, 1
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
