package salesforce_test

import (
	"testing"
	"time"

	"github.com/acme/integrations/crm/crmtest"
	"github.com/acme/integrations/crm/salesforce"
)

// BenchmarkPacing drains a backlog under a fake allocation of 20 calls per
// 10 s (the connector's window set to match): go test ./crm/salesforce
// -run '^$' -bench Pacing -benchtime 1x.
func BenchmarkPacing(b *testing.B) {
	const calls, window = 20, 10 * time.Second
	h := setupHarnessPacing(b, salesforce.Pacing{Window: window, Hold: 50 * time.Millisecond, MaxWait: time.Minute})
	crmtest.BenchmarkPacing(b, h, calls, window, 3)
}
