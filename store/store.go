// Package store is the SQL data access of the integrations service: the
// projection of integration state (integrations, integration_events), CRM
// credentials, notifications, and the lead flow: lead payloads (leads), their
// delivery to each CRM integration (lead_deliveries) and hashed intake tokens
// (intake_tokens).
//
// CRM credentials (crm_credentials) are versioned ciphertexts: a new
// version is a candidate until validation promotes it, the current one is
// the promoted version of the newest grant, and projecting an integration
// deleted destroys its credentials and intake token (credentials.go).
//
// One Store serves both backends, PostgreSQL (lib/pq) and SQLite
// (modernc.org/sqlite), through one seam: the unexported dialect interface
// (dialect.go), implemented once per database, in postgres.go and in
// sqlite.go. Each implementation owns what differs: the connection pool it
// opens, how it migrates (goose's dialect, a lock or a retry), how a
// transaction is admitted (SQLite queues a process's writers), and every
// statement whose SQL differs, which is where throughput needs a database's
// own form (lead intake on PostgreSQL is one prepared statement, batches
// bind as arrays). Everything else is written once, in SQL both understand
// with ? placeholders rebound per driver, and nothing outside those two
// files asks which database it runs on. The conformance tests run every
// test on both databases, holding the two implementations to one
// behaviour.
//
// Every time the store returns is in UTC and truncated to the microsecond,
// PostgreSQL's resolution, so both backends give back equal values.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/acme/integrations/schema"
)

// ErrNotFound is wrapped by the errors of reads that find no row; test for
// it with errors.Is.
var ErrNotFound = errors.New("not found")

// Store reads and writes the service's tables. It is safe for concurrent
// use, and several processes may open the same database.
type Store struct {
	db *sqlx.DB
	// dialect is what differs between the databases (see dialect.go).
	dialect dialect

	// stmts holds the hot-path statements, prepared on first use (see
	// prepared); stmtsMu guards it.
	stmtsMu sync.Mutex
	stmts   map[string]*sqlx.Stmt
}

// Open connects to databaseURL and checks the connection:
//   - postgres://... or postgresql://... opens PostgreSQL with lib/pq;
//   - sqlite://PATH, sqlite:PATH or a plain file path opens (creating if need
//     be) a SQLite file in WAL mode with a 10 s busy timeout, foreign keys on
//     and immediate transactions, so the dev stack and a CLI in another
//     terminal can share the file. PATH ":memory:" gives a private in-memory
//     database (one connection), for tests.
//
// It does not migrate; call Migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	d, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, dialect: d, stmts: map[string]*sqlx.Stmt{}}, nil
}

// Close closes the prepared statements and the database connections.
func (s *Store) Close() error {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	var errs []error
	for query, stmt := range s.stmts {
		errs = append(errs, stmt.Close())
		delete(s.stmts, query)
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// prepared returns query, written with ? placeholders, as a statement
// prepared on the pool, preparing it on first use. database/sql prepares it
// again on each connection it runs on and keeps it there, so PostgreSQL
// parses and plans it once per connection rather than on every call, and a
// call is one exchange with the server rather than two. For statements on
// the intake and delivery path, which run hundreds of times a second.
func (s *Store) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	if stmt, ok := s.stmts[query]; ok {
		return stmt, nil
	}
	stmt, err := s.db.PreparexContext(ctx, s.db.Rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare statement: %w", err)
	}
	s.stmts[query] = stmt
	return stmt, nil
}

// Backend names the database the store runs on, schema.Postgres or
// schema.SQLite, for reports; the store behaves the same on both.
func (s *Store) Backend() string { return s.dialect.name() }

// Ping checks that the database can be reached, for health checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", s.dialect.name(), err)
	}
	return nil
}

// Migrate applies the pending migrations of schema for the store's dialect.
// It is idempotent, and safe to run from several processes at once (on
// PostgreSQL an advisory lock serialises them; on SQLite the loser of a
// race retries).
func (s *Store) Migrate(ctx context.Context) error {
	fsys, err := schema.FS(s.dialect.name())
	if err != nil {
		return err
	}
	gooseDialect, dialectOpts, err := s.dialect.migration()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	opts := append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}, dialectOpts...)
	provider, err := goose.NewProvider(gooseDialect, s.db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Not provider.Close: it would close the store's connection pool.
	if err := s.dialect.up(ctx, provider); err != nil {
		return fmt.Errorf("migrate %s database: %w", s.dialect.name(), err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil, once the
// dialect admits it (SQLite queues a Store's transactions, see
// sqlite.admit). fn must not call Store methods that start transactions
// themselves.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	release, err := s.dialect.admit(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer release()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// dbTime is how the store writes a time: UTC, at PostgreSQL's microsecond
// resolution, so both backends hold and return the same instant.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// dbTimePtr is dbTime for optional times.
func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}
