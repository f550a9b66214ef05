package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/api"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/followupboss"
	"github.com/acme/integrations/crm/hubspot"
	"github.com/acme/integrations/crm/salesforce"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/retention"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/worker"
)

// NudgeTick is how often the HTTP API's coalesced sync nudges go out: the
// floor of the lead-to-CRM latency, and the most signals a CRM workflow
// gets per second from one API process is 1/NudgeTick.
const NudgeTick = 100 * time.Millisecond

// connectorTimeout bounds one CRM call of a connector.
const connectorTimeout = 20 * time.Second

// Service is the service assembled from a Config: the parts a process
// asked New for, the others nil. Start runs what runs in the background,
// Close stops and closes everything New and Start made.
type Service struct {
	Config Config
	Logger *slog.Logger
	Store  *store.Store
	// Keyring seals and opens CRM credentials (nil unless asked for).
	Keyring    *credential.Keyring
	Temporal   client.Client
	Connectors *crm.Registry
	// Starter performs operations on integrations; without Temporal it
	// serves the reads of the projection only.
	Starter *starter.Starter
	// Worker runs the workflows and activities (WithWorker).
	Worker sdkworker.Worker
	// Purger is the lead retention job: Start runs it beside the worker
	// (WithWorker); `leads purge` runs it once.
	Purger *retention.Purger
	// Nudger coalesces the sync nudges of intake (WithNudger, WithHTTP).
	Nudger *starter.Nudger
	// Handler is the HTTP API (WithHTTP), and HTTP its server once
	// Start listens on Config.HTTPAddr.
	Handler http.Handler
	HTTP    *HTTPServer
	// IntakeHandler is the public routes, partner intake and the OAuth
	// callback, and IntakeHTTP its server on Config.HTTP.IntakeAddr, when
	// that is set (Handler then has no intake, and keeps the callback);
	// both nil otherwise.
	IntakeHandler http.Handler
	IntakeHTTP    *HTTPServer

	fatal   chan error
	closers []func()
}

// options are what a process asks New for.
type options struct {
	logger      *slog.Logger
	migrate     bool
	temporal    bool
	client      client.Client
	wait        time.Duration
	key, devKey bool
	worker      *sdkworker.Options
	http        bool
	nudger      bool
	nudgeTick   time.Duration
	nudgeLog    func(msg string, args ...any)
}

// Option asks New for a part of the service.
type Option func(*options)

// WithLogger logs to l (default: warnings and errors to nowhere).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMigrate applies the database migrations when the store opens.
func WithMigrate() Option { return func(o *options) { o.migrate = true } }

// WithTemporal connects to the configuration's Temporal.
func WithTemporal() Option { return func(o *options) { o.temporal = true } }

// WithTemporalWait connects to Temporal, trying for up to d (worker and
// serve start next to a server that may not answer yet).
func WithTemporalWait(d time.Duration) Option {
	return func(o *options) { o.temporal, o.wait = true, d }
}

// WithTemporalClient uses c (a test's or the dev server's client) instead
// of dialing; Close leaves it open.
func WithTemporalClient(c client.Client) Option {
	return func(o *options) { o.temporal, o.client = true, c }
}

// WithKeyring loads the credentials key, for a process that seals or opens
// credentials: New fails, saying what to set, when there is none it may use.
func WithKeyring() Option { return func(o *options) { o.key = true } }

// WithDevKeyring loads the dev stack's key, creating DATA-DIR/encryption.key
// when it is missing: for `dev` (and the test stacks that stand in for it)
// only, the one process that makes keys.
func WithDevKeyring() Option { return func(o *options) { o.key, o.devKey = true, true } }

// WithWorker builds a worker of the workflows and activities on the
// configured task queue, with the configuration's policy; Start starts it.
func WithWorker(opts sdkworker.Options) Option {
	return func(o *options) { o.temporal, o.key, o.worker = true, true, &opts }
}

// WithNudger makes intake nudge CRM workflows through a coalescing nudger
// that sends every tick; logf reports nudges it could not send (nil: the
// logger's warnings).
func WithNudger(tick time.Duration, logf func(msg string, args ...any)) Option {
	return func(o *options) { o.temporal, o.nudger, o.nudgeTick, o.nudgeLog = true, true, tick, logf }
}

// WithHTTP builds the HTTP API, with a nudger of NudgeTick unless
// WithNudger chose another; Start listens on Config.HTTPAddr, and on
// Config.HTTP.IntakeAddr for partner intake when that is set. New refuses
// HTTP limits that contradict each other.
func WithHTTP() Option {
	return func(o *options) {
		o.temporal, o.key, o.http, o.nudger = true, true, true, true
		if o.nudgeTick == 0 {
			o.nudgeTick = NudgeTick
		}
	}
}

// New assembles the parts of the service that opts ask for, from cfg: the
// store always, then the keyring, the connectors, the Temporal client, the
// starter, the worker and the HTTP API. On an error it closes what it had
// opened.
func New(ctx context.Context, cfg Config, opts ...Option) (svc *Service, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// The worker's policy: every unset field from the defaults (design §2).
	cfg.Policy = cfg.Policy.Or(integration.DefaultPolicy())
	cfg.HTTP = cfg.HTTP.Or(DefaultHTTPConfig())
	s := &Service{Config: cfg, Logger: o.logger, fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", RedactURL(cfg.DatabaseURL), err)
	}
	s.Store = st
	s.onClose(func() { _ = st.Close() })
	if o.migrate {
		if err := st.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", RedactURL(cfg.DatabaseURL), err)
		}
	}
	if o.key {
		if s.Keyring, err = cfg.keyring(o.devKey); err != nil {
			return nil, err
		}
	}
	s.Purger = &retention.Purger{Store: st, Retention: cfg.Retention.Leads, Interval: cfg.Retention.PurgeInterval, Logger: o.logger}
	s.Connectors = connectors(cfg)
	s.Starter = &starter.Starter{Store: st, Keyring: s.Keyring, Connectors: s.Connectors, TaskQueue: cfg.TaskQueue}
	if cfg.PublicURL != "" {
		// Without one the starter refuses OAuth connect, saying to set it.
		s.Starter.OAuthRedirectURL = strings.TrimRight(cfg.PublicURL, "/") + api.OAuthCallbackPath
	}
	if !o.temporal {
		return s, nil
	}

	s.Temporal = o.client
	if s.Temporal == nil {
		tc, err := cfg.dialTemporal(ctx, o.logger, o.wait)
		if err != nil {
			return nil, err
		}
		s.Temporal = tc
		s.onClose(tc.Close)
	}
	s.Starter.Temporal = s.Temporal
	if o.nudger {
		logf := o.nudgeLog
		if logf == nil {
			logf = o.logger.Warn
		}
		s.Nudger = starter.NewNudger(s.Temporal, o.nudgeTick, logf)
		s.Starter.Nudger = s.Nudger
	}
	if o.worker != nil {
		wopts := *o.worker
		// A fatal worker error ends Wait, so the process exits instead of
		// running on without a worker.
		onFatal := wopts.OnFatalError
		wopts.OnFatalError = func(err error) {
			if onFatal != nil {
				onFatal(err)
			}
			select {
			case s.fatal <- err:
			default:
			}
		}
		acts := &activities.Activities{Store: st, Connectors: s.Connectors, Keyring: s.Keyring, Logger: o.logger,
			MaxDeliveryAttempts: cfg.MaxDeliveryAttempts}
		s.Worker = worker.New(s.Temporal, cfg.TaskQueue, acts, cfg.Policy, wopts)
	}
	if o.http {
		if err := cfg.HTTP.check(); err != nil {
			return nil, err
		}
		opts := []api.Option{
			api.WithCommandTimeout(cfg.HTTP.CommandTimeout),
			api.WithIntakeRate(float64(cfg.HTTP.IntakeRate), cfg.HTTP.IntakeBurst),
		}
		if cfg.HTTP.IntakeAddr == "" {
			s.Handler = api.New(s.Starter, o.logger, opts...)
		} else {
			// Partners and customers' browsers (the OAuth callback) reach
			// the intake listener only; the operator routes can sit behind
			// a network boundary of their own.
			s.Handler = api.New(s.Starter, o.logger, append(opts, api.WithRoutes(api.RoutesOperator))...)
			s.IntakeHandler = api.New(s.Starter, o.logger, append(opts, api.WithRoutes(api.RoutesIntake))...)
		}
	}
	return s, nil
}

// connectors is the CRM registry of cfg's provider sections: the sandbox
// CRM, HubSpot (cfg.HubSpot), Salesforce (cfg.Salesforce) and Follow Up
// Boss (cfg.FollowUpBoss).
func connectors(cfg Config) *crm.Registry {
	httpClient := &http.Client{Timeout: connectorTimeout}
	return crm.NewRegistry(
		sandbox.NewConnector(cfg.SandboxURL, httpClient),
		hubspot.New(hubspot.Config{APIURL: cfg.HubSpot.APIURL, AuthURL: cfg.HubSpot.AuthURL, ClientID: cfg.HubSpot.ClientID, ClientSecret: cfg.HubSpot.ClientSecret, HTTPClient: httpClient}),
		followupboss.NewConnector(followupboss.Config{
			APIURL: cfg.FollowUpBoss.APIURL, System: cfg.FollowUpBoss.System, SystemKey: cfg.FollowUpBoss.SystemKey, HTTPClient: httpClient,
		}),
		salesforce.NewConnector(salesforce.Config{
			LoginURL: cfg.Salesforce.LoginURL, TestLoginURL: cfg.Salesforce.TestLoginURL, APIVersion: cfg.Salesforce.APIVersion,
			ClientID: cfg.Salesforce.ClientID, ClientSecret: cfg.Salesforce.ClientSecret, HTTPClient: httpClient,
		}),
	)
}

// Start runs the background parts until ctx ends or Close: the nudger, the
// worker and its lead retention job, the HTTP API on Config.HTTPAddr and,
// when set, partner intake on Config.HTTP.IntakeAddr.
func (s *Service) Start(ctx context.Context) error {
	if s.Nudger != nil {
		nctx, cancel := context.WithCancel(ctx)
		go s.Nudger.Run(nctx)
		s.onClose(cancel)
	}
	if s.Worker != nil {
		if err := s.Worker.Start(); err != nil {
			return fmt.Errorf("start worker on task queue %s: %w", s.Config.TaskQueue, err)
		}
		s.onClose(s.Worker.Stop)
	}
	if s.Worker != nil {
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Purger.Run(pctx)
		}()
		// Stopped before the store closes: a run in flight ends first.
		s.onClose(func() { cancel(); <-done })
	}
	if s.Handler != nil {
		addr := s.Config.HTTPAddr
		if addr == "" {
			// Never every interface by accident.
			addr = DefaultHTTPAddr
		}
		srv, err := Serve(addr, s.Handler, s.Logger, s.Config.HTTP)
		if err != nil {
			return fmt.Errorf("HTTP API: %w", err)
		}
		s.HTTP = srv
		s.onClose(srv.Stop)
	}
	if s.IntakeHandler != nil {
		srv, err := Serve(s.Config.HTTP.IntakeAddr, s.IntakeHandler, s.Logger, s.Config.HTTP)
		if err != nil {
			return fmt.Errorf("HTTP intake: %w", err)
		}
		s.IntakeHTTP = srv
		s.onClose(srv.Stop)
	}
	return nil
}

// Wait blocks until ctx ends (nil) or the worker fails for good (its error).
func (s *Service) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.fatal:
		return fmt.Errorf("worker stopped: %w", err)
	}
}

// Close stops what Start started and closes what New opened, in reverse.
func (s *Service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *Service) onClose(f func()) { s.closers = append(s.closers, f) }
