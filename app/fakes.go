package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/crm/followupboss/followupbossfake"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
	"github.com/acme/integrations/crm/salesforce/salesforcefake"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
)

// FakeAddrs are where the fake CRMs listen ("127.0.0.1:0": a free port).
type FakeAddrs struct {
	Sandbox, HubSpot, Salesforce, FollowUpBoss string
}

// The dev stack's identities with the fakes: the OAuth apps and the Follow
// Up Boss system the fakes register, and the connectors are configured
// with. They are not secrets: they open nothing but the fakes.
const (
	devSalesforceClientID     = "salesforcefake-client-id"
	devSalesforceClientSecret = "salesforcefake-client-key"
	devFollowUpBossSystem     = "integrations-dev"
	devFollowUpBossSystemKey  = "followupbossfake-system-key"
)

// Fakes are the fake CRMs of a dev stack (or an end-to-end test): the
// sandbox, HubSpot, Salesforce and Follow Up Boss, each an HTTP server
// speaking its CRM's API, with its control API beside it for the CLI and
// the tests. Their URLs are where they listen.
type Fakes struct {
	SandboxURL, HubSpotURL, SalesforceURL, FollowUpBossURL string
	servers                                                []*HTTPServer
}

// StartFakes starts the fake CRMs on addrs, keeping their accounts in
// files in stateDir ("" keeps them in memory), and registers the dev
// stack's OAuth apps and system with them; publicURL is where their
// consent pages may send browsers back to. Stop stops them.
func StartFakes(ctx context.Context, addrs FakeAddrs, stateDir, publicURL string, logger *slog.Logger) (*Fakes, error) {
	f := &Fakes{}
	state := func(name string) string {
		if stateDir == "" {
			return ""
		}
		return filepath.Join(stateDir, name)
	}
	serve := func(what, addr string, h http.Handler, err error) (string, error) {
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		srv, err := ServeHTTP(addr, h, logger)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		f.servers = append(f.servers, srv)
		return srv.URL(), nil
	}
	var err error
	sandbox, err := sandboxfake.NewServer(state("sandbox.json"))
	if f.SandboxURL, err = serve("sandbox CRM", addrs.Sandbox, handler(sandbox, err), err); err != nil {
		f.Stop()
		return nil, err
	}
	hub, err := hubspotfake.NewServer(state("hubspot.json"))
	if f.HubSpotURL, err = serve("fake HubSpot", addrs.HubSpot, handler(hub, err), err); err != nil {
		f.Stop()
		return nil, err
	}
	sf, err := salesforcefake.NewServer(state("salesforce.json"))
	if f.SalesforceURL, err = serve("fake Salesforce", addrs.Salesforce, handler(sf, err), err); err != nil {
		f.Stop()
		return nil, err
	}
	fub, err := followupbossfake.NewServer(state("followupboss.json"))
	if f.FollowUpBossURL, err = serve("fake Follow Up Boss", addrs.FollowUpBoss, handler(fub, err), err); err != nil {
		f.Stop()
		return nil, err
	}
	if err := fub.RegisterSystem(devFollowUpBossSystem, devFollowUpBossSystemKey); err != nil {
		f.Stop()
		return nil, fmt.Errorf("fake Follow Up Boss: %w", err)
	}
	sfClient := salesforcefake.NewClient(f.SalesforceURL, &http.Client{Timeout: 10 * time.Second})
	if _, err := sfClient.RegisterApp(ctx, salesforcefake.App{
		ClientID: devSalesforceClientID, ClientSecret: devSalesforceClientSecret,
		CallbackURLs: []string{publicURL + api.OAuthCallbackPath},
	}); err != nil {
		f.Stop()
		return nil, fmt.Errorf("fake Salesforce: %w", err)
	}
	return f, nil
}

// handler is h's HTTP handler, or nil when making it failed.
func handler(h interface{ Handler() http.Handler }, err error) http.Handler {
	if err != nil {
		return nil
	}
	return h.Handler()
}

// Configure points cfg's connectors at the fakes, provider by provider,
// unless cfg holds real client credentials for that CRM (from a flag or
// the environment): then that CRM is the real one.
func (f *Fakes) Configure(cfg *Config) error {
	var errs []error
	set := func(name, value string) { errs = append(errs, cfg.Override(name, value, SourceDev)) }
	set("sandbox_url", f.SandboxURL)
	if !cfg.configured("hubspot_client_id") {
		set("hubspot_api_url", f.HubSpotURL)
		set("hubspot_auth_url", f.HubSpotURL+"/oauth/authorize")
		set("hubspot_client_id", hubspotfake.DevClientID)
		set("hubspot_client_secret", hubspotfake.DevClientSecret)
	}
	if !cfg.configured("salesforce_client_id") {
		set("salesforce_login_url", f.SalesforceURL)
		set("salesforce_test_login_url", f.SalesforceURL+salesforcefake.TestLoginPath)
		set("salesforce_client_id", devSalesforceClientID)
		set("salesforce_client_secret", devSalesforceClientSecret)
	}
	if !cfg.configured("followupboss_system_key") {
		set("followupboss_api_url", f.FollowUpBossURL)
		set("followupboss_system", devFollowUpBossSystem)
		set("followupboss_system_key", devFollowUpBossSystemKey)
	}
	return errors.Join(errs...)
}

// Stop stops the fakes.
func (f *Fakes) Stop() {
	for _, s := range f.servers {
		s.Stop()
	}
	f.servers = nil
}
