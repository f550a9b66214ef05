// Package schema holds the SQL schema of the integrations service as
// embedded, numbered goose migrations, one directory per dialect:
// postgres/ for PostgreSQL (lib/pq) and sqlite/ for SQLite
// (modernc.org/sqlite). Both directories define the same tables and columns,
// documented in the migration files themselves; their names are part of the
// backend contract.
//
// Add a change as the next numbered file (00002_<what>.sql) in both
// directories; never edit a migration that has been released.
package schema

import (
	"embed"
	"fmt"
	"io/fs"
)

// The supported SQL dialects, as the store and goose name them.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Dialects lists every supported dialect.
var Dialects = []string{Postgres, SQLite}

//go:embed postgres/*.sql sqlite/*.sql
var migrations embed.FS

// FS returns the migrations of dialect ("postgres" or "sqlite"), with the
// numbered .sql files at its root, ready for goose.NewProvider.
func FS(dialect string) (fs.FS, error) {
	switch dialect {
	case Postgres, SQLite:
		sub, err := fs.Sub(migrations, dialect)
		if err != nil {
			return nil, fmt.Errorf("migrations of %s: %w", dialect, err)
		}
		return sub, nil
	}
	return nil, fmt.Errorf("unknown SQL dialect %q: use %q or %q", dialect, Postgres, SQLite)
}
