package starter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/starter"
)

func TestLeadNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		about             string
		lead              starter.Lead
		name, first, last string
	}{
		{"a name alone is split", starter.Lead{Name: "Ada Lovelace"}, "Ada Lovelace", "Ada", "Lovelace"},
		{"the name is kept as sent", starter.Lead{Name: "  Ada   Lovelace "}, "  Ada   Lovelace ", "Ada", "Lovelace"},
		{"the parts win", starter.Lead{Name: "Ada King", FirstName: "Augusta Ada", LastName: "Lovelace"}, "Ada King", "Augusta Ada", "Lovelace"},
		{"one part given: the name is not split", starter.Lead{Name: "Ada", FirstName: "Ada"}, "Ada", "Ada", ""},
		{"a last name alone", starter.Lead{Name: "Ada Lovelace", LastName: "Byron"}, "Ada Lovelace", "", "Byron"},
		{"the name filled from the parts", starter.Lead{FirstName: " Ada ", LastName: "Lovelace"}, "Ada Lovelace", "Ada", "Lovelace"},
		{"the name filled from one part", starter.Lead{LastName: "Lovelace"}, "Lovelace", "", "Lovelace"},
		{"spaces are no parts", starter.Lead{Name: "Ada Lovelace", FirstName: "  ", LastName: "\t"}, "Ada Lovelace", "Ada", "Lovelace"},
		{"no name at all", starter.Lead{}, "", "", ""},
	} {
		name, first, last := starter.LeadNames(tc.lead)
		require.Equal(t, [3]string{tc.name, tc.first, tc.last}, [3]string{name, first, last}, tc.about)
	}
}

func TestLeadValidate(t *testing.T) {
	t.Parallel()
	valid := starter.Lead{ExternalID: "p-1", Source: "Z", Name: "Ada Lovelace", FirstName: "Ada", LastName: "Lovelace", Company: "Engines"}
	require.NoError(t, valid.Validate())

	deep := map[string]any{"k": "Secret"}
	for range 32 {
		deep = map[string]any{"k": deep}
	}
	for _, tc := range []struct {
		field  string
		mutate func(l *starter.Lead)
	}{
		{"first_name", func(l *starter.Lead) { l.FirstName = strings.Repeat("S", 321) }},
		{"last_name", func(l *starter.Lead) { l.LastName = "Secret\x00" }},
		{"company", func(l *starter.Lead) { l.Company = "Secret\xff" }},
		{"company", func(l *starter.Lead) { l.Company = strings.Repeat("S", 321) }},
		{"name", func(l *starter.Lead) { l.Name = strings.Repeat("S", 321) }},
		{"attributes", func(l *starter.Lead) { l.Attributes = deep }},
	} {
		l := valid
		tc.mutate(&l)
		err := l.Validate()
		var fieldErr *starter.FieldError
		require.True(t, errors.As(err, &fieldErr), "%s: %v", tc.field, err)
		require.Equal(t, tc.field, fieldErr.Field)
		require.ErrorIs(t, err, starter.ErrInvalidInput)
		require.NotContains(t, err.Error(), "Secret", "errors never echo lead data")
		require.NotContains(t, err.Error(), "SSS")
	}
}
