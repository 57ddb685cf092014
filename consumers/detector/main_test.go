package detector

import (
	"testing"

	"github.com/airtally/airtally/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}
