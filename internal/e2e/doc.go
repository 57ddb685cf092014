// Package e2e holds airtally's end-to-end tests of the durable event path:
// agents' systems → JetStream → ClickHouse, with the real servers and the
// real components wired together as in production.
//
// Every test builds the whole chain: an embedded NATS server with the
// airtally streams (internal/streams), a fresh migrated database on the
// test binary's clickhouse-server (internal/testenv), the real loader
// (consumers/loader) running in a goroutine, one or more real publishers
// (producers/publisher), each with its own spool folder, and, where HTTP is
// involved, the real gateway (producers/gateway) behind an httptest server.
// Results are read the way every shipped query reads them: through FINAL.
//
// What the tests prove, one test per acceptance item:
//
//   - TestLibraryAndHTTPEventsLoadedExactlyOnce: N events through the Go
//     library and M through HTTP (one object, an array, NDJSON) become
//     exactly N+M rows, each event id once.
//   - TestSameEventSentTwiceIsOneRow: an event sent twice (library twice,
//     HTTP twice, once by each, and a copy stored twice in the stream, as
//     after the duplicate window) is one row.
//   - TestLoaderKilledAfterInsertBeforeAck: a loader process killed with
//     SIGKILL after its insert returned and before its acks reached NATS
//     leaves no extra row once another loader takes over.
//   - TestClickHouseStoppedMidLoad: ClickHouse stopped (or killed) while the
//     loader has events to insert, then restarted: every event, once.
//   - TestNATSDownWhileProducing: events produced while NATS is down are
//     spooled (receipt status "spooled") and, once NATS is back, loaded in
//     each source's order (source_seq 1..n with increasing stream_seq).
//   - TestTornSpoolFrame: a spool segment with a torn last frame or trailing
//     garbage is repaired at open, the damage is reported by file and bytes,
//     and the intact frames reach ClickHouse.
//   - TestInvalidEventsRejectedOrDeadLettered: invalid events get a 400 with
//     field errors over HTTP, or, put raw on the stream, are dead-lettered
//     with the reason; the good events beside them are loaded.
//   - TestCardNumbersNeverStored: a card number in any field, spelling or
//     place is rejected and absent from both streams, from every String
//     column of every table, from the components' raw log output, from the
//     HTTP answers and from the spool and JetStream files on disk.
//   - TestTwoLoadersOneConsumer: two loaders sharing the durable consumer
//     while producers publish concurrently load every event once.
//   - TestReplayMatchesLive: after a scenario with all of the above, a
//     replay into a fresh database gives the same rows as the live load.
//
// TestHTTPResendWithoutSeqLeavesNoGap checks a promise of docs/events.md
// beyond that list: an HTTP client that leaves source.seq to the gateway
// and resends a request, as it is told to, leaves no gap in its source's
// numbers.
//
// Failover and locked-down access (issue 6):
//
//   - TestClusterNodeKilledWhilePublishingAndLoading: a three-node NATS
//     cluster with replicated streams loses no acknowledged event when the
//     stream leader, the consumer leader or a follower is killed.
//   - TestClusterLoaderKilledPeerTakesOver: a loader killed with SIGKILL
//     mid-stream; its peer on the same durable consumer loads the rest.
//   - TestChaosExactAccount: internal/chaos (also "airtally chaos") for
//     about 20 s per JetStream sync setting: NATS nodes, the gateway and
//     a loader as processes killed with SIGKILL, ClickHouse stopped,
//     killed and slowed, producers cut off, sometimes two faults at once;
//     every acknowledged event present once (docs/durability.md).
//   - TestNATSPermissions, TestPermissionsDocMatches, TestNATSTLS,
//     TestGatewayTLS, TestNoSecretInLogsOrErrors: per-user NATS permissions
//     with private inboxes (as deploy/nats/permissions.md documents), TLS
//     with generated certificates, and no secret in logs or errors.
//   - TestClickHouseUsersLockedDown: the loader's user cannot change the
//     schema; Grafana's and analysts' users are read-only with limits.
//   - TestCardCorpusNeverStored: every card of producers/pci's corpus is
//     refused on every path and stored nowhere; the look-alikes that fail
//     Luhn are stored verbatim.
//
// Start in any order (issue 13), each component run as the airtally
// command itself (cli.Run in this process):
//
//   - TestLoaderStartsWithEachDependencyDown: the loader started with NATS,
//     ClickHouse or both down (back in either order) says so once, is not
//     ready, stays up, then migrates the database, loads every event
//     exactly once and is ready.
//   - TestGatewayDetectorAndLoaderStartWithNATSDown: all three started
//     with NATS down; the gateway accepts events into its spool; once NATS
//     is back they are loaded exactly once and the detector reads the
//     stream; NATS then lost and regained while they run: nothing exits,
//     /readyz and airtally_dependency_up follow.
//   - TestMigrateWaitsForClickHouse, TestStoppedWhileWaitingExitsCleanly,
//     TestConfigurationErrorsEndAtOnce: migrate waits; a service stopped
//     while waiting exits 0; refused credentials, a refused JetStream API,
//     an unknown ClickHouse user and a database of the other mode end the
//     command at once with their reason.
//
// TestChaosExactAccount also plays the chaos start-up faults: the loader
// restarted while ClickHouse is down, and a power cut (every process
// killed and restarted in random order); it fails on any process that
// exits by itself.
//
// A test that stops the shared ClickHouse server restarts it itself; no
// test here runs in parallel with another.
package e2e
