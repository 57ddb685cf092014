package loader

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// A batch insert that ClickHouse answered as done is read back before its
// messages are acknowledged. ClickHouse 18.16 ends an INSERT whose data is
// still on its way when it is shutting down: the handler stops waiting for
// the client's data blocks, commits the blocks it received (often none) and
// answers the client "end of stream", so clickhouse-go's Send returns nil
// for rows that were never stored (reproduced by TestInsertReadBack: a
// client whose data is delayed past the server's poll_interval, SIGTERM
// meanwhile).
//
// The read-back is one query per batch. The batch's keys travel as an
// external table (batchKeysTable, sent with the query as a native block:
// no SQL to parse, no max_query_size), and the query names the table's
// sorting key, so ClickHouse reads only the granules that hold them.

// batchKeysTable is the name of the external table of a read-back query.
const batchKeysTable = "_airtally_batch"

// keyColumn is a column of the external table: its name and type.
type keyColumn struct{ name, typ string }

// storedCheck reads back a batch just inserted.
type storedCheck struct {
	table string      // the table inserted into, for messages
	query string      // reads the keys found, with batchKeysTable
	cols  []keyColumn // batchKeysTable's columns
	// keys are batchKeysTable's values, a typed slice per column (as
	// clickhouse-go appends a column), count rows: the batch's distinct
	// keys.
	keys  []any
	count int
	// missing is how many keys the query's answer lacks.
	missing func(rows driver.Rows) (int, error)
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

// run sends the read-back query. Its error is a *notStoredError when the
// table does not hold every key of the batch.
func (c *storedCheck) run(ctx context.Context, conn driver.Conn) error {
	cols := make([]func(*ext.Table) error, len(c.cols))
	for i, kc := range c.cols {
		cols[i] = ext.Column(kc.name, chcolumn.Type(kc.typ))
	}
	keys, err := ext.NewTable(batchKeysTable, cols...)
	if err != nil {
		return fmt.Errorf("loader: read back the insert into %s: %w", c.table, err)
	}
	for i, col := range keys.Block().Columns {
		if _, err := col.Append(c.keys[i]); err != nil {
			return fmt.Errorf("loader: read back the insert into %s: key table: %w", c.table, err)
		}
	}
	rows, err := conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(keys)), c.query)
	if err != nil {
		return fmt.Errorf("loader: read back the insert into %s: %w", c.table, err)
	}
	defer rows.Close()
	missing, err := c.missing(rows)
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return fmt.Errorf("loader: read back the insert into %s: %w", c.table, err)
	}
	if missing > 0 {
		return &notStoredError{table: c.table, keys: c.count, missing: missing}
	}
	return nil
}

// countFound is the missing func of a query that answers one count of the
// keys found.
func countFound(want int) func(driver.Rows) (int, error) {
	return func(rows driver.Rows) (int, error) {
		var found uint64
		if !rows.Next() {
			return 0, fmt.Errorf("no answer: %w", rows.Err())
		}
		if err := rows.Scan(&found); err != nil {
			return 0, err
		}
		return max(0, want-int(found)), nil
	}
}

// eventsCheck reads back rows of the events table by its sorting key
// (kind, occurred_at, event_id). A copy stored by an earlier insert
// counts: the event is there.
func eventsCheck(db string, rows []*Row) *storedCheck {
	type key struct {
		kind string
		at   int64
		id   uuid.UUID
	}
	seen := make(map[key]bool, len(rows))
	kinds := make([]string, 0, len(rows))
	ats := make([]time.Time, 0, len(rows))
	ids := make([]uuid.UUID, 0, len(rows))
	for _, r := range rows {
		at := r.ev.OccurredAt.UTC()
		k := key{string(r.ev.Kind), at.Unix(), r.ev.EventID}
		if seen[k] {
			continue
		}
		seen[k] = true
		kinds, ats, ids = append(kinds, k.kind), append(ats, at), append(ids, k.id)
	}
	return &storedCheck{
		table:   "events",
		query:   "SELECT uniqExact(kind, occurred_at, event_id) FROM " + db + ".events WHERE (kind, occurred_at, event_id) IN " + batchKeysTable,
		cols:    []keyColumn{{"kind", "String"}, {"occurred_at", "DateTime"}, {"event_id", "UUID"}},
		keys:    []any{kinds, ats, ids},
		count:   len(ids),
		missing: countFound(len(ids)),
	}
}

// deadLettersCheck reads back dead_letters rows by stream sequence
// (deadLetterColumns[0]).
func deadLettersCheck(db string, rows [][]any) *storedCheck {
	seen := map[uint64]bool{}
	var seqs []uint64
	for _, r := range rows {
		seq, _ := r[0].(uint64)
		if !seen[seq] {
			seen[seq] = true
			seqs = append(seqs, seq)
		}
	}
	return &storedCheck{
		table:   "dead_letters",
		query:   "SELECT uniqExact(stream_seq) FROM " + db + ".dead_letters WHERE stream_seq IN " + batchKeysTable,
		cols:    []keyColumn{{"stream_seq", "UInt64"}},
		keys:    []any{seqs},
		count:   len(seqs),
		missing: countFound(len(seqs)),
	}
}

// versionedCheck reads back rows of a ReplacingMergeTree(version) table
// (airings, offers) keyed by String columns: every key must have a row of
// at least the batch's version (a later revision is as good). cols are
// the columns of rows.
func versionedCheck(db, table string, cols, keyCols []string, rows [][]any) *storedCheck {
	keyIdx := make([]int, len(keyCols))
	kcs := make([]keyColumn, len(keyCols))
	for i, k := range keyCols {
		keyIdx[i], kcs[i] = slices.Index(cols, k), keyColumn{k, "String"}
	}
	verIdx := slices.Index(cols, "version")
	want := map[string]int64{} // joined key → highest version in the batch
	keyVals := make([][]string, len(keyIdx))
	for _, r := range rows {
		parts := make([]string, len(keyIdx))
		for i, ix := range keyIdx {
			parts[i], _ = r[ix].(string)
		}
		k := strings.Join(parts, "\x00")
		v, _ := r[verIdx].(int64)
		old, ok := want[k]
		if !ok {
			for i, p := range parts {
				keyVals[i] = append(keyVals[i], p)
			}
		}
		if !ok || v > old {
			want[k] = v
		}
	}
	list := strings.Join(keyCols, ", ")
	keys := make([]any, len(keyVals))
	for i, v := range keyVals {
		keys[i] = v
	}
	return &storedCheck{
		table: table,
		query: fmt.Sprintf("SELECT %s, max(version) FROM %s.%s WHERE (%s) IN (SELECT %s FROM %s) GROUP BY %s",
			list, db, table, list, list, batchKeysTable, list),
		cols:  kcs,
		keys:  keys,
		count: len(want),
		missing: func(rows driver.Rows) (int, error) {
			stored := map[string]int64{}
			got := make([]string, len(keyCols))
			dest := make([]any, len(keyCols)+1)
			for i := range got {
				dest[i] = &got[i]
			}
			var v int64
			dest[len(keyCols)] = &v
			for rows.Next() {
				if err := rows.Scan(dest...); err != nil {
					return 0, err
				}
				stored[strings.Join(got, "\x00")] = v
			}
			missing := 0
			for k, v := range want {
				if s, ok := stored[k]; !ok || s < v {
					missing++
				}
			}
			return missing, nil
		},
	}
}
