package crmfake

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func TestSetInt(t *testing.T) {
	t.Parallel()
	n := 7
	require.NoError(t, SetInt("fail_next", nil, 0, 10, &n))
	require.Equal(t, 7, n, "absent: unchanged")
	require.NoError(t, SetInt("fail_next", ptr(10), 0, 10, &n))
	require.Equal(t, 10, n)

	err := SetInt("fail_next", ptr(11), 0, 10, &n)
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "fail_next must be between 0 and 10, not 11"}, *e)
	require.Equal(t, 10, n, "refused: unchanged")
}

func TestRulesSet(t *testing.T) {
	t.Parallel()
	rules := Rules{Key: "field", Valid: func(f string) bool { return slices.Contains([]string{"email", "phone"}, f) }, Want: "one of email, phone", Example: "email"}
	const text = "blocked-5ecr3t@example.com"

	type rule struct{ field, contains string }
	cases := map[string]struct {
		have           rule
		field, contain *string
		want           rule
		err            string
	}{
		"set":           {rule{}, ptr("email"), ptr(text), rule{"email", text}, ""},
		"unchanged":     {rule{"email", text}, nil, nil, rule{"email", text}, ""},
		"new text":      {rule{"email", text}, nil, ptr("other"), rule{"email", "other"}, ""},
		"new field":     {rule{"email", text}, ptr("phone"), nil, rule{"phone", text}, ""},
		"removed":       {rule{"email", text}, ptr(""), nil, rule{}, ""},
		"unknown field": {rule{}, ptr("shoe_size"), ptr(text), rule{}, `reject_field must be one of email, phone, or "" to remove the rule`},
		"no text":       {rule{}, ptr("email"), nil, rule{}, `reject_contains is empty: a reject rule needs the text to look for, e.g. {"reject_field":"email","reject_contains":"blocked"}`},
		"emptied text":  {rule{"email", text}, nil, ptr(""), rule{}, `reject_contains is empty: a reject rule needs the text to look for, e.g. {"reject_field":"email","reject_contains":"blocked"}`},
		"no field":      {rule{}, nil, ptr(text), rule{}, `reject_contains needs reject_field: name the field to look in, e.g. {"reject_field":"email","reject_contains":"blocked"}`},
	}
	for name, tc := range cases {
		got := tc.have
		err := rules.Set("reject", tc.field, tc.contain, &got.field, &got.contains)
		if tc.err == "" {
			require.NoError(t, err, name)
			require.Equal(t, tc.want, got, name)
			continue
		}
		var e *Error
		require.True(t, errors.As(err, &e), name)
		require.Equal(t, http.StatusBadRequest, e.Status, name)
		require.Equal(t, tc.err, e.Message, name)
		require.NotContains(t, e.Message, text, "%s: the text is never echoed", name)
	}
}
