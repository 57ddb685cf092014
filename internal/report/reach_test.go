package report_test

import (
	"testing"
	"time"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/producers/event"
)

// TestReachOfAiringsOutsideTheRange checks the airings a report must
// weigh although they did not air in its range, and those it must not
// show although a version of them did (a report computes the latest state
// only of the airings that can reach its scan): a three-day response
// window from an airing two days before the range claims calls and a
// phone order in it; a post-log that moves an airing out of the range
// days back leaves its calls unattributed and the airing not shown; one
// that moves an airing from days before into the range shows it with its
// calls. Against the Go truth, on both engines, for the day and for two
// hours of it.
func TestReachOfAiringsOutsideTheRange(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 61})
	evs := d.Events
	add := func(e *event.Event) { evs = append(evs, e) }
	configured, scheduled := d.From.Add(-10*24*time.Hour), d.From.Add(-9*24*time.Hour)
	postLogged := d.To.Add(time.Hour)
	add(airings.Offer{Offer: "long-haul", Currency: "USD", TargetRatioPct: 200, WindowMinutes: 3 * 24 * 60}.Event(demoday.Schedule, configured))
	airing := func(id, dnis string, at time.Time) airings.Airing {
		return airings.Airing{ID: id, Offer: "long-haul", Station: "QVCX", Market: "Tampa", MediaType: airings.MediaTV, ISCI: "LH01",
			AiredAt: at, LengthSeconds: 60, SpendCents: 50000, Currency: "USD", DNIS: dnis}
	}
	seq := 0
	call := func(dnis string, at time.Time, order bool) {
		seq++
		id := "reach-" + string(rune('a'+seq))
		r := event.New(event.CallReceived, demoday.ACDTampa, at)
		r.CallID, r.DNIS = id, dnis
		add(r)
		a := event.New(event.CallAnswered, demoday.ACDTampa, at.Add(5*time.Second))
		a.CallID, a.DNIS = id, dnis
		add(a)
		if order {
			o := event.New(event.OrderPlaced, demoday.Console, at.Add(3*time.Minute))
			o.OrderID, o.CallID, o.DNIS, o.Offer = "reach-order-"+id, id, dnis, "long-haul"
			o.AmountCents, o.Currency, o.Channel = 4995, "USD", event.ChannelPhone
			add(o)
		}
	}
	// Two days before the range, a window of three days.
	long := airing("LH-LONG", "8005550991", d.From.Add(-48*time.Hour))
	add(long.Event(event.AiringScheduled, demoday.Schedule, scheduled))
	call("8005550991", d.From.Add(3*time.Hour), true)
	call("8005550991", d.From.Add(20*time.Hour), false)
	// Scheduled in the range, moved five days back by the post-log.
	out := airing("LH-OUT", "8005550992", d.From.Add(2*time.Hour))
	add(out.Event(event.AiringScheduled, demoday.Schedule, scheduled))
	out.AiredAt = d.From.Add(-5 * 24 * time.Hour)
	add(out.Event(event.AiringRevised, demoday.Schedule, postLogged))
	call("8005550992", d.From.Add(2*time.Hour+10*time.Minute), true)
	// Scheduled six days before, moved into the range by the post-log.
	in := airing("LH-IN", "8005550993", d.From.Add(-6*24*time.Hour))
	add(in.Event(event.AiringScheduled, demoday.Schedule, scheduled))
	in.AiredAt = d.From.Add(5 * time.Hour)
	add(in.Event(event.AiringRevised, demoday.Schedule, postLogged))
	call("8005550993", d.From.Add(5*time.Hour+5*time.Minute), true)

	truth := demoday.ComputeTruth(evs, report.DefaultConfig())
	if truth.Airings["LH-LONG"].Calls != 2 || truth.Airings["LH-IN"].Calls != 1 || truth.Airings["LH-OUT"].Calls != 0 {
		t.Fatalf("the truth does not see the case: long %d, in %d, out %d calls",
			truth.Airings["LH-LONG"].Calls, truth.Airings["LH-IN"].Calls, truth.Airings["LH-OUT"].Calls)
	}
	numbered := reporttest.Number(evs, 1)
	for _, e := range []engine{on18(t, numbered), onCHDB(t, numbered)} {
		for _, r := range []struct{ from, to time.Time }{{d.From, d.To}, {d.From.Add(4 * time.Hour), d.From.Add(6 * time.Hour)}} {
			res := run(t, e, report.Options{Filter: report.Filter{From: r.from, To: r.to}})
			var want []string
			for id, a := range truth.Airings {
				if a.AiredAtMS >= r.from.UnixMilli() && a.AiredAtMS < r.to.UnixMilli() {
					want = append(want, id)
				}
			}
			for i := range res.Airings {
				res.Airings[i].Curve = truth.Airings[res.Airings[i].AiringID].Curve
			}
			who := e.name + " " + r.from.Format(time.RFC3339) + " to " + r.to.Format(time.RFC3339)
			checkAirings(t, who, res.Airings, truth, want)
			checkUnattributed(t, who, res.Unattributed, truth.UnattributedBetween(r.from, r.to))
		}
	}
}
