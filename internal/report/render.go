package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Format is how a report is written.
type Format string

// Formats.
const (
	FormatText Format = "text"
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// Write writes res in format f. Text is for reading: money in units with
// two decimals (exact, from cents), ratios rounded to two decimals, rates
// to a tenth of a percent, lift to a tenth of a call, and "-" where a
// ratio has no denominator. CSV and JSON carry every column unrounded:
// money in cents, ratios as computed (empty or null where undefined).
func Write(w io.Writer, res *Result, f Format) error {
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(jsonReport{
			From: res.Options.Filter.From.UTC(), To: res.Options.Filter.To.UTC(), By: string(res.Options.By),
			TimeZone: res.Options.Config.TimeZone, Result: res,
		})
	case FormatCSV:
		return writeCSV(w, res)
	case FormatText, "":
		return writeText(w, res)
	}
	return fmt.Errorf("report: unknown format %q (text, csv or json)", f)
}

type jsonReport struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	By       string    `json:"by"`
	TimeZone string    `json:"time_zone"`
	*Result
}

func money(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return sign + thousands(c/100) + fmt.Sprintf(".%02d", c%100)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func opt(p *float64, format func(float64) string) string {
	if p == nil {
		return "-"
	}
	return format(*p)
}

func optCSV(p *float64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

func num(n int64) string { return strconv.FormatInt(n, 10) }

func pct(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }

func dec2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func centsText(v float64) string { return money(int64(v + 0.5*sign(v))) }

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

// measureColumns are the measures' columns; text shows the ones marked.
var measureColumns = []struct {
	head, name string
	inText     bool
	text       func(m *Measures) string
	csv        func(m *Measures) string
}{
	{"CALLS", "calls", true, func(m *Measures) string { return num(m.Calls) }, nil},
	{"ANS", "answered", true, func(m *Measures) string { return num(m.Answered) }, nil},
	{"ABAND", "abandoned", true, func(m *Measures) string { return num(m.Abandoned) }, nil},
	{"ABAND%", "abandonment_rate", true, func(m *Measures) string { return opt(m.AbandonmentRate, pct) }, func(m *Measures) string { return optCSV(m.AbandonmentRate) }},
	{"ORDERS", "orders", true, func(m *Measures) string { return num(m.Orders) }, nil},
	{"PHONE", "phone_orders", false, func(m *Measures) string { return num(m.PhoneOrders) }, nil},
	{"WEB", "web_orders", true, func(m *Measures) string { return num(m.WebOrders) }, nil},
	{"CANC", "cancellations", true, func(m *Measures) string { return num(m.Cancellations) }, nil},
	{"NET ORD", "net_orders", true, func(m *Measures) string { return num(m.NetOrders) }, nil},
	{"CLOSE%", "close_rate", true, func(m *Measures) string { return opt(m.CloseRate, pct) }, func(m *Measures) string { return optCSV(m.CloseRate) }},
	{"GROSS", "gross_revenue_cents", true, func(m *Measures) string { return money(m.GrossRevenueCents) }, func(m *Measures) string { return num(m.GrossRevenueCents) }},
	{"REFUNDS", "refund_cents", false, func(m *Measures) string { return money(m.RefundCents) }, func(m *Measures) string { return num(m.RefundCents) }},
	{"NET REV", "net_revenue_cents", true, func(m *Measures) string { return money(m.NetRevenueCents) }, func(m *Measures) string { return num(m.NetRevenueCents) }},
	{"AOV", "average_order_value_cents", true, func(m *Measures) string { return opt(m.AverageOrderValueCents, centsText) }, func(m *Measures) string { return optCSV(m.AverageOrderValueCents) }},
	{"UPSELLS", "upsells", true, func(m *Measures) string { return num(m.Upsells) }, nil},
	{"CONT", "continuity_enrolments", true, func(m *Measures) string { return num(m.ContinuityEnrolments) }, nil},
	{"COST", "media_cost_cents", true, func(m *Measures) string { return money(m.MediaCostCents) }, func(m *Measures) string { return num(m.MediaCostCents) }},
	{"CPC", "cost_per_call_cents", true, func(m *Measures) string { return opt(m.CostPerCallCents, centsText) }, func(m *Measures) string { return optCSV(m.CostPerCallCents) }},
	{"CPO", "cost_per_order_cents", true, func(m *Measures) string { return opt(m.CostPerOrderCents, centsText) }, func(m *Measures) string { return optCSV(m.CostPerOrderCents) }},
	{"RATIO", "media_ratio", true, func(m *Measures) string { return opt(m.MediaRatio, dec2) }, func(m *Measures) string { return optCSV(m.MediaRatio) }},
	{"TARGET", "target_ratio", true, func(m *Measures) string { return opt(m.TargetRatio, dec2) }, func(m *Measures) string { return optCSV(m.TargetRatio) }},
	{"VS TGT", "ratio_to_target", true, func(m *Measures) string { return opt(m.RatioToTarget, pct) }, func(m *Measures) string { return optCSV(m.RatioToTarget) }},
	{"HIT", "on_target", true, func(m *Measures) string { return onTarget(m.OnTarget, "yes", "no", "-") }, func(m *Measures) string { return onTarget(m.OnTarget, "1", "0", "") }},
	{"CALLS/$1K", "calls_per_1000", true, func(m *Measures) string { return opt(m.CallsPer1000, dec2) }, func(m *Measures) string { return optCSV(m.CallsPer1000) }},
	{"IN WINDOW", "window_calls", true, func(m *Measures) string { return num(m.WindowCalls) }, nil},
	{"BASE/MIN", "baseline_rate", false, func(m *Measures) string { return dec2(m.BaselineRate) }, func(m *Measures) string { return strconv.FormatFloat(m.BaselineRate, 'g', -1, 64) }},
	{"BASE CALLS", "baseline_calls", false, func(m *Measures) string { return num(m.BaselineCalls) }, nil},
	{"BASE MIN", "baseline_minutes", false, func(m *Measures) string { return num(m.BaselineMinutes) }, nil},
	{"EXPECTED", "expected_baseline_calls", false, func(m *Measures) string { return dec2(m.ExpectedBaselineCalls) }, func(m *Measures) string { return strconv.FormatFloat(m.ExpectedBaselineCalls, 'g', -1, 64) }},
	{"LIFT", "lift", true, func(m *Measures) string { return strconv.FormatFloat(m.Lift, 'f', 1, 64) }, func(m *Measures) string { return strconv.FormatFloat(m.Lift, 'g', -1, 64) }},
	{"TGT COST", "target_cost_cents", false, func(m *Measures) string { return money(m.TargetCostCents) }, func(m *Measures) string { return num(m.TargetCostCents) }},
	{"REQ REV x100", "required_revenue_x100", false, func(m *Measures) string { return num(m.RequiredRevenueX100) }, nil},
}

func onTarget(b *bool, yes, no, null string) string {
	switch {
	case b == nil:
		return null
	case *b:
		return yes
	}
	return no
}

// local formats an airing's time in the report's time zone.
func (res *Result) local(t time.Time) string {
	loc, err := time.LoadLocation(res.Options.Config.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

func writeText(w io.Writer, res *Result) error {
	o := res.Options
	fmt.Fprintf(w, "Airings from %s to %s", res.local(o.Filter.From), res.local(o.Filter.To))
	for _, f := range []struct{ name, v string }{{"offer", o.Filter.Offer}, {"station", o.Filter.Station}, {"market", o.Filter.Market}} {
		if f.v != "" {
			fmt.Fprintf(w, ", %s %s", f.name, f.v)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var heads []string
	if o.By == ByAiring {
		heads = []string{"AIRING", "AIRED", "STATION", "MARKET", "OFFER", "ISCI", "DNIS", "STATUS", "CUR"}
	} else {
		heads = []string{strings.ToUpper(string(o.By)), "AIRINGS", "DNR", "CUR"}
	}
	for _, c := range measureColumns {
		if c.inText {
			heads = append(heads, c.head)
		}
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t")+"\t")
	row := func(lead []string, m *Measures) {
		cells := lead
		for _, c := range measureColumns {
			if c.inText {
				cells = append(cells, c.text(m))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if o.By == ByAiring {
		for i := range res.Airings {
			f := &res.Airings[i]
			row([]string{f.AiringID, res.local(f.AiredAt), f.Station, f.Market, f.Offer, f.ISCI, f.DNIS, f.Status, f.Currency}, &f.Measures)
		}
		u := res.Unattributed
		row([]string{"(unattributed)", "", "", "", "", "", "", "", ""}, &u.Measures)
	} else {
		for i := range res.Rollups {
			r := &res.Rollups[i]
			row([]string{r.Key, num(r.Airings), num(r.DidNotRun), r.Currency}, &r.Measures)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.By != ByAiring {
		u := res.Unattributed
		fmt.Fprintf(w, "\nUnattributed (no airing claims them): %d calls, %d orders, net revenue %s.\n", u.Calls, u.Orders, money(u.NetRevenueCents))
	}
	if o.Curves {
		fmt.Fprintln(w, "\nResponse curves: calls per minute since air time, to the end of the response window")
		for _, f := range res.Airings {
			parts := make([]string, len(f.Curve))
			for i, n := range f.Curve {
				parts[i] = num(n)
			}
			fmt.Fprintf(w, "%s: %s\n", f.AiringID, strings.Join(parts, " "))
		}
	}
	fmt.Fprintln(w, "\nMoney in currency units; ratios rounded for display (CSV and JSON are exact). See docs/airings.md for every figure's definition.")
	return nil
}

func writeCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	o := res.Options
	var heads []string
	if o.By == ByAiring {
		heads = []string{"airing_id", "status", "aired_at", "aired_at_ms", "aired_until_ms", "offer", "station", "market", "media_type", "isci",
			"dnis", "promo_code", "vanity_url", "length_seconds", "did_not_run", "currency", "window_minutes", "target_ratio_pct",
			"response_start_ms", "response_end_ms", "window_length_minutes", "daypart", "broadcast_day", "broadcast_week"}
	} else {
		heads = []string{Dimension(o.By).Column(), "airings", "did_not_run", "currency"}
	}
	for _, c := range measureColumns {
		heads = append(heads, c.name)
	}
	if o.By == ByAiring && o.Curves {
		heads = append(heads, "curve")
	}
	if err := cw.Write(heads); err != nil {
		return err
	}
	measures := func(m *Measures) []string {
		var out []string
		for _, c := range measureColumns {
			if c.csv != nil {
				out = append(out, c.csv(m))
			} else {
				out = append(out, c.text(m))
			}
		}
		return out
	}
	if o.By == ByAiring {
		all := append([]Figures(nil), res.Airings...)
		all = append(all, res.Unattributed)
		for _, f := range all {
			rec := []string{f.AiringID, f.Status, f.AiredAt.UTC().Format(time.RFC3339), num(f.AiredAtMS), num(f.AiredUntilMS), f.Offer, f.Station, f.Market,
				f.MediaType, f.ISCI, f.DNIS, f.PromoCode, f.VanityURL, num(f.LengthSeconds), strconv.FormatBool(f.DidNotRun), f.Currency,
				num(f.WindowMinutes), num(f.TargetRatioPct), num(f.ResponseStart), num(f.ResponseEnd),
				strconv.FormatFloat(f.WindowLengthMinutes, 'g', -1, 64), f.Daypart, f.BroadcastDay, f.BroadcastWeek}
			rec = append(rec, measures(&f.Measures)...)
			if o.Curves {
				parts := make([]string, len(f.Curve))
				for i, n := range f.Curve {
					parts[i] = num(n)
				}
				rec = append(rec, strings.Join(parts, " "))
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	} else {
		for _, r := range res.Rollups {
			rec := append([]string{r.Key, num(r.Airings), num(r.DidNotRun), r.Currency}, measures(&r.Measures)...)
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
