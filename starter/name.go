package starter

import (
	"strings"

	"github.com/acme/integrations/integration"
)

// leadNames returns the name, first name and last name intake stores for
// a lead: the partner's first_name and last_name when it sent either
// (trimmed; name is then not split, the partner split it already), else
// the parts split from name by integration.SplitName; and name as sent, or joined
// from the parts when the partner sent only those.
func leadNames(l Lead) (name, first, last string) {
	name, first, last = l.Name, strings.TrimSpace(l.FirstName), strings.TrimSpace(l.LastName)
	if first == "" && last == "" {
		first, last = integration.SplitName(name)
		return name, first, last
	}
	if strings.TrimSpace(name) == "" {
		name = strings.TrimSpace(first + " " + last)
	}
	return name, first, last
}
