package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// The fuzz targets run on their seed corpus (testdata/fuzz/<name>) with
// every `go test`, and `.ci/run` fuzzes each for a while after the tests.

// FuzzIntakeDecode: partner intake decoding never panics, answers only
// 0, 400 or 415, never echoes a contact value in its error, and what it
// takes survives a round trip through JSON (what the store does with it).
func FuzzIntakeDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte, contentType string) {
		var lead starter.Lead
		status, msg := decodeBody(raw, contentTypes(contentType), &lead, leadExample)
		requireAnswer(t, status, msg)
		if status != 0 {
			requireNoEcho(t, raw, msg, leadExample)
			return
		}
		if err := lead.Validate(); err != nil {
			requireNoEcho(t, raw, err.Error(), leadExample)
			return
		}
		again, err := json.Marshal(lead)
		if err != nil {
			t.Fatalf("a lead intake took does not encode: %v", err)
		}
		var back starter.Lead
		if status, msg := decodeBody(again, contentTypes("application/json"), &back, leadExample); status != 0 {
			t.Fatalf("a lead intake took is refused when sent again (%d %s): %s", status, msg, again)
		}
		if !reflect.DeepEqual(normalize(t, lead), normalize(t, back)) {
			t.Fatalf("a lead changes in a round trip:\n%+v\n%+v", lead, back)
		}
	})
}

// FuzzRequestDecode: the operator API's request decoding (command and
// authorize bodies, the list and events queries, the bearer key) never
// panics, answers only 0, 400 or 415, never echoes credentials, and what
// it takes is within bounds.
func FuzzRequestDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte, contentType, query, authorization string) {
		var cmd commandBody
		status, msg := decodeBody(raw, contentTypes(contentType), &cmd, commandExample)
		requireAnswer(t, status, msg)

		var auth authorizeBody
		status, msg = decodeBody(raw, contentTypes(contentType), &auth, authorizeExample)
		requireAnswer(t, status, msg)
		if status != 0 {
			requireNoEcho(t, raw, msg, authorizeExample)
		}

		if lf, err := parseListFilter(query); err == nil {
			if lf.Limit < 1 || lf.Limit > store.MaxListLimit {
				t.Fatalf("list limit %d out of bounds for %q", lf.Limit, query)
			}
			if lf.OrgID != "" && integration.ValidateID("org id", lf.OrgID) != nil {
				t.Fatalf("list takes the invalid org %q", lf.OrgID)
			}
			if lf.Kind != "" {
				if _, err := integration.ParseKind(string(lf.Kind)); err != nil {
					t.Fatalf("list takes the kind %q", lf.Kind)
				}
			}
			if lf.Status != "" {
				if _, err := integration.ParseStatus(string(lf.Status)); err != nil {
					t.Fatalf("list takes the status %q", lf.Status)
				}
			}
		}
		if ef, err := parseEventFilter(query); err == nil {
			if ef.After < 0 || ef.Limit < 1 || ef.Limit > store.MaxEventLimit {
				t.Fatalf("events page %+v out of bounds for %q", ef, query)
			}
		}

		if token, ok := bearerToken(authorization); ok {
			if token == "" || strings.TrimSpace(token) != token {
				t.Fatalf("bearer token %q of %q is not trimmed", token, authorization)
			}
			if id, err := apikey.Parse(token); err == nil {
				if !strings.HasPrefix(token, apikey.Prefix) || !strings.Contains(token, "_"+id+"_") {
					t.Fatalf("key %q parses to ID %q", token, id)
				}
			} else if err.Error() != apikey.ErrMalformed.Error() {
				// One fixed message: it cannot echo the key. (A check that
				// the message does not contain the token fails for a token
				// such as "A", which "API" contains.)
				t.Fatalf("a malformed key is refused with %q", err)
			}
		}
	})
}

func contentTypes(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// requireAnswer checks an answer of decodeBody: taken (0) or one of its
// refusals, with a one-line message.
func requireAnswer(t *testing.T, status int, msg string) {
	t.Helper()
	switch status {
	case 0:
		if msg != "" {
			t.Fatalf("taken, with the message %q", msg)
		}
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		if msg == "" || strings.Contains(msg, "\n") {
			t.Fatalf("status %d with the message %q: one line is needed", status, msg)
		}
	default:
		t.Fatalf("unexpected status %d (%s)", status, msg)
	}
}

// requireNoEcho fails when msg quotes a distinctive string value of the
// body (one a secret or a contact field could be: 8+ characters, letters
// and digits), unless the value is also a field name (those are named on
// purpose) or part of the example.
func requireNoEcho(t *testing.T, raw []byte, msg, example string) {
	t.Helper()
	values, names := stringsOf(raw)
	for _, v := range values {
		if len(v) < 8 || !distinctive(v) || strings.Contains(example, v) {
			continue
		}
		named := false
		for _, n := range names {
			named = named || strings.Contains(n, v)
		}
		if !named && strings.Contains(msg, v) {
			t.Fatalf("the error %q echoes the value %q of the body", msg, v)
		}
	}
}

// distinctive reports whether v has both a letter and a digit: no word of
// an error message's own text is.
func distinctive(v string) bool {
	return strings.IndexFunc(v, unicode.IsLetter) >= 0 && strings.IndexFunc(v, unicode.IsDigit) >= 0
}

// stringsOf returns the string values and the object keys anywhere in raw,
// if it is JSON at all.
func stringsOf(raw []byte) (values, names []string) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, nil
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			values = append(values, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				names = append(names, k)
				walk(e)
			}
		}
	}
	walk(v)
	return values, names
}

// normalize is a lead as JSON sees it (nil and empty attributes alike).
func normalize(t *testing.T, l starter.Lead) starter.Lead {
	t.Helper()
	if len(l.Attributes) == 0 {
		l.Attributes = nil
	}
	return l
}
