package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevInfo is what `integrations dev` writes to DATA-DIR/dev.json while it
// runs, so that commands in a second terminal (and the benchmark's
// --attach) find the stack it started. The end-to-end test stacks write
// the same file for the CLI tests.
type DevInfo struct {
	TemporalAddress string `json:"temporal_address"`
	Namespace       string `json:"namespace"`
	DatabaseURL     string `json:"database_url"`
	SandboxURL      string `json:"sandbox_url"`
	HTTPURL         string `json:"http_url"`
	UIURL           string `json:"ui_url"`
	TaskQueue       string `json:"task_queue,omitempty"`
	// The CRMs the stack's connectors talk to (its fakes, unless real
	// client credentials were configured), so that a second terminal's
	// commands (authorize --oauth, the fakes' controls) reach the same.
	// Client IDs only: the secrets stay in the dev process.
	HubSpotAPIURL          string `json:"hubspot_api_url,omitempty"`
	HubSpotAuthURL         string `json:"hubspot_auth_url,omitempty"`
	HubSpotClientID        string `json:"hubspot_client_id,omitempty"`
	SalesforceLoginURL     string `json:"salesforce_login_url,omitempty"`
	SalesforceTestLoginURL string `json:"salesforce_test_login_url,omitempty"`
	SalesforceClientID     string `json:"salesforce_client_id,omitempty"`
	FollowUpBossAPIURL     string `json:"followupboss_api_url,omitempty"`
	FollowUpBossSystem     string `json:"followupboss_system,omitempty"`
	// KeyID names the key the stack's worker seals and opens credentials
	// with (credential.KeyIDOf; never the key): a process of the data dir
	// with another active key refuses to start instead of sealing what
	// the worker cannot open. Empty in a file of an older dev.
	KeyID string `json:"key_id,omitempty"`
}

// DevInfoPath is where the dev stack of dataDir describes itself.
func DevInfoPath(dataDir string) string { return filepath.Join(dataDir, "dev.json") }

// ReadDevInfo reads DATA-DIR/dev.json: nil when there is none, an error
// naming the file when it cannot be read or parsed.
func ReadDevInfo(dataDir string) (*DevInfo, error) {
	path := DevInfoPath(dataDir)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var info DevInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON (%v): remove it if no `integrations dev` runs in %s, or restart dev", path, err, dataDir)
	}
	return &info, nil
}

// WriteDevInfo writes DATA-DIR/dev.json (mode 0600).
func WriteDevInfo(dataDir string, info DevInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dev.json: %w", err)
	}
	path := DevInfoPath(dataDir)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// values are the file's settings by JSON key, for Load.
func (d *DevInfo) values() map[string]string {
	if d == nil {
		return nil
	}
	return map[string]string{
		"temporal_address": d.TemporalAddress, "namespace": d.Namespace, "database_url": d.DatabaseURL,
		"sandbox_url": d.SandboxURL, "http_url": d.HTTPURL, "ui_url": d.UIURL, "task_queue": d.TaskQueue,
		"hubspot_api_url": d.HubSpotAPIURL, "hubspot_auth_url": d.HubSpotAuthURL, "hubspot_client_id": d.HubSpotClientID,
		"salesforce_login_url": d.SalesforceLoginURL, "salesforce_test_login_url": d.SalesforceTestLoginURL,
		"salesforce_client_id": d.SalesforceClientID,
		"followupboss_api_url": d.FollowUpBossAPIURL, "followupboss_system": d.FollowUpBossSystem,
	}
}

// DevInfoOf is what the dev stack of cfg writes to dev.json (the test
// stacks write the same), but its key ID, which Service.DevInfo adds.
func DevInfoOf(cfg Config, httpURL, uiURL string) DevInfo {
	return DevInfo{
		TemporalAddress: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace, DatabaseURL: cfg.DatabaseURL,
		SandboxURL: cfg.SandboxURL, HTTPURL: httpURL, UIURL: uiURL, TaskQueue: cfg.TaskQueue,
		HubSpotAPIURL: cfg.HubSpot.APIURL, HubSpotAuthURL: cfg.HubSpot.AuthURL, HubSpotClientID: cfg.HubSpot.ClientID,
		SalesforceLoginURL: cfg.Salesforce.LoginURL, SalesforceTestLoginURL: cfg.Salesforce.TestLoginURL,
		SalesforceClientID: cfg.Salesforce.ClientID,
		FollowUpBossAPIURL: cfg.FollowUpBoss.APIURL, FollowUpBossSystem: cfg.FollowUpBoss.System,
	}
}

// DevInfo is what the dev stack of s writes to dev.json: DevInfoOf its
// configuration and HTTP API, with its key ID. uiURL is the Temporal UI's.
func (s *Service) DevInfo(uiURL string) DevInfo {
	httpURL := ""
	if s.HTTP != nil {
		httpURL = s.HTTP.URL()
	}
	info := DevInfoOf(s.Config, httpURL, uiURL)
	if s.Keyring != nil {
		info.KeyID = s.Keyring.ActiveKeyID().String()
	}
	return info
}
