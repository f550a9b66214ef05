package crmfake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// secret stands for an API key: it is in paths and bodies, and must never
// be in an answer or an error.
const secret = "key_5ecr3t9f8e7d"

// thing is what the test fake's accounts are.
type thing struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// testBundle is a fake with one account, served over HTTP, and a client.
type testBundle struct {
	fake   Fake
	things map[string]thing
	url    string
	client *Client
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{
		fake:   Fake{Name: "fake Acme", DevURL: "http://127.0.0.1:8099", ContentType: "application/json;charset=UTF-8"},
		things: map[string]thing{secret: {Key: secret, Count: 2}},
	}
	find := func(key string) (thing, error) {
		th, ok := b.things[key]
		if !ok {
			return thing{}, &Error{Status: http.StatusNotFound, Code: "unknown_key", Message: "no fake Acme account has that key"}
		}
		return th, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /control/things/{key}", Handle(b.fake, "key", find, func(th thing) thing { return th }))
	mux.HandleFunc("GET /control/things/{key}/count", Handle(b.fake, "key", find, func(th thing) int { return th.Count }))
	mux.HandleFunc("POST /control/things", func(w http.ResponseWriter, r *http.Request) {
		var th thing
		if err := DecodeBody(r, &th, false, `{"key":"k"}`); err != nil {
			b.fake.WriteError(w, err)
			return
		}
		b.fake.WriteJSON(w, http.StatusCreated, th)
	})
	mux.HandleFunc("POST /control/broken", func(w http.ResponseWriter, r *http.Request) {
		b.fake.WriteError(w, errors.New("disk full"))
	})
	server := httptest.NewServer(b.fake.Fallback(mux, "no such endpoint: the fake serves /control/things"))
	t.Cleanup(server.Close)
	b.url = server.URL
	b.client = NewClient(b.fake, server.URL+"/", server.Client())
	return b
}

// call sends a raw request and returns the status, headers and body.
func call(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(data)
}

func TestServer(t *testing.T) {
	t.Parallel()

	t.Run("Handle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, header, body := call(t, http.MethodGet, b.url+"/control/things/"+secret+"/count", "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "application/json;charset=UTF-8", header.Get("Content-Type"))
		require.JSONEq(t, "2", body)

		status, _, body = call(t, http.MethodGet, b.url+"/control/things/other/count", "")
		require.Equal(t, http.StatusNotFound, status)
		require.JSONEq(t, `{"error":"no fake Acme account has that key","code":"unknown_key"}`, body)
	})

	t.Run("WriteError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, _, body := call(t, http.MethodPost, b.url+"/control/broken", "")
		require.Equal(t, http.StatusInternalServerError, status)
		var e ErrorBody
		require.NoError(t, json.Unmarshal([]byte(body), &e))
		require.Equal(t, "internal", e.Code)
		require.Equal(t, "the fake Acme failed: disk full; check the disk holding its state file and retry", e.Error)
	})

	t.Run("Fallback", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, header, body := call(t, http.MethodGet, b.url+"/control/nope/"+secret, "")
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, "application/json;charset=UTF-8", header.Get("Content-Type"))
		require.JSONEq(t, `{"error":"no such endpoint: the fake serves /control/things","code":"not_found"}`, body)

		status, header, body = call(t, http.MethodDelete, b.url+"/control/things/"+secret, "")
		require.Equal(t, http.StatusMethodNotAllowed, status)
		require.Equal(t, "GET, HEAD", header.Get("Allow"))
		require.JSONEq(t, `{"error":"DELETE is not allowed here: use GET, HEAD","code":"method_not_allowed"}`, body)
		require.NotContains(t, body, secret, "the path is never echoed")
	})

	t.Run("DecodeBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, _, body := call(t, http.MethodPost, b.url+"/control/things", `{"key":"`+secret+`","count":3}`)
		require.Equal(t, http.StatusCreated, status)
		require.JSONEq(t, `{"key":"`+secret+`","count":3}`, body)

		const example = `; send e.g. {"key":"k"}`
		cases := map[string]struct {
			body   string
			status int
			want   string // the whole message
		}{
			"empty":         {"", 400, `request body is empty: send e.g. {"key":"k"}`},
			"blank":         {" \n", 400, `request body is empty: send e.g. {"key":"k"}`},
			"syntax":        {`{"key":"` + secret + `"x}`, 400, "request body is not valid: not valid JSON (syntax error at byte 26)" + example},
			"bare secret":   {secret, 400, "request body is not valid: not valid JSON (syntax error at byte 1)" + example},
			"truncated":     {`{"key":"` + secret, 400, "request body is not valid: not valid JSON (unexpected end)" + example},
			"wrong type":    {`{"count":"` + secret + `"}`, 400, "request body is not valid: field count must be a int, not a string" + example},
			"number":        {`{"key":987654321987}`, 400, "request body is not valid: field key must be a string, not a number" + example},
			"not an object": {`["` + secret + `"]`, 400, "request body is not valid: it must be a JSON object" + example},
			"unknown field": {`{"kee":"` + secret + `"}`, 400, `request body is not valid: unknown field "kee"` + example},
			"trailing data": {`{"key":"k"} {"key":"` + secret + `"}`, 400, `request body has data after the JSON object: send exactly one object, e.g. {"key":"k"}`},
			"too large":     {`{"key":"` + strings.Repeat("k", MaxBodyBytes) + `"}`, 413, `request body is larger than 65536 bytes: send e.g. {"key":"k"}`},
		}
		for name, tc := range cases {
			status, _, body := call(t, http.MethodPost, b.url+"/control/things", tc.body)
			require.Equal(t, tc.status, status, name)
			var e ErrorBody
			require.NoError(t, json.Unmarshal([]byte(body), &e), name)
			require.Equal(t, tc.want, e.Error, name)
			require.NotContains(t, body, secret, name)
			require.NotContains(t, body, "987654321987", name)
		}

		// An optional body may be empty, and then leaves dst alone.
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(" "))
		th := thing{Key: "kept"}
		require.NoError(t, DecodeBody(req, &th, true, `{}`))
		require.Equal(t, thing{Key: "kept"}, th)
	})
}
