package bench

import (
	"time"
)

// Targets of the benchmark (the aims).
const (
	// TargetRatio: end-to-end throughput at least 80% of the slower raw
	// limit (issue 12; it was 60%).
	TargetRatio = 0.80
	// ReplayTargetRatio: replay at least 70% of the raw fetch rate.
	ReplayTargetRatio = 0.70
	// TargetP99 at TargetRate: p99 event-to-queryable latency under 1 s.
	TargetP99  = time.Second
	TargetRate = 1000
)

// Report is the outcome of a run.
type Report struct {
	Machine Machine `json:"machine"`
	// Params are the run's parameters, defaults applied.
	Params Params `json:"params"`
	// Results has one entry per sync setting, in Config.Syncs order.
	Results []Result `json:"results"`
	// PeaksPerPhase is true when every phase's peak memory was measured
	// from that phase's start; false when resetting the peak failed, so a
	// peak may include earlier phases.
	PeaksPerPhase bool      `json:"peaks_per_phase"`
	Started       time.Time `json:"started"`
	Seconds       float64   `json:"seconds"`
}

// Machine is where the run happened.
type Machine struct {
	Cores             int    `json:"cores"`
	GOMAXPROCS        int    `json:"gomaxprocs"`
	CPU               string `json:"cpu,omitempty"`
	OS                string `json:"os"`
	GoVersion         string `json:"go_version"`
	NATSVersion       string `json:"nats_server_version"`
	ClickHouseVersion string `json:"clickhouse_version"`
	// Dir is the folder holding the stores (its disk takes the fsyncs).
	Dir string `json:"dir"`
	// LoadAverage is /proc/loadavg's 1-, 5- and 15-minute load when the run
	// started: other work on the machine shares its cores.
	LoadAverage string `json:"load_average,omitempty"`
}

// Params are a run's parameters.
type Params struct {
	Events          int     `json:"events"`
	Rate            int     `json:"rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	FlushMillis     float64 `json:"loader_flush_interval_ms"`
	PollMillis      float64 `json:"poll_interval_ms"`
	Window          int     `json:"publish_window"`
	InsertBatch     int     `json:"insert_batch"`
	PublishBatch    int     `json:"publish_batch"`
	Sources         int     `json:"sources"`
	LoaderBatch     int     `json:"loader_batch_size"`
	ReplayBatch     int     `json:"replay_batch_size"`
}

// Result is every figure of one sync setting.
type Result struct {
	Sync        Sync   `json:"sync"`
	Description string `json:"description"`
	// RawPublish: JetStream publish rate alone (async, bounded window,
	// every ack awaited).
	RawPublish Throughput `json:"raw_publish"`
	// RawFetch: JetStream read rate alone (an ordered consumer reading
	// Events stored messages, as replay does, nothing inserted).
	RawFetch Throughput `json:"raw_fetch"`
	// RawInsert: ClickHouse insert rate alone (batch inserts into the
	// events table).
	RawInsert Throughput `json:"raw_insert"`
	// RawInsertReplayBatch is RawInsert in batches of the replay's size
	// (RawInsert itself when the sizes are equal).
	RawInsertReplayBatch Throughput `json:"raw_insert_replay_batch"`
	// EndToEnd: publisher → JetStream → loader → rows queryable.
	EndToEnd EndToEnd `json:"end_to_end"`
	// Replay: Events events already in the stream replayed into a fresh
	// database (loader.Replay).
	Replay Replay `json:"replay"`
	// Latency at the paced rate.
	Latency Latency `json:"latency"`
	// Peak is the peak memory while the pipeline ran (the end-to-end and
	// latency phases). The raw phases' peaks, in their own fields, include
	// the benchmark's pre-built events or rows.
	Peak Memory `json:"peak_memory"`
}

// Throughput is a count of events (or rows) over a time.
type Throughput struct {
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	Peak      Memory  `json:"peak_memory"`
	// CPU is the processor time both processes used over Seconds (the
	// timed part of the phase).
	CPU CPU `json:"cpu"`
}

func throughput(n int, d time.Duration) Throughput {
	return Throughput{Events: n, Seconds: d.Seconds(), PerSecond: float64(n) / d.Seconds()}
}

// EndToEnd is the end-to-end phase: time from the first publish to the
// moment the count of the run's events in ClickHouse reaches Events.
type EndToEnd struct {
	Throughput
	// PublishSeconds is when the last publish was acknowledged, from the
	// first publish.
	PublishSeconds float64 `json:"publish_seconds"`
	// Loaded is the count of the run's events read with FINAL at the end
	// (each event once): it equals Events.
	Loaded uint64 `json:"loaded"`
	// Spooled counts events the publishers spooled instead of publishing
	// (JetStream did not take them in time); they were forwarded later.
	Spooled int `json:"spooled"`
	// CostBound is the rate the raw phases' processor time allows on this
	// machine's cores: one raw publish, one raw fetch and one raw insert
	// per event, nothing else (costBound). The loader's durable consumer
	// and acks cost more than the raw fetch, so it is an upper bound.
	CostBound float64 `json:"raw_cost_bound"`
	// Ratio is PerSecond over the slower raw limit (Limit names it:
	// "publish" or "insert").
	Ratio     float64 `json:"ratio_to_slower_raw_limit"`
	Limit     string  `json:"slower_raw_limit"`
	TargetMet bool    `json:"target_met"`
	// Loader is what the loader's metrics counted.
	Loader LoaderStats `json:"loader"`
}

// Replay is the replay phase: from the start of loader.Replay to its
// return, every event then in ClickHouse.
type Replay struct {
	Throughput
	// Loaded is the count of the run's events read with FINAL after it.
	Loaded  uint64 `json:"loaded"`
	Batches int    `json:"batches"`
	// PartsCreated by the events inserts (one per month in each batch);
	// ActiveParts of the events table right after the replay.
	PartsCreated int `json:"parts_created"`
	ActiveParts  int `json:"active_parts_after"`
	// InsertSeconds is the time replay waited for inserts.
	InsertSeconds float64 `json:"insert_seconds"`
	// Merges and MergedRows ClickHouse did during the phase (server-wide
	// counters of system.events; the run's server does nothing else).
	Merges     uint64 `json:"merges"`
	MergedRows uint64 `json:"merged_rows"`
	// CostBound is the rate the raw phases' processor time allows on this
	// machine's cores: one raw fetch and one raw insert (in batches of the
	// replay's size) per event, no decoding, no read-back (costBound).
	CostBound float64 `json:"raw_cost_bound"`
	// Ratio is PerSecond over the raw fetch rate; TargetMet when it is at
	// least ReplayTargetRatio.
	Ratio     float64 `json:"ratio_to_raw_fetch"`
	TargetMet bool    `json:"target_met"`
}

// LoaderStats are the loader's metrics over a phase.
type LoaderStats struct {
	// Batches is the number of batch inserts.
	Batches int `json:"batches"`
	// Rows inserted (a redelivered event counts again).
	Rows int `json:"rows"`
	// Redelivered counts messages received that had been delivered before
	// (each waited AckWait, 2 minutes by default, to come back).
	Redelivered int `json:"redelivered"`
	// InsertSeconds is the time spent in batch inserts.
	InsertSeconds float64 `json:"insert_seconds"`
}

// Latency is the paced phase: each event's time from the PublishBatch
// call that carried it to the first poll that saw it in ClickHouse.
type Latency struct {
	Rate int `json:"rate"`
	// Events were published over PublishSeconds (AchievedRate = Events /
	// PublishSeconds).
	Events         int     `json:"events"`
	PublishSeconds float64 `json:"publish_seconds"`
	AchievedRate   float64 `json:"achieved_rate"`
	P50Millis      float64 `json:"p50_ms"`
	P99Millis      float64 `json:"p99_ms"`
	MaxMillis      float64 `json:"max_ms"`
	MeanMillis     float64 `json:"mean_ms"`
	// Polls is the number of max(source_seq) queries made.
	Polls int `json:"polls"`
	// TargetMet: p99 under 1 s, at a rate of at least 1000 events/s.
	TargetMet bool        `json:"target_met"`
	Loader    LoaderStats `json:"loader"`
	Peak      Memory      `json:"peak_memory"`
}

func (t *Throughput) setPeak(m Memory) { t.Peak = m }
func (l *Latency) setPeak(m Memory)    { l.Peak = m }

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
