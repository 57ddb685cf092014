package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/pci"
)

var fuzzSeeds = []string{
	``,
	`{}`,
	`{"kind":"heartbeat"}`,
	`[{"kind":"heartbeat"},{"kind":"call.received"}]`,
	"{\"a\":1}\n{\"b\":2}\n",
	"{\"a\":1}\r\n\r\n{\"b\":",
	"\xEF\xBB\xBF{\"kind\":\"heartbeat\"}",
	`[`,
	`[1,"x",null,{}]`,
	`null`,
	`{"disposition":"4111 1111 1111 1111"}`,
	`{"4111111111111111":1}`,
	`{"source":{"system":"acd","instance":"x","seq":-1,"4111111111111111":2}}`,
	`{"occurred_at":"2026-13-45T99:00:00Z","event_id":"nope"}`,
	"\x00\xff{",
}

func TestSplitBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		form bodyForm
		want []string
		err  error
	}{
		{"object", ` {"a":1} `, formDetect, []string{`{"a":1}`}, nil},
		{"pretty object", "{\n  \"a\": 1,\n  \"b\": [1,\n 2]\n}\n", formDetect, []string{"{\n  \"a\": 1,\n  \"b\": [1,\n 2]\n}"}, nil},
		{"object with BOM", "\xEF\xBB\xBF{\"a\":1}", formDetect, []string{`{"a":1}`}, nil},
		{"array", `[{"a":1}, {"b":2}]`, formDetect, []string{`{"a":1}`, `{"b":2}`}, nil},
		{"array of non-objects", `[1, "x"]`, formDetect, []string{`1`, `"x"`}, nil},
		{"detected ndjson", "{\"a\":1}\n\n{\"b\":2}\r\n", formDetect, []string{`{"a":1}`, `{"b":2}`}, nil},
		{"detected ndjson with a broken line", "{\"a\":1}\n{\"b\":", formDetect, []string{`{"a":1}`, `{"b":`}, nil},
		{"broken object alone", `{"a":`, formDetect, []string{`{"a":`}, nil},
		{"declared ndjson", "{\"a\":1}\n[1]\n", formNDJSON, []string{`{"a":1}`, `[1]`}, nil},
		{"declared ndjson, one object", `{"a":1}`, formNDJSON, []string{`{"a":1}`}, nil},
		{"empty", " \n\t", formDetect, nil, errNoEvents},
		{"empty ndjson", "\n\n", formNDJSON, nil, errNoEvents},
		{"empty array", `[]`, formDetect, nil, errNoEvents},
		{"broken array", `[{"a":1},`, formDetect, nil, errMalformed},
		{"a string", `"x"`, formDetect, nil, errMalformed},
		{"null", `null`, formDetect, nil, errMalformed},
		{"too many in an array", `[{},{},{},{}]`, formDetect, nil, errTooMany},
		{"too many lines", "{}\n{}\n{}\n{}\n", formNDJSON, nil, errTooMany},
		{"as many as allowed", "{}\n{}\n\n{}\n", formNDJSON, []string{`{}`, `{}`, `{}`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitBody([]byte(tc.body), tc.form, 3)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events %q, want %q", len(got), got, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Errorf("event %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestFormOf(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		want        bodyForm
		ok          bool
	}{
		{"", formDetect, true},
		{"application/json", formDetect, true},
		{"Application/JSON; charset=utf-8", formDetect, true},
		{"application/x-ndjson", formNDJSON, true},
		{"application/ndjson", formNDJSON, true},
		{"application/jsonl", formNDJSON, true},
		{"text/plain", 0, false},
		{"multipart/form-data; boundary=x", 0, false},
		{"application/json; ;", 0, false},
	} {
		got, err := formOf(tc.contentType)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("formOf(%q) = %v, %v; want %v ok %v", tc.contentType, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzSplitBody: the body parser never panics, never returns more than
// the maximum of events, never an empty event, and every event it returns
// goes through the event checks without panicking.
func FuzzSplitBody(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	grant := Grant{Name: "fuzz", System: "acd", Instance: Any}
	f.Fuzz(func(t *testing.T, body string, ndjson bool) {
		form := formDetect
		if ndjson {
			form = formNDJSON
		}
		evs, err := splitBody([]byte(body), form, 5)
		if err != nil {
			if len(evs) != 0 {
				t.Fatalf("events returned with error %v", err)
			}
			return
		}
		if len(evs) == 0 || len(evs) > 5 {
			t.Fatalf("%d events", len(evs))
		}
		for _, raw := range evs {
			if len(raw) == 0 {
				t.Fatal("empty event")
			}
			ev, problems, _ := check(raw, grant)
			if ev == nil && len(problems) == 0 {
				t.Fatal("neither an event nor a problem")
			}
			for _, p := range problems {
				if sp := safeProblem(p); pci.Contains(sp.Field) || pci.Contains(sp.Reason) {
					t.Fatal("a card number in an echoed field name")
				}
			}
		}
	})
}

func TestLoadTokens(t *testing.T) {
	const good = "# gateway tokens\n\n" +
		"tok-all-0123456789abcdef * * Operations team\n" +
		"   # indented comment\n" +
		"tok-tampa-0123456789abcdef\tacd\ttampa-01\ttampa ACD\n"
	for _, tc := range []struct {
		name    string
		content string
		want    map[string]Grant
		errLine string // the error must mention this
	}{
		{"good", good, map[string]Grant{
			"tok-all-0123456789abcdef":   {Name: "Operations team", System: Any, Instance: Any},
			"tok-tampa-0123456789abcdef": {Name: "tampa ACD", System: "acd", Instance: "tampa-01"},
		}, ""},
		{"too few fields", "tok-all-0123456789abcdef * *\n", nil, "line 1"},
		{"short token", "# c\nshort-token acd x name\n", nil, "line 2"},
		{"bad system", "tok-all-0123456789abcdef ACD x name\n", nil, "line 1"},
		{"twice", good + "tok-all-0123456789abcdef acd x again\n", nil, "line 6"},
		{"empty", "# nothing\n\n", nil, "no token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadTokens(path)
			if tc.errLine != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errLine) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.errLine)
				}
				if strings.Contains(err.Error(), "0123456789") {
					t.Errorf("the error names a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for tok, g := range tc.want {
				if got[tok] != g {
					t.Errorf("token %s: %+v, want %+v", tok[:8], got[tok], g)
				}
			}
			if err := (Config{Tokens: got}).Validate(); err != nil {
				t.Errorf("loaded tokens do not validate: %v", err)
			}
		})
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestAuthenticator(t *testing.T) {
	a := newAuthenticator(testTokens())
	for _, tc := range []struct {
		header string
		want   string // grant name, "" for none
	}{
		{"Bearer " + tokAll, "all"},
		{"Bearer " + tokTampa, "tampa"},
		{"bearer  " + tokACD + " ", "acd"},
		{"BEARER " + tokACD, "acd"},
		{"Bearer " + tokACD + "x", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"", ""},
		{"Token " + tokAll, ""},
		{tokAll, ""},
	} {
		g, ok := a.grant(tc.header)
		if ok != (tc.want != "") || g.Name != tc.want {
			t.Errorf("grant(%.12q) = %q, %v; want %q", tc.header, g.Name, ok, tc.want)
		}
	}
}

func TestGrantAllows(t *testing.T) {
	for _, tc := range []struct {
		g                Grant
		system, instance string
		want             bool
	}{
		{Grant{System: Any, Instance: Any}, "acd", "x", true},
		{Grant{System: "acd", Instance: Any}, "acd", "x", true},
		{Grant{System: "acd", Instance: Any}, "crm", "x", false},
		{Grant{System: "acd", Instance: "x"}, "acd", "x", true},
		{Grant{System: "acd", Instance: "x"}, "acd", "y", false},
		{Grant{System: "acd", Instance: "x"}, "", "", false},
	} {
		if got := tc.g.allows(tc.system, tc.instance); got != tc.want {
			t.Errorf("%+v allows(%q, %q) = %v, want %v", tc.g, tc.system, tc.instance, got, tc.want)
		}
	}
}

// TestCompleted: the validation copy is completed as the publisher
// completes an event, and the original is untouched.
func TestCompleted(t *testing.T) {
	ev := &event.Event{Kind: event.CallReceived, ANI: "+1 813 555 0100"}
	c := completed(ev)
	if c.EventID.Version() != 7 || c.SchemaVersion != event.SchemaVersion || c.Source.Seq != 1 || c.ANI != "" || len(c.ANIHash) != 64 {
		t.Errorf("completed %+v", c)
	}
	if ev.ANI == "" || ev.ANIHash != "" || ev.Source.Seq != 0 {
		t.Errorf("the original changed: %+v", ev)
	}
}
