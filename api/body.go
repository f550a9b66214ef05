package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// maxBodyDepth bounds how deeply a body's arrays and objects nest: far
// above what any request needs (a lead's attributes), far below what
// SQLite's json_valid and the encoder's recursion tolerate.
const maxBodyDepth = 64

// decode reads a JSON object body into dst (an empty body is an empty
// object) and answers the error itself when it cannot; example is the
// body's shape, for the error message.
func decode(w http.ResponseWriter, r *http.Request, dst any, example string) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d KiB: send %s", maxBodyBytes>>10, example))
		} else {
			writeError(w, http.StatusBadRequest, "could not read the request body: send it again")
		}
		return false
	}
	if status, msg := decodeBody(raw, r.Header.Values("Content-Type"), dst, example); status != 0 {
		writeError(w, status, msg)
		return false
	}
	return true
}

// decodeBody decodes raw, a whole request body sent with the Content-Type
// header values contentType, into dst. It returns 0 when dst holds the
// body, else the status and the message to answer with. Pure, for the
// fuzz targets.
//
// A body must be sent as application/json: a browser sends a cross-site
// "simple" request only as text/plain, a form or multipart, never as
// JSON, so a page a developer happens to open cannot post a command. A
// request without a body may omit the header (it is an empty object).
func decodeBody(raw []byte, contentType []string, dst any, example string) (status int, msg string) {
	empty := len(bytes.TrimSpace(raw)) == 0
	if len(contentType) > 0 || !empty {
		if !isJSON(contentType) {
			return http.StatusUnsupportedMediaType, "request body must be JSON sent with the header Content-Type: application/json: send " + example
		}
	}
	if empty {
		return 0, ""
	}
	if !utf8.Valid(raw) {
		// The decoder would replace the bad bytes with U+FFFD, silently
		// delivering text the sender never wrote.
		return http.StatusBadRequest, "request body is not valid UTF-8: send UTF-8 JSON, " + example
	}
	if tooDeep(raw) {
		return http.StatusBadRequest, fmt.Sprintf("request body nests arrays and objects more than %d deep: send %s", maxBodyDepth, example)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return http.StatusBadRequest, describeBodyError(err, example)
	}
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) > 0 {
		return http.StatusBadRequest, "request body has data after the JSON object: send exactly one object, " + example
	}
	return 0, ""
}

// isJSON reports whether the Content-Type header values are exactly one
// application/json (parameters such as charset=utf-8 allowed).
func isJSON(contentType []string) bool {
	if len(contentType) != 1 {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(contentType[0])
	return err == nil && mediaType == "application/json"
}

// tooDeep reports whether raw nests arrays and objects deeper than
// maxBodyDepth, counting brackets outside strings (a body that is not
// JSON at all is left to the decoder to describe).
func tooDeep(raw []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxBodyDepth {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// describeBodyError explains a JSON decoding error without quoting the
// body: it may hold credentials, and the decoder's messages can quote
// values (a number's literal) and name Go types.
func describeBodyError(err error, example string) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("request body is not valid JSON (syntax error at byte %d): send %s", syntaxErr.Offset, example)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON (unexpected end): send " + example
	case errors.As(err, &typeErr) && typeErr.Field != "":
		want, got := jsonType(typeErr.Type), jsonKind(typeErr)
		if want == got {
			// A number of the right kind that does not fit (1e400, or a
			// fraction for a whole number): "must be a number, not a
			// number" would be no help.
			return fmt.Sprintf("field %q holds a number it cannot take (out of range, or not a whole number): send %s", typeErr.Field, example)
		}
		return fmt.Sprintf("field %q must be a %s, not a %s: send %s", typeErr.Field, want, got, example)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("request body must be a JSON object, not a %s: send %s", jsonKind(typeErr), example)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// Field names are not secret, and naming one catches typos.
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		msg := fmt.Sprintf("unknown field %s: send %s", field, example)
		if field == `"credentials"` {
			msg += "; credentials go to POST /v1/integrations/{id}/authorize"
		}
		return msg
	}
	return "request body is not valid JSON: send " + example
}

// jsonKind is the kind of JSON value a type error is about ("number",
// "array", ...). Value can carry a number's literal ("number 1e400"), so
// only its first word is used.
func jsonKind(err *json.UnmarshalTypeError) string {
	kind, _, _ := strings.Cut(err.Value, " ")
	return kind
}

// jsonType names the JSON type a Go type is decoded from.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "value of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}
