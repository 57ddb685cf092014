package pci_test

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/airtally/airtally/producers/pci"
)

// corpusLine is one line of testdata/corpus.tsv.
type corpusLine struct {
	line           int
	name, in, want string
}

// readCorpus reads testdata/corpus.tsv: name, input and expected masked
// output, tab-separated; blank lines and lines starting with # are skipped.
func readCorpus(t *testing.T) []corpusLine {
	t.Helper()
	f, err := os.Open("testdata/corpus.tsv")
	if err != nil {
		t.Fatalf("open corpus: %v", err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, "\t")
		if len(cols) != 3 {
			t.Fatalf("corpus line %d: %d tab-separated columns, want 3 (name, input, expected)", n, len(cols))
		}
		out = append(out, corpusLine{line: n, name: cols[0], in: cols[1], want: cols[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	return out
}

// TestCorpus runs every line of the corpus through Mask and Contains: the
// card lines are masked exactly as written down, the others pass through
// untouched, and nothing Mask returns still holds a card number.
func TestCorpus(t *testing.T) {
	lines := readCorpus(t)
	cards, clean := 0, 0
	names := map[string]int{}
	for _, c := range lines {
		if prev, dup := names[c.name]; dup {
			t.Errorf("corpus line %d: name %q already used on line %d", c.line, c.name, prev)
		}
		names[c.name] = c.line
		if len(c.want) != len(c.in) {
			t.Errorf("corpus line %d (%s): expected output is %d bytes, input %d: masking keeps the length", c.line, c.name, len(c.want), len(c.in))
		}
		isCard := c.want != c.in
		if isCard {
			cards++
		} else {
			clean++
		}
		t.Run(c.name, func(t *testing.T) {
			if got := pci.Contains(c.in); got != isCard {
				t.Errorf("line %d: Contains(%q) = %v, want %v", c.line, c.in, got, isCard)
			}
			got := pci.Mask(c.in)
			if got != c.want {
				t.Errorf("line %d: Mask(%q)\n got %q\nwant %q", c.line, c.in, got, c.want)
			}
			if pci.Contains(got) {
				t.Errorf("line %d: Mask left a card number in %q", c.line, got)
			}
		})
	}
	// Guard against a truncated or mis-edited corpus.
	if cards < 30 || clean < 15 {
		t.Errorf("corpus has %d card lines and %d clean lines; want at least 30 and 15", cards, clean)
	}
}
