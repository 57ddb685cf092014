// Command gen writes the dashboards defined in package dashboards as the
// JSON files Grafana provisions. Run it with go generate ./dashboards (it
// writes dashboards/json); a test fails when the files differ from it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/airtally/airtally/dashboards"
)

func main() {
	out := flag.String("out", dashboards.Dir, "folder to write the dashboard files into")
	flag.Parse()
	if err := dashboards.WriteFiles(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
