package report_test

import (
	"context"
	"fmt"
	"github.com/airtally/airtally/consumers/projector"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}

var testDate = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// engine is a database on one of the two engines, with the day loaded.
type engine struct {
	name string
	db   string
	q    report.Querier
	x    projector.DB
}

// project brings the engine's airing projection up to date.
func project(t *testing.T, e engine) {
	t.Helper()
	p, err := projector.New(e.x, projector.Config{Database: e.db, AiringsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(t.Context()); err != nil {
		t.Fatalf("%s: projector: %v", e.name, err)
	}
}

// on18 loads evs (in the order given, in one batch per chunk) into a fresh
// database on ClickHouse 18.16.
func on18(t *testing.T, chunks ...[]reporttest.Sequenced) engine {
	t.Helper()
	conn, db := testenv.NewDatabase(t, true)
	for _, c := range chunks {
		if err := reporttest.Load(t.Context(), conn, db, c); err != nil {
			t.Fatalf("load on 18.16: %v", err)
		}
	}
	return engine{name: "ClickHouse 18.16", db: db, q: report.Native(conn), x: projector.Native(conn)}
}

// onCHDB loads evs into a fresh database of the chDB session.
func onCHDB(t *testing.T, chunks ...[]reporttest.Sequenced) engine {
	t.Helper()
	ch, db := testenv.ChDB(t)
	if err := reporttest.MigrateCHDB(ch, db); err != nil {
		t.Fatalf("migrate chDB: %v", err)
	}
	for _, c := range chunks {
		if err := reporttest.LoadCHDB(ch, db, c); err != nil {
			t.Fatalf("load on chDB: %v", err)
		}
	}
	return engine{name: "chDB", db: db, q: reporttest.CHDB(ch), x: reporttest.CHDBDB(ch)}
}

func run(t *testing.T, e engine, o report.Options) *report.Result {
	t.Helper()
	o.Database = e.db
	res, err := report.Run(context.Background(), e.q, o)
	if err != nil {
		t.Fatalf("%s: report: %v", e.name, err)
	}
	return res
}

func dayOptions(d demoday.Day) report.Options {
	return report.Options{Filter: report.Filter{From: d.From, To: d.To}, Curves: true}
}

// diff lists the fields of got and want (structs of the same type) that
// differ, exactly.
func diff(got, want any) []string {
	var out []string
	var walk func(prefix string, g, w reflect.Value)
	walk = func(prefix string, g, w reflect.Value) {
		switch g.Kind() {
		case reflect.Struct:
			if g.Type() == reflect.TypeOf(time.Time{}) {
				if !g.Interface().(time.Time).Equal(w.Interface().(time.Time)) {
					out = append(out, fmt.Sprintf("%s: got %v, want %v", prefix, g.Interface(), w.Interface()))
				}
				return
			}
			for i := 0; i < g.NumField(); i++ {
				name := g.Type().Field(i).Name
				if g.Type().Field(i).Anonymous {
					name = ""
				}
				walk(strings.TrimPrefix(prefix+"."+name, "."), g.Field(i), w.Field(i))
			}
		case reflect.Pointer:
			if g.IsNil() != w.IsNil() {
				out = append(out, fmt.Sprintf("%s: got %v, want %v", prefix, show(g), show(w)))
			} else if !g.IsNil() {
				walk(prefix, g.Elem(), w.Elem())
			}
		default:
			if !reflect.DeepEqual(g.Interface(), w.Interface()) {
				out = append(out, fmt.Sprintf("%s: got %v, want %v", prefix, g.Interface(), w.Interface()))
			}
		}
	}
	walk("", reflect.ValueOf(got), reflect.ValueOf(want))
	return out
}

func show(v reflect.Value) any {
	if v.IsNil() {
		return "NULL"
	}
	return v.Elem().Interface()
}

// checkAirings compares every figure of every airing with the truth.
func checkAirings(t *testing.T, who string, got []report.Figures, truth demoday.Truth, ids []string) {
	t.Helper()
	var gotIDs []string
	for _, f := range got {
		gotIDs = append(gotIDs, f.AiringID)
		want, ok := truth.Airings[f.AiringID]
		if !ok {
			t.Errorf("%s: airing %s is not in the truth", who, f.AiringID)
			continue
		}
		if d := diff(f, want); len(d) > 0 {
			t.Errorf("%s: airing %s differs from the truth:\n  %s", who, f.AiringID, strings.Join(d, "\n  "))
		}
	}
	sort.Strings(gotIDs)
	sort.Strings(ids)
	if !reflect.DeepEqual(gotIDs, ids) {
		t.Errorf("%s: airings %v, want %v", who, gotIDs, ids)
	}
}

func checkUnattributed(t *testing.T, who string, got, want report.Figures) {
	t.Helper()
	got.Curve, want.Curve = nil, nil
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s: unattributed bucket differs from the truth:\n  %s", who, strings.Join(d, "\n  "))
	}
}

// checkRollups compares rollup rows; sums of the float figures
// (expected baseline calls, lift) may differ in the last bits with the
// order of summation, every other figure must be equal.
func checkRollups(t *testing.T, who string, d report.Dimension, got, want []report.Rollup) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rollup rows by %s, want %d", who, len(got), d, len(want))
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if math.Abs(g.ExpectedBaselineCalls-w.ExpectedBaselineCalls) > 1e-9*math.Max(1, math.Abs(w.ExpectedBaselineCalls)) ||
			math.Abs(g.Lift-w.Lift) > 1e-9*math.Max(1, math.Abs(w.Lift)) {
			t.Errorf("%s: rollup by %s %q: expected baseline %v lift %v, want %v %v", who, d, g.Key, g.ExpectedBaselineCalls, g.Lift, w.ExpectedBaselineCalls, w.Lift)
		}
		g.ExpectedBaselineCalls, g.Lift = w.ExpectedBaselineCalls, w.Lift
		if df := diff(g, w); len(df) > 0 {
			t.Errorf("%s: rollup by %s %q differs from the truth:\n  %s", who, d, g.Key, strings.Join(df, "\n  "))
		}
	}
}

func allIDs(truth demoday.Truth) []string {
	var ids []string
	for id := range truth.Airings {
		ids = append(ids, id)
	}
	return ids
}

// schedule and responses split a day's events.
func split(evs []*event.Event) (schedule, responses []*event.Event) {
	for _, e := range evs {
		if e.Kind.IsAiring() || e.Kind == event.OfferConfigured {
			schedule = append(schedule, e)
		} else {
			responses = append(responses, e)
		}
	}
	return schedule, responses
}

// mustInt reads an integer column as either engine returns it.
func mustInt(t *testing.T, v any) int64 {
	t.Helper()
	r, err := report.DecodeFigures(report.Row{"calls": v})
	if err != nil {
		t.Fatalf("integer column: %v", err)
	}
	return r.Calls
}

func testenv18(t *testing.T) driver.Conn {
	t.Helper()
	conn, _ := testenv.NewDatabase(t, false)
	return conn
}

func chdbQuerier(t *testing.T) report.Querier {
	t.Helper()
	ch, _ := testenv.ChDB(t)
	return reporttest.CHDB(ch)
}
