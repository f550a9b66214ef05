package crm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testCredentials is a credentials document with a field of each JSON type.
type testCredentials struct {
	APIKey string   `json:"api_key"`
	HubID  int64    `json:"hub_id,omitempty"`
	Live   bool     `json:"live,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

// credentialsSecret and numberSecret stand for a key: no error may quote
// them, nor any part of them a syntax error could point at.
const (
	credentialsSecret = "sk_live_9f8e7d6c5b4a"
	numberSecret      = "987654321987654321"
	// tokenSecret is a HubSpot-shaped token, pasted as a field name.
	tokenSecret = "pat-na1-0b1c2d3e-4f56-7890-abcd-ef0123456789"
)

type credentialsBundle struct {
	format CredentialsFormat
}

func setupCredentials(t *testing.T) *credentialsBundle {
	t.Helper()
	return &credentialsBundle{format: CredentialsFormat{Product: "Acme CRM", Example: `{"api_key": "..."}`}}
}

func TestCredentialsFormatDecode(t *testing.T) {
	t.Parallel()

	t.Run("AcceptsOneObject", func(t *testing.T) {
		t.Parallel()
		bundle := setupCredentials(t)
		var creds testCredentials
		raw := " \n{\"api_key\": \"" + credentialsSecret + "\", \"hub_id\": 42, \"live\": true, \"scopes\": [\"a\"]}\n\t"
		require.NoError(t, bundle.format.Decode([]byte(raw), &creds))
		require.Equal(t, testCredentials{APIKey: credentialsSecret, HubID: 42, Live: true, Scopes: []string{"a"}}, creds)

		// null and {} are objects as far as decoding goes; the connector's
		// field checks refuse them.
		for _, raw := range []string{"null", "{}"} {
			creds = testCredentials{}
			require.NoError(t, bundle.format.Decode([]byte(raw), &creds), raw)
			require.Zero(t, creds, raw)
		}
	})

	t.Run("RefusesWithoutQuoting", func(t *testing.T) {
		t.Parallel()
		bundle := setupCredentials(t)
		example := bundle.format.Example
		cases := map[string]struct {
			raw  string
			want string // the whole message
		}{
			"empty":         {``, `Acme CRM credentials are empty: provide ` + example},
			"blank":         {" \n\t ", `Acme CRM credentials are empty: provide ` + example},
			"bare secret":   {credentialsSecret, `Acme CRM credentials are not valid JSON (syntax error at byte 1): provide ` + example},
			"bad character": {`{"api_key": "` + credentialsSecret + `"x}`, `Acme CRM credentials are not valid JSON (syntax error at byte 35): provide ` + example},
			"truncated":     {`{"api_key": "` + credentialsSecret + `"`, `Acme CRM credentials are not valid JSON (unexpected end): provide ` + example},
			"unterminated":  {`{"api_key": "` + credentialsSecret, `Acme CRM credentials are not valid JSON (unexpected end): provide ` + example},
			"number string": {`{"api_key": ` + numberSecret + `}`, `Acme CRM credentials: field api_key must be a string, not a number: provide ` + example},
			"string number": {`{"api_key": "k", "hub_id": "` + credentialsSecret + `"}`, `Acme CRM credentials: field hub_id must be a number, not a string: provide ` + example},
			"string bool":   {`{"live": "` + credentialsSecret + `"}`, `Acme CRM credentials: field live must be a boolean, not a string: provide ` + example},
			"object array":  {`{"scopes": {"x": "` + credentialsSecret + `"}}`, `Acme CRM credentials: field scopes must be a array, not a object: provide ` + example},
			"array":         {`["` + credentialsSecret + `"]`, `Acme CRM credentials must be a JSON object, not a array: provide ` + example},
			"JSON string":   {`"` + credentialsSecret + `"`, `Acme CRM credentials must be a JSON object, not a string: provide ` + example},
			"JSON number":   {numberSecret, `Acme CRM credentials must be a JSON object, not a number: provide ` + example},
			"unknown field": {`{"apikey": "` + credentialsSecret + `"}`, `Acme CRM credentials: unknown field "apikey": provide ` + example},
			"token as a field name": {`{"` + tokenSecret + `": "x"}`,
				`Acme CRM credentials have an unknown field, whose name is not shown as it does not look like a field name: provide ` + example},
			"upper case field name": {`{"Sk_Live_9f8e": "x"}`,
				`Acme CRM credentials have an unknown field, whose name is not shown as it does not look like a field name: provide ` + example},
			"overlong field name": {`{"` + strings.Repeat("a", 33) + `": "x"}`,
				`Acme CRM credentials have an unknown field, whose name is not shown as it does not look like a field name: provide ` + example},
			"longest field name": {`{"` + strings.Repeat("a", 32) + `": "x"}`,
				`Acme CRM credentials: unknown field "` + strings.Repeat("a", 32) + `": provide ` + example},
			"hex key as a field name": {`{"9f8e7d6c5b4a39281706f5e4d3c2b1a0": "x"}`,
				`Acme CRM credentials have an unknown field, whose name is not shown as it does not look like a field name: provide ` + example},
			"lower-case token with digits": {`{"sk_live_4ec39hqlyjwdarjtt1zdp7dc": "x"}`,
				`Acme CRM credentials have an unknown field, whose name is not shown as it does not look like a field name: provide ` + example},
			"trailing data": {`{"api_key": "` + credentialsSecret + `"} {"api_key": "` + credentialsSecret + `"}`, `Acme CRM credentials have data after the JSON object: provide exactly ` + example},
			"trailing text": {`{"api_key": "k"}` + credentialsSecret, `Acme CRM credentials have data after the JSON object: provide exactly ` + example},
		}
		for name, tc := range cases {
			var creds testCredentials
			err := bundle.format.Decode([]byte(tc.raw), &creds)
			require.Error(t, err, name)
			require.Equal(t, tc.want, err.Error(), name)
			require.NotContains(t, err.Error(), credentialsSecret, name)
			require.NotContains(t, err.Error(), numberSecret, name)
			require.NotContains(t, err.Error(), tokenSecret, name)
			require.NotContains(t, err.Error(), "Sk_Live", name)
			require.NotContains(t, err.Error(), "\n", "%s: one line", name)
		}
	})

	t.Run("IfEmpty", func(t *testing.T) {
		t.Parallel()
		bundle := setupCredentials(t)
		format := bundle.format
		format.IfEmpty = "connect Acme CRM again"
		var creds testCredentials
		require.EqualError(t, format.Decode(nil, &creds), "Acme CRM credentials are empty: connect Acme CRM again")
		// Only an empty document says so; the others still show the example.
		require.EqualError(t, format.Decode([]byte("[]"), &creds), `Acme CRM credentials must be a JSON object, not a array: provide {"api_key": "..."}`)
	})
}

func TestHasSpaceOrControl(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"sk_live_abc":            false,
		"":                       false,
		"pat-na1-ü":              false,
		"key with":               true,
		"key\n":                  true,
		"\tkey":                  true,
		"key\x00":                true,
		"key\x7f":                true,
		"key\r":                  true,
		strings.Repeat("k", 300): false,
	} {
		require.Equal(t, want, HasSpaceOrControl(s), "%q", s)
	}
}

func TestCredentialsFormatCheckSecret(t *testing.T) {
	t.Parallel()
	format := CredentialsFormat{Product: "Acme CRM", Example: `{"api_key": "..."}`}

	require.NoError(t, format.CheckSecret("api_key", credentialsSecret))
	require.EqualError(t, format.CheckSecret("api_key", ""),
		`Acme CRM credentials: api_key is missing or empty: provide {"api_key": "..."}`)
	for _, pasted := range []string{credentialsSecret + "\n", " " + credentialsSecret, "sk_live\t9f8e"} {
		err := format.CheckSecret("api_key", pasted)
		require.EqualError(t, err, "Acme CRM credentials: api_key contains whitespace or control characters: copy it again without spaces or line breaks")
		require.NotContains(t, err.Error(), "9f8e", "the value is never quoted")
	}

	// IfEmpty, when set, says what to do about a missing secret too.
	format.IfEmpty = "connect Acme CRM again"
	require.EqualError(t, format.CheckSecret("refresh_token", ""),
		"Acme CRM credentials: refresh_token is missing or empty: connect Acme CRM again")
}
