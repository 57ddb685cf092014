-- 0010: the detection events' fields on the events table (issue 4).
--
-- The detector (consumers/detector) writes source.down/up, gap.opened/
-- closed, line.silent/restored and data.delayed events; the loader fills
-- these columns from their fields (consumers/loader/row.go). Other events
-- leave them at their defaults. window_start/window_end are in the event
-- store's clock (the detector corrects producers' clock drift): a
-- DateTime('UTC') plus an Int64 of Unix milliseconds, the epoch and 0 when
-- unset. See docs/accountability.md.
ALTER TABLE {{db}}.events
    ADD COLUMN monitored_system String DEFAULT '',
    ADD COLUMN monitored_instance String DEFAULT '',
    ADD COLUMN window_start DateTime('UTC') DEFAULT toDateTime(0, 'UTC'),
    ADD COLUMN window_start_ms Int64 DEFAULT 0,
    ADD COLUMN window_end DateTime('UTC') DEFAULT toDateTime(0, 'UTC'),
    ADD COLUMN window_end_ms Int64 DEFAULT 0,
    ADD COLUMN seq_from UInt64 DEFAULT 0,
    ADD COLUMN seq_to UInt64 DEFAULT 0,
    ADD COLUMN tolerance_seconds Int64 DEFAULT 0,
    ADD COLUMN clock_skew_ms Int64 DEFAULT 0,
    ADD COLUMN delay_ms Int64 DEFAULT 0,
    ADD COLUMN event_count Int64 DEFAULT 0,
    ADD COLUMN expected_calls Int64 DEFAULT 0,
    ADD COLUMN observed_calls Int64 DEFAULT 0,
    ADD COLUMN outcome String DEFAULT '';
