// Package app is the composition root of the integrations service. It is
// the one place that reads configuration — Config, loaded once per process
// by Load from flags, the environment, the dev stack's DATA-DIR/dev.json and
// defaults, each value with its source — and the one place that assembles
// the service from it: New builds the store, the credentials keyring, the
// Temporal client, the CRM connectors, the activities, the worker, the
// starter, the HTTP API and the nudger, as much of it as a process asks for.
// The CLI's processes (dev, worker, serve), its operator commands, the
// benchmark and the end-to-end test stacks all build on it, so what a test
// runs is what production runs.
package app

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/api"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/retention"
	"github.com/acme/integrations/workflows"
)

// Source says where a setting's value came from.
type Source string

// The sources of a setting, in the order Load consults them: a flag beats
// the environment, which beats the Temporal client profile (for the
// Temporal settings), which beats dev.json, which beats the default.
const (
	SourceFlag    Source = "flag"
	SourceEnv     Source = "env"
	SourceProfile Source = "temporal profile"
	SourceDevJSON Source = "dev.json"
	SourceDefault Source = "default"
	// SourceDev: the dev stack set it (its own addresses, the fake CRMs).
	SourceDev Source = "dev stack"
)

// Config is the effective configuration of one process. Load fills it from
// the settings table; a test may also build one by hand (zero fields take
// their defaults in New where the service needs them).
type Config struct {
	// DataDir is where `dev` keeps its state (absolute after Load); other
	// processes find the dev stack's dev.json and key there.
	DataDir string
	// DatabaseURL is postgres://... or a SQLite path.
	DatabaseURL string
	Temporal    TemporalConfig
	// TaskQueue is the workflows' Temporal task queue.
	TaskQueue string
	// EncryptionKey is base64 of the 32-byte key that seals CRM
	// credentials (secret); empty means none was given (see Keyring).
	EncryptionKey string
	// EncryptionOldKeys are keys that sealed credentials before the
	// active one: comma-separated base64 (secret). They open, never seal,
	// until `integrations credentials rewrap` has re-sealed everything.
	EncryptionOldKeys string
	// HTTPAddr is where `serve` and `dev` listen.
	HTTPAddr string
	// HTTP is the HTTP API's listeners and limits.
	HTTP HTTPConfig
	// PublicURL is the base URL of the HTTP API as the world reaches it,
	// where OAuth redirects come back to; empty (OAuth connect refused)
	// unless given, or set by the dev stack.
	PublicURL string
	// SandboxURL is the base URL of the sandbox CRM.
	SandboxURL string
	// Policy is the worker's service-wide lifecycle policy: timers and
	// thresholds for every integration without an override of its own.
	Policy integration.Policy
	// Retention is how long lead payloads are kept, for the worker's
	// retention job.
	Retention    RetentionConfig
	HubSpot      HubSpotConfig
	Salesforce   SalesforceConfig
	FollowUpBoss FollowUpBossConfig

	// MaxDeliveryAttempts is how many failures of its own set a lead
	// aside as gave_up (activities.Deliver); 0 means the default.
	MaxDeliveryAttempts int

	// Dev is DATA-DIR/dev.json as Load read it: the dev stack running in
	// the data dir; nil when there is none.
	Dev *DevInfo

	// sources records where each setting came from, by setting name.
	sources map[string]Source
	// temporalProfile is the Temporal SDK's client profile (TLS, API key,
	// gRPC metadata) from the envconfig file and environment; nil for a
	// hand-built Config (a plain connection).
	temporalProfile *envconfig.ClientConfigProfile
}

// TemporalConfig is how the process reaches Temporal.
type TemporalConfig struct {
	Address   string
	Namespace string
	// APIKey authenticates to Temporal Cloud (secret).
	APIKey string
}

// RetentionConfig is the lead retention job's section (package retention).
type RetentionConfig struct {
	// Leads is how long a lead's payload is kept after intake, once every
	// delivery of it is completed.
	Leads time.Duration
	// PurgeInterval is how often each worker process purges.
	PurgeInterval time.Duration
}

// HTTPConfig is how the HTTP API listens and what it bounds; zero fields
// take the defaults of DefaultHTTPConfig (see Or).
type HTTPConfig struct {
	// IntakeAddr serves partner intake (and /healthz) on a listener of its
	// own, which has no operator route; the HTTPAddr listener then has no
	// intake. Empty: intake on the HTTPAddr listener.
	IntakeAddr string
	// TLSCert and TLSKey are PEM files: given both, every listener speaks
	// HTTPS only.
	TLSCert, TLSKey string
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server's: a client that trickles its request, or idles on a
	// keep-alive connection, loses it.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// CommandTimeout bounds one command (validation included); it must be
	// shorter than WriteTimeout, so its answer is not cut off.
	CommandTimeout time.Duration
	// IntakeRate is how many leads a second each intake token may send,
	// in bursts of up to IntakeBurst.
	IntakeRate, IntakeBurst int
}

// DefaultHTTPConfig is the HTTP API's defaults: timeouts that no client of
// a 64 KiB body or a command needs more than, a 16 KiB header, and intake
// paced at 50 leads a second per token (bursts of 100).
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 90 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 16 << 10, CommandTimeout: api.DefaultCommandTimeout,
		IntakeRate: api.DefaultIntakeRate, IntakeBurst: api.DefaultIntakeBurst,
	}
}

// Or returns h with every zero limit taken from fallback (the addresses
// and files are kept as they are).
func (h HTTPConfig) Or(fallback HTTPConfig) HTTPConfig {
	orDuration := func(v, f time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return f
	}
	orInt := func(v, f int) int {
		if v > 0 {
			return v
		}
		return f
	}
	h.ReadHeaderTimeout = orDuration(h.ReadHeaderTimeout, fallback.ReadHeaderTimeout)
	h.ReadTimeout = orDuration(h.ReadTimeout, fallback.ReadTimeout)
	h.WriteTimeout = orDuration(h.WriteTimeout, fallback.WriteTimeout)
	h.IdleTimeout = orDuration(h.IdleTimeout, fallback.IdleTimeout)
	h.MaxHeaderBytes = orInt(h.MaxHeaderBytes, fallback.MaxHeaderBytes)
	h.CommandTimeout = orDuration(h.CommandTimeout, fallback.CommandTimeout)
	h.IntakeRate = orInt(h.IntakeRate, fallback.IntakeRate)
	h.IntakeBurst = orInt(h.IntakeBurst, fallback.IntakeBurst)
	return h
}

// TLS reports whether the listeners speak HTTPS.
func (h HTTPConfig) TLS() bool { return h.TLSCert != "" || h.TLSKey != "" }

// check refuses limits that contradict each other, saying what to set.
func (h HTTPConfig) check() error {
	if (h.TLSCert == "") != (h.TLSKey == "") {
		return errors.New("give --tls-cert and --tls-key together (INTEGRATIONS_TLS_CERT, INTEGRATIONS_TLS_KEY), or neither")
	}
	if h.WriteTimeout <= h.CommandTimeout {
		return fmt.Errorf("INTEGRATIONS_HTTP_WRITE_TIMEOUT (%s) must be longer than INTEGRATIONS_COMMAND_TIMEOUT (%s), or a command's answer is cut off", h.WriteTimeout, h.CommandTimeout)
	}
	return nil
}

// scheme is the listeners' URL scheme.
func (h HTTPConfig) scheme() string {
	if h.TLS() {
		return "https"
	}
	return "http"
}

// HubSpotConfig is the HubSpot connector's section.
type HubSpotConfig struct {
	APIURL string
	// AuthURL is HubSpot's consent page, a host apart from the API.
	AuthURL      string
	ClientID     string
	ClientSecret string
}

// SalesforceConfig is the Salesforce connector's section: its production
// and sandbox logins, REST API version and connected app.
type SalesforceConfig struct {
	LoginURL     string
	TestLoginURL string
	APIVersion   string
	ClientID     string
	ClientSecret string
}

// FollowUpBossConfig is the Follow Up Boss connector's section.
type FollowUpBossConfig struct {
	APIURL    string
	System    string
	SystemKey string
}

// Defaults that other packages (the CLI's help, the dev stack) refer to.
const (
	DefaultDataDir         = ".data"
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultSandboxAddr     = "127.0.0.1:8090"
	// Where `dev` runs the fakes of the real CRMs.
	DefaultHubSpotFakeAddr      = "127.0.0.1:8091"
	DefaultSalesforceFakeAddr   = "127.0.0.1:8092"
	DefaultFollowUpBossFakeAddr = "127.0.0.1:8093"
)

// setting is one row of the settings table: its name (as `config` shows
// it), where Load looks for it, its default, whether it is a secret, and the
// Config field it fills. Adding a setting is one row plus its field.
type setting struct {
	name    string
	flag    string // a flag of the commands that take it ("" none)
	env     string // environment variable ("" none)
	devJSON string // key in dev.json ("" none)
	// def is the default; defFunc computes it from the settings above it.
	def     string
	defFunc func(*Config) string
	secret  bool
	// profile reads the value from the Temporal client profile file.
	profile func(*envconfig.ClientConfigProfile) string
	// field points at the Config field: *string, *time.Duration or *int.
	field func(*Config) any
	// redact shows a non-secret value with its sensitive part hidden.
	redact func(string) string
}

// settings is the table, in resolution order: a default may use the
// settings before it.
var settings = []setting{
	{name: "data_dir", flag: "data-dir", env: "INTEGRATIONS_DATA_DIR", def: DefaultDataDir,
		field: func(c *Config) any { return &c.DataDir }},
	{name: "database_url", flag: "database-url", env: "DATABASE_URL", devJSON: "database_url",
		defFunc: func(c *Config) string { return "sqlite://" + filepath.Join(c.DataDir, "integrations.db") },
		field:   func(c *Config) any { return &c.DatabaseURL }, redact: RedactURL},
	{name: "temporal_address", env: "TEMPORAL_ADDRESS", devJSON: "temporal_address", def: DefaultTemporalAddress,
		profile: func(p *envconfig.ClientConfigProfile) string { return p.Address },
		field:   func(c *Config) any { return &c.Temporal.Address }},
	{name: "temporal_namespace", env: "TEMPORAL_NAMESPACE", devJSON: "namespace", def: DefaultNamespace,
		profile: func(p *envconfig.ClientConfigProfile) string { return p.Namespace },
		field:   func(c *Config) any { return &c.Temporal.Namespace }},
	{name: "temporal_api_key", env: "TEMPORAL_API_KEY", secret: true,
		profile: func(p *envconfig.ClientConfigProfile) string { return p.APIKey },
		field:   func(c *Config) any { return &c.Temporal.APIKey }},
	{name: "task_queue", flag: "task-queue", env: "INTEGRATIONS_TASK_QUEUE", devJSON: "task_queue", def: workflows.TaskQueue,
		field: func(c *Config) any { return &c.TaskQueue }},
	{name: "encryption_key", env: credential.KeyEnv, secret: true,
		field: func(c *Config) any { return &c.EncryptionKey }},
	{name: "encryption_old_keys", env: credential.OldKeysEnv, secret: true,
		field: func(c *Config) any { return &c.EncryptionOldKeys }},
	{name: "http_addr", flag: "http-addr", env: "INTEGRATIONS_HTTP_ADDR", def: DefaultHTTPAddr,
		field: func(c *Config) any { return &c.HTTPAddr }},
	{name: "intake_addr", flag: "intake-addr", env: "INTEGRATIONS_INTAKE_ADDR",
		field: func(c *Config) any { return &c.HTTP.IntakeAddr }},
	{name: "tls_cert", flag: "tls-cert", env: "INTEGRATIONS_TLS_CERT",
		field: func(c *Config) any { return &c.HTTP.TLSCert }},
	{name: "tls_key", flag: "tls-key", env: "INTEGRATIONS_TLS_KEY",
		field: func(c *Config) any { return &c.HTTP.TLSKey }},
	// No default: a listen address is no address the world reaches, and a
	// consent URL redirecting to 127.0.0.1 or 0.0.0.0 would strand every
	// customer. The dev stack sets its own (RunDev), which dev.json hands
	// on; elsewhere OAuth connect refuses until it is set.
	{name: "public_url", env: "INTEGRATIONS_PUBLIC_URL", devJSON: "http_url",
		field: func(c *Config) any { return &c.PublicURL }},
	{name: "sandbox_url", flag: "sandbox-url", env: "INTEGRATIONS_SANDBOX_URL", devJSON: "sandbox_url", def: "http://" + DefaultSandboxAddr,
		field: func(c *Config) any { return &c.SandboxURL }},

	// The HTTP API's limits (HTTPConfig).
	{name: "http_read_header_timeout", env: "INTEGRATIONS_HTTP_READ_HEADER_TIMEOUT", def: DefaultHTTPConfig().ReadHeaderTimeout.String(),
		field: func(c *Config) any { return &c.HTTP.ReadHeaderTimeout }},
	{name: "http_read_timeout", env: "INTEGRATIONS_HTTP_READ_TIMEOUT", def: DefaultHTTPConfig().ReadTimeout.String(),
		field: func(c *Config) any { return &c.HTTP.ReadTimeout }},
	{name: "http_write_timeout", env: "INTEGRATIONS_HTTP_WRITE_TIMEOUT", def: DefaultHTTPConfig().WriteTimeout.String(),
		field: func(c *Config) any { return &c.HTTP.WriteTimeout }},
	{name: "http_idle_timeout", env: "INTEGRATIONS_HTTP_IDLE_TIMEOUT", def: DefaultHTTPConfig().IdleTimeout.String(),
		field: func(c *Config) any { return &c.HTTP.IdleTimeout }},
	{name: "http_max_header_bytes", env: "INTEGRATIONS_HTTP_MAX_HEADER_BYTES", def: strconv.Itoa(DefaultHTTPConfig().MaxHeaderBytes),
		field: func(c *Config) any { return &c.HTTP.MaxHeaderBytes }},
	{name: "command_timeout", env: "INTEGRATIONS_COMMAND_TIMEOUT", def: DefaultHTTPConfig().CommandTimeout.String(),
		field: func(c *Config) any { return &c.HTTP.CommandTimeout }},
	{name: "intake_rate", env: "INTEGRATIONS_INTAKE_RATE", def: strconv.Itoa(DefaultHTTPConfig().IntakeRate),
		field: func(c *Config) any { return &c.HTTP.IntakeRate }},
	{name: "intake_burst", env: "INTEGRATIONS_INTAKE_BURST", def: strconv.Itoa(DefaultHTTPConfig().IntakeBurst),
		field: func(c *Config) any { return &c.HTTP.IntakeBurst }},

	// The worker policy (integration.Policy): read by the workers, so a
	// change and a worker restart reach every integration without an
	// override of its own.
	{name: "validation_interval", env: "INTEGRATIONS_VALIDATION_INTERVAL", def: integration.DefaultValidationInterval.String(),
		field: func(c *Config) any { return &c.Policy.ValidationInterval }},
	{name: "setup_reminder_after", env: "INTEGRATIONS_SETUP_REMINDER_AFTER", def: integration.DefaultReminderAfter.String(),
		field: func(c *Config) any { return &c.Policy.ReminderAfter }},
	{name: "setup_abandon_after", env: "INTEGRATIONS_SETUP_ABANDON_AFTER", def: integration.DefaultAbandonAfter.String(),
		field: func(c *Config) any { return &c.Policy.AbandonAfter }},
	{name: "sync_interval", env: "INTEGRATIONS_SYNC_INTERVAL", def: integration.DefaultSyncInterval.String(),
		field: func(c *Config) any { return &c.Policy.SyncInterval }},
	{name: "sync_backoff_initial", env: "INTEGRATIONS_SYNC_BACKOFF_INITIAL", def: integration.DefaultSyncBackoffInitial.String(),
		field: func(c *Config) any { return &c.Policy.SyncBackoffInitial }},
	{name: "sync_backoff_max", env: "INTEGRATIONS_SYNC_BACKOFF_MAX", def: integration.DefaultSyncBackoffMax.String(),
		field: func(c *Config) any { return &c.Policy.SyncBackoffMax }},
	{name: "attention_failures", env: "INTEGRATIONS_ATTENTION_FAILURES", def: strconv.Itoa(integration.DefaultAttentionFailures),
		field: func(c *Config) any { return &c.Policy.Attention.Failures }},
	{name: "attention_after", env: "INTEGRATIONS_ATTENTION_AFTER", def: integration.DefaultAttentionAfter.String(),
		field: func(c *Config) any { return &c.Policy.Attention.After }},
	// The workers' delivery: when a lead that keeps failing on its own is
	// set aside.
	{name: "max_delivery_attempts", env: "INTEGRATIONS_MAX_DELIVERY_ATTEMPTS", def: strconv.Itoa(activities.DefaultMaxDeliveryAttempts),
		field: func(c *Config) any { return &c.MaxDeliveryAttempts }},

	// Lead PII retention: read by the workers' retention job.
	{name: "lead_retention", env: "INTEGRATIONS_LEAD_RETENTION", def: retention.DefaultRetention.String(),
		field: func(c *Config) any { return &c.Retention.Leads }},
	{name: "lead_purge_interval", env: "INTEGRATIONS_LEAD_PURGE_INTERVAL", def: retention.DefaultInterval.String(),
		field: func(c *Config) any { return &c.Retention.PurgeInterval }},

	// Per-provider sections, for the connectors of real CRMs.
	{name: "hubspot_api_url", env: "INTEGRATIONS_HUBSPOT_API_URL", devJSON: "hubspot_api_url", def: "https://api.hubapi.com",
		field: func(c *Config) any { return &c.HubSpot.APIURL }},
	{name: "hubspot_auth_url", env: "INTEGRATIONS_HUBSPOT_AUTH_URL", devJSON: "hubspot_auth_url", def: "https://app.hubspot.com/oauth/authorize",
		field: func(c *Config) any { return &c.HubSpot.AuthURL }},
	{name: "hubspot_client_id", env: "INTEGRATIONS_HUBSPOT_CLIENT_ID", devJSON: "hubspot_client_id",
		field: func(c *Config) any { return &c.HubSpot.ClientID }},
	{name: "hubspot_client_secret", env: "INTEGRATIONS_HUBSPOT_CLIENT_SECRET", secret: true,
		field: func(c *Config) any { return &c.HubSpot.ClientSecret }},
	{name: "salesforce_login_url", env: "INTEGRATIONS_SALESFORCE_LOGIN_URL", devJSON: "salesforce_login_url", def: "https://login.salesforce.com",
		field: func(c *Config) any { return &c.Salesforce.LoginURL }},
	{name: "salesforce_test_login_url", env: "INTEGRATIONS_SALESFORCE_TEST_LOGIN_URL", devJSON: "salesforce_test_login_url", def: "https://test.salesforce.com",
		field: func(c *Config) any { return &c.Salesforce.TestLoginURL }},
	{name: "salesforce_api_version", env: "INTEGRATIONS_SALESFORCE_API_VERSION", def: "v67.0",
		field: func(c *Config) any { return &c.Salesforce.APIVersion }},
	{name: "salesforce_client_id", env: "INTEGRATIONS_SALESFORCE_CLIENT_ID", devJSON: "salesforce_client_id",
		field: func(c *Config) any { return &c.Salesforce.ClientID }},
	{name: "salesforce_client_secret", env: "INTEGRATIONS_SALESFORCE_CLIENT_SECRET", secret: true,
		field: func(c *Config) any { return &c.Salesforce.ClientSecret }},
	{name: "followupboss_api_url", env: "INTEGRATIONS_FOLLOWUPBOSS_API_URL", devJSON: "followupboss_api_url", def: "https://api.followupboss.com",
		field: func(c *Config) any { return &c.FollowUpBoss.APIURL }},
	{name: "followupboss_system", env: "INTEGRATIONS_FOLLOWUPBOSS_SYSTEM", devJSON: "followupboss_system",
		field: func(c *Config) any { return &c.FollowUpBoss.System }},
	{name: "followupboss_system_key", env: "INTEGRATIONS_FOLLOWUPBOSS_SYSTEM_KEY", secret: true,
		field: func(c *Config) any { return &c.FollowUpBoss.SystemKey }},
}

// Inputs are what Load reads besides DATA-DIR/dev.json.
type Inputs struct {
	// Flags are the flags given on the command line, by flag name; only
	// flags the user set belong here (a flag's own default is not a value).
	Flags map[string]string
	// LookupEnv reads the environment; nil reads the process's.
	LookupEnv func(string) (string, bool)
	// NoDevJSON skips dev.json: for `dev`, which writes it.
	NoDevJSON bool
}

// Load resolves every setting once: flag, environment, Temporal profile,
// dev.json, default. A malformed dev.json or an unparsable value is an
// error that names its source.
func Load(in Inputs) (Config, error) {
	lookup := in.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := func(name string) string {
		if name == "" {
			return ""
		}
		// An empty variable is unset, as everywhere in this service.
		v, _ := lookup(name)
		return v
	}
	c := Config{sources: map[string]Source{}}

	// The Temporal client profile from its TOML file (the SDK's envconfig
	// conventions: TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE); the
	// environment is applied below, setting by setting, and for TLS and
	// the rest of the profile by the SDK itself.
	envLookup := envLookup(lookup)
	profile, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{DisableEnv: true, EnvLookup: envLookup})
	if err != nil {
		return Config{}, fmt.Errorf("load the Temporal client profile: %w (check TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE)", err)
	}
	fileProfile := profile
	if err := profile.ApplyEnvVars(envLookup); err != nil {
		return Config{}, fmt.Errorf("load the Temporal client configuration from the environment: %w", err)
	}
	c.temporalProfile = &profile

	var devValues map[string]string
	for i := range settings {
		s := &settings[i]
		value, src := "", Source("")
		switch {
		case s.flag != "" && in.Flags[s.flag] != "":
			value, src = in.Flags[s.flag], SourceFlag
		case env(s.env) != "":
			value, src = env(s.env), SourceEnv
		case s.profile != nil && s.profile(&fileProfile) != "":
			value, src = s.profile(&fileProfile), SourceProfile
		case s.devJSON != "" && devValues[s.devJSON] != "":
			value, src = devValues[s.devJSON], SourceDevJSON
		default:
			value, src = s.def, SourceDefault
			if s.defFunc != nil {
				value = s.defFunc(&c)
			}
		}
		if err := c.set(s, value, src); err != nil {
			return Config{}, err
		}
		if s.name == "data_dir" {
			abs, err := filepath.Abs(c.DataDir)
			if err != nil {
				return Config{}, fmt.Errorf("data dir %s: %w", c.DataDir, err)
			}
			c.DataDir = abs
			// dev.json lives in the data dir: read it once, now.
			if !in.NoDevJSON {
				if c.Dev, err = ReadDevInfo(c.DataDir); err != nil {
					return Config{}, err
				}
				devValues = c.Dev.values()
			}
		}
	}
	return c, nil
}

// Override sets a setting after Load, for a process that decides a value
// itself (dev serves the sandbox on its own address), recording src.
func (c *Config) Override(name, value string, src Source) error {
	for i := range settings {
		if settings[i].name == name {
			return c.set(&settings[i], value, src)
		}
	}
	return fmt.Errorf("no setting named %q", name)
}

// Source says where setting name's value came from ("" for a Config built
// by hand).
func (c Config) Source(name string) Source { return c.sources[name] }

// configured reports whether the named setting was given by a flag or the
// environment (rather than defaulted or taken from the dev stack).
func (c Config) configured(name string) bool {
	src := c.sources[name]
	return src == SourceFlag || src == SourceEnv
}

// set parses value into s's field and records its source.
func (c *Config) set(s *setting, value string, src Source) error {
	if c.sources == nil {
		c.sources = map[string]Source{}
	}
	c.sources[s.name] = src
	where := s.describe(src)
	switch p := s.field(c).(type) {
	case *string:
		*p = value
	case *time.Duration:
		if value == "" {
			*p = 0
			return nil
		}
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: %q is not a positive duration: give one such as 90s, 5m or 1h", where, value)
		}
		*p = d
	case *int:
		if value == "" {
			*p = 0
			return nil
		}
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			return fmt.Errorf("%s: %q is not a positive whole number", where, value)
		}
		*p = n
	default:
		// A programming error in the table, caught by the tests.
		panic(fmt.Sprintf("app: setting %s has a field of unsupported type %T", s.name, p))
	}
	return nil
}

// describe names where a value of s from src was given, for errors.
func (s *setting) describe(src Source) string {
	switch src {
	case SourceFlag:
		return "--" + s.flag
	case SourceEnv:
		return s.env
	case SourceDevJSON:
		return "dev.json " + s.devJSON
	}
	return s.name
}

// value formats s's field ("" when unset).
func (s *setting) value(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *time.Duration:
		if *p == 0 {
			return ""
		}
		return p.String()
	case *int:
		if *p == 0 {
			return ""
		}
		return strconv.Itoa(*p)
	}
	return ""
}

// Setting is one effective setting as `integrations config` shows it.
type Setting struct {
	Name string `json:"-"`
	// Value is the effective value, secrets and passwords redacted.
	Value  string `json:"value"`
	Source Source `json:"source,omitempty"`
	Flag   string `json:"flag,omitempty"`
	Env    string `json:"env,omitempty"`
	// DevJSON is the setting's key in dev.json.
	DevJSON string `json:"dev_json,omitempty"`
	Secret  bool   `json:"secret,omitempty"`
}

// Settings returns every setting's effective value and source, in the
// table's order, with secrets shown only as "set (redacted)" or "not set"
// and the database URL's password hidden.
func (c Config) Settings() []Setting {
	out := make([]Setting, 0, len(settings))
	for i := range settings {
		s := &settings[i]
		v := s.value(&c)
		switch {
		case s.secret && v != "":
			v = "set (redacted)"
		case v == "":
			v = "not set"
		case s.redact != nil:
			v = s.redact(v)
		}
		out = append(out, Setting{Name: s.name, Value: v, Source: c.sources[s.name], Flag: s.flag, Env: s.env, DevJSON: s.devJSON, Secret: s.secret})
	}
	return out
}

// Environ is the configuration as environment variables, for a child
// process of this one that must run with exactly this configuration (the
// benchmark's worker and HTTP API, the crash test's workers): every setting
// that has a variable and a value, secrets included.
func (c Config) Environ() map[string]string {
	out := map[string]string{}
	for i := range settings {
		s := &settings[i]
		if v := s.value(&c); s.env != "" && v != "" {
			out[s.env] = v
		}
	}
	return out
}

// FlagNames are the flags Load reads, for the CLI to pass on those set.
func FlagNames() []string {
	var out []string
	for _, s := range settings {
		if s.flag != "" {
			out = append(out, s.flag)
		}
	}
	return out
}

// RedactURL hides a URL's password before it is shown. A URL that does
// not parse (a '#' or a '/' in the password, say) has everything between
// "://" and its last '@' masked, user and password alike: what it holds
// cannot be told apart, and shown verbatim it would show the password.
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err == nil && !strings.Contains(parsed.Fragment, "@") {
		// lib/pq and pgx take a password as a query parameter too.
		if q := parsed.Query(); q.Has("password") || q.Has("sslpassword") {
			for _, k := range []string{"password", "sslpassword"} {
				if q.Has(k) {
					q.Set(k, "xxxxx")
				}
			}
			parsed.RawQuery = q.Encode()
		}
		return parsed.Redacted()
	}
	// Unparsable, or parsed with the user info cut off into a fragment
	// ("postgres://u:1234#ss@h/db": host u, port 1234).
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(u, "@")
	if at < start {
		// No user info to hide.
		return u
	}
	return u[:start] + "xxxxx" + u[at:]
}

// envLookup adapts a lookup function to the Temporal SDK's EnvLookup.
type envLookup func(string) (string, bool)

// LookupEnv implements envconfig.EnvLookup.
func (l envLookup) LookupEnv(name string) (string, bool) { return l(name) }

// Environ implements envconfig.EnvLookup: the process's TEMPORAL_
// variables as the lookup sees them (the SDK reads gRPC metadata variables
// from it).
func (l envLookup) Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if v, ok := l(name); ok && strings.HasPrefix(name, "TEMPORAL_") {
			out = append(out, name+"="+v)
		}
	}
	return out
}
