package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/airtally/airtally/consumers/detector/accountability"
)

func ptr(x float64) *float64 { return &x }

// TestStoryLines: one line per flagged airing, each cause with its
// minutes, the calls and orders estimated lost, the ratio measured and
// adjusted and the verdict; an airing recorded in full and on time, or
// one that did not run, gets no line.
func TestStoryLines(t *testing.T) {
	rows := []accountability.Airing{
		{AiringID: "BS-0705-WFLA", Status: accountability.StatusAccounted, Reason: "full coverage", MediaRatio: ptr(4.88), AdjustedMediaRatio: ptr(4.88), TargetRatio: ptr(1.5), RatioToTarget: ptr(3.25), AdjustedRatioToTarget: ptr(3.25)},
		{AiringID: "FR-0915-HGTV", Status: accountability.StatusPartial, Reason: "acd.tampa-01 down 10 min", UncoveredMinutes: 10,
			EstimatedMissingCalls: 39.6, EstimatedMissingOrders: 15.2, MediaRatio: ptr(1.4), AdjustedMediaRatio: ptr(1.9), TargetRatio: ptr(1.2), RatioToTarget: ptr(1.17), AdjustedRatioToTarget: ptr(1.58)},
		{AiringID: "BS-1400-CNBC", Status: accountability.StatusPartial, Reason: "acd.phoenix-01 lost events 1477-1620 10 min", UncoveredMinutes: 10,
			EstimatedMissingCalls: 52, EstimatedMissingOrders: 14, MediaRatio: ptr(1.2), AdjustedMediaRatio: ptr(1.4), TargetRatio: ptr(1.5), AdjustedRatioToTarget: ptr(0.93)},
		{AiringID: "FR-1930-CNBC", Status: accountability.StatusPartial, Reason: "8005550102 silent 14.8 min; 86 events from acd.tampa-01 arrived up to 5 min late, none lost",
			UncoveredMinutes: 14.8, EstimatedMissingCalls: 96, EstimatedMissingOrders: 36, LateEvents: 86, MediaRatio: ptr(1.93), AdjustedMediaRatio: ptr(2.54), TargetRatio: ptr(1.2), AdjustedRatioToTarget: ptr(2.1)},
		{AiringID: "BS-2000-KTVK", Status: accountability.StatusAccounted, Reason: "full coverage; 86 events from acd.tampa-01 arrived up to 5 min late, none lost",
			LateEvents: 86, MediaRatio: ptr(10.36), AdjustedMediaRatio: ptr(10.36), TargetRatio: ptr(1.5), AdjustedRatioToTarget: ptr(6.9)},
		{AiringID: "FR-1300-CNBC", Status: accountability.StatusDidNotRun, Reason: "the post-log says it did not run", DidNotRun: true},
		{AiringID: "SW-1100-KTVK", Status: "no_response", Reason: "8775550103 answered 2 calls", Calls: 2, ExpectedCalls: 140.4,
			SharedCalls: 12, SharedWith: "SW-1105-WFLA", MediaRatio: ptr(0.1), AdjustedMediaRatio: ptr(0.1)},
	}
	var b bytes.Buffer
	if err := writeStory(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"  FR-0915-HGTV: acd.tampa-01 down 10 min inside the window; about 40 calls and 15 orders lost; ratio 1.40 measured, 1.90 adjusted: on target (1.20)",
		"  BS-1400-CNBC: acd.phoenix-01 lost events 1477-1620 (10 min) inside the window; about 52 calls and 14 orders lost; ratio 1.20 measured, 1.40 adjusted: below target (1.50)",
		"  FR-1930-CNBC: 8005550102 silent 14.8 min inside the window; about 96 calls and 36 orders lost; 86 events from acd.tampa-01 arrived up to 5 min late, none lost; ratio 1.93 measured, 2.54 adjusted: on target (1.20)",
		"  BS-2000-KTVK: recorded in full; 86 events from acd.tampa-01 arrived up to 5 min late, none lost; ratio 10.36: on target (1.50)",
		"  SW-1100-KTVK: no response: 2 calls where comparable airings predict about 140; 8775550103 answered 2 calls; its number shared with SW-1105-WFLA (12 calls shared); ratio 0.10 (no target)",
		"",
		"  The other airing was recorded in full and on time (1 did not run).",
	}
	got := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("story:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
