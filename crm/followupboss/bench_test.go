package followupboss_test

import (
	"testing"
	"time"

	"github.com/acme/integrations/crm/crmtest"
)

// BenchmarkPacing drains a backlog under a fake limit of 20 calls per 10 s,
// as Follow Up Boss's headers state it: go test ./crm/followupboss -run
// '^$' -bench Pacing -benchtime 1x.
func BenchmarkPacing(b *testing.B) {
	crmtest.BenchmarkPacing(b, setupHarness(b), 20, 10*time.Second, 3)
}
