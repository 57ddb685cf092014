package report

// Exported for the tests of package report_test.
var (
	ExportDNISKeySQL   = dnisKeySQL
	ExportPromoKeySQL  = promoKeySQL
	ExportVanityKeySQL = vanityKeySQL
)
