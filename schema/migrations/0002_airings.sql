-- 0002: the media schedule's projections.
--
-- airings: the latest state of every airing, projected by the loader from
-- the airing.scheduled, airing.revised and airing.cancelled events (every
-- airing event carries the airing's whole state). One row per event;
-- ReplacingMergeTree(version) keeps, per airing_id, the row of the latest
-- event (version = the event's occurred_at in Unix milliseconds), whatever
-- order the loader sees the events in. Readers take the latest state with
-- argMax(..., (version, event_id)) (or FINAL). The mapping from an event to
-- a row is internal/airings.AiringRow. Times are UTC: DateTime('UTC') plus
-- an Int64 of Unix milliseconds; an unset aired_until is the epoch and 0.
-- Money is integer cents.
CREATE TABLE IF NOT EXISTS {{db}}.airings
(
    airing_id String,
    kind String,
    offer String,
    station String,
    market String,
    media_type String,
    isci String,
    aired_at DateTime('UTC'),
    aired_at_ms Int64,
    aired_until DateTime('UTC'),
    aired_until_ms Int64,
    length_seconds Int64,
    spend_cents Int64,
    currency String,
    dnis String,
    promo_code String,
    vanity_url String,
    did_not_run UInt8,
    source_system String,
    source_instance String,
    version Int64,
    event_id UUID,
    stream_seq UInt64,
    loaded_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY airing_id;

-- offers: every offer's settings, projected from offer.configured events.
-- One row per (offer, media_type); media_type '' is the offer's default.
-- target_ratio_pct is the allowable media ratio x 100 (0: no target);
-- window_minutes is the response window (0: not set here). The mapping is
-- internal/airings.OfferRow.
CREATE TABLE IF NOT EXISTS {{db}}.offers
(
    offer String,
    media_type String,
    currency String,
    target_ratio_pct Int64,
    window_minutes Int64,
    source_system String,
    source_instance String,
    version Int64,
    event_id UUID,
    stream_seq UInt64,
    loaded_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (offer, media_type);
