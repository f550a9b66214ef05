package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	// Registers the "sqlite" driver, and takes the functions it runs.
	sqlitedriver "modernc.org/sqlite"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/schema"
)

// sqliteDriver is the database/sql name modernc.org/sqlite registers.
const sqliteDriver = "sqlite"

// sqliteBusyTimeout is how long (ms) a SQLite write waits for another
// connection or process holding the write lock, instead of failing at once
// with "database is locked".
const sqliteBusyTimeout = 10000

// completeChunk is how many results one SQLite UPDATE completes: 4
// parameters each stays far below SQLite's parameter limit.
const completeChunk = 500

// sqliteDigitsFunc is the SQL function, registered with the driver, that
// keeps a text's ASCII digits: SQLite has no regexp_replace.
const sqliteDigitsFunc = "integrations_digits"

func init() {
	// sqlx knows modernc's driver name only as "sqlite3"; tell it that
	// "sqlite" also takes ? placeholders so named queries bind correctly.
	sqlx.BindDriver(sqliteDriver, sqlx.QUESTION)
	err := sqlitedriver.RegisterDeterministicScalarFunction(sqliteDigitsFunc, 1, func(_ *sqlitedriver.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return asciiDigits(v), nil
		case nil:
			return nil, nil
		}
		return nil, fmt.Errorf("%s takes text", sqliteDigitsFunc)
	})
	if err != nil {
		// Only a second registration of the name fails: a programming error.
		panic(fmt.Sprintf("store: register SQLite function %s: %v", sqliteDigitsFunc, err))
	}
}

// sqlite is the dialect of SQLite through modernc.org/sqlite, in process.
// A statement costs no round trip, so where PostgreSQL needs one clever
// statement SQLite takes a transaction of plain ones; and since SQLite has
// one writer at a time, this Store's transactions queue for it in process.
type sqlite struct {
	// dsn is the file path (or :memory:) with the connection parameters.
	dsn string
	// writer is a one-slot semaphore that the Store's transactions take in
	// turn (see admit).
	writer chan struct{}
}

// newSQLite returns the dialect for the SQLite database at path, which may
// end in ?parameters for the driver.
func newSQLite(path string) (*sqlite, error) {
	path, userQuery, _ := strings.Cut(path, "?")
	if path == "" {
		return nil, errors.New("SQLite database URL has no file path: use sqlite://PATH, e.g. sqlite://.data/integrations.db")
	}
	query, err := url.ParseQuery(userQuery)
	if err != nil {
		return nil, fmt.Errorf("SQLite database URL has bad parameters after '?': %w", err)
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
	return &sqlite{dsn: path + "?" + query.Encode(), writer: make(chan struct{}, 1)}, nil
}

func (*sqlite) name() string { return schema.SQLite }

// path is the database file's path, without the parameters.
func (d *sqlite) path() string {
	path, _, _ := strings.Cut(d.dsn, "?")
	return path
}

func (d *sqlite) open(ctx context.Context) (*sqlx.DB, error) {
	db, err := sql.Open(sqliteDriver, d.dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", schema.SQLite, err)
	}
	if path := d.path(); path == ":memory:" || strings.Contains(path, "mode=memory") {
		// Each connection to :memory: is a database of its own; keep one.
		db.SetMaxOpenConns(1)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open SQLite database %s: %w (check that its directory exists and is writable)", d.path(), err)
	}
	return sqlx.NewDb(db, sqliteDriver), nil
}

// migration takes no lock: SQLite has none goose can take (see up).
func (*sqlite) migration() (goose.Dialect, []goose.ProviderOption, error) {
	return goose.DialectSQLite3, nil, nil
}

// up tries twice: without a lock, two processes starting together can race
// to create the same tables, and the loser finds the work done when it
// looks again.
func (*sqlite) up(ctx context.Context, provider *goose.Provider) error {
	if _, err := provider.Up(ctx); err == nil {
		return nil
	}
	_, err := provider.Up(ctx)
	return err
}

// admit queues the Store's transactions on its semaphore. Every SQLite
// transaction takes the database's write lock at BEGIN (immediate), so they
// run one at a time anyway; within this process they wait here instead of
// on SQLite's busy handler, which polls with sleeps of up to 100 ms and
// under load lets a waiter lose to newcomers again and again. The busy
// timeout still arbitrates between processes.
func (d *sqlite) admit(ctx context.Context) (func(), error) {
	select {
	case d.writer <- struct{}{}:
		return func() { <-d.writer }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// addLead is a transaction of a few statements, which cost no round trips
// in process. The transaction holds the write lock from BEGIN, so what it
// reads cannot change before it commits.
func (*sqlite) addLead(ctx context.Context, s *Store, row leadRow) (IntakeResult, error) {
	var res IntakeResult
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res = IntakeResult{}
		var owner integrationRow
		q := tx.Rebind(`SELECT ` + integrationColumns + ` FROM integrations WHERE id = ?`)
		if err := sqlx.GetContext(ctx, tx, &owner, q, row.LeadIntegrationID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("lead integration %q: %w", row.LeadIntegrationID, ErrNotFound)
			}
			return fmt.Errorf("read lead integration: %w", err)
		}
		if err := checkLeadIntegration(owner); err != nil {
			return err
		}
		var err error
		if res.Integration, err = owner.toState(); err != nil {
			return err
		}
		row.OrgID = owner.OrgID

		if res.LeadID, res.PublicID, res.Duplicate, err = insertLead(ctx, tx, row); err != nil || res.Duplicate {
			return err
		}
		if owner.Status != string(integration.StatusActive) {
			return nil
		}
		res.Routed, err = routeLead(ctx, tx, res.LeadID, owner.OrgID, row.ReceivedAt)
		return err
	})
	return res, err
}

// insertLead inserts row unless its lead integration already has a lead
// with that external ID, and returns the ID and public ID of the stored
// lead, new or original.
func insertLead(ctx context.Context, tx *sqlx.Tx, row leadRow) (id int64, publicID string, duplicate bool, err error) {
	q := tx.Rebind(`INSERT INTO leads (lead_integration_id, org_id, public_id, external_id, source,
	name, first_name, last_name, company, email, phone, message, attributes, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (lead_integration_id, external_id) DO NOTHING
RETURNING id`)
	err = sqlx.GetContext(ctx, tx, &id, q, row.LeadIntegrationID, row.OrgID, row.PublicID, row.ExternalID, row.Source,
		row.Name, row.FirstName, row.LastName, row.Company, row.Email, row.Phone, row.Message, row.Attributes, row.ReceivedAt)
	if err == nil {
		return id, row.PublicID, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, fmt.Errorf("insert lead: %w", err)
	}
	id, publicID, err = originalLead(ctx, tx, row)
	return id, publicID, true, err
}

// routeLead creates a pending delivery of lead leadID for every CRM
// integration of org that is not deleted, in one statement, and returns
// those integrations' IDs, sorted. The transaction holds the database's
// write lock, so the projection of a CRM integration's deleted snapshot
// (which cancels its pending deliveries) runs wholly before or after it.
func routeLead(ctx context.Context, tx *sqlx.Tx, leadID int64, org string, at time.Time) ([]string, error) {
	q := tx.Rebind(`INSERT INTO lead_deliveries (crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at)
SELECT id, ?, 'pending', 0, '', '', '', ?
FROM integrations
WHERE org_id = ? AND kind = 'crm' AND status <> 'deleted'
RETURNING crm_integration_id`)
	var routed []string
	if err := sqlx.SelectContext(ctx, tx, &routed, q, leadID, at, org); err != nil {
		return nil, fmt.Errorf("route lead %d: %w", leadID, err)
	}
	slices.Sort(routed)
	return routed, nil
}

// pendingQuerySQLite joins the leads plainly; SQLite looks each one up by
// its primary key.
const pendingQuerySQLite = pendingFrom + `JOIN leads l ON l.id = d.lead_id
ORDER BY d.lead_id`

func (*sqlite) pendingQuery() string { return pendingQuerySQLite }

// completeDeliveries records results in one transaction, completeChunk
// results to a statement.
func (*sqlite) completeDeliveries(ctx context.Context, s *Store, crmID string, results []DeliveryResult, at time.Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for chunk := range slices.Chunk(results, completeChunk) {
			if err := completeChunkSQLite(ctx, tx, crmID, chunk, at); err != nil {
				return err
			}
		}
		return nil
	})
}

// completeChunkSQLite records results in one UPDATE joined with a VALUES
// list, whose columns SQLite names column1, column2, ...
func completeChunkSQLite(ctx context.Context, tx *sqlx.Tx, crmID string, results []DeliveryResult, at time.Time) error {
	var values strings.Builder
	args := make([]any, 0, 2+4*len(results))
	args = append(args, at)
	for i, r := range results {
		if i > 0 {
			values.WriteString(", ")
		}
		// The cast keeps the lead ID an integer for the comparison.
		values.WriteString("(CAST(? AS BIGINT), ?, ?, ?)")
		args = append(args, r.LeadID, r.Status, cleanText(r.CRMRecordID), cleanText(r.Reason))
	}
	args = append(args, crmID)
	q := tx.Rebind(`UPDATE lead_deliveries
SET status = v.column2, crm_record_id = v.column3, reason = v.column4, completed_at = ?
FROM (VALUES ` + values.String() + `) AS v
WHERE lead_deliveries.crm_integration_id = ? AND lead_deliveries.lead_id = v.column1 AND lead_deliveries.status = 'pending'`)
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("update lead_deliveries: %w", err)
	}
	return nil
}

// anyLeadID lists the IDs as parameters of an IN list.
func (*sqlite) anyLeadID(query string, args []any, leadIDs []int64) (string, []any, error) {
	return sqlx.In(query+`lead_id IN (?)`, append(args, leadIDs)...)
}

// lockSecrets has nothing to do: the transaction holds the database's
// write lock from BEGIN, so secret writes take turns already.
func (*sqlite) lockSecrets(context.Context, *sqlx.Tx, string) error { return nil }

// contactKey uses SQLite's lower(), which lowers ASCII letters only, and
// the digits function registered in init.
func (*sqlite) contactKey(field string) string {
	if field == "phone" {
		return sqliteDigitsFunc + `(phone)`
	}
	return `lower(trim(email))`
}
