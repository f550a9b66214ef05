package schema_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing"

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
	"leads", "lead_deliveries", "intake_tokens", "api_keys",
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		want := int64(len(migrationNames(t, db.Name)))

		_, err := b.provider.Up(b.ctx)
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
