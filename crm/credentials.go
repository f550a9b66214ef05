package crm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
)

// CredentialsFormat describes a provider's credentials document for
// Decode, which every connector's ParseCredentials starts with: what the
// errors call the document and the example they show instead of quoting
// it. The connector then checks its own fields, in its own words.
type CredentialsFormat struct {
	// Product begins every message: "sandbox" gives "sandbox credentials
	// are empty: ...".
	Product string
	// Example is a valid document (or a description of one), shown as
	// what to provide.
	Example string
	// IfEmpty is what to do when there is no document at all, or a
	// secret field is missing; "" means "provide " + Example.
	IfEmpty string
}

// Decode decodes raw, which must be exactly one JSON object with no
// fields other than into's, into into (a pointer to the document's
// struct). Empty or blank input, invalid JSON, a value that is not an
// object, a field of the wrong type, an unknown field and data after the
// object are refused.
//
// Its errors never quote raw: a credentials document holds keys and
// tokens, and the standard library's errors quote the offending character
// of a syntax error and the literal of a mistyped number. They name the
// field at fault (field names are not secret, and naming one catches
// typos such as "apikey"), except an unknown field whose name does not
// look like one (a token pasted where a name belongs), and end with the
// example to provide.
func (f CredentialsFormat) Decode(raw []byte, into any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return fmt.Errorf("%s credentials are empty: %s", f.Product, f.next())
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return f.describe(err)
	}
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) > 0 {
		return fmt.Errorf("%s credentials have data after the JSON object: provide exactly %s", f.Product, f.Example)
	}
	return nil
}

// CheckSecret checks one secret field of a decoded document (a key or a
// token, named field): it must be present, and free of whitespace and
// control characters, since it goes into an HTTP header or form where they
// are invalid (usually a copy-paste accident). The error names the field,
// never the value, and says what to provide (IfEmpty, or the Example).
func (f CredentialsFormat) CheckSecret(field, value string) error {
	switch {
	case value == "":
		return fmt.Errorf("%s credentials: %s is missing or empty: %s", f.Product, field, f.next())
	case HasSpaceOrControl(value):
		return fmt.Errorf("%s credentials: %s contains whitespace or control characters: copy it again without spaces or line breaks", f.Product, field)
	}
	return nil
}

// next is what the customer should provide instead of what they did.
func (f CredentialsFormat) next() string {
	if f.IfEmpty != "" {
		return f.IfEmpty
	}
	return "provide " + f.Example
}

// describe explains a decoding failure without quoting the document.
func (f CredentialsFormat) describe(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%s credentials are not valid JSON (syntax error at byte %d): provide %s", f.Product, syntaxErr.Offset, f.Example)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%s credentials are not valid JSON (unexpected end): provide %s", f.Product, f.Example)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Errorf("%s credentials: field %s must be a %s, not a %s: provide %s", f.Product, typeErr.Field, jsonType(typeErr.Type), valueKind(typeErr), f.Example)
	case errors.As(err, &typeErr):
		return fmt.Errorf("%s credentials must be a JSON object, not a %s: provide %s", f.Product, valueKind(typeErr), f.Example)
	case strings.HasPrefix(err.Error(), unknownFieldPrefix):
		// encoding/json quotes the key as the document spells it.
		field := strings.TrimSuffix(strings.TrimPrefix(err.Error(), unknownFieldPrefix), `"`)
		if !fieldNamePattern.MatchString(field) {
			return fmt.Errorf("%s credentials have an unknown field, whose name is not shown as it does not look like a field name: provide %s", f.Product, f.Example)
		}
		return fmt.Errorf("%s credentials: unknown field %q: provide %s", f.Product, field, f.Example)
	}
	return fmt.Errorf("%s credentials are not valid JSON: provide %s", f.Product, f.Example)
}

// unknownFieldPrefix begins encoding/json's error for an unknown field,
// which goes on with the key in quotes.
const unknownFieldPrefix = `json: unknown field "`

// fieldNamePattern is what an unknown field's name must look like to be
// echoed: a typo of a field name ("apikey") is worth naming, while a key
// or token pasted as a field name ({"pat-na1-...": ""}) must not come back
// in an error. No field of ours has a digit, and nearly every key or token
// has one (a 32-digit hex key is all lower case), so a name with a digit is
// not echoed either.
var fieldNamePattern = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

// jsonType names the JSON type a Go type takes: "number" for an int64
// field, not Go's name for it.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "value"
}

// valueKind is the kind of JSON value a type error is about ("number",
// "array", ...). UnmarshalTypeError.Value can quote a number's literal
// ("number -5"), which could be a secret, so only its first word is used.
func valueKind(err *json.UnmarshalTypeError) string {
	kind, _, _ := strings.Cut(err.Value, " ")
	return kind
}

// HasSpaceOrControl reports whether s holds an ASCII space or control
// character (tab, newline, DEL, ...). A key or token with one is unusable (it goes into an HTTP
// header or form, where they are invalid) and is usually a copy-paste
// accident, so connectors refuse it when parsing credentials.
func HasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}
