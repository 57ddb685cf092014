// Package schema holds airtally's ClickHouse schema as versioned SQL
// migrations (embedded from migrations/*.sql) and the migrator that applies
// them to a database.
//
// Migrate creates the database if needed, applies each pending migration in
// version order and records it in <db>.schema_migrations with the
// migration's SHA-256. Statements are idempotent (IF NOT EXISTS), so
// migrating twice, or from two processes at once, is harmless. A recorded
// checksum that differs from the embedded file means the file was edited
// after it was applied, and Migrate refuses to continue (ErrChecksum).
//
// See README.md for the file format.
package schema
