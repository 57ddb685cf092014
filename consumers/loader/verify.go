package loader

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/chsql"
)

// A batch insert that ClickHouse answered as done is read back before its
// messages are acknowledged. ClickHouse 18.16 ends an INSERT whose data is
// still on its way when it is shutting down: the handler stops waiting for
// the client's data blocks, commits the blocks it received (often none) and
// answers the client "end of stream", so clickhouse-go's Send returns nil
// for rows that were never stored (reproduced by TestInsertReadBack: a
// client whose data is delayed past the server's poll_interval, SIGTERM
// meanwhile). The driver sends a batch as one data block, which the server
// writes whole or not at all; the read-back asks for every key of the batch
// all the same, so it does not lean on that.

// checkChunk is the most keys one read-back query names; 2,000 UUIDs are
// about 80 KB of SQL, well inside max_query_size (256 KiB).
const checkChunk = 2000

// storedCheck reads back a batch just inserted.
type storedCheck struct {
	queries []string // what run sends
	// run's error is a *notStoredError when the table does not hold every
	// key of the batch.
	run func(ctx context.Context, conn driver.Conn) error
}

// notStoredError is a batch insert ClickHouse answered as done whose rows
// are not (all) in the table.
type notStoredError struct {
	table   string
	keys    int
	missing int
}

func (e *notStoredError) Error() string {
	return fmt.Sprintf("loader: ClickHouse answered the insert into %s as done but holds %d of its %d keys; inserting again",
		e.table, e.keys-e.missing, e.keys)
}

// eventsCheck reads back rows of the events table by their sorting key:
// for each kind, the distinct event ids within the rows' occurred_at range.
// A copy stored by an earlier insert counts: the event is there.
func (t *eventsTable) eventsCheck(db string, rows [][]any) *storedCheck {
	type key struct {
		at time.Time
		id uuid.UUID
	}
	byKind := map[string][]key{}
	seen := map[uuid.UUID]bool{}
	for _, r := range rows {
		id, _ := r[t.eventID].(uuid.UUID)
		if seen[id] {
			continue
		}
		seen[id] = true
		kind, _ := r[t.kind].(string)
		at, _ := r[t.occurred].(time.Time)
		byKind[kind] = append(byKind[kind], key{at, id})
	}
	var queries []string
	var want []int
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		keys := byKind[kind]
		slices.SortFunc(keys, func(a, b key) int { return a.at.Compare(b.at) })
		for chunk := range slices.Chunk(keys, checkChunk) {
			ids := make([]string, len(chunk))
			for i, k := range chunk {
				ids[i] = "'" + k.id.String() + "'"
			}
			queries = append(queries, fmt.Sprintf(
				"SELECT uniqExact(event_id) FROM %s.events WHERE kind = %s AND occurred_at >= toDateTime(%d) AND occurred_at <= toDateTime(%d) AND event_id IN (%s)",
				db, chsql.String(kind), chunk[0].at.Unix(), chunk[len(chunk)-1].at.Unix(), strings.Join(ids, ", ")))
			want = append(want, len(chunk))
		}
	}
	return countCheck("events", queries, want)
}

// deadLettersCheck reads back dead_letters rows by stream sequence.
func deadLettersCheck(db string, rows [][]any) *storedCheck {
	seqs := map[uint64]bool{}
	for _, r := range rows {
		seq, _ := r[0].(uint64) // deadLetterColumns[0] is stream_seq
		seqs[seq] = true
	}
	var queries []string
	var want []int
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(seqs)), checkChunk) {
		list := make([]string, len(chunk))
		for i, s := range chunk {
			list[i] = chsql.Uint(s)
		}
		queries = append(queries, fmt.Sprintf("SELECT uniqExact(stream_seq) FROM %s.dead_letters WHERE stream_seq IN (%s)", db, strings.Join(list, ", ")))
		want = append(want, len(chunk))
	}
	return countCheck("dead_letters", queries, want)
}

// countCheck runs each query, which counts keys found, against its want.
func countCheck(table string, queries []string, want []int) *storedCheck {
	return &storedCheck{queries: queries, run: func(ctx context.Context, conn driver.Conn) error {
		missing, keys := 0, 0
		for i, q := range queries {
			var found uint64
			if err := conn.QueryRow(ctx, q).Scan(&found); err != nil {
				return fmt.Errorf("loader: read back the insert into %s: %w", table, err)
			}
			keys += want[i]
			missing += max(0, want[i]-int(found))
		}
		if missing > 0 {
			return &notStoredError{table: table, keys: keys, missing: missing}
		}
		return nil
	}}
}

// versionedCheck reads back rows of a ReplacingMergeTree(version) table
// (airings, offers) whose key columns are Strings: every key must have a
// row of at least the batch's version (a later revision is as good).
func versionedCheck(db, table string, cols, keyCols []string, rows [][]any) *storedCheck {
	keyIdx := make([]int, len(keyCols))
	for i, k := range keyCols {
		keyIdx[i] = slices.Index(cols, k)
	}
	verIdx := slices.Index(cols, "version")
	want := map[string]int64{} // joined key → highest version in the batch
	literal := map[string]string{}
	for _, r := range rows {
		parts := make([]string, len(keyIdx))
		lits := make([]string, len(keyIdx))
		for i, idx := range keyIdx {
			parts[i], _ = r[idx].(string)
			lits[i] = chsql.String(parts[i])
		}
		k := strings.Join(parts, "\x00")
		v, _ := r[verIdx].(int64)
		if old, ok := want[k]; !ok || v > old {
			want[k] = v
		}
		literal[k] = "(" + strings.Join(lits, ", ") + ")"
	}
	keyList := strings.Join(keyCols, ", ")
	var queries []string
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(want)), checkChunk) {
		lits := make([]string, len(chunk))
		for i, k := range chunk {
			lits[i] = literal[k]
		}
		queries = append(queries, fmt.Sprintf("SELECT %s, max(version) FROM %s.%s WHERE (%s) IN (%s) GROUP BY %s",
			keyList, db, table, keyList, strings.Join(lits, ", "), keyList))
	}
	return &storedCheck{queries: queries, run: func(ctx context.Context, conn driver.Conn) error {
		stored := map[string]int64{}
		for _, q := range queries {
			if err := readVersions(ctx, conn, q, len(keyCols), stored); err != nil {
				return fmt.Errorf("loader: read back the insert into %s: %w", table, err)
			}
		}
		missing := 0
		for k, v := range want {
			if got, ok := stored[k]; !ok || got < v {
				missing++
			}
		}
		if missing > 0 {
			return &notStoredError{table: table, keys: len(want), missing: missing}
		}
		return nil
	}}
}

// readVersions adds the (keys…, version) rows of q to stored.
func readVersions(ctx context.Context, conn driver.Conn, q string, nKeys int, stored map[string]int64) error {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	keys := make([]string, nKeys)
	dest := make([]any, nKeys+1)
	for i := range keys {
		dest[i] = &keys[i]
	}
	var v int64
	dest[nKeys] = &v
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		stored[strings.Join(keys, "\x00")] = v
	}
	return rows.Err()
}
