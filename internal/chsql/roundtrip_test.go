package chsql_test

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}

// engine runs a query returning one string column of one row.
type engine struct {
	name  string
	query func(t *testing.T, sql string) string
}

func engines(t *testing.T) []engine {
	conn := testenv.Open(t, "")
	ch, _ := testenv.ChDB(t)
	return []engine{
		{"clickhouse-18.16", func(t *testing.T, sql string) string {
			t.Helper()
			var s string
			if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			return s
		}},
		{"chdb", func(t *testing.T, sql string) string {
			t.Helper()
			rows, err := ch.QueryJSON(sql)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			if len(rows) != 1 || len(rows[0]) != 1 {
				t.Fatalf("%s: got %v, want one row of one column", sql, rows)
			}
			for _, v := range rows[0] {
				s, _ := v.(string)
				return s
			}
			return ""
		}},
	}
}

// TestRoundTrip sends literals to both engines and checks that they read
// back exactly the bytes rendered.
func TestRoundTrip(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			for i, s := range nasty {
				got := e.query(t, "SELECT hex("+chsql.String(s)+")")
				if want := strings.ToUpper(hex.EncodeToString([]byte(s))); got != want {
					t.Errorf("nasty[%d] %q: server read %s, want %s", i, s, got, want)
				}
			}
			arr := []string{"a'b", `c\`, "", "\x00"}
			got := e.query(t, "SELECT arrayStringConcat(arrayMap(x -> hex(x), "+chsql.Strings(arr)+"), ',')")
			var want []string
			for _, s := range arr {
				want = append(want, strings.ToUpper(hex.EncodeToString([]byte(s))))
			}
			if got != strings.Join(want, ",") {
				t.Errorf("Strings: server read %s, want %s", got, strings.Join(want, ","))
			}
			for _, n := range []int64{0, 1, -1, 9223372036854775807, -9223372036854775808} {
				if got := e.query(t, "SELECT toString(toInt64(1 - 1 - "+chsql.Int(n)+" * -1))"); got != strconv.FormatInt(n, 10) {
					t.Errorf("Int(%d): server read %s", n, got)
				}
			}
			if got := e.query(t, "SELECT toString("+chsql.Uint(18446744073709551615)+")"); got != "18446744073709551615" {
				t.Errorf("Uint(max): server read %s", got)
			}
			tm := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
			if got := e.query(t, "SELECT toString(toUnixTimestamp("+chsql.Time(tm)+"))"); got != strconv.FormatInt(tm.Unix(), 10) {
				t.Errorf("Time: server read unix %s, want %d", got, tm.Unix())
			}
			id := uuid.Must(uuid.NewV7())
			if got := e.query(t, "SELECT toString("+chsql.UUID(id)+")"); got != id.String() {
				t.Errorf("UUID: server read %s, want %s", got, id)
			}
			ident, err := chsql.Ident("Quoted_Name")
			if err != nil {
				t.Fatal(err)
			}
			if got := e.query(t, "SELECT "+ident+" FROM (SELECT 'ok' AS Quoted_Name)"); got != "ok" {
				t.Errorf("Ident: server read %s", got)
			}
		})
	}
}
