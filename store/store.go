// Package store is the SQL data access of the integrations service: the
// projection of integration state (integrations, integration_events), CRM
// credentials, notifications, and the lead flow: lead payloads (leads), their
// delivery to each CRM integration (lead_deliveries) and hashed intake tokens
// (intake_tokens). One Store serves both backends, PostgreSQL
// (lib/pq) and SQLite (modernc.org/sqlite); queries are written once in SQL
// both understand, with ? placeholders rebound per driver, except where
// throughput needs a dialect's own form (lead intake on PostgreSQL is one
// prepared statement). The conformance tests hold both paths to the same
// behaviour.
//
// Every time the store returns is in UTC and truncated to the microsecond,
// PostgreSQL's resolution, so both backends give back equal values.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	// The drivers register as "postgres" and "sqlite".
	_ "github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite"

	"github.com/acme/integrations/schema"
)

// ErrNotFound is wrapped by the errors of reads that find no row; test for
// it with errors.Is.
var ErrNotFound = errors.New("not found")

// sqliteDriver is the database/sql name modernc.org/sqlite registers.
const sqliteDriver = "sqlite"

// sqliteBusyTimeout is how long (ms) a SQLite write waits for another
// connection or process holding the write lock, instead of failing at once
// with "database is locked".
const sqliteBusyTimeout = 10000

// postgresMaxConns bounds a process's PostgreSQL connections, and the pool
// keeps them all open while idle: database/sql keeps 2 idle by default, so
// under concurrent intake most queries would open (and PostgreSQL fork) a
// new connection. Requests beyond it queue in the pool, which is cheaper
// than a connection storm on a small server.
const postgresMaxConns = 24

func init() {
	// sqlx knows modernc's driver name only as "sqlite3"; tell it that
	// "sqlite" also takes ? placeholders so named queries bind correctly.
	sqlx.BindDriver(sqliteDriver, sqlx.QUESTION)
}

// Store reads and writes the service's tables. It is safe for concurrent
// use, and several processes may open the same database.
type Store struct {
	db      *sqlx.DB
	dialect string

	// stmts holds the hot-path statements, prepared on first use (see
	// prepared); stmtsMu guards it.
	stmtsMu sync.Mutex
	stmts   map[string]*sqlx.Stmt

	// sqliteWriter is a one-slot semaphore that SQLite transactions of this
	// Store take in turn (see inTx); nil on PostgreSQL.
	sqliteWriter chan struct{}
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
	dialect, dsn, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	driverName := dialect
	if dialect == schema.SQLite {
		driverName = sqliteDriver
	}
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == schema.Postgres {
		db.SetMaxOpenConns(postgresMaxConns)
		db.SetMaxIdleConns(postgresMaxConns)
	}
	if dialect == schema.SQLite && isSQLiteMemory(dsn) {
		// Each connection to :memory: is a database of its own; keep one.
		db.SetMaxOpenConns(1)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		if dialect == schema.SQLite {
			return nil, fmt.Errorf("open SQLite database %s: %w (check that its directory exists and is writable)", sqlitePath(dsn), err)
		}
		// The URL may hold a password: name the server, never the URL.
		return nil, fmt.Errorf("connect to PostgreSQL: %w (check DATABASE_URL and that the server is up)", err)
	}
	st := &Store{db: sqlx.NewDb(db, driverName), dialect: dialect, stmts: map[string]*sqlx.Stmt{}}
	if dialect == schema.SQLite {
		st.sqliteWriter = make(chan struct{}, 1)
	}
	return st, nil
}

// parseDatabaseURL maps a DATABASE_URL to a dialect and a driver DSN.
func parseDatabaseURL(databaseURL string) (dialect, dsn string, err error) {
	var path string
	switch {
	case strings.TrimSpace(databaseURL) == "":
		return "", "", errors.New("no database URL given: set DATABASE_URL to postgres://USER@HOST/DB or a SQLite file path")
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return schema.Postgres, databaseURL, nil
	case strings.HasPrefix(databaseURL, "sqlite://"):
		path = strings.TrimPrefix(databaseURL, "sqlite://")
	case strings.HasPrefix(databaseURL, "sqlite:"):
		path = strings.TrimPrefix(databaseURL, "sqlite:")
	default:
		if scheme, _, ok := strings.Cut(databaseURL, "://"); ok {
			// Only the scheme: the rest may hold credentials.
			return "", "", fmt.Errorf("unsupported database URL scheme %q: use postgres://USER@HOST/DB, sqlite://PATH or a SQLite file path", scheme)
		}
		path = databaseURL
	}
	path, userQuery, _ := strings.Cut(path, "?")
	if path == "" {
		return "", "", errors.New("SQLite database URL has no file path: use sqlite://PATH, e.g. sqlite://.data/integrations.db")
	}
	query, err := url.ParseQuery(userQuery)
	if err != nil {
		return "", "", fmt.Errorf("SQLite database URL has bad parameters after '?': %w", err)
	}
	// Applied on every connection. busy_timeout makes writers queue instead
	// of failing; WAL lets readers run beside the writer; immediate
	// transactions take the write lock at BEGIN, where the busy timeout
	// applies, rather than failing when a read upgrades to a write. Times
	// are written as sortable UTC text the driver parses back.
	query.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout))
	query.Add("_pragma", "journal_mode(WAL)")
	query.Add("_pragma", "foreign_keys(1)")
	query.Add("_pragma", "synchronous(NORMAL)")
	query.Set("_txlock", "immediate")
	query.Set("_time_format", "sqlite")
	query.Set("_timezone", "UTC")
	return schema.SQLite, path + "?" + query.Encode(), nil
}

func sqlitePath(dsn string) string {
	path, _, _ := strings.Cut(dsn, "?")
	return path
}

func isSQLiteMemory(dsn string) bool {
	path := sqlitePath(dsn)
	return path == ":memory:" || strings.Contains(path, "mode=memory")
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

// Dialect is "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// DB is the underlying connection pool, for queries the store does not
// offer. Write SQL both dialects accept, with ? placeholders and DB().Rebind.
func (s *Store) DB() *sqlx.DB { return s.db }

// Migrate applies the pending migrations of schema for the store's dialect.
// It is idempotent, and safe to run from several processes at once on
// PostgreSQL (an advisory lock serialises them).
func (s *Store) Migrate(ctx context.Context) error {
	fsys, err := schema.FS(s.dialect)
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	gooseDialect := goose.DialectSQLite3
	if s.dialect == schema.Postgres {
		gooseDialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, s.db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Not provider.Close: it would close the store's connection pool.
	_, err = provider.Up(ctx)
	if err != nil && s.dialect == schema.SQLite {
		// SQLite has no lock goose can take, so two processes starting
		// together can race to create the same tables; the loser finds
		// the work done when it looks again.
		_, err = provider.Up(ctx)
	}
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", s.dialect, err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil. fn must
// not call Store methods that start transactions themselves.
//
// On SQLite every transaction takes the database's write lock at BEGIN
// (immediate), so they run one at a time anyway. Within this process they
// queue on a semaphore instead of on SQLite's busy handler, which polls with
// sleeps of up to 100 ms and under load lets a waiter lose to newcomers
// again and again; the busy timeout still arbitrates between processes.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if s.sqliteWriter != nil {
		select {
		case s.sqliteWriter <- struct{}{}:
			defer func() { <-s.sqliteWriter }()
		case <-ctx.Done():
			return fmt.Errorf("begin transaction: %w", ctx.Err())
		}
	}
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
