package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/consumers/loader"
)

// TestReplayProgress: off a terminal, a line per update (none for the
// final one, the summary follows) and the resume said once.
func TestReplayProgress(t *testing.T) {
	var b bytes.Buffer
	p := newReplayProgress(&b)
	if p.tty || p.interval != 5*time.Second {
		t.Fatalf("a buffer is taken for a terminal: %+v", p)
	}
	p.update(loader.ReplayProgress{Done: 50_000, Total: 2_000_000, ResumedAfter: 900, Rate: 100_000, Remaining: 19500 * time.Millisecond})
	p.update(loader.ReplayProgress{Done: 150_000, Total: 2_000_000, ResumedAfter: 900, Invalid: 2, Rate: 100_000, Remaining: 18500 * time.Millisecond})
	p.update(loader.ReplayProgress{Done: 2_000_000, Total: 2_000_000, ResumedAfter: 900, Final: true})
	p.done()
	want := "the database holds events up to stream sequence 900: resuming after it (--from-start replays everything)\n" +
		"replay: 50,000 / 2,000,000 messages (2.5%), 100,000/s, 20s left\n" +
		"replay: 150,000 / 2,000,000 messages (7.5%), 100,000/s, 19s left, 2 invalid skipped\n"
	if got := b.String(); got != want {
		t.Errorf("progress:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("carriage return off a terminal")
	}
}
