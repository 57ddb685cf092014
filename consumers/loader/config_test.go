package loader

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no database", func(c *Config) { c.Database = "" }, "database is required"},
		{"database with a dot", func(c *Config) { c.Database = "a.b" }, "database"},
		{"database starting with a digit", func(c *Config) { c.Database = "1db" }, "database"},
		{"consumer with a dot", func(c *Config) { c.Consumer = "a.b" }, "consumer"},
		{"negative batch", func(c *Config) { c.BatchSize = -1 }, "batch size"},
		{"tiny batch bytes", func(c *Config) { c.BatchBytes = 10 }, "batch bytes"},
		{"ack wait under a second", func(c *Config) { c.AckWait = 500 * time.Millisecond }, "ack wait"},
		{"ack wait within two flushes", func(c *Config) { c.AckWait, c.FlushInterval = 2*time.Second, time.Second }, "ack wait"},
		{"max ack pending under two batches", func(c *Config) { c.MaxAckPending, c.BatchSize = 1000, 5000 }, "max ack pending"},
		{"max ack pending at two batches", func(c *Config) { c.MaxAckPending, c.BatchSize = 200, 100 }, ""},
		{"backoff max under min", func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond }, "backoff"},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "shutdown"},
		{"bad streams", func(c *Config) { c.Streams.EventsStream, c.Streams.DLQStream = "X", "X" }, "streams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Database: "airtally"}
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Database: "airtally"}.WithDefaults()
	cc := c.ConsumerConfig()
	if cc.Durable != "clickhouse-loader" || cc.AckWait != 2*time.Minute || cc.MaxAckPending != 100000 ||
		cc.MaxDeliver != -1 || cc.FilterSubject != "drtv.v1.>" || c.BatchSize != 20000 || c.BatchBytes != 16<<20 ||
		c.FlushInterval != time.Second {
		t.Fatalf("defaults: %+v, consumer %+v", c, cc)
	}
}
