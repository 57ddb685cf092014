// Package chaos runs airtally's chain under random faults and accounts for
// every acknowledged event, Jepsen-style: present once, lost, or counted
// twice.
//
// Run brings up a three-node NATS cluster (each node a separate process,
// "airtally nats-node"), three-way replicated streams, the HTTP gateway as
// a process ("airtally gateway"), two loaders (one a process, "airtally
// loader", one in this process behind a proxy that can slow ClickHouse
// down) and producers: two publishers on the cluster, one behind a
// cuttable proxy, and an HTTP client of the gateway that resends a request
// until it gets a 202. A fault injector driven by a seeded RNG then kills
// and breaks things (kill -9 of a NATS node, of the gateway or of the
// loader process; ClickHouse stopped or killed; a producer cut off; a slow
// ClickHouse), sometimes two at once, for Config.Duration. Then the faults
// stop, everything settles, and every event whose receipt or 202 a
// producer got is looked up in ClickHouse through FINAL.
//
// The same seed replays the same schedule of faults (their timing relative
// to the load varies). The harness is shared by "airtally chaos" and the
// end-to-end test TestChaosExactAccount; it does not import testing.
package chaos
