// Package testenv gives every airtally test package the real servers it
// needs: one ClickHouse server process per test binary (chlocal), one chDB
// session per test binary (current ClickHouse, in-process), embedded NATS
// servers with JetStream per test, and a polling helper.
//
// A package that needs ClickHouse or chDB declares it in TestMain:
//
//	func TestMain(m *testing.M) {
//		testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
//	}
//
// When a required binary or library is missing, Main prints why and exits
// with status 1: tests fail, they never skip. Tests isolate themselves by
// database: NewDatabase and ChDB hand out fresh, uniquely named databases
// and drop them when the test ends.
package testenv
