package schedule

import (
	"testing"
	"time"
)

func TestParseClock(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "20:15", want: 20*time.Hour + 15*time.Minute},
		{in: "20:15:30", want: 20*time.Hour + 15*time.Minute + 30*time.Second},
		{in: "8:15 PM", want: 20*time.Hour + 15*time.Minute},
		{in: "8:15pm", want: 20*time.Hour + 15*time.Minute},
		{in: "12:05 AM", want: 5 * time.Minute},
		{in: "12:05 p.m.", want: 12*time.Hour + 5*time.Minute},
		{in: "8 PM", want: 20 * time.Hour},
		{in: "25:30", want: 25*time.Hour + 30*time.Minute},
		{in: "30:00", bad: true},
		{in: "13:00 PM", bad: true},
		{in: "20:61", bad: true},
		{in: "noon", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseClock(c.in)
			if (err != nil) != c.bad || (!c.bad && got != c.want) {
				t.Errorf("parseClock(%q) = %v, %v; want %v (bad %v)", c.in, got, err, c.want, c.bad)
			}
		})
	}
}

func TestParseStamp(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time // resolved on day in New York
		bad  bool
	}{
		{in: "2026-11-24 20:15", want: time.Date(2026, 11, 25, 1, 15, 0, 0, time.UTC)},
		{in: "2026-11-24T20:15:00", want: time.Date(2026, 11, 25, 1, 15, 0, 0, time.UTC)},
		{in: "2026-11-24T20:15:00-06:00", want: time.Date(2026, 11, 25, 2, 15, 0, 0, time.UTC)},
		{in: "11/24/2026 8:15 PM", want: time.Date(2026, 11, 25, 1, 15, 0, 0, time.UTC)},
		{in: "11/24/2026 8:15 PM PT", want: time.Date(2026, 11, 25, 4, 15, 0, 0, time.UTC)},
		{in: "2026-11-24 20:15 EDT", want: time.Date(2026, 11, 25, 0, 15, 0, 0, time.UTC)},
		{in: "2026-11-24 20:15 -0330", want: time.Date(2026, 11, 24, 23, 45, 0, 0, time.UTC)},
		{in: "Nov 24 2026 20:15", want: time.Date(2026, 11, 25, 1, 15, 0, 0, time.UTC)},
		{in: "20:15", want: time.Date(2026, 11, 25, 1, 15, 0, 0, time.UTC)},
		{in: "26:00", want: time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)},
		{in: "tomorrow", bad: true},
		{in: "2026-11-24 25:99", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			s, err := parseStamp(c.in)
			if (err != nil) != c.bad {
				t.Fatalf("parseStamp(%q) error %v, want bad %v", c.in, err, c.bad)
			}
			if !c.bad && !s.at(day, ny).Equal(c.want) {
				t.Errorf("parseStamp(%q) resolves to %v, want %v", c.in, s.at(day, ny).UTC(), c.want)
			}
		})
	}
}

func TestParseMoney(t *testing.T) {
	cases := []struct {
		in       string
		cents    int64
		currency string
		bad      bool
	}{
		{in: "1250", cents: 125000},
		{in: "$1,250.50", cents: 125050},
		{in: "1250.5", cents: 125050},
		{in: "USD 400.05", cents: 40005, currency: "USD"},
		{in: "400 eur", cents: 40000, currency: "EUR"},
		{in: "0", cents: 0},
		{in: "12.345", bad: true},
		{in: "-5", bad: true},
		{in: "(100.00)", bad: true},
		{in: "lots", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			cents, cur, err := parseMoney(c.in)
			if (err != nil) != c.bad || (!c.bad && (cents != c.cents || cur != c.currency)) {
				t.Errorf("parseMoney(%q) = %d %q %v; want %d %q (bad %v)", c.in, cents, cur, err, c.cents, c.currency, c.bad)
			}
		})
	}
}

func TestParseOtherValues(t *testing.T) {
	lengths := map[string]int64{"60": 60, ":60": 60, ":30": 30, "1:00": 60, "2:00": 120, "120s": 120, "2 min": 120, "60 sec": 60}
	for in, want := range lengths {
		if got, err := parseLength(in); err != nil || got != want {
			t.Errorf("parseLength(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseLength("long"); err == nil {
		t.Error("parseLength(long) did not fail")
	}
	ratios := map[string]int64{"1.5": 150, "1.50": 150, "1.5x": 150, "1.5:1": 150, "150%": 150, "2": 200, "0.85": 85}
	for in, want := range ratios {
		if got, err := parseRatio(in); err != nil || got != want {
			t.Errorf("parseRatio(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1.555", "abc", "-1"} {
		if _, err := parseRatio(in); err == nil {
			t.Errorf("parseRatio(%q) did not fail", in)
		}
	}
	windows := map[string]int64{"60": 60, "45 min": 45, "1h": 60, "1:30": 90, "2 hours": 120}
	for in, want := range windows {
		if got, err := parseWindow(in); err != nil || got != want {
			t.Errorf("parseWindow(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "20000", "soon"} {
		if _, err := parseWindow(in); err == nil {
			t.Errorf("parseWindow(%q) did not fail", in)
		}
	}
	dnis := map[string]string{"1-800-555-0101": "18005550101", "(800) 555-0101": "8005550101", "1-800-FLOWERS": "18003569377", "800.555.0101": "8005550101"}
	for in, want := range dnis {
		if got, err := parseDNIS(in); err != nil || got != want {
			t.Errorf("parseDNIS(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseDNIS("call us!"); err == nil {
		t.Error("parseDNIS(call us!) did not fail")
	}
	for in, want := range map[string]string{"ET": "America/New_York", "America/Phoenix": "America/Phoenix", "pt": "America/Los_Angeles"} {
		if loc, err := parseZone(in); err != nil || loc.String() != want {
			t.Errorf("parseZone(%q) = %v, %v; want %s", in, loc, err, want)
		}
	}
	for in, off := range map[string]int{"EST": -5 * 3600, "-05:00": -5 * 3600, "UTC+5:30": 5*3600 + 1800, "Z": 0} {
		loc, err := parseZone(in)
		if err != nil {
			t.Errorf("parseZone(%q): %v", in, err)
			continue
		}
		if _, got := time.Date(2026, 7, 1, 0, 0, 0, 0, loc).Zone(); got != off {
			t.Errorf("parseZone(%q) offset %d, want %d", in, got, off)
		}
	}
	if _, err := parseZone("Mars/Base"); err == nil {
		t.Error("parseZone(Mars/Base) did not fail")
	}
	for in, want := range map[string][2]string{"20:00-21:00": {"20:00", "21:00"}, "8 PM to 9 PM": {"8 PM", "9 PM"}, "2026-11-24 20:00 - 2026-11-24 21:00": {"2026-11-24 20:00", "2026-11-24 21:00"}} {
		a, b, ok := splitRange(in)
		if !ok || a != want[0] || b != want[1] {
			t.Errorf("splitRange(%q) = %q %q %v", in, a, b, ok)
		}
	}
	if _, _, ok := splitRange("2026-11-24"); ok {
		t.Error("a date was taken for a range")
	}
}

func TestNormalizeHeader(t *testing.T) {
	for in, want := range map[string]string{"Air Date": "airdate", "air_date": "airdate", "AIRDATE": "airdate", "Station/Network": "stationnetwork", "800 #": "800", " ISCI Code ": "iscicode"} {
		if got := normalizeHeader(in); got != want {
			t.Errorf("normalizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseScheduleFile checks that no file makes the reader panic, and
// that every problem names a line and a reason.
func FuzzParseScheduleFile(f *testing.F) {
	f.Add("Airing ID,Offer,Station,Date,Time,Spend,DNIS\nA-1,o,CNBC,2026-11-24,20:00,100,8005550101\n")
	f.Add("station;window;dnis\nKTVK;6:00 PM - 7:00 PM;877\n")
	f.Add("\ufeffid\tstart\tend\n1\t2026-11-24T20:00:00Z\t21:00\n\"a,\"b\n")
	f.Fuzz(func(t *testing.T, s string) {
		tab, err := readTable(stringsReader(s), scheduleAliases)
		if err != nil {
			return
		}
		ny, _ := time.LoadLocation("America/New_York")
		for _, rec := range tab.rows {
			r := parseScheduleRow(tab, rec, ny)
			for _, p := range r.problems {
				if p.Line < 1 || p.Reason == "" {
					t.Fatalf("problem without line or reason: %+v", p)
				}
			}
		}
	})
}

// TestPromoURLHeader: "Promo URL", a common spelling, is the vanity URL
// (it used to be ignored), and "Promo Code" next to it is still the promo
// code.
func TestPromoURLHeader(t *testing.T) {
	file := "Station,Air Date,Air Time,800 #,Promo URL,Promo Code\n" +
		"CNBC,2026-11-24,20:00,8005550101,brightsmile.example/tv,SMILE\n"
	tab, err := readTable(stringsReader(file), scheduleAliases)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.ignored) != 0 {
		t.Errorf("columns ignored: %v", tab.ignored)
	}
	if got := tab.name(colVanity); got != "Promo URL" {
		t.Errorf("vanity_url comes from %q, want \"Promo URL\"", got)
	}
	ny, _ := time.LoadLocation("America/New_York")
	r := parseScheduleRow(tab, tab.rows[0], ny)
	if len(r.problems) != 0 {
		t.Fatalf("problems: %+v", r.problems)
	}
	if r.a.VanityURL != "brightsmile.example/tv" || r.a.PromoCode != "SMILE" {
		t.Errorf("vanity URL %q, promo code %q", r.a.VanityURL, r.a.PromoCode)
	}
}
