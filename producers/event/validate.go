package event

import (
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Limits on field sizes.
const (
	MaxStringLen = 256
	MaxURLLen    = 1024
)

var (
	sourceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	hexHashRe    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	currencyRe   = regexp.MustCompile(`^[A-Z]{3}$`)
	last4Re      = regexp.MustCompile(`^[0-9]{4}$`)
	earliest     = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latest       = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate checks e against the rules of schema version 1 and of its kind,
// in the form it has on the stream (id, sequence and hashed ANI present).
// It returns a *ValidationError listing every problem, or nil.
func (e *Event) Validate() error {
	var ps problems
	if e.EventID == uuid.Nil {
		ps.add("event_id", "is required")
	} else if e.EventID.Version() != 7 {
		ps.add("event_id", "must be a UUIDv7")
	}
	if e.Kind == "" {
		ps.add("kind", "is required")
	} else if !e.Kind.Known() {
		ps.add("kind", "is not a kind of schema version %d", SchemaVersion)
	}
	if e.SchemaVersion != SchemaVersion {
		ps.add("schema_version", "must be %d", SchemaVersion)
	}
	switch {
	case e.OccurredAt.IsZero():
		ps.add("occurred_at", "is required")
	case e.OccurredAt.Before(earliest) || !e.OccurredAt.Before(latest):
		ps.add("occurred_at", "must be between 2000 and 2100")
	}
	if !sourceNameRe.MatchString(e.Source.System) {
		ps.add("source.system", "must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit")
	}
	if !sourceNameRe.MatchString(e.Source.Instance) {
		ps.add("source.instance", "must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit")
	}
	if e.Source.Seq == 0 {
		ps.add("source.seq", "is required and starts at 1")
	}
	if e.ANI != "" {
		ps.add("ani", "must be replaced by ani_hash before publishing")
	}
	if e.ANIHash != "" && !hexHashRe.MatchString(e.ANIHash) {
		ps.add("ani_hash", "must be 64 lower-case hex digits (HMAC-SHA256)")
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"call_id", e.CallID, MaxStringLen}, {"dnis", e.DNIS, MaxStringLen}, {"queue", e.Queue, MaxStringLen},
		{"site", e.Site, MaxStringLen}, {"agent_id", e.AgentID, MaxStringLen}, {"disposition", e.Disposition, MaxStringLen},
		{"order_id", e.OrderID, MaxStringLen}, {"offer", e.Offer, MaxStringLen}, {"sku", e.SKU, MaxStringLen},
		{"payment_brand", e.PaymentBrand, MaxStringLen}, {"promo_code", e.PromoCode, MaxStringLen},
		{"vanity_url", e.VanityURL, MaxURLLen}, {"reason", e.Reason, MaxStringLen},
		{"airing_id", e.AiringID, MaxStringLen}, {"station", e.Station, MaxStringLen}, {"market", e.Market, MaxStringLen},
		{"media_type", e.MediaType, MaxStringLen}, {"isci", e.ISCI, MaxStringLen},
		{"outcome", e.Outcome, MaxStringLen},
	} {
		if len(f.value) > f.max {
			ps.add(f.name, "is longer than %d bytes", f.max)
		}
	}
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"talk_seconds", e.TalkSeconds}, {"wait_seconds", e.WaitSeconds}, {"amount_cents", e.AmountCents},
		{"upsell_count", e.UpsellCount}, {"interval_seconds", e.IntervalSeconds},
		{"length_seconds", e.LengthSeconds}, {"spend_cents", e.SpendCents},
		{"target_ratio_pct", e.TargetRatioPct}, {"window_minutes", e.WindowMinutes},
		{"tolerance_seconds", e.ToleranceSeconds}, {"delay_ms", e.DelayMS}, {"event_count", e.EventCount},
		{"expected_calls", e.ExpectedCalls}, {"observed_calls", e.ObservedCalls},
	} {
		if f.value < 0 {
			ps.add(f.name, "must not be negative")
		}
	}
	if e.Currency != "" && !currencyRe.MatchString(e.Currency) {
		ps.add("currency", "must be an ISO 4217 code of three capital letters, e.g. USD")
	}
	if e.CardLast4 != "" && !last4Re.MatchString(e.CardLast4) {
		ps.add("card_last4", "must be exactly the last 4 digits of the card")
	}
	if e.Channel != "" && e.Channel != ChannelPhone && e.Channel != ChannelWeb {
		ps.add("channel", "must be phone or web")
	}

	required := func(name, value string) {
		if value == "" {
			ps.add(name, "is required for %s", e.Kind)
		}
	}
	switch {
	case e.Kind.IsCall():
		required("call_id", e.CallID)
		required("dnis", e.DNIS)
		if e.Kind == CallEnded {
			required("disposition", e.Disposition)
		}
	case e.Kind == OrderPlaced:
		required("order_id", e.OrderID)
		required("offer", e.Offer)
		required("currency", e.Currency)
		required("channel", string(e.Channel))
	case e.Kind == OrderCancelled:
		required("order_id", e.OrderID)
		if e.AmountCents != 0 {
			required("currency", e.Currency)
		}
	case e.Kind.IsAiring():
		// Every airing event carries the airing's whole state, so that the
		// projection can keep the latest one.
		required("airing_id", e.AiringID)
		required("offer", e.Offer)
		required("station", e.Station)
		if e.AiredAt.IsZero() {
			ps.add("aired_at", "is required for %s", e.Kind)
		}
		if !e.AiredUntil.IsZero() && e.AiredUntil.Before(e.AiredAt) {
			ps.add("aired_until", "must not be before aired_at")
		}
		if e.SpendCents != 0 {
			required("currency", e.Currency)
		}
		if e.DNIS == "" && e.PromoCode == "" && e.VanityURL == "" {
			ps.add("dnis", "an airing needs a dnis, promo_code or vanity_url to attribute responses")
		}
	case e.Kind == OfferConfigured:
		required("offer", e.Offer)
		if e.WindowMinutes == 0 && e.TargetRatioPct == 0 {
			ps.add("window_minutes", "offer.configured needs window_minutes or target_ratio_pct")
		}
		if e.WindowMinutes > 7*24*60 {
			ps.add("window_minutes", "must be at most a week (10080)")
		}
	case e.Kind == Heartbeat:
		if e.IntervalSeconds == 0 {
			ps.add("interval_seconds", "is required for heartbeat and must be at least 1")
		}
	case e.Kind.IsDetection():
		e.validateDetection(&ps)
	}
	if !e.Kind.IsDetection() {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"monitored_system", e.MonitoredSystem != ""}, {"monitored_instance", e.MonitoredInstance != ""},
			{"window_start", !e.WindowStart.IsZero()}, {"window_end", !e.WindowEnd.IsZero()},
			{"seq_from", e.SeqFrom != 0}, {"seq_to", e.SeqTo != 0}, {"tolerance_seconds", e.ToleranceSeconds != 0},
			{"clock_skew_ms", e.ClockSkewMS != 0}, {"delay_ms", e.DelayMS != 0}, {"event_count", e.EventCount != 0},
			{"expected_calls", e.ExpectedCalls != 0}, {"observed_calls", e.ObservedCalls != 0}, {"outcome", e.Outcome != ""},
		} {
			if f.set {
				ps.add(f.name, "is only for detection events (source.*, gap.*, line.*, data.delayed)")
			}
		}
	}
	return ps.err()
}

// validateDetection checks the rules of the detection kinds.
func (e *Event) validateDetection(ps *problems) {
	if e.Source.System != DetectorSystem {
		ps.add("source.system", "must be %q: detection events come from the detector only", DetectorSystem)
	}
	monitored := func(required bool) {
		for _, f := range []struct{ name, value string }{
			{"monitored_system", e.MonitoredSystem}, {"monitored_instance", e.MonitoredInstance},
		} {
			switch {
			case f.value == "" && required:
				ps.add(f.name, "is required for %s", e.Kind)
			case f.value != "" && !sourceNameRe.MatchString(f.value):
				ps.add(f.name, "must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit")
			}
		}
	}
	monitored(e.Kind != LineSilent && e.Kind != LineRestored)
	if e.WindowStart.IsZero() {
		ps.add("window_start", "is required for %s", e.Kind)
	}
	switch e.Kind {
	case SourceDown, LineSilent:
	default:
		if e.WindowEnd.IsZero() {
			ps.add("window_end", "is required for %s", e.Kind)
		}
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"window_start", e.WindowStart}, {"window_end", e.WindowEnd}} {
		if !f.t.IsZero() && (f.t.Before(earliest) || !f.t.Before(latest)) {
			ps.add(f.name, "must be between 2000 and 2100")
		}
	}
	if !e.WindowStart.IsZero() && !e.WindowEnd.IsZero() && e.WindowEnd.Before(e.WindowStart) {
		ps.add("window_end", "must not be before window_start")
	}
	outcome := func(allowed ...string) {
		for _, a := range allowed {
			if e.Outcome == a {
				return
			}
		}
		ps.add("outcome", "must be one of %v for %s", allowed, e.Kind)
	}
	switch e.Kind {
	case SourceDown, SourceUp:
		if e.ToleranceSeconds == 0 {
			ps.add("tolerance_seconds", "is required for %s and must be at least 1", e.Kind)
		}
		if e.Kind == SourceUp {
			outcome(OutcomeDown, OutcomeDelayed, OutcomeLost)
		}
	case GapOpened, GapClosed:
		if e.SeqFrom == 0 {
			ps.add("seq_from", "is required for %s and starts at 1", e.Kind)
		}
		if e.SeqTo < e.SeqFrom {
			ps.add("seq_to", "is required for %s and must not be below seq_from", e.Kind)
		}
		if e.Kind == GapClosed {
			outcome(OutcomeFilled, OutcomeSplit)
		}
	case LineSilent, LineRestored:
		if e.DNIS == "" {
			ps.add("dnis", "is required for %s", e.Kind)
		}
	case DataDelayed:
		if e.DelayMS == 0 {
			ps.add("delay_ms", "is required for data.delayed and must be at least 1")
		}
		if e.EventCount == 0 {
			ps.add("event_count", "is required for data.delayed and must be at least 1")
		}
		outcome(OutcomeProducer, OutcomeLoader)
	}
	if e.Kind != GapOpened && e.Kind != GapClosed && (e.SeqFrom != 0 || e.SeqTo != 0) {
		ps.add("seq_from", "is only for gap.opened and gap.closed")
	}
}
