package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/airtally/airtally/producers/event"
)

const eventsDoc = "../../docs/events.md"

// docExamples returns the ```json blocks of docs/events.md: the examples
// of events (answers are shown in ```http blocks).
func docExamples(t *testing.T) []string {
	t.Helper()
	md, err := os.ReadFile(eventsDoc)
	if err != nil {
		t.Fatalf("read %s: %v", eventsDoc, err)
	}
	blocks := regexp.MustCompile("(?ms)^```json\\s*\n(.*?)^```").FindAllStringSubmatch(string(md), -1)
	out := make([]string, len(blocks))
	for i, b := range blocks {
		out[i] = b[1]
	}
	return out
}

// TestDocExamplesValidate: every JSON example of docs/events.md is a valid
// event once completed as the gateway completes it, and every kind of the
// contract has an example.
func TestDocExamplesValidate(t *testing.T) {
	examples := docExamples(t)
	if len(examples) == 0 {
		t.Fatal("no ```json block in the doc")
	}
	kinds := map[event.Kind]bool{}
	for i, ex := range examples {
		ev, err := event.Parse([]byte(ex))
		if err != nil {
			t.Errorf("example %d does not parse: %v\n%s", i+1, err, ex)
			continue
		}
		if err := completed(ev).Validate(); err != nil {
			t.Errorf("example %d (%s) is invalid: %v", i+1, ev.Kind, err)
			continue
		}
		kinds[ev.Kind] = true
	}
	for _, k := range event.Kinds {
		if !kinds[k] {
			t.Errorf("kind %s has no valid example in %s", k, eventsDoc)
		}
	}
}

// TestDocExamplesThroughGateway: the examples, sent together as an array,
// pass the gateway's own checks (a publisher that accepts all stands in);
// the detection examples are refused, as only the detector publishes them.
func TestDocExamplesThroughGateway(t *testing.T) {
	var batch []json.RawMessage
	var detections []int
	for _, ex := range docExamples(t) {
		var head struct{ Kind event.Kind }
		if err := json.Unmarshal([]byte(ex), &head); err != nil {
			t.Fatal(err)
		}
		if head.Kind.IsDetection() {
			detections = append(detections, len(batch))
		}
		batch = append(batch, json.RawMessage(ex))
	}
	if len(detections) == 0 {
		t.Fatal("docs/events.md has no detection example")
	}
	gw, err := New(Config{Tokens: testTokens()}, &fakePublisher{result: acked})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokAll)
	rec := httptest.NewRecorder()
	gw.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("code %d, want 400 for the detection examples: %s", rec.Code, rec.Body)
	}
	var resp EventsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Accepted) != len(batch)-len(detections) || len(resp.Rejected) != len(detections) {
		t.Fatalf("accepted %d, rejected %d; want %d and %d", len(resp.Accepted), len(resp.Rejected), len(batch)-len(detections), len(detections))
	}
	for i, r := range resp.Rejected {
		if r.Index != detections[i] || len(r.Errors) == 0 || r.Errors[0].Field != "kind" {
			t.Fatalf("rejection %+v, want index %d on field kind", r, detections[i])
		}
	}
}

// TestDocNamesEveryField: the field reference of docs/events.md lists
// every field of the contract.
func TestDocNamesEveryField(t *testing.T) {
	md, err := os.ReadFile(eventsDoc)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"aired_at": true, "aired_until": true} // tagged "-", encoded by hand
	typ := reflect.TypeFor[event.Event]()
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	for name := range names {
		if !strings.Contains(string(md), "`"+name+"`") {
			t.Errorf("field %s is not documented", name)
		}
	}
}
