package schema

// Internals for the external tests.
var (
	Load      = load
	Apply     = apply
	Split     = split
	Bootstrap = bootstrap
)

// Clusterize is clusterize, for the cluster mode's unit tests.
var Clusterize = clusterize
