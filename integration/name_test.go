package integration_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
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
		first, last := integration.SplitName(tc.name)
		require.Equal(t, [2]string{tc.first, tc.last}, [2]string{first, last}, "SplitName(%q)", tc.name)
	}
}
