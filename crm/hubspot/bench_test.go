package hubspot_test

import (
	"testing"
	"time"

	"github.com/acme/integrations/crm/crmtest"
)

// BenchmarkPacing drains a backlog under a fake limit of 20 calls per 10 s,
// as HubSpot's headers state it: go test ./crm/hubspot -run '^$' -bench
// Pacing -benchtime 1x.
func BenchmarkPacing(b *testing.B) {
	crmtest.BenchmarkPacing(b, setupHarness(b, true), 20, 10*time.Second, 3)
}
