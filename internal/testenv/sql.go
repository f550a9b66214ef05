package testenv

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	// Registers the "sqlite" driver; lib/pq is imported in testenv.go.
	_ "modernc.org/sqlite"
)

// OpenSQL opens a connection pool of its own to a database that PostgresURL
// or SQLiteURL made, closed when t ends: for tests that arrange rows or
// sabotage tables behind the store's back, which the store offers no access
// for. Write SQL both databases accept, with ? placeholders and Rebind.
//
// On SQLite it writes times as the store does (sortable UTC text) and waits
// for the write lock as long, so rows it writes compare with the store's.
func OpenSQL(t testing.TB, databaseURL string) *sqlx.DB {
	t.Helper()
	driver, dsn, bind := "postgres", databaseURL, "postgres"
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		// sqlx knows the placeholders of modernc's "sqlite" driver by the
		// name "sqlite3".
		driver, bind = "sqlite", "sqlite3"
		dsn = path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_time_format=sqlite&_timezone=UTC"
	} else if !strings.HasPrefix(databaseURL, "postgres://") {
		t.Fatalf("OpenSQL takes a URL of PostgresURL or SQLiteURL, not %q", databaseURL)
	}
	db, err := sql.Open(driver, dsn)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		t.Fatalf("open the test database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return sqlx.NewDb(db, bind)
}

// Row is one row of a table as DumpTables reads it: every column's value
// as text ("NULL" for NULL, times in RFC 3339 with nanoseconds in UTC).
type Row map[string]string

// Tables is the content of every table of a database, by table name.
type Tables map[string][]Row

// DumpTables reads every row of every table of db (one that OpenSQL
// opened), goose's own and SQLite's internal ones aside: for tests that
// check what a change touched, by comparing dumps, or that no value is
// left anywhere, with Containing.
func DumpTables(t testing.TB, db *sqlx.DB) Tables {
	t.Helper()
	q := `SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'goose_db_version'`
	if db.DriverName() != "postgres" {
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`
	}
	var names []string
	if err := db.Select(&names, q); err != nil {
		t.Fatalf("list the tables: %v", err)
	}
	out := Tables{}
	for _, name := range names {
		rows, err := db.Queryx(`SELECT * FROM ` + name)
		if err != nil {
			t.Fatalf("read table %s: %v", name, err)
		}
		out[name] = []Row{}
		for rows.Next() {
			values := map[string]any{}
			if err := rows.MapScan(values); err != nil {
				_ = rows.Close()
				t.Fatalf("read table %s: %v", name, err)
			}
			row := Row{}
			for column, v := range values {
				row[column] = text(v)
			}
			out[name] = append(out[name], row)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read table %s: %v", name, err)
		}
		_ = rows.Close()
	}
	return out
}

// text renders a value as DumpTables keeps it.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// Containing lists, sorted, where in the tables any of needles occurs,
// compared without regard to case, as "table.column contains needle":
// every column of every row is searched.
func (tables Tables) Containing(needles ...string) []string {
	found := map[string]bool{}
	for name, rows := range tables {
		for _, row := range rows {
			for column, value := range row {
				for _, needle := range needles {
					if strings.Contains(strings.ToLower(value), strings.ToLower(needle)) {
						found[fmt.Sprintf("%s.%s contains %q", name, column, needle)] = true
					}
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for f := range found {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
