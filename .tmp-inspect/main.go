package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	url := os.Args[1]
	want := map[string]bool{}
	for _, id := range os.Args[2:] {
		want[id] = true
	}
	nc, err := nats.Connect(url)
	if err != nil {
		panic(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var s jetstream.Stream
	for {
		s, err = js.Stream(ctx, "DRTV")
		if err == nil {
			break
		}
		fmt.Println("stream:", err)
		time.Sleep(time.Second)
	}
	info, _ := s.Info(ctx)
	fmt.Printf("stream: msgs %d first %d last %d deleted %d\n", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, info.State.NumDeleted)
	for _, cn := range []string{"clickhouse-loader", "detector"} {
		if c, err := s.Consumer(ctx, cn); err == nil {
			ci, _ := c.Info(ctx)
			fmt.Printf("consumer %s: delivered %d ackfloor %d pending %d ackpending %d\n", cn, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending)
		}
	}
	found := 0
	t0, _ := time.Parse(time.RFC3339, os.Getenv("T0"))
	lo, hi := info.State.FirstSeq, info.State.LastSeq
	for lo < hi {
		mid := (lo + hi) / 2
		m, err := s.GetMsg(ctx, mid)
		if err != nil {
			panic(err)
		}
		if m.Time.Before(t0) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	fmt.Println("first seq after", t0, "is", lo)
	var prev time.Time
	for seq := lo; seq < lo+40000 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			fmt.Println("get", seq, err)
			continue
		}
		id := m.Header.Get("Nats-Msg-Id")
		if want[id] {
			found++
			fmt.Printf("found %s at seq %d stored %s subject %s\n", id, seq, m.Time.UTC().Format(time.RFC3339Nano), m.Subject)
		}
		if !prev.IsZero() && m.Time.Sub(prev) > 2*time.Second {
			fmt.Printf("gap in store times before seq %d: %s -> %s\n", seq, prev.UTC().Format(time.RFC3339Nano), m.Time.UTC().Format(time.RFC3339Nano))
		}
		prev = m.Time
		if found == len(want) {
			break
		}
	}
	fmt.Println("found", found, "of", len(want))
}
