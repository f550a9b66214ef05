package store

import "github.com/jmoiron/sqlx"

// DB is the store's connection pool, for tests that inspect or arrange
// rows the store has no method for. Write SQL both databases accept, with ?
// placeholders and DB().Rebind.
func (s *Store) DB() *sqlx.DB { return s.db }

// Dialect is the name of the dialect Open chose, "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect.name() }
