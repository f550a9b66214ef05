package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
)

// dialect is everything that differs between the databases the store runs
// on. Each database has one implementation in a file of its own, which owns
// its driver and all of its SQL that the other does not share: postgres in
// postgres.go, sqlite in sqlite.go. The rest of the package is written once
// against this seam and SQL both databases understand, so a difference that
// is not a method here is a bug; the conformance tests, which run every test
// on both, are what holds the implementations to one behaviour.
//
// A dialect value belongs to one Store: Open makes a new one for each.
type dialect interface {
	// name is the database's name as package schema and the reports know
	// it: schema.Postgres or schema.SQLite.
	name() string

	// open connects with a pool set up for the database and checks the
	// connection; its errors say what to check, and never hold a password.
	open(ctx context.Context) (*sqlx.DB, error)

	// migration returns goose's dialect and the provider options the
	// database needs beyond the common ones (a migration lock).
	migration() (goose.Dialect, []goose.ProviderOption, error)
	// up applies provider's pending migrations.
	up(ctx context.Context, provider *goose.Provider) error

	// admit waits until this Store may begin a transaction, and returns
	// the function that ends its turn after the commit or rollback.
	admit(ctx context.Context) (release func(), err error)

	// addLead is AddLead after checking the lead (see AddLead for what it
	// must do); its errors need no context beyond the statement's.
	addLead(ctx context.Context, s *Store, row leadRow) (IntakeResult, error)
	// pendingQuery is the statement PendingDeliveriesAfter prepares: it
	// takes the CRM integration ID, the lead ID to read after and the
	// limit, and selects leadColumns and d.attempts in lead order.
	pendingQuery() string
	// completeDeliveries records results (a valid, non-empty batch) as
	// CompleteDeliveries describes, all or none.
	completeDeliveries(ctx context.Context, s *Store, crmID string, results []DeliveryResult, at time.Time) error
	// anyLeadID appends to query, which ends in "AND ", the condition that
	// lead_id is one of leadIDs (not empty), and returns the query ready to
	// run on the store's pool with args and the IDs bound.
	anyLeadID(query string, args []any, leadIDs []int64) (string, []any, error)
	// lockSecrets makes the writes of one integration's secrets take
	// turns within tx: credential adds, so each reads the latest version
	// before it writes the next, and the delete of its credentials and
	// intake token, so nothing is added after it.
	lockSecrets(ctx context.Context, tx *sqlx.Tx, integrationID string) error
}

// parseDatabaseURL picks the dialect of a DATABASE_URL: postgres:// and
// postgresql:// are PostgreSQL, sqlite://, sqlite: and plain paths SQLite.
func parseDatabaseURL(databaseURL string) (dialect, error) {
	switch {
	case strings.TrimSpace(databaseURL) == "":
		return nil, errors.New("no database URL given: set DATABASE_URL to postgres://USER@HOST/DB or a SQLite file path")
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return newPostgres(databaseURL), nil
	case strings.HasPrefix(databaseURL, "sqlite://"):
		return newSQLite(strings.TrimPrefix(databaseURL, "sqlite://"))
	case strings.HasPrefix(databaseURL, "sqlite:"):
		return newSQLite(strings.TrimPrefix(databaseURL, "sqlite:"))
	}
	if scheme, _, ok := strings.Cut(databaseURL, "://"); ok {
		// Only the scheme: the rest may hold credentials.
		return nil, fmt.Errorf("unsupported database URL scheme %q: use postgres://USER@HOST/DB, sqlite://PATH or a SQLite file path", scheme)
	}
	return newSQLite(databaseURL)
}
