package testenv

import (
	"database/sql"
	"strings"
	"testing"

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
