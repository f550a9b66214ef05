package crmfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrorBody is the JSON shape of every control API error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// Error is a refused request: the status, code and message of its JSON
// error answer (see Fake.WriteError). Messages end up in logs and test
// output, so they never contain a key, a token or lead data.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Message }

// BadRequest is a 400 with code bad_request.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

// WriteJSON answers with status and v as JSON.
func (f Fake) WriteJSON(w http.ResponseWriter, status int, v any) {
	contentType := f.ContentType
	if contentType == "" {
		contentType = "application/json"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	// The client may be gone; there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with err's ErrorBody: an *Error's status, code and
// message; any other error is the fake's own failure (a 500, which in a
// fake means its state file could not be written).
func (f Fake) WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: "internal",
			Message: fmt.Sprintf("the %s failed: %v; check the disk holding its state file and retry", f.Name, err)}
	}
	f.WriteJSON(w, e.Status, ErrorBody{Error: e.Message, Code: e.Code})
}

// Handle serves a bodyless control request about one account: find looks
// up the account the path value param names (failing with, say, a 404
// *Error), and do's result on it is the answer.
func Handle[A, T any](f Fake, param string, find func(string) (A, error), do func(A) T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := find(r.PathValue(param))
		if err != nil {
			f.WriteError(w, err)
			return
		}
		f.WriteJSON(w, http.StatusOK, do(a))
	}
}

// HandleChange serves a control request that changes one account by its
// JSON body (U; example is a valid one): the body is checked before find
// looks the account up, so bad input changes nothing, and change's result
// is the answer (or its error, such as an *Error for an invalid value).
func HandleChange[A, U, T any](f Fake, param, example string, find func(string) (A, error), change func(A, U) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var u U
		if err := DecodeBody(r, &u, false, example); err != nil {
			f.WriteError(w, err)
			return
		}
		a, err := find(r.PathValue(param))
		if err != nil {
			f.WriteError(w, err)
			return
		}
		out, err := change(a, u)
		if err != nil {
			f.WriteError(w, err)
			return
		}
		f.WriteJSON(w, http.StatusOK, out)
	}
}

// MaxBodyBytes bounds a control request body; control requests are tiny.
const MaxBodyBytes = 64 << 10

// DecodeBody decodes the JSON body of a control request into dst,
// refusing unknown fields (a misspelt one would otherwise be silently
// ignored), data after the object and bodies over MaxBodyBytes. An empty
// body is accepted only when optional is true; example is a valid body,
// shown in the errors, which are *Error and never quote the body.
func DecodeBody(r *http.Request, dst any, optional bool, example string) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return BadRequest("could not read the request body: %v", err)
	}
	if len(data) > MaxBodyBytes {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("request body is larger than %d bytes: send e.g. %s", MaxBodyBytes, example)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil
		}
		return BadRequest("request body is empty: send e.g. %s", example)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return BadRequest("request body is not valid: %s; send e.g. %s", DescribeJSONError(err), example)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return BadRequest("request body has data after the JSON object: send exactly one object, e.g. %s", example)
	}
	return nil
}

// DescribeJSONError explains a JSON decoding failure without quoting the
// input: Go's syntax errors quote a character of a value, and its type
// errors of numbers quote the number, which may be a key or lead data.
// Field names are named: they are not secret, and catch typos.
func DescribeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not valid JSON (syntax error at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "not valid JSON (unexpected end)"
	case errors.As(err, &typeErr) && typeErr.Field != "":
		kind, _, _ := strings.Cut(typeErr.Value, " ")
		return fmt.Sprintf("field %s must be a %s, not a %s", typeErr.Field, typeErr.Type, kind)
	case errors.As(err, &typeErr):
		return "it must be a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "not valid JSON"
}

// Fallback answers the requests no route of mux matches in the control
// API's error shape, instead of the mux's plain text: a 404 with
// notFound as the message (say what the fake serves), a 405 with Allow
// for a known path asked with another method. The path is never echoed:
// it may hold an API key, an OAuth code or a state.
func (f Fake) Fallback(mux *http.ServeMux, notFound string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let the mux decide between 404, 405 and a path-cleaning redirect,
		// without writing its plain-text body.
		probe := &statusProbe{header: http.Header{}}
		mux.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusNotFound:
			f.WriteError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: notFound})
		case http.StatusMethodNotAllowed:
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			f.WriteError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Message: fmt.Sprintf("%s is not allowed here: use %s", r.Method, allow)})
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// statusProbe is a ResponseWriter that records the status and headers only.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
