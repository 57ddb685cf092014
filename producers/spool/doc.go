// Package spool is a producer's local durable queue: an append-only log of
// checksummed frames in segment files, with one consumer cursor, used by
// package publisher to keep events while JetStream cannot take them.
//
// Guarantees:
//   - Append and AppendBatch return only after the frames are written and
//     fsync'd (concurrent appenders share one fsync: group commit).
//   - Read returns frames in append order, starting at the cursor; Commit
//     moves the cursor past forwarded frames durably (temp file, fsync,
//     rename, directory fsync). After a crash, forwarding resumes at the
//     last committed cursor, so a frame forwarded but not yet committed is
//     forwarded again (at least once).
//   - Open recovers from a crash: every segment is scanned, a torn or
//     corrupt frame is cut out, the intact frames before and after it are
//     kept, and every cut is reported (Recovery, and logged): never silent.
//   - The spool is bounded by Options.MaxBytes of frames not yet consumed;
//     when full, Append blocks until Commit frees room or its context ends
//     (the error then wraps ErrFull). Nothing accepted is ever dropped.
//   - Fully consumed segments are deleted. Depth is a constant-time read.
//
// One process uses a spool directory at a time (an flock on "LOCK"). Any
// number of goroutines may append; one goroutine at a time consumes (Read,
// Scan and Commit).
//
// Frame format (little endian): magic byte 0xF5, payload length (uint32),
// CRC-32C (Castagnoli) of the payload (uint32), then the payload.
package spool
