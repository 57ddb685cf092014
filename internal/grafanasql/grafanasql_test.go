package grafanasql

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	offerAll  = Variable{Name: "offer", Multi: true, All: true, Options: []string{"bright-smile", "flex-roller"}}
	offerOne  = Variable{Name: "offer", Multi: true, Value: []string{"flex-roller"}}
	offerTwo  = Variable{Name: "offer", Multi: true, Value: []string{"bright-smile", "flex-roller"}}
	offerNone = Variable{Name: "offer", Multi: true, Value: []string{}}
	station   = Variable{Name: "station", Multi: true, Value: []string{"O'Brien TV"}}
	airing    = Variable{Name: "airing", Value: []string{"BS-1124-01"}}
	target    = Variable{Name: "uptime_target", Value: []string{"99.9"}}
)

func TestInterpolate(t *testing.T) {
	const cond = "WHERE $__conditionalAll(offer IN (${offer:sqlstring}), $offer) AND x"
	tests := []struct {
		name string
		sql  string
		vars []Variable
		want string
	}{
		{"all selected is 1=1", cond, []Variable{offerAll}, "WHERE 1=1 AND x"},
		{"nothing selected is 1=1", cond, []Variable{offerNone}, "WHERE 1=1 AND x"},
		{"one value keeps the condition", cond, []Variable{offerOne}, "WHERE offer IN ('flex-roller') AND x"},
		{"two values", cond, []Variable{offerTwo}, "WHERE offer IN ('bright-smile','flex-roller') AND x"},
		{"braced second argument", "$__conditionalAll(a IN (${offer:sqlstring}), ${offer})", []Variable{offerAll}, "1=1"},
		{"formatted second argument is not recognised (plugin behaviour)", "$__conditionalAll(a IN (${offer:sqlstring}), ${offer:sqlstring})", []Variable{offerAll}, "a IN ('bright-smile','flex-roller')"},
		{"unknown variable keeps the condition", "$__conditionalAll(a = 1, $nope)", nil, "a = 1"},
		{"nested conditionals, last first", "$__conditionalAll(a IN (${offer:sqlstring}), $offer) AND $__conditionalAll(s IN (${station:sqlstring}), $station)",
			[]Variable{offerAll, station}, "1=1 AND s IN ('O''Brien TV')"},
		{"plugin format on a multi-value variable", "offer IN ($offer)", []Variable{offerTwo}, "offer IN ('bright-smile','flex-roller')"},
		{"plugin format on All", "offer IN (${offer})", []Variable{offerAll}, "offer IN ('bright-smile','flex-roller')"},
		{"plugin format on a single value is raw", "x = $uptime_target / 100", []Variable{target}, "x = 99.9 / 100"},
		{"sqlstring on a single value", "airing_id = ${airing:sqlstring}", []Variable{airing}, "airing_id = 'BS-1124-01'"},
		{"sqlstring doubles quotes", "s IN (${station:sqlstring})", []Variable{station}, "s IN ('O''Brien TV')"},
		{"macros and unknown names are left", "$__timeFilter(t) AND $__fromTime AND $nope AND ${__data.fields.x}", []Variable{airing}, "$__timeFilter(t) AND $__fromTime AND $nope AND ${__data.fields.x}"},
		{"longest name wins", "$offer_x", []Variable{offerOne}, "$offer_x"},
		{"replacement patterns of JavaScript", "$__conditionalAll(a = '$$', $offer)", []Variable{offerOne}, "a = '$'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Interpolate(tt.sql, tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestInterpolateErrors(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		vars []Variable
	}{
		{"one argument", "$__conditionalAll(a = 1)", []Variable{offerOne}},
		{"format not emulated", "${offer:regex}", []Variable{offerOne}},
		{"field path", "${offer.x}", []Variable{offerOne}},
		{"single-value variable without a value", "$airing", []Variable{{Name: "airing"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Interpolate(tt.sql, tt.vars); !errors.Is(err, ErrVariable) {
				t.Fatalf("err = %v, want ErrVariable", err)
			}
		})
	}
}

func TestExpandMacros(t *testing.T) {
	q := Query{
		From:     time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC),
		To:       time.Date(2026, 11, 25, 10, 59, 59, 0, time.UTC),
		Interval: 5 * time.Minute,
	}
	const from, to = "toDateTime(1795518000)", "toDateTime(1795604399)"
	tests := []struct {
		name, sql, want string
	}{
		{"timeFilter", "WHERE $__timeFilter(aired_at)", "WHERE aired_at >= " + from + " AND aired_at <= " + to},
		{"timeFilter with spaces and a qualified column", "$__timeFilter( a.t )", "a.t >= " + from + " AND a.t <= " + to},
		{"every occurrence", "$__timeFilter(t) OR $__timeFilter(t)", "t >= " + from + " AND t <= " + to + " OR t >= " + from + " AND t <= " + to},
		{"fromTime and toTime", "least($__toTime, now()) - $__fromTime", "least(" + to + ", now()) - " + from},
		{"dateFilter", "$__dateFilter(d)", "d >= toDate('2026-11-24') AND d <= toDate('2026-11-25')"},
		{"dt", "$__dt(d, t)", "(d >= toDate('2026-11-24') AND d <= toDate('2026-11-25')) AND (t >= " + from + " AND t <= " + to + ")"},
		{"interval_s", "intDiv(toUInt32(t), $__interval_s) * $__interval_s", "intDiv(toUInt32(t), 300) * 300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandMacros(tt.sql, q)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
	t.Run("interval below a second is one second", func(t *testing.T) {
		got, err := ExpandMacros("$__interval_s", Query{Interval: 10 * time.Millisecond})
		if err != nil || got != "1" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

func TestExpandMacrosRefuses(t *testing.T) {
	tests := []struct{ name, sql, why string }{
		{"timeInterval", "$__timeInterval(t)", "18.16"},
		{"timeFilter_ms", "$__timeFilter_ms(t)", "18.16"},
		{"fromTime_ms", "$__fromTime_ms", "18.16"},
		{"unknown macro", "$__conditionalAll(a, $b)", "no such macro"},
		{"expression argument", "$__timeFilter(toDateTime(t))", "plain column"},
		{"missing argument", "$__timeFilter", "takes 1"},
		{"arguments to fromTime", "$__fromTime(x)", "no arguments"},
		{"left-over variable", "WHERE a = $offer", "left after expansion"},
		{"left-over braced variable", "WHERE a = ${offer}", "left after expansion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ExpandMacros(tt.sql, Query{})
			if !errors.Is(err, ErrMacro) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("err = %v, want ErrMacro mentioning %q", err, tt.why)
			}
		})
	}
}

func TestReferencesAndMacros(t *testing.T) {
	sql := "SELECT $__fromTime WHERE $__conditionalAll(offer IN (${offer:sqlstring}), $offer) AND airing_id = ${airing:sqlstring} AND x = [[target]] AND ${__data.fields.a} AND $__timeFilter(t)"
	if got, want := References(sql), []string{"offer", "airing", "target"}; !reflect.DeepEqual(got, want) {
		t.Errorf("References = %v, want %v", got, want)
	}
	if got, want := Macros(sql), []string{"fromTime", "conditionalAll", "timeFilter"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Macros = %v, want %v", got, want)
	}
}

func TestRender(t *testing.T) {
	q := Query{From: time.Unix(100, 0), To: time.Unix(200, 0)}
	got, err := Render("SELECT 1 WHERE $__timeFilter(t) AND $__conditionalAll(o IN (${offer:sqlstring}), $offer)", []Variable{offerOne}, q)
	if err != nil {
		t.Fatal(err)
	}
	if want := "SELECT 1 WHERE t >= toDateTime(100) AND t <= toDateTime(200) AND o IN ('flex-roller')"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
