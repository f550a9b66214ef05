package salesforce

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Unit tests of the pure helpers; everything that talks to Salesforce is
// tested against the fake (connector_test.go, contract_test.go).

func TestParseLimitInfo(t *testing.T) {
	t.Parallel()
	type usage struct {
		used, limit int64
		ok          bool
	}
	for value, want := range map[string]usage{
		"api-usage=18/5000":           {18, 5000, true},
		" api-usage = 10018 / 100000": {10018, 100000, true},
		"api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)": {25, 5000, true},
		"per-app-api-usage=17/250(appName=x); api-usage=3/15000":                    {3, 15000, true},
		"api-usage=110018/100000; api-bursts=1/750":                                 {110018, 100000, true},
		"":                      {},
		"api-usage=18":          {},
		"api-usage=x/5000":      {},
		"api-usage=18/0":        {},
		"api-usage=-1/5000":     {},
		"per-app-api-usage=1/2": {},
	} {
		used, limit, ok := parseLimitInfo(value)
		require.Equal(t, want, usage{used, limit, ok}, value)
	}
}

func TestCut(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", cut("abc", 3))
	require.Equal(t, "ab", cut("abc", 2))
	require.Equal(t, "é", cut("éé", 1), "characters, not bytes")
	require.Equal(t, "a", cut("a😀", 2), "a character outside the BMP is two of Salesforce's")
	require.Equal(t, "a😀", cut("a😀", 3))
}

func TestRejection(t *testing.T) {
	t.Parallel()
	require.Equal(t, "invalid email address (INVALID_EMAIL_ADDRESS) in Email", rejection([]recordError{
		{StatusCode: "INVALID_EMAIL_ADDRESS", Message: "Email: invalid email address: zelda@x", Fields: []string{"Email"}}}))
	require.Equal(t, "refused by Salesforce (SOME_NEW_CODE); refused by Salesforce (UNKNOWN_ERROR) in LastName", rejection([]recordError{
		{StatusCode: "SOME_NEW_CODE", Message: "quotes zelda"},
		{StatusCode: "not a code: zelda@x", Fields: []string{"LastName", "zelda quill"}},
	}), "unknown codes and fields that are not names are not quoted")
}

func TestWindowName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "24h", windowName(24*time.Hour))
	require.Equal(t, "10m", windowName(10*time.Minute))
	require.Equal(t, "1s", windowName(time.Second))
	require.Equal(t, "1.5s", windowName(1500*time.Millisecond))
}
