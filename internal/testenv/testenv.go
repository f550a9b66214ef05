// Package testenv gives tests the real services they run against: a fresh
// PostgreSQL database, a SQLite file, and a shared Temporal dev server; and
// HistoryText, the rendering of a workflow's whole history (every run,
// every payload decoded) that secret and lead-data scans read.
//
// A service that cannot be reached makes the test skip with a loud message
// on a developer machine; with INTEGRATIONS_REQUIRE_SERVICES=1 (CI sets it)
// it fails the test instead, so CI never passes by skipping.
//
// Environment:
//   - INTEGRATIONS_TEST_POSTGRES_URL: admin URL of the Postgres server
//     (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
//   - TEMPORAL_BIN: path of the temporal CLI binary (default bin/temporal at
//     the repository root, built by `make temporal`).
package testenv

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	// The Postgres driver registers itself as "postgres".
	_ "github.com/lib/pq"
)

// RequireServicesEnv is the variable that turns a missing service from a
// skip into a failure.
const RequireServicesEnv = "INTEGRATIONS_REQUIRE_SERVICES"

// PostgresAdminURLEnv overrides the Postgres server the tests use.
const PostgresAdminURLEnv = "INTEGRATIONS_TEST_POSTGRES_URL"

const defaultPostgresAdminURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Unavailable skips t loudly, or fails it when services are required.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	msg := fmt.Sprintf("!!! %s is not available: %v (set %s=1 to make this a failure)", service, err, RequireServicesEnv)
	if os.Getenv(RequireServicesEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// PostgresAdminURL is the URL of the Postgres server tests create their
// databases on.
func PostgresAdminURL() string {
	if u := os.Getenv(PostgresAdminURLEnv); u != "" {
		return u
	}
	return defaultPostgresAdminURL
}

// PostgresURL creates a new, empty database for t and returns its URL; the
// database is dropped when t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("postgres", PostgresAdminURL())
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		Unavailable(t, "PostgreSQL", err)
	}
	name := "integrations_test_" + randomHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		_ = admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(PostgresAdminURL())
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresAdminURLEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLiteURL returns the path of a new SQLite database file in t's temporary
// directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "integrations.db")
}

// Database is a named database URL, for tests that run against every
// supported backend.
type Database struct {
	Name string // "postgres" or "sqlite"
	URL  string
}

// EachDatabase runs fn as a parallel subtest against a fresh Postgres
// database and a fresh SQLite database.
func EachDatabase(t *testing.T, fn func(t *testing.T, db Database)) {
	t.Helper()
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := Database{Name: name}
			if name == "postgres" {
				db.URL = PostgresURL(t)
			} else {
				db.URL = SQLiteURL(t)
			}
			fn(t, db)
		})
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
