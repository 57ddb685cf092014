-- 0001: the events table and the dead letters.
--
-- events: one row per event. Delivery is at least once, so the same event
-- may be inserted more than once; ReplacingMergeTree collapses every copy
-- into one row at merge time (same partition, same sorting key ending in
-- event_id). Queries read with FINAL.
-- Millisecond times are a DateTime('UTC') plus an Int64 of Unix
-- milliseconds (no DateTime64 on ClickHouse 18.16).
CREATE TABLE IF NOT EXISTS {{db}}.events
(
    event_id UUID,
    kind String,
    schema_version UInt8,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    source_system String,
    source_instance String,
    source_seq UInt64,
    call_id String,
    dnis String,
    ani_hash String,
    queue String,
    site String,
    agent_id String,
    talk_seconds Int64,
    wait_seconds Int64,
    disposition String,
    order_id String,
    offer String,
    sku String,
    amount_cents Int64,
    currency String,
    upsell_count Int64,
    continuity UInt8,
    payment_brand String,
    card_last4 String,
    channel String,
    promo_code String,
    vanity_url String,
    reason String,
    interval_seconds Int64,
    stream_seq UInt64,
    stored_at DateTime('UTC'),
    stored_at_ms Int64,
    loaded_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (kind, occurred_at, event_id);

-- dead_letters: one row per dead-lettered message (never its payload),
-- keyed by its sequence in the events stream.
CREATE TABLE IF NOT EXISTS {{db}}.dead_letters
(
    stream_seq UInt64,
    subject String,
    source_system String,
    source_instance String,
    reason String,
    failed_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY stream_seq;
