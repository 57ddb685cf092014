package schema

// Internals for the external tests.
var (
	Load      = load
	Apply     = apply
	Split     = split
	Bootstrap = bootstrap
)
