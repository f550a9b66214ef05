package sandbox

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
)

// FuzzParseCredentials: parsing a credentials document never panics,
// takes only a non-empty api_key fit for an HTTP header, and never quotes
// the key (or any distinctive value) in its error. It runs on its seed
// corpus (testdata/fuzz) with every `go test`; `.ci/run` fuzzes it.
func FuzzParseCredentials(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		creds, err := parseCredentials(raw)
		if err == nil {
			if creds.APIKey == "" || strings.ContainsFunc(creds.APIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				t.Fatalf("took the api_key %q", creds.APIKey)
			}
			if (&Connector{}).ParseCredentials(raw) != nil {
				t.Fatal("ParseCredentials and parseCredentials disagree")
			}
			return
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Fatalf("the error %q is not one line", msg)
		}
		var doc map[string]any
		if json.Unmarshal(raw, &doc) != nil {
			return
		}
		for name, v := range doc {
			s, ok := v.(string)
			if !ok || len(s) < 8 || strings.Contains(name, s) || strings.Contains(credentialsExample, s) {
				continue
			}
			distinctive := strings.IndexFunc(s, unicode.IsLetter) >= 0 && strings.IndexFunc(s, unicode.IsDigit) >= 0
			if distinctive && strings.Contains(msg, s) {
				t.Fatalf("the error %q quotes the value of %q", msg, name)
			}
		}
	})
}
