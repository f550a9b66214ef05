package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	// Registers the "postgres" driver; its arrays bind whole batches.
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/acme/integrations/schema"
)

// postgresMaxConns bounds a process's PostgreSQL connections, and the pool
// keeps them all open while idle: database/sql keeps 2 idle by default, so
// under concurrent intake most queries would open (and PostgreSQL fork) a
// new connection. Requests beyond it queue in the pool, which is cheaper
// than a connection storm on a small server.
const postgresMaxConns = 24

// postgres is the dialect of PostgreSQL through lib/pq. Where it differs
// from SQLite it is for throughput: the hot statements are single prepared
// statements whatever the batch size, so each call is one exchange with
// the server and one cached plan.
type postgres struct {
	// url is the DATABASE_URL, passed to lib/pq as it is.
	url string
}

func newPostgres(databaseURL string) *postgres { return &postgres{url: databaseURL} }

func (*postgres) name() string { return schema.Postgres }

func (p *postgres) open(ctx context.Context) (*sqlx.DB, error) {
	db, err := sql.Open("postgres", p.url)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", schema.Postgres, err)
	}
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		// The URL may hold a password: name the server, never the URL.
		return nil, fmt.Errorf("connect to PostgreSQL: %w (check DATABASE_URL and that the server is up)", err)
	}
	return sqlx.NewDb(db, "postgres"), nil
}

// migration takes goose's session lock (an advisory lock), so processes
// migrating at once take turns.
func (*postgres) migration() (goose.Dialect, []goose.ProviderOption, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return "", nil, err
	}
	return goose.DialectPostgres, []goose.ProviderOption{goose.WithSessionLocker(locker)}, nil
}

func (*postgres) up(ctx context.Context, provider *goose.Provider) error {
	_, err := provider.Up(ctx)
	return err
}

// admit lets every transaction begin at once: PostgreSQL runs them side by
// side, and the statements that must take turns lock what they need.
func (*postgres) admit(context.Context) (func(), error) { return func() {}, nil }

// postgresIntake is AddLead in one PostgreSQL statement: it reads the lead
// integration, inserts the lead if the integration takes leads and has no
// lead with that external ID, and routes it if the integration is active.
// One statement is one snapshot, so the routing and the returned state
// agree; prepared, it costs one exchange with the server instead of two per
// statement plus BEGIN and COMMIT, and exchanges (and parsing and planning)
// are what bound intake throughput on a small machine. A concurrent insert
// of the same external ID makes ON CONFLICT wait for it to commit and then
// do nothing, so exactly one of them stores the lead. lead_id is NULL when
// nothing was inserted.
//
// The CRM integrations a new lead is routed to are locked FOR SHARE
// (targets): a projection of one of them waits for the intake to commit,
// so the projection of its deleted snapshot then sees, and cancels, the
// delivery this statement created; and an intake that meets a row the
// projection has updated waits for it, re-reads it, and routes nothing to
// a CRM integration that is now deleted. Only new leads take the locks,
// and only for the statement's own short transaction.
const postgresIntake = `WITH owner AS (
	SELECT ` + integrationColumns + ` FROM integrations WHERE id = ?
), inserted AS (
	INSERT INTO leads (lead_integration_id, org_id, public_id, external_id, source, name, first_name, last_name, company, email, phone, message, attributes, received_at)
	SELECT id, org_id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS JSONB), CAST(? AS TIMESTAMPTZ)
	FROM owner
	WHERE kind = 'lead' AND status <> 'deleted'
	ON CONFLICT (lead_integration_id, external_id) DO NOTHING
	RETURNING id, org_id
), targets AS (
	SELECT crm.id
	FROM inserted, owner, integrations crm
	WHERE owner.status = 'active' AND crm.org_id = inserted.org_id AND crm.kind = 'crm' AND crm.status <> 'deleted'
	FOR SHARE OF crm
), routed AS (
	INSERT INTO lead_deliveries (crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at)
	SELECT targets.id, inserted.id, 'pending', 0, '', '', '', CAST(? AS TIMESTAMPTZ)
	FROM inserted, targets
	RETURNING crm_integration_id
)
SELECT owner.*,
	(SELECT id FROM inserted) AS lead_id,
	ARRAY(SELECT crm_integration_id FROM routed ORDER BY crm_integration_id) AS routed
FROM owner`

// intakeRow is the row postgresIntake returns.
type intakeRow struct {
	integrationRow
	LeadID sql.NullInt64  `db:"lead_id"`
	Routed pq.StringArray `db:"routed"`
}

// addLead runs postgresIntake.
func (*postgres) addLead(ctx context.Context, s *Store, row leadRow) (IntakeResult, error) {
	intake, err := s.prepared(ctx, postgresIntake)
	if err != nil {
		return IntakeResult{}, err
	}
	var out intakeRow
	err = intake.GetContext(ctx, &out, row.LeadIntegrationID,
		row.PublicID, row.ExternalID, row.Source, row.Name, row.FirstName, row.LastName, row.Company,
		row.Email, row.Phone, row.Message, row.Attributes, row.ReceivedAt,
		row.ReceivedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return IntakeResult{}, fmt.Errorf("lead integration %q: %w", row.LeadIntegrationID, ErrNotFound)
	}
	if err != nil {
		return IntakeResult{}, fmt.Errorf("insert lead: %w", err)
	}
	if err := checkLeadIntegration(out.integrationRow); err != nil {
		return IntakeResult{}, err
	}
	res := IntakeResult{LeadID: out.LeadID.Int64, Routed: out.Routed}
	if res.Integration, err = out.toState(); err != nil {
		return IntakeResult{}, err
	}
	if len(res.Routed) == 0 {
		res.Routed = nil
	}
	if out.LeadID.Valid {
		res.PublicID = row.PublicID
		return res, nil
	}
	// A duplicate. In a new statement, which sees the conflicting row even
	// if the insert had to wait for it to commit.
	res.Duplicate = true
	if res.LeadID, res.PublicID, err = originalLead(ctx, s.db, row); err != nil {
		return IntakeResult{}, err
	}
	return res, nil
}

// pendingQueryPostgres looks each lead up with a LATERAL subquery with
// LIMIT 1, which the planner cannot flatten: a plain join is planned as a
// hash join over a scan of every lead ever received whenever the leads
// table is small enough to look cheap.
const pendingQueryPostgres = pendingFrom + `CROSS JOIN LATERAL (SELECT * FROM leads WHERE leads.id = d.lead_id LIMIT 1) l
ORDER BY d.lead_id`

func (*postgres) pendingQuery() string { return pendingQueryPostgres }

// completeQueryPostgres records a batch of results in one prepared UPDATE
// whatever its size: the results come as four arrays, unnested into rows.
// The range of their lead IDs bounds the index scan: without it, and
// without statistics (a table autovacuum has not analyzed yet, or a server
// with autovacuum off), PostgreSQL plans a scan of every pending delivery
// of the CRM integration for each batch, which a backlog makes quadratic.
const completeQueryPostgres = `UPDATE lead_deliveries d
SET status = v.status, crm_record_id = v.crm_record_id, reason = v.reason, completed_at = ?
FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[])) AS v(lead_id, status, crm_record_id, reason)
WHERE d.crm_integration_id = ? AND d.lead_id BETWEEN ? AND ? AND d.lead_id = v.lead_id AND d.status = 'pending'`

// completeDeliveries records results with completeQueryPostgres: one
// statement, so all or nothing without a transaction around it.
func (*postgres) completeDeliveries(ctx context.Context, s *Store, crmID string, results []DeliveryResult, at time.Time) error {
	ids := make([]int64, len(results))
	statuses := make([]string, len(results))
	records := make([]string, len(results))
	reasons := make([]string, len(results))
	for i, r := range results {
		ids[i], statuses[i], records[i], reasons[i] = r.LeadID, r.Status, cleanText(r.CRMRecordID), cleanText(r.Reason)
	}
	complete, err := s.prepared(ctx, completeQueryPostgres)
	if err != nil {
		return err
	}
	if _, err := complete.ExecContext(ctx, at, pq.Array(ids), pq.Array(statuses), pq.Array(records), pq.Array(reasons),
		crmID, slices.Min(ids), slices.Max(ids)); err != nil {
		return fmt.Errorf("update lead_deliveries: %w", err)
	}
	return nil
}

// anyLeadID binds the IDs as one array parameter whatever the batch size,
// so the statement has one query plan.
func (*postgres) anyLeadID(query string, args []any, leadIDs []int64) (string, []any, error) {
	return sqlx.Rebind(sqlx.DOLLAR, query+`lead_id = ANY(?)`), append(args, pq.Array(leadIDs)), nil
}

// lockSecrets takes a transaction-scoped advisory lock per integration:
// without it, concurrent adds would read the same MAX(version), and an add
// racing the delete of the integration's secrets could commit after it.
// (The lock's name predates intake tokens; it stays, so processes of
// every release take the same lock.)
func (*postgres) lockSecrets(ctx context.Context, tx *sqlx.Tx, integrationID string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('crm_credentials:' || $1))`, integrationID)
	return err
}

// contactKey folds case in the "C" collation, which lowers ASCII letters
// only, whatever the database's locale: as SQLite's lower() does.
func (*postgres) contactKey(field string) string {
	if field == "phone" {
		return `regexp_replace(phone, '[^0-9]+', '', 'g')`
	}
	return `lower(trim(email) COLLATE "C")`
}
