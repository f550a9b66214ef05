package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
)

// setupTimeout bounds setting the org up, and deleting it again.
const setupTimeout = 90 * time.Second

// benchOrg is the run's org: its lead integrations with their intake
// tokens, and its CRM integrations with their sandbox API keys.
type benchOrg struct {
	id    string
	leads []benchLead
	crms  []benchCRM
}

type benchLead struct{ id, token, source string }

type benchCRM struct{ id, apiKey string }

// setupBenchOrg creates the org's CRM and lead integrations and takes each
// through setup to active, as a customer would, in parallel.
func setupBenchOrg(ctx context.Context, stack *benchStack, runID string, opts Options) (benchOrg, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	org := benchOrg{id: "bench-" + runID, leads: make([]benchLead, opts.Leads), crms: make([]benchCRM, opts.CRMs)}
	var wg sync.WaitGroup
	errs := make(chan error, opts.Leads+opts.CRMs)
	for i := range org.crms {
		wg.Go(func() {
			c, err := setupBenchCRM(ctx, stack, org.id, fmt.Sprintf("%s-crm-%d", org.id, i+1), opts.CRMLatency)
			org.crms[i] = c
			errs <- err
		})
	}
	for i := range org.leads {
		wg.Go(func() {
			l, err := setupBenchLead(ctx, stack, org.id, fmt.Sprintf("%s-lead-%d", org.id, i+1), i+1)
			org.leads[i] = l
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return org, errors.Join(all...)
}

func setupBenchCRM(ctx context.Context, stack *benchStack, org, id string, latency time.Duration) (benchCRM, error) {
	acct, err := stack.sandbox.CreateAccount(ctx, nil)
	if err != nil {
		return benchCRM{}, err
	}
	if latency > 0 {
		if _, err := stack.sandbox.SetFaults(ctx, acct.APIKey, sandboxfake.Faults{LatencyMS: int(latency / time.Millisecond)}); err != nil {
			return benchCRM{}, err
		}
	}
	s := stack.starter
	if _, err := s.Create(ctx, integration.Spec{ID: id, OrgID: org, Kind: integration.KindCRM, Provider: sandbox.ProviderName, Name: "bench CRM"}, "bench"); err != nil {
		return benchCRM{}, err
	}
	// From here on the integration exists, and is returned to be cleaned up.
	created := benchCRM{id: id, apiKey: acct.APIKey}
	if _, err := s.Authorize(ctx, id, sandboxCredentials(acct.APIKey), "bench"); err != nil {
		return created, err
	}
	st, err := s.Command(ctx, id, integration.EventCompleteSetup, "bench", "benchmark")
	if err == nil && st.Status != integration.StatusActive {
		err = fmt.Errorf("CRM integration %s is %s/%s after setup, not active", id, st.Status, st.Reason)
	}
	return created, err
}

func setupBenchLead(ctx context.Context, stack *benchStack, org, id string, n int) (benchLead, error) {
	s := stack.starter
	source := fmt.Sprintf("Bench Partner %d", n)
	_, token, err := s.CreateLead(ctx, integration.Spec{ID: id, OrgID: org, Kind: integration.KindLead, Provider: "bench-partner", Name: "bench leads", ExpectedSource: source}, "bench")
	if err != nil {
		return benchLead{}, err
	}
	created := benchLead{id: id, token: token, source: source}
	// The partner's test lead with the expected source ticks the tracker;
	// it arrives before activation, so it is routed nowhere.
	if _, err := s.Intake(ctx, id, starter.Lead{ExternalID: "setup-test-lead", Source: source, Name: "Test Lead", Email: "test@example.com"}); err != nil {
		return created, err
	}
	st, err := s.Command(ctx, id, integration.EventCompleteSetup, "bench", "benchmark")
	if err == nil && st.Status != integration.StatusActive {
		err = fmt.Errorf("lead integration %s is %s/%s after setup, not active", id, st.Status, st.Reason)
	}
	return created, err
}

func sandboxCredentials(apiKey string) []byte {
	b, _ := json.Marshal(map[string]string{"api_key": apiKey})
	return b
}

// deleteBenchOrg deletes the run's integrations from an attached stack.
func deleteBenchOrg(stack *benchStack, org benchOrg) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	ids := make([]string, 0, len(org.leads)+len(org.crms))
	for _, l := range org.leads {
		ids = append(ids, l.id)
	}
	for _, c := range org.crms {
		ids = append(ids, c.id)
	}
	for _, id := range ids {
		if id != "" {
			_, _ = stack.starter.Command(ctx, id, integration.EventDelete, "bench", "benchmark finished")
		}
	}
}
