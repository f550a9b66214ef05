package starter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/starter"
)

func TestSplitName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, first, last string
	}{
		// Empty, and nothing but spaces.
		{"", "", ""},
		{"   ", "", ""},
		{"\t\u00a0\u3000", "", ""},
		// One word is a last name only.
		{"Cher", "", "Cher"},
		{"  Cher  ", "", "Cher"},
		// The last word is the last name, the rest the first name.
		{"Ada Lovelace", "Ada", "Lovelace"},
		{"Augusta Ada King", "Augusta Ada", "King"},
		{"Mary-Jane Watson-Parker", "Mary-Jane", "Watson-Parker"},
		// Extra spaces of any kind collapse.
		{"  Ada \t  Lovelace\n", "Ada", "Lovelace"},
		{"Ada\u00a0Lovelace", "Ada", "Lovelace"},
		{"Grace   Brewster\u2003Hopper", "Grace Brewster", "Hopper"},
		// Unicode letters are letters.
		{"José María García", "José María", "García"},
		{"Zoë Ünal", "Zoë", "Ünal"},
		{"Nguyễn Văn An", "Nguyễn Văn", "An"},
		{"Ярослав Мудрый", "Ярослав", "Мудрый"},
		{"山田\u3000太郎", "山田", "太郎"},
		// Lower-case particles begin the last name; capitalised they are names.
		{"Ludwig van Beethoven", "Ludwig", "van Beethoven"},
		{"José de la Cruz", "José", "de la Cruz"},
		{"Charles de Gaulle", "Charles", "de Gaulle"},
		{"de la Cruz", "", "de la Cruz"},
		{"Van Morrison", "Van", "Morrison"},
		{"Ludwig Van Beethoven", "Ludwig Van", "Beethoven"},
		// Generational suffixes stay with the last name.
		{"Martin Luther King Jr.", "Martin Luther", "King Jr."},
		{"Sammy Davis jr", "Sammy", "Davis jr"},
		{"John Doe III", "John", "Doe III"},
		{"Jr.", "", "Jr."},
		// "Last, First" as written, unless a suffix follows the comma.
		{"Lovelace, Ada", "Ada", "Lovelace"},
		{"Lovelace,Ada", "Ada", "Lovelace"},
		{"  van Beethoven ,  Ludwig ", "Ludwig", "van Beethoven"},
		{"Martin Luther King, Jr.", "Martin Luther", "King Jr."},
		{"Lovelace,", "", "Lovelace"},
		{",", "", ""},
		{"Lovelace, Ada, Countess", "Lovelace Ada", "Countess"},
	} {
		first, last := starter.SplitName(tc.name)
		require.Equal(t, [2]string{tc.first, tc.last}, [2]string{first, last}, "SplitName(%q)", tc.name)
	}
}

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
