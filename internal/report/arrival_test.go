package report_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// TestArrivalOrder loads the same day in different orders, several inserts
// each (so that copies and versions sit in unmerged parts), and checks
// after every insert that the report equals the truth of what has arrived
// so far, and at the end the truth of the whole day: calls that came
// before their schedule are attributed once it comes, a post-log that
// moves an air time moves the calls it should, and the order never
// matters.
func TestArrivalOrder(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 21})
	schedule, responses := split(d.Events)
	var scheduledOnly, revisions []*event.Event
	for _, e := range schedule {
		if e.Kind == event.AiringScheduled || e.Kind == event.OfferConfigured {
			scheduledOnly = append(scheduledOnly, e)
		} else {
			revisions = append(revisions, e)
		}
	}
	shuffled := slices.Clone(d.Events)
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	reversed := slices.Clone(d.Events)
	slices.Reverse(reversed)

	cases := []struct {
		name   string
		chunks [][]*event.Event
	}{
		{"calls and orders before their schedule", [][]*event.Event{responses, schedule}},
		{"post-logs after the calls", [][]*event.Event{scheduledOnly, responses, revisions}},
		{"revisions before the schedule they revise", [][]*event.Event{revisions, responses, scheduledOnly}},
		{"shuffled, seven inserts", chunk(shuffled, 7)},
		{"reversed, one insert per 500", chunk(reversed, (len(reversed)+499)/500)},
		{"everything twice", [][]*event.Event{d.Events, shuffled}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, db := testenv.NewDatabase(t, true)
			e := engine{name: "ClickHouse 18.16", db: db, q: report.Native(conn)}
			var arrived []*event.Event
			seq := uint64(1)
			for i, part := range c.chunks {
				if err := reporttest.Load(t.Context(), conn, db, reporttest.Number(part, seq)); err != nil {
					t.Fatal(err)
				}
				seq += uint64(len(part))
				arrived = append(arrived, part...)
				truth := demoday.ComputeTruth(arrived, report.DefaultConfig())
				res := run(t, e, dayOptions(d))
				who := c.name + ", after insert " + string(rune('1'+i))
				checkAirings(t, who, res.Airings, truth, allIDs(truth))
				checkUnattributed(t, who, res.Unattributed, truth.UnattributedBetween(d.From, d.To))
			}
			// Whatever the order, the end is the whole day's truth.
			res := run(t, e, dayOptions(d))
			checkAirings(t, c.name+", at the end", res.Airings, d.Truth, allIDs(d.Truth))
			checkUnattributed(t, c.name+", at the end", res.Unattributed, d.Truth.UnattributedBetween(d.From, d.To))
		})
	}

	t.Run("chDB, shuffled", func(t *testing.T) {
		var parts [][]reporttest.Sequenced
		seq := uint64(1)
		for _, part := range chunk(shuffled, 5) {
			parts = append(parts, reporttest.Number(part, seq))
			seq += uint64(len(part))
		}
		e := onCHDB(t, parts...)
		res := run(t, e, dayOptions(d))
		checkAirings(t, "chDB shuffled", res.Airings, d.Truth, allIDs(d.Truth))
		checkUnattributed(t, "chDB shuffled", res.Unattributed, d.Truth.UnattributedBetween(d.From, d.To))
	})
}

// TestPostLogMovesCalls checks, on the day itself, that the revised air
// time changed the attribution: with the schedule alone the calls in the
// minutes the post-log moved would go elsewhere.
func TestPostLogMovesCalls(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 21})
	var before []*event.Event
	for _, e := range d.Events {
		if e.Kind != event.AiringRevised {
			before = append(before, e)
		}
	}
	was := demoday.ComputeTruth(before, report.DefaultConfig()).Airings["SW-1700-WFLA"]
	now := d.Truth.Airings["SW-1700-WFLA"]
	if was.AiredAtMS == now.AiredAtMS || was.MediaCostCents == now.MediaCostCents {
		t.Fatalf("the post-log did not move the airing or correct its spend: %d→%d, %d→%d", was.AiredAtMS, now.AiredAtMS, was.MediaCostCents, now.MediaCostCents)
	}
	if was.Calls == now.Calls && was.WindowCalls == now.WindowCalls && was.BaselineCalls == now.BaselineCalls {
		t.Errorf("moving the air time by 7 minutes changed no call figure (calls %d, window %d, baseline %d)", now.Calls, now.WindowCalls, now.BaselineCalls)
	}
}

func chunk(evs []*event.Event, n int) [][]*event.Event {
	var out [][]*event.Event
	size := (len(evs) + n - 1) / n
	for start := 0; start < len(evs); start += size {
		out = append(out, evs[start:min(start+size, len(evs))])
	}
	return out
}
