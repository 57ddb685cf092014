package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/producers/event"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/testenv"
)

// BenchmarkReportBroadcastYear times the airing report over a broadcast
// year: 50,000 airings and about 20 million events (calls with their
// answer, end or hang-up, phone and web orders, cancellations, every
// source's heartbeat each minute, and the call centre down 10 minutes a
// day) on ClickHouse 18.16. The data are
// generated inside ClickHouse (INSERT ... SELECT), deterministic but for
// event ids. AIRTALLY_BENCH_SCALE scales it (default 1; 0.1 is a tenth).
// It runs only with -bench, e.g.
//
//	go test ./internal/report -run '^$' -bench BroadcastYear -benchtime 1x
//
// It prints, for a year per airing, a year by offer, a week and a day,
// the report on read (before the projection) and from the projection
// (after), as wall time and as server CPU time (system.query_log), and
// checks that both give the same JSON; how long the projector takes to
// compute the year from nothing and to catch up after a post-log that
// moves an airing of a busy day; what marking an insert costs; and the
// projection's size on disk beside the events'.
func BenchmarkReportBroadcastYear(b *testing.B) {
	scale := 1.0
	if s := os.Getenv("AIRTALLY_BENCH_SCALE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			b.Fatalf("AIRTALLY_BENCH_SCALE=%q: want a positive number", s)
		}
		scale = v
	}
	conn, db := testenv.NewDatabase(b, true)
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"max_memory_usage": 12 << 30, "log_queries": 1}))
	year := time.Date(2026, 1, 5, 11, 0, 0, 0, time.UTC) // Monday 06:00 New York
	start := time.Now()
	events := generateYear(b, ctx, conn, db, year, scale)
	b.Logf("generated %d airings and %d events in %s", int(50000*scale), events, time.Since(start).Round(time.Second))

	cases := []struct {
		name string
		o    report.Options
	}{
		{"year_by_airing", report.Options{Filter: report.Filter{From: year, To: year.AddDate(0, 0, 364)}}},
		{"year_by_offer", report.Options{Filter: report.Filter{From: year, To: year.AddDate(0, 0, 364)}, By: report.By(report.ByOffer)}},
		{"week_by_airing", report.Options{Filter: report.Filter{From: year.AddDate(0, 0, 182), To: year.AddDate(0, 0, 189)}}},
		{"day_by_airing", report.Options{Filter: report.Filter{From: year.AddDate(0, 0, 200), To: year.AddDate(0, 0, 201)}}},
	}
	q := &timedQuerier{conn: conn}
	type timing struct {
		wall, cpu time.Duration
		json      string
		rows      int
	}
	runCase := func(o report.Options) timing {
		o.Database = db
		q.ids = nil
		t0 := time.Now()
		res, err := report.Run(ctx, q, o)
		if err != nil {
			b.Fatal(err)
		}
		wall := time.Since(t0)
		j, _ := json.Marshal(res)
		return timing{wall: wall, cpu: q.cpu(b, ctx), json: string(j), rows: len(res.Airings) + len(res.Rollups)}
	}
	before := map[string]timing{}
	for _, c := range cases {
		o := c.o
		o.Source = report.SourceOnRead
		before[c.name] = runCase(o)
	}

	x := projector.Native(conn)
	p, err := projector.New(x, projector.Config{Database: db})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := p.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	build := time.Since(t0)

	b.Logf("%-16s %12s %12s %12s %12s %6s %s", "report", "wall before", "wall after", "CPU before", "CPU after", "rows", "same JSON")
	for _, c := range cases {
		var after timing
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				// The fastest of the runs (-benchtime Nx): the machine is
				// shared and merges run beside.
				if t := runCase(c.o); after.json == "" || t.wall < after.wall {
					after = t
				}
			}
			b.ReportMetric(float64(after.rows), "rows")
			b.ReportMetric(after.cpu.Seconds()*1000, "cpu-ms")
		})
		bf := before[c.name]
		same := after.json == bf.json
		if !same {
			b.Errorf("%s: the projection's report differs from the report on read", c.name)
		}
		b.Logf("%-16s %12s %12s %12s %12s %6d %v", c.name, bf.wall.Round(time.Millisecond), after.wall.Round(time.Millisecond),
			bf.cpu.Round(time.Millisecond), after.cpu.Round(time.Millisecond), after.rows, same)
	}
	b.Logf("projector: the whole year from nothing in %s", build.Round(100*time.Millisecond))
	// A post-log moves an airing of the busiest day by 90 minutes.
	var busy string
	if err := conn.QueryRow(ctx, "SELECT toString(toDate(aired_at)) FROM "+db+".airings GROUP BY toDate(aired_at) ORDER BY count() DESC, toDate(aired_at) LIMIT 1").Scan(&busy); err != nil {
		b.Fatal(err)
	}
	var moved string
	if err := conn.QueryRow(ctx, "SELECT min(airing_id) FROM "+db+".airings WHERE toDate(aired_at) = toDate('"+busy+"') AND did_not_run = 0").Scan(&moved); err != nil {
		b.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO "+db+".airings SELECT airing_id, 'airing.revised', offer, station, market, media_type, isci, aired_at + 5400, aired_at_ms + 5400000,"+
		" aired_until, aired_until_ms, length_seconds, spend_cents, currency, dnis, promo_code, vanity_url, did_not_run, source_system, source_instance, version + 1,"+
		" generateUUIDv4(), stream_seq, now() FROM "+db+".airings WHERE airing_id = '"+moved+"'"); err != nil {
		b.Fatal(err)
	}
	t0 = time.Now()
	if err := projector.Mark(ctx, x, db, []projector.Touch{{Kind: event.AiringRevised, AiringID: moved}}); err != nil {
		b.Fatal(err)
	}
	marked := time.Since(t0)
	t0 = time.Now()
	var computed, statements, weeks int
	var daysClean time.Duration
	for {
		passStart := time.Now()
		st, err := p.Pass(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Days > 0 {
			daysClean = passStart.Add(st.DaysDone).Sub(t0)
		}
		computed, statements, weeks = computed+st.Days, statements+st.Statements, weeks+st.Weeks
		if st.Days == 0 && st.Waiting == 0 && st.Weeks == 0 {
			break
		}
		if st.Days == 0 && st.Weeks == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.Logf("post-log of airing %s on %s (the busiest day): marked in %s; every day clean again %s later (%d days computed, %d statements; a day is computed once its latest mark is %d s old), every week of accountability %s later (%d weeks)",
		moved, busy, marked.Round(time.Millisecond), daysClean.Round(time.Millisecond), computed, statements, report.MarkMarginSeconds, time.Since(t0).Round(time.Millisecond), weeks)
	benchAccountability(b, ctx, conn, db, q, p, year)
	day := cases[3].o
	busyDay, _ := time.Parse(time.DateOnly, busy)
	day.Filter = report.Filter{From: busyDay, To: busyDay.AddDate(0, 0, 1)}
	after := runCase(day)
	onRead := day
	onRead.Source = report.SourceOnRead
	if bf := runCase(onRead); bf.json != after.json {
		b.Errorf("after the post-log: the busy day from the projection differs from on read")
	} else {
		b.Logf("after the post-log: the busy day from the projection %s (CPU %s), on read %s (CPU %s), same JSON",
			after.wall.Round(time.Millisecond), after.cpu.Round(time.Millisecond), bf.wall.Round(time.Millisecond), bf.cpu.Round(time.Millisecond))
	}

	// What marking an insert costs: a loader batch of 5,000 calls and
	// orders of one hour, 1 in 20 a cancellation of an earlier order.
	touches := make([]projector.Touch, 0, 5000)
	at := busyDay.Add(15 * time.Hour).UnixMilli()
	for i := range 5000 {
		t := projector.Touch{Kind: event.CallReceived, At: at + int64(i)*720}
		if i%20 == 0 {
			t = projector.Touch{Kind: event.OrderCancelled, At: t.At, OrderID: fmt.Sprintf("o%d", i*997)}
		}
		touches = append(touches, t)
	}
	t0 = time.Now()
	const rounds = 10
	for range rounds {
		if err := projector.Mark(ctx, x, db, touches); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(t0) / rounds
	b.Logf("marking a batch of 5,000 events (250 cancellations): %s per batch, %.1f µs per event", per.Round(100*time.Microsecond), float64(per.Microseconds())/5000)

	rows, err := conn.Query(ctx, "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database = '"+db+"' AND table IN ('events', 'airing_measures', 'projection_days', 'projection_marks',"+
		" 'accountability_airings', 'accountability_coverage', 'accountability_shapes', 'accountability_weeks', 'accountability_marks') GROUP BY table ORDER BY table")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var n, bytes uint64
		if err := rows.Scan(&table, &n, &bytes); err != nil {
			b.Fatal(err)
		}
		b.Logf("on disk: %-23s %11d rows %9.1f MB", table, n, float64(bytes)/1e6)
	}
}

// timedQuerier runs the report's queries with query ids, to sum their
// server CPU time from system.query_log.
type timedQuerier struct {
	conn driver.Conn
	ids  []string
}

func (q *timedQuerier) Exec(ctx context.Context, sql string) error {
	id := uuid.NewString()
	q.ids = append(q.ids, id)
	return q.conn.Exec(clickhouse.Context(ctx, clickhouse.WithQueryID(id)), sql)
}

func (q *timedQuerier) Query(ctx context.Context, sql string) ([]report.Row, error) {
	id := uuid.NewString()
	q.ids = append(q.ids, id)
	return report.Native(q.conn).Query(clickhouse.Context(ctx, clickhouse.WithQueryID(id)), sql)
}

// cpu is the server CPU time of the queries run since ids was reset.
func (q *timedQuerier) cpu(b *testing.B, ctx context.Context) time.Duration {
	if err := q.conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		b.Fatal(err)
	}
	quoted := make([]string, len(q.ids))
	for i, id := range q.ids {
		quoted[i] = "'" + id + "'"
	}
	var us uint64
	if err := q.conn.QueryRow(ctx, "SELECT toUInt64(sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'OSCPUVirtualTimeMicroseconds')])) FROM system.query_log"+
		" WHERE type = 2 AND query_id IN ("+strings.Join(quoted, ", ")+")").Scan(&us); err != nil {
		b.Fatal(err)
	}
	return time.Duration(us) * time.Microsecond
}

// generateYear fills the database with a broadcast year and returns the
// number of events.
func generateYear(b *testing.B, ctx context.Context, conn driver.Conn, db string, year time.Time, scale float64) uint64 {
	ident, err := chsql.Ident(db)
	if err != nil {
		b.Fatal(err)
	}
	airingsN := int64(50000 * scale)
	calls := int64(5_500_000 * scale)
	web := int64(300_000 * scale)
	minutes := int64(364 * 24 * 60 * scale)
	y0 := year.UnixMilli()
	step := int64(364*86_400_000) / airingsN
	// at(a) is airing a's air time in ms.
	at := func(a string) string {
		return fmt.Sprintf("(%d + %s * %d + cityHash64(%s, 1) %% 600000)", y0, a, step, a)
	}
	// expo is an exponential delay with a 10-minute mean, capped at 40
	// minutes, drawn from hash h.
	expo := func(h string) string {
		return fmt.Sprintf("toInt64(least(-log((%s %% 1000000 + 1) / 1000001) * 600000, 2400000))", h)
	}
	r := strings.NewReplacer("{db}", ident)
	stmts := []string{
		fmt.Sprintf(`INSERT INTO {db}.offers (offer, media_type, currency, target_ratio_pct, window_minutes, source_system, source_instance, version, event_id, stream_seq, loaded_at)
SELECT concat('offer-', toString(number)), '', 'USD', 100 + number * 10, 30 + number * 6, 'schedule', 'bench', 1, generateUUIDv4(), number + 1, now()
FROM numbers(6)`),
		fmt.Sprintf(`INSERT INTO {db}.airings (airing_id, kind, offer, station, market, media_type, isci, aired_at, aired_at_ms, aired_until, aired_until_ms,
    length_seconds, spend_cents, currency, dnis, promo_code, vanity_url, did_not_run, source_system, source_instance, version, event_id, stream_seq, loaded_at)
SELECT concat('A', toString(number)), if(number %% 50 = 0, 'airing.cancelled', 'airing.scheduled'), concat('offer-', toString(number %% 6)),
    concat('ST', toString(cityHash64(number, 2) %% 30)), concat('M', toString(cityHash64(number, 3) %% 20)), if(number %% 10 = 0, 'radio', 'tv'),
    concat('ISCI', toString(cityHash64(number, 4) %% 50)), toDateTime(intDiv(t, 1000), 'UTC'), t, toDateTime(0, 'UTC'), 0,
    60, toInt64(20000 + cityHash64(number, 5) %% 200000), 'USD', toString(8005550000 + number %% 40), concat('P', toString(number %% 6)), '',
    toUInt8(number %% 50 = 0), 'schedule', 'bench', 1, generateUUIDv4(), number + 1, now()
FROM (SELECT number, %s AS t FROM numbers(%d))`, at("number"), airingsN),
		// Calls: four in five answer an airing (on its number, after it),
		// one in five is organic; one in eight hangs up.
		fmt.Sprintf(`INSERT INTO {db}.events (event_id, kind, schema_version, occurred_at, occurred_at_ms, source_system, source_instance, source_seq,
    call_id, dnis, wait_seconds, talk_seconds, disposition, stream_seq, stored_at, stored_at_ms, loaded_at)
SELECT generateUUIDv4(), kind, 1, toDateTime(intDiv(ms, 1000), 'UTC'), ms, 'acd', 'bench', c * 4 + k + 1,
    concat('c', toString(c)), dnis, 10, 290, if(k = 2, 'no_sale', ''), c * 4 + k + 1, toDateTime(intDiv(ms, 1000), 'UTC'), ms, now()
FROM
(
    SELECT c, dnis, t, arrayJoin(if(answered, [0, 1, 2], [0, 3])) AS k,
        multiIf(k = 0, 'call.received', k = 1, 'call.answered', k = 2, 'call.ended', 'call.abandoned') AS kind,
        t + multiIf(k = 0, 0, k = 1, 10000, k = 2, 300000, 60000) AS ms
    FROM
    (
        SELECT number AS c, cityHash64(number, 10) %% %[1]d AS a, number %% 5 = 0 AS organic,
            if(organic, %[2]d + toInt64(cityHash64(number, 12) %% %[3]d), %[4]s + %[5]s) AS t,
            toString(8005550000 + if(organic, cityHash64(number, 13) %% 40, a %% 40)) AS dnis,
            cityHash64(number, 14) %% 8 != 0 AS answered
        FROM numbers(%[6]d)
    )
)`, airingsN, y0, int64(364*86_400_000), at("a"), expo("cityHash64(number, 11)"), calls),
		// Phone orders on a third of the answered calls, one in ten
		// cancelled two days later (half of them refunded in part).
		fmt.Sprintf(`INSERT INTO {db}.events (event_id, kind, schema_version, occurred_at, occurred_at_ms, source_system, source_instance, source_seq,
    order_id, call_id, dnis, offer, amount_cents, currency, upsell_count, continuity, channel, stream_seq, stored_at, stored_at_ms, loaded_at)
SELECT generateUUIDv4(), kind, 1, toDateTime(intDiv(ms, 1000), 'UTC'), ms, 'console', 'bench', c * 2 + k + 1,
    concat('o', toString(c)), if(k = 0, concat('c', toString(c)), ''), '', concat('offer-', toString(c %% 6)),
    if(k = 0, toInt64(1995 + cityHash64(c, 20) %% 4 * 1000), toInt64(cityHash64(c, 22) %% 2 * 1000)), 'USD',
    if(k = 0, toInt64(cityHash64(c, 23) %% 3), 0), toUInt8(k = 0 AND cityHash64(c, 24) %% 3 = 0), if(k = 0, 'phone', ''),
    c * 2 + k + 1, toDateTime(intDiv(ms, 1000), 'UTC'), ms, now()
FROM
(
    SELECT c, arrayJoin(if(cityHash64(c, 21) %% 10 = 0, [0, 1], [0])) AS k,
        if(k = 0, 'order.placed', 'order.cancelled') AS kind, t + if(k = 0, 200000, 172800000) AS ms
    FROM
    (
        SELECT number AS c, if(number %% 5 = 0, %[1]d + toInt64(cityHash64(number, 12) %% %[2]d), %[3]s + %[4]s) AS t
        FROM numbers(%[5]d)
        WHERE cityHash64(number, 14) %% 8 != 0 AND cityHash64(number, 15) %% 3 = 0
    )
)`, y0, int64(364*86_400_000), at("cityHash64(number, 10) % "+strconv.FormatInt(airingsN, 10)), expo("cityHash64(number, 11)"), calls),
		// Web orders by promo code after airings.
		fmt.Sprintf(`INSERT INTO {db}.events (event_id, kind, schema_version, occurred_at, occurred_at_ms, source_system, source_instance, source_seq,
    order_id, offer, amount_cents, currency, channel, promo_code, stream_seq, stored_at, stored_at_ms, loaded_at)
SELECT generateUUIDv4(), 'order.placed', 1, toDateTime(intDiv(t, 1000), 'UTC'), t, 'shop', 'bench', number + 1,
    concat('w', toString(number)), concat('offer-', toString(a %% 6)), toInt64(2495 + cityHash64(number, 31) %% 3 * 1000), 'USD', 'web',
    concat('P', toString(a %% 6)), number + 1, toDateTime(intDiv(t, 1000), 'UTC'), t, now()
FROM (SELECT number, cityHash64(number, 30) %% %[1]d AS a, %[2]s + %[3]s AS t FROM numbers(%[4]d))`,
			airingsN, at("a"), expo("cityHash64(number, 32)"), web),
		// The call centre down 10 minutes a day, inside the busy hours
		// (what the detector writes: source.down, then source.up).
		fmt.Sprintf(`INSERT INTO {db}.events (event_id, kind, schema_version, occurred_at, occurred_at_ms, source_system, source_instance, source_seq,
    monitored_system, monitored_instance, window_start, window_start_ms, window_end, window_end_ms, tolerance_seconds, outcome, stream_seq, stored_at, stored_at_ms, loaded_at)
SELECT generateUUIDv4(), kind, 1, toDateTime(intDiv(ms, 1000), 'UTC'), ms, 'detector', 'bench', n * 2 + k + 1,
    'acd', 'bench', toDateTime(intDiv(s, 1000), 'UTC'), s, toDateTime(intDiv(e, 1000), 'UTC'), if(k = 0, s, e), 90, if(k = 0, '', 'down'),
    n * 2 + k + 1, toDateTime(intDiv(ms, 1000), 'UTC'), ms, now()
FROM
(
    SELECT number AS n, %d + toInt64(number) * 86400000 + 50400000 + toInt64(cityHash64(number, 40) %% 28800000) AS s, s + 600000 AS e,
        arrayJoin([0, 1]) AS k, if(k = 0, 'source.down', 'source.up') AS kind, if(k = 0, s + 90000, e + 1000) AS ms
    FROM numbers(364)
)`, y0),
		// Heartbeats: four sources, every minute.
		fmt.Sprintf(`INSERT INTO {db}.events (event_id, kind, schema_version, occurred_at, occurred_at_ms, source_system, source_instance, source_seq,
    interval_seconds, stream_seq, stored_at, stored_at_ms, loaded_at)
SELECT generateUUIDv4(), 'heartbeat', 1, toDateTime(intDiv(t, 1000), 'UTC'), t, s, 'bench', m + 1, 60, m + 1, toDateTime(intDiv(t, 1000), 'UTC'), t, now()
FROM (SELECT number AS m, arrayJoin(['acd', 'console', 'shop', 'gateway']) AS s, %d + toInt64(number) * 60000 AS t FROM numbers(%d))`, y0, minutes),
	}
	for i, s := range stmts {
		if err := conn.Exec(ctx, r.Replace(s)); err != nil {
			b.Fatalf("generate step %d: %v", i+1, err)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+ident+".events").Scan(&n); err != nil {
		b.Fatal(err)
	}
	// Merge what can be merged, as a day of running would.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+ident+".events"); err != nil {
		b.Logf("optimize: %v", err)
	}
	return n
}

// benchAccountability times the accountability over the year: read from
// its projection (a year, a week, a day), a day and a week computed on
// read over their slices, and computing every week again; and checks that
// the projection and the slices agree.
func benchAccountability(b *testing.B, ctx context.Context, conn driver.Conn, db string, q *timedQuerier, p *projector.Projector, year time.Time) {
	run := func(from, to time.Time, src accountability.Source) (time.Duration, time.Duration, string, int) {
		q.ids = nil
		t0 := time.Now()
		rows, err := accountability.QueryFrom(ctx, q, db, from, to, src)
		if err != nil {
			b.Fatal(err)
		}
		wall := time.Since(t0)
		j, _ := json.Marshal(rows)
		return wall, q.cpu(b, ctx), string(j), len(rows)
	}
	day := year.AddDate(0, 0, 200)
	cases := []struct {
		name     string
		from, to time.Time
		slices   bool
	}{
		{"year", year, year.AddDate(0, 0, 364), false},
		{"week", year.AddDate(0, 0, 182), year.AddDate(0, 0, 189), true},
		{"day", day, day.AddDate(0, 0, 1), true},
	}
	b.Logf("%-16s %12s %12s %12s %12s %6s %s", "accountability", "wall stored", "CPU stored", "wall slices", "CPU slices", "rows", "same JSON")
	for _, c := range cases {
		wall, cpu, j, n := run(c.from, c.to, accountability.SourceAuto)
		for range 2 { // the fastest of three: merges run beside
			if w, cp, _, _ := run(c.from, c.to, accountability.SourceAuto); w < wall {
				wall, cpu = w, cp
			}
		}
		if !c.slices {
			b.Logf("%-16s %12s %12s %12s %12s %6d", c.name, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), "-", "-", n)
			continue
		}
		sw, scpu, sj, _ := run(c.from, c.to, accountability.SourceSlices)
		if sj != j {
			b.Errorf("accountability %s: the projection differs from the slices computed on read", c.name)
		}
		b.Logf("%-16s %12s %12s %12s %12s %6d %v", c.name, wall.Round(time.Millisecond), cpu.Round(time.Millisecond),
			sw.Round(time.Millisecond), scpu.Round(time.Millisecond), n, sj == j)
	}
	// Every week again, as after an upgrade of the views.
	states, err := accountability.Weeks(ctx, q, db)
	if err != nil {
		b.Fatal(err)
	}
	all := make([]int64, 0, len(states))
	for _, w := range states {
		all = append(all, w.Week)
	}
	if err := conn.Exec(ctx, accountability.MarkWeeksSQL(db, all)); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Duration(report.MarkMarginSeconds+1) * time.Second)
	t0 := time.Now()
	st, err := p.Pass(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("accountability: all %d weeks computed again in %s (%d computations)", st.Weeks, time.Since(t0).Round(100*time.Millisecond), st.WeekComputations)
}
