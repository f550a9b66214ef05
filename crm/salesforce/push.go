package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf16"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// NotProvided fills a required Lead field (LastName, Company) the partner
// sent nothing for, as Salesforce's Web-to-Lead does.
const NotProvided = "[not provided]"

// Lengths of the Lead fields the mapping cuts values to, in Salesforce's
// characters (UTF-16 code units).
const (
	maxFirstName   = 40
	maxLastName    = 80
	maxCompany     = 255
	maxDescription = 32_000
	maxLeadSource  = 255
)

// leadFields maps a record to the fields of its Lead (see the package
// documentation), with the attributes the sObject Collections upsert needs.
func leadFields(rec crm.Record, keyField string) map[string]any {
	first, last := strings.TrimSpace(rec.FirstName), strings.TrimSpace(rec.LastName)
	if first == "" && last == "" {
		first, last = integration.SplitName(rec.Name)
	}
	fields := map[string]any{
		"attributes": map[string]string{"type": "Lead"},
		keyField:     rec.Key,
		"LastName":   cut(orDefault(last, NotProvided), maxLastName),
		"Company":    cut(orDefault(strings.TrimSpace(rec.Company), NotProvided), maxCompany),
	}
	set := func(name, value string, limit int) {
		if value = strings.TrimSpace(value); value != "" {
			if limit > 0 {
				value = cut(value, limit)
			}
			fields[name] = value
		}
	}
	set("FirstName", first, maxFirstName)
	set("Email", rec.Email, 0)
	set("Phone", rec.Phone, 0)
	set("Description", rec.Message, maxDescription)
	set("LeadSource", rec.Source, maxLeadSource)
	return fields
}

// cut shortens s to at most limit UTF-16 code units (how Salesforce counts
// a field's length), on a character boundary.
func cut(s string, limit int) string {
	units := 0
	for i, r := range s {
		units += max(utf16.RuneLen(r), 1)
		if units > limit {
			return s[:i]
		}
	}
	return s
}

// upsertBody is the sObject Collections upsert request.
type upsertBody struct {
	AllOrNone bool             `json:"allOrNone"`
	Records   []map[string]any `json:"records"`
}

// upsertResult is one record's outcome in the upsert's answer.
type upsertResult struct {
	ID      string        `json:"id"`
	Success bool          `json:"success"`
	Errors  []recordError `json:"errors"`
	Created bool          `json:"created"`
}

// recordError is one error of a record. Message quotes the record's
// values and is never used.
type recordError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// Push upserts records as Leads of the org by the lead key field
// (PATCH .../composite/sobjects/Lead/{field}, allOrNone false), paced per
// org, and returns one result per record in order: crm.RecordDelivered
// with the Lead's ID, or crm.RecordRejected with Salesforce's reason. See
// the package documentation for the classes of its errors.
func (c *Connector) Push(ctx context.Context, raw []byte, records []crm.Record) ([]crm.RecordResult, error) {
	if len(records) == 0 {
		return nil, nil
	}
	if len(records) > MaxBatchSize {
		return nil, fmt.Errorf("salesforce push: %d records: %w (at most %d)", len(records), crm.ErrBatchTooLarge, MaxBatchSize)
	}
	op := fmt.Sprintf("upsert of %d leads", len(records))
	creds, err := c.parseCredentials(raw)
	if err != nil {
		// Unusable stored credentials need re-authorization, which an auth
		// error leads to (validation reports the details).
		return nil, &crm.Error{Class: crm.ClassAuth, Err: fmt.Errorf("salesforce %s: the stored credentials are unusable: validate the integration and connect Salesforce again", op)}
	}
	body := upsertBody{Records: make([]map[string]any, len(records))}
	for i, rec := range records {
		body.Records[i] = leadFields(rec, LeadKeyField)
	}
	data, err := json.Marshal(body)
	if err != nil {
		// Only strings are sent, so this cannot happen; its message could
		// quote a value, so it is not passed on.
		return nil, fmt.Errorf("salesforce %s: the records could not be encoded", op)
	}

	key := c.account(ctx, creds)
	release, err := c.admit(ctx, key, op)
	if err != nil {
		return nil, err
	}
	defer release()
	a, err := c.call(ctx, creds, key, op, http.MethodPatch, c.dataURL(creds, "/composite/sobjects/Lead/"+LeadKeyField), data)
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		e := c.httpError(op, a.status, a.body)
		if e.Code == codeRequestLimitExceeded {
			c.hold(key, c.now().Add(c.cfg.Pacing.Hold), e.Code)
		}
		return nil, e
	}
	var answers []upsertResult
	if err := json.Unmarshal(a.body, &answers); err != nil {
		return nil, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
			Err: fmt.Errorf("salesforce %s: the answer is not a list of upsert results: is the instance URL Salesforce's?", op)}
	}
	results, accessCode, err := c.results(op, records, answers)
	if err != nil || accessCode == "" {
		return results, err
	}
	// Every lead was refused for the user's access: the user has lost a
	// permission on Lead (the call fails, and validation names it), or each
	// lead is one it may not edit (they are rejected, one by one).
	if lost, err := c.lostLeadAccess(ctx, creds, key); err != nil || lost {
		if err == nil {
			err = &crm.Error{Class: crm.ClassPermission, StatusCode: http.StatusOK, Code: accessCode,
				Err: fmt.Errorf("salesforce %s: Salesforce refused every lead: the integration user lacks a permission on Leads", op)}
		}
		return nil, err
	}
	return results, nil
}

// lostLeadAccess asks the Lead describe whether the user can still create
// and edit Leads. Its call is not paced: it follows a refused delivery,
// and answers a question validation would ask anyway.
func (c *Connector) lostLeadAccess(ctx context.Context, creds credentials, key string) (bool, error) {
	const op = "Lead describe"
	a, err := c.call(ctx, creds, key, op, http.MethodGet, c.dataURL(creds, "/sobjects/Lead/describe"), nil)
	if err != nil {
		return false, err
	}
	if a.status != http.StatusOK {
		return false, c.httpError(op, a.status, a.body)
	}
	var d describe
	if err := json.Unmarshal(a.body, &d); err != nil || d.Name != "Lead" {
		return false, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status, Err: fmt.Errorf("salesforce %s: the answer is not a describe of Lead", op)}
	}
	return !d.Createable || !d.Updateable, nil
}

// results maps the upsert's answers to records, one to one in request
// order, as Salesforce documents them. A record Salesforce could not lock
// fails the call (retried whole). When every record was refused for the
// user's access to Leads, accessCode is that refusal's code, for Push to
// find out why.
func (c *Connector) results(op string, records []crm.Record, answers []upsertResult) (results []crm.RecordResult, accessCode string, err error) {
	malformed := func(why string) error {
		return &crm.Error{Class: crm.ClassTransient, StatusCode: http.StatusOK, Err: fmt.Errorf("salesforce %s: the answer is malformed: %s", op, why)}
	}
	if len(answers) != len(records) {
		return nil, "", malformed(fmt.Sprintf("%d results for %d records", len(answers), len(records)))
	}
	results = make([]crm.RecordResult, len(records))
	accessRefused := 0
	for i, ans := range answers {
		results[i].Key = records[i].Key
		if ans.Success {
			if !idPattern.MatchString(ans.ID) {
				return nil, "", malformed(fmt.Sprintf("result %d has no Lead ID", i))
			}
			results[i].Status, results[i].CRMID = crm.RecordDelivered, ans.ID
			continue
		}
		if len(ans.Errors) == 0 {
			return nil, "", malformed(fmt.Sprintf("result %d failed without an error", i))
		}
		for _, e := range ans.Errors {
			switch e.StatusCode {
			case codeUnableToLockRow, codeAllOrNoneRolledBack:
				// Another process held the rows (or the call was rolled back
				// as a whole): the same batch goes through later.
				return nil, "", &crm.Error{Class: crm.ClassTransient, StatusCode: http.StatusOK, Code: e.StatusCode,
					Err: fmt.Errorf("salesforce %s: Salesforce could not lock record %d of the batch; the batch is tried again", op, i)}
			}
		}
		if code := ans.Errors[0].StatusCode; (code == codeInsufficientAccess || code == codeCannotInsertUpdate) && isAccessMessage(ans.Errors[0].Message) {
			accessRefused++
			accessCode = code
		}
		results[i].Status, results[i].Reason = crm.RecordRejected, rejection(ans.Errors)
	}
	if err := crm.CheckResults(records, results); err != nil {
		return nil, "", malformed(err.Error())
	}
	if accessRefused < len(records) {
		accessCode = ""
	}
	return results, accessCode, nil
}

// reasons says in words what a Salesforce status code refuses a record
// for.
var reasons = map[string]string{
	"INVALID_EMAIL_ADDRESS":                   "invalid email address",
	"REQUIRED_FIELD_MISSING":                  "a required field is missing",
	"STRING_TOO_LONG":                         "a value is too long for its field",
	"FIELD_CUSTOM_VALIDATION_EXCEPTION":       "refused by a validation rule of your Salesforce org",
	"DUPLICATES_DETECTED":                     "a duplicate rule of your Salesforce org blocked it as a duplicate",
	"DUPLICATE_VALUE":                         "a unique field already holds this value on another record",
	"DUPLICATE_EXTERNAL_ID":                   "more than one lead holds this lead key",
	"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "a value is not in its restricted picklist",
	"INVALID_FIELD_FOR_INSERT_UPDATE":         "a field cannot be written by the integration user",
	"FIELD_INTEGRITY_EXCEPTION":               "a field value is not valid",
	"INVALID_TYPE_ON_FIELD_IN_RECORD":         "a field value has the wrong type",
	"CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY":    "an automation of your Salesforce org (a trigger, flow or process) refused it",
	"INSUFFICIENT_ACCESS_OR_READONLY":         "the integration user may not edit this lead",
	"MISSING_ARGUMENT":                        "the lead key is missing",
	"ENTITY_IS_DELETED":                       "the lead was deleted in Salesforce",
}

// rejection is a refused record's reason, from its errors' status codes
// and field names only: "invalid email address (INVALID_EMAIL_ADDRESS) in
// Email".
func rejection(errs []recordError) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		code := e.StatusCode
		if !codePattern.MatchString(code) {
			code = "UNKNOWN_ERROR"
		}
		part := reasons[code]
		if part == "" {
			part = "refused by Salesforce"
		}
		part += " (" + code + ")"
		var fields []string
		for _, f := range e.Fields {
			if fieldNamePattern.MatchString(f) {
				fields = append(fields, f)
			}
		}
		if len(fields) > 0 {
			part += " in " + strings.Join(fields, ", ")
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}
