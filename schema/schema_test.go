package schema_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"
	// The SQLite driver registers itself as "sqlite" (testenv brings lib/pq).
	_ "modernc.org/sqlite"

	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/schema"
)

// testBundle is a database of one dialect and a goose provider over its
// migrations.
type testBundle struct {
	ctx      context.Context
	dialect  string
	db       *sql.DB
	provider *goose.Provider
}

// setup connects to db and builds a goose provider for its dialect.
func setup(t *testing.T, db testenv.Database) *testBundle {
	t.Helper()
	driver, dsn, gooseDialect := "postgres", db.URL, goose.DialectPostgres
	if db.Name == schema.SQLite {
		driver, dsn, gooseDialect = "sqlite", strings.TrimPrefix(db.URL, "sqlite://"), goose.DialectSQLite3
	}
	conn, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, conn.Close()) })
	fsys, err := schema.FS(db.Name)
	require.NoError(t, err)
	provider, err := goose.NewProvider(gooseDialect, conn, fsys, goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	return &testBundle{ctx: t.Context(), dialect: db.Name, db: conn, provider: provider}
}

func migrationNames(t *testing.T, dialect string) []string {
	t.Helper()
	fsys, err := schema.FS(dialect)
	require.NoError(t, err)
	names, err := fs.Glob(fsys, "*.sql")
	require.NoError(t, err)
	return names
}

func TestFS(t *testing.T) {
	t.Parallel()

	t.Run("DialectsHaveTheSameNumberedMigrations", func(t *testing.T) {
		t.Parallel()
		postgres := migrationNames(t, schema.Postgres)
		require.NotEmpty(t, postgres)
		require.Equal(t, postgres, migrationNames(t, schema.SQLite))
		for i, name := range postgres {
			require.Regexp(t, `^\d{5}_[a-z0-9_]+\.sql$`, name)
			require.True(t, strings.HasPrefix(name, fmt.Sprintf("%05d_", i+1)), "migrations are numbered 1, 2, ... without gaps: %s", name)
		}
	})

	t.Run("EveryTableAndColumnIsDocumented", func(t *testing.T) {
		t.Parallel()
		for _, dialect := range schema.Dialects {
			fsys, err := schema.FS(dialect)
			require.NoError(t, err)
			for _, name := range migrationNames(t, dialect) {
				body, err := fs.ReadFile(fsys, name)
				require.NoError(t, err)
				require.Contains(t, string(body), "-- +goose Up")
				require.Contains(t, string(body), "-- +goose Down")
				for _, missing := range undocumented(string(body)) {
					t.Errorf("%s/%s: %s has no comment line above it", dialect, name, missing)
				}
			}
		}
	})

	t.Run("RejectsUnknownDialect", func(t *testing.T) {
		t.Parallel()
		_, err := schema.FS("mysql")
		require.ErrorContains(t, err, `unknown SQL dialect "mysql"`)
	})
}

// undocumented lists the CREATE TABLE statements and column definitions
// of a migration that are not directly preceded by a -- comment line.
func undocumented(migration string) []string {
	var missing []string
	inTable, prev := false, ""
	column := regexp.MustCompile(`^\s*([a-z_]+)\s+[A-Z]`)
	scanner := bufio.NewScanner(strings.NewReader(migration))
	for scanner.Scan() {
		line := scanner.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "CREATE TABLE"):
			if !strings.HasPrefix(prev, "--") {
				missing = append(missing, trimmed)
			}
			inTable = true
		case inTable && strings.HasPrefix(trimmed, ");"):
			inTable = false
		case inTable && !strings.HasPrefix(trimmed, "--") && !strings.HasPrefix(trimmed, "UNIQUE") && !strings.HasPrefix(trimmed, "PRIMARY KEY"):
			if m := column.FindStringSubmatch(line); m != nil && !strings.HasPrefix(prev, "--") {
				missing = append(missing, "column "+m[1])
			}
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	return missing
}

// allTables are the application tables the migrations create (design §4).
var allTables = []string{
	"integrations", "integration_events", "crm_credentials", "notifications",
	"leads", "lead_deliveries", "intake_tokens", "api_keys", "oauth_states", "crm_quotas",
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		// The highest number: until every branch's migrations are merged,
		// a branch may hold a later one without the ones before it.
		names := migrationNames(t, db.Name)
		want, err := strconv.ParseInt(names[len(names)-1][:5], 10, 64)
		require.NoError(t, err)

		_, err = b.provider.Up(b.ctx)
		require.NoError(t, err)
		version, err := b.provider.GetDBVersion(b.ctx)
		require.NoError(t, err)
		require.Equal(t, want, version)
		require.ElementsMatch(t, allTables, tables(t, b))

		// Up again is a no-op.
		results, err := b.provider.Up(b.ctx)
		require.NoError(t, err)
		require.Empty(t, results)

		// Each migration's down undoes only its own up.
		_, err = b.provider.DownTo(b.ctx, 1)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"integrations", "integration_events", "crm_credentials", "notifications"}, tables(t, b))

		_, err = b.provider.DownTo(b.ctx, 0)
		require.NoError(t, err)
		require.Empty(t, tables(t, b), "down migrations drop everything up created")

		_, err = b.provider.Up(b.ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, allTables, tables(t, b))
	})
}

// TestDialectsDefineTheSameColumns migrates both backends and compares
// their tables and columns, which are the backend contract.
func TestDialectsDefineTheSameColumns(t *testing.T) {
	t.Parallel()
	columnsOf := map[string]map[string][]string{}
	for _, b := range migratedDialects(t) {
		columnsOf[b.dialect] = map[string][]string{}
		for _, table := range tables(t, b) {
			columnsOf[b.dialect][table] = columns(t, b, table)
		}
	}
	require.Equal(t, columnsOf[schema.Postgres], columnsOf[schema.SQLite])
	require.Contains(t, columnsOf[schema.SQLite]["integrations"], "version")
}

// TestDialectsDefineTheSameIndexes migrates both backends and compares the
// indexes the migrations create by name (not those behind primary keys and
// unique constraints, which each backend names its own way): the queries
// the store runs on both rely on them.
func TestDialectsDefineTheSameIndexes(t *testing.T) {
	t.Parallel()
	indexesOf := map[string][]string{}
	for _, b := range migratedDialects(t) {
		q := `SELECT indexname FROM pg_indexes WHERE schemaname = 'public'
AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname`
		if b.dialect == schema.SQLite {
			q = `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name`
		}
		indexesOf[b.dialect] = queryStrings(t, b, q)
	}
	require.Equal(t, indexesOf[schema.Postgres], indexesOf[schema.SQLite])
	require.Contains(t, indexesOf[schema.SQLite], "lead_deliveries_pending_idx")
	require.NotContains(t, indexesOf[schema.SQLite], "lead_deliveries_status_idx", "replaced by the pending index (00004)")
}

// migratedDialects returns a fresh PostgreSQL and a fresh SQLite database,
// each migrated all the way up, for tests that compare the two.
func migratedDialects(t *testing.T) []*testBundle {
	t.Helper()
	var out []*testBundle
	for _, db := range []testenv.Database{
		{Name: schema.Postgres, URL: testenv.PostgresURL(t)},
		{Name: schema.SQLite, URL: testenv.SQLiteURL(t)},
	} {
		b := setup(t, db)
		_, err := b.provider.Up(b.ctx)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

// tables lists the application tables (not goose's).
func tables(t *testing.T, b *testBundle) []string {
	t.Helper()
	q := `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`
	if b.dialect == schema.SQLite {
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('goose_db_version', 'sqlite_sequence')`
	}
	return queryStrings(t, b, q)
}

// columns lists the columns of table, sorted.
func columns(t *testing.T, b *testBundle, table string) []string {
	t.Helper()
	q := `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '` + table + `'`
	if b.dialect == schema.SQLite {
		q = `SELECT name FROM pragma_table_info('` + table + `')`
	}
	cols := queryStrings(t, b, q)
	sort.Strings(cols)
	return cols
}

func queryStrings(t *testing.T, b *testBundle, q string) []string {
	t.Helper()
	rows, err := b.db.QueryContext(b.ctx, q)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestCandidateCredentialsMigration checks what 00006 makes of the
// credentials stored before it: each version is promoted (it was in use),
// a grant of its own, in the legacy format; and that its down migration
// drops what the old rule would have put in use unvalidated.
func TestCandidateCredentialsMigration(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		_, err := b.provider.UpTo(b.ctx, 4)
		require.NoError(t, err)
		created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		insert := `INSERT INTO crm_credentials (integration_id, version, ciphertext, created_at) VALUES ($1, $2, $3, $4)`
		if b.dialect == schema.SQLite {
			insert = `INSERT INTO crm_credentials (integration_id, version, ciphertext, created_at) VALUES (?, ?, ?, ?)`
		}
		for v := 1; v <= 2; v++ {
			_, err := b.db.ExecContext(b.ctx, insert, "crm-old", v, []byte{0xaa, byte(v)}, created.Add(time.Duration(v)*time.Hour))
			require.NoError(t, err)
		}

		_, err = b.provider.UpTo(b.ctx, 6)
		require.NoError(t, err)
		rows, err := b.db.QueryContext(b.ctx, `SELECT version, grant_version, key_id, promoted_at, created_at FROM crm_credentials ORDER BY version`)
		require.NoError(t, err)
		var n int
		for rows.Next() {
			var version, grant int
			var keyID string
			var promoted, at time.Time
			require.NoError(t, rows.Scan(&version, &grant, &keyID, &promoted, &at))
			n++
			require.Equal(t, n, version)
			require.Equal(t, version, grant, "a grant of its own")
			require.Empty(t, keyID, "the legacy format")
			require.True(t, promoted.Equal(at), "in use, so promoted when it was stored")
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Equal(t, 2, n)

		// A candidate, then down: the old rule would make it current.
		candidate := `INSERT INTO crm_credentials (integration_id, version, grant_version, ciphertext, created_at) VALUES ($1, 3, 3, $2, $3)`
		if b.dialect == schema.SQLite {
			candidate = `INSERT INTO crm_credentials (integration_id, version, grant_version, ciphertext, created_at) VALUES (?, 3, 3, ?, ?)`
		}
		_, err = b.db.ExecContext(b.ctx, candidate, "crm-old", []byte{0xbb}, created)
		require.NoError(t, err)
		_, err = b.provider.DownTo(b.ctx, 4)
		require.NoError(t, err)
		var versions []string
		versions = queryStrings(t, b, `SELECT CAST(version AS TEXT) FROM crm_credentials ORDER BY version`)
		require.Equal(t, []string{"1", "2"}, versions)
	})
}

// TestLeadLifecycleMigration checks what 00008 makes of the leads and
// deliveries stored before it: every lead gets a distinct public ID of the
// form the store gives, empty name parts and company, and its payload
// kept; the deliveries are all still there and may now be cancelled or
// set aside; down removes the new columns and keeps the data.
func TestLeadLifecycleMigration(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		_, err := b.provider.UpTo(b.ctx, 4)
		require.NoError(t, err)
		bind := func(q string) string {
			if b.dialect == schema.SQLite {
				return q
			}
			n := 0
			return regexp.MustCompile(`\?`).ReplaceAllStringFunc(q, func(string) string { n++; return fmt.Sprintf("$%d", n) })
		}
		received := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		for i := 1; i <= 3; i++ {
			_, err := b.db.ExecContext(b.ctx, bind(`INSERT INTO leads (lead_integration_id, org_id, external_id, source, name, email, received_at)
VALUES ('lead-old', 'org', ?, 'Z', ?, 'ada@example.org', ?)`), fmt.Sprintf("ext-%d", i), fmt.Sprintf("Ada %d", i), received)
			require.NoError(t, err)
			_, err = b.db.ExecContext(b.ctx, bind(`INSERT INTO lead_deliveries (crm_integration_id, lead_id, status, created_at) VALUES ('crm-old', ?, 'pending', ?)`), i, received)
			require.NoError(t, err)
		}

		_, err = b.provider.UpTo(b.ctx, 8)
		require.NoError(t, err)
		rows, err := b.db.QueryContext(b.ctx, `SELECT id, public_id, name, first_name, last_name, company, email, purge_reason FROM leads ORDER BY id`)
		require.NoError(t, err)
		seen := map[string]bool{}
		for rows.Next() {
			var id int
			var publicID, name, first, last, company, email, purgeReason string
			require.NoError(t, rows.Scan(&id, &publicID, &name, &first, &last, &company, &email, &purgeReason))
			require.Regexp(t, `^ld_[0-9a-f]{32}$`, publicID)
			require.False(t, seen[publicID], "public IDs are distinct")
			seen[publicID] = true
			require.Equal(t, fmt.Sprintf("Ada %d", id), name, "the payload is kept")
			require.Equal(t, "ada@example.org", email)
			require.Empty(t, first+last+company+purgeReason)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Len(t, seen, 3)
		var deliveries int
		require.NoError(t, b.db.QueryRowContext(b.ctx, `SELECT COUNT(*) FROM lead_deliveries WHERE status = 'pending'`).Scan(&deliveries))
		require.Equal(t, 3, deliveries, "every delivery kept")
		for i, status := range map[int]string{1: "cancelled", 2: "gave_up"} {
			_, err := b.db.ExecContext(b.ctx, bind(`UPDATE lead_deliveries SET status = ? WHERE lead_id = ?`), status, i)
			require.NoError(t, err, status)
		}
		_, err = b.db.ExecContext(b.ctx, `UPDATE lead_deliveries SET status = 'lost' WHERE lead_id = 3`)
		require.Error(t, err, "the status set is still checked")
		_, err = b.db.ExecContext(b.ctx, `UPDATE leads SET public_id = (SELECT public_id FROM leads WHERE id = 1) WHERE id = 2`)
		require.Error(t, err, "public IDs are unique")

		_, err = b.provider.DownTo(b.ctx, 4)
		require.NoError(t, err)
		require.NotContains(t, columns(t, b, "leads"), "public_id")
		var names int
		require.NoError(t, b.db.QueryRowContext(b.ctx, `SELECT COUNT(*) FROM leads WHERE name LIKE 'Ada %'`).Scan(&names))
		require.Equal(t, 3, names)
	})
}

// TestDeliveryOutcomesMigration checks what 00007 does to the deliveries
// stored before it: every row and column kept, solo_failures 0, the new
// statuses accepted (and unknown ones still refused); and that its down
// migration turns gave_up and cancelled into rejected, which the old
// statuses can hold, keeping the rest.
func TestDeliveryOutcomesMigration(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		_, err := b.provider.UpTo(b.ctx, 4)
		require.NoError(t, err)
		bind := func(q string) string {
			if b.dialect == schema.SQLite {
				return q
			}
			for i := 1; strings.Contains(q, "?"); i++ {
				q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
			}
			return q
		}
		exec := func(q string, args ...any) error {
			_, err := b.db.ExecContext(b.ctx, bind(q), args...)
			return err
		}
		created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		for i, status := range []string{"pending", "delivered", "rejected"} {
			require.NoError(t, exec(`INSERT INTO leads (id, lead_integration_id, org_id, external_id, source, received_at) VALUES (?, 'lead-1', 'org', ?, 's', ?)`,
				i+1, fmt.Sprintf("x-%d", i), created))
			require.NoError(t, exec(`INSERT INTO lead_deliveries (crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at)
VALUES ('crm-1', ?, ?, ?, 'e', 'r', ?, ?)`, i+1, status, i, "why-"+status, created))
		}

		_, err = b.provider.UpTo(b.ctx, 7)
		require.NoError(t, err)
		rows := func() []string {
			return queryStrings(t, b, `SELECT status || ' ' || CAST(attempts AS TEXT) || ' ' || last_error || ' ' || crm_record_id || ' ' || reason
FROM lead_deliveries ORDER BY lead_id`)
		}
		require.Equal(t, []string{"pending 0 e r why-pending", "delivered 1 e r why-delivered", "rejected 2 e r why-rejected"}, rows(), "every row and column kept")
		require.Equal(t, []string{"0", "0", "0"}, queryStrings(t, b, `SELECT CAST(solo_failures AS TEXT) FROM lead_deliveries ORDER BY lead_id`))
		require.Equal(t, []string{"1"}, queryStrings(t, b, `SELECT CAST(COUNT(*) AS TEXT) FROM lead_deliveries WHERE status = 'pending' AND crm_integration_id = 'crm-1'`))
		require.NoError(t, exec(`UPDATE lead_deliveries SET status = 'gave_up', solo_failures = 10 WHERE lead_id = 1`))
		require.NoError(t, exec(`UPDATE lead_deliveries SET status = 'cancelled' WHERE lead_id = 2`))
		require.Error(t, exec(`UPDATE lead_deliveries SET status = 'lost' WHERE lead_id = 3`), "unknown statuses are still refused")
		require.Error(t, exec(`UPDATE lead_deliveries SET solo_failures = -1 WHERE lead_id = 3`))

		_, err = b.provider.DownTo(b.ctx, 6)
		require.NoError(t, err)
		require.Equal(t, []string{"rejected 0 e r why-pending", "rejected 1 e r why-delivered", "rejected 2 e r why-rejected"}, rows(),
			"gave_up and cancelled become rejected, with their reasons")
		require.Error(t, exec(`UPDATE lead_deliveries SET status = 'gave_up' WHERE lead_id = 1`), "the old statuses again")
		require.NotContains(t, columns(t, b, "lead_deliveries"), "solo_failures")
		_, err = b.provider.Up(b.ctx)
		require.NoError(t, err)
	})
}
