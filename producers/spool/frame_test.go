package spool

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0}},
		{"text", []byte(`{"event_id":"x"}`)},
		{"contains magic", []byte{Magic, Magic, 0, 1}},
		{"large", bytes.Repeat([]byte("abc"), 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendFrame([]byte("prefix"), tc.payload)
			got, n, err := DecodeFrame(b[len("prefix"):], 1<<20)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if n != HeaderSize+len(tc.payload) || !bytes.Equal(got, tc.payload) {
				t.Fatalf("decoded %d bytes %q, want %d bytes %q", n, got, HeaderSize+len(tc.payload), tc.payload)
			}
		})
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	good := AppendFrame(nil, []byte("hello, spool"))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		max  int
		want error
	}{
		{"nothing", nil, 100, ErrShortFrame},
		{"partial header", good[:5], 100, ErrShortFrame},
		{"partial payload", good[:len(good)-1], 100, ErrShortFrame},
		{"bad magic", flip(0), 100, ErrCorruptFrame},
		{"length over max", good, 4, ErrCorruptFrame},
		{"flipped checksum", flip(6), 100, ErrCorruptFrame},
		{"flipped payload", flip(HeaderSize + 3), 100, ErrCorruptFrame},
		{"flipped length", flip(1), 100, ErrShortFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, n, err := DecodeFrame(tc.b, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if p != nil || n != 0 {
				t.Fatalf("returned payload %q and size %d along with an error", p, n)
			}
		})
	}
}

// FuzzDecodeFrame checks that the decoder never panics, never returns a
// frame whose checksum does not match, never reads past its input, and
// round-trips what AppendFrame wrote.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte(`{"kind":"heartbeat"}`)), 64)
	f.Add(AppendFrame(nil, nil), 0)
	f.Add([]byte{Magic, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, 1<<20)
	f.Add([]byte{Magic, 3, 0, 0, 0, 1, 2, 3, 4, 'a'}, 10)
	f.Add(append(AppendFrame(nil, []byte("x")), 0xde, 0xad), -1)
	f.Fuzz(func(t *testing.T, b []byte, maxPayload int) {
		p, n, err := DecodeFrame(b, maxPayload)
		if err != nil {
			if !errors.Is(err, ErrShortFrame) && !errors.Is(err, ErrCorruptFrame) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if p != nil || n != 0 {
				t.Fatalf("payload returned with error %v", err)
			}
		} else {
			if n < HeaderSize || n > len(b) || len(p) != n-HeaderSize {
				t.Fatalf("size %d out of range for %d input bytes (payload %d)", n, len(b), len(p))
			}
			if len(p) > maxPayload {
				t.Fatalf("payload of %d bytes over max %d", len(p), maxPayload)
			}
			if Checksum(p) != leUint32(b[5:9]) || b[0] != Magic {
				t.Fatal("returned a frame whose checksum or magic does not match")
			}
			if !bytes.Equal(AppendFrame(nil, p), b[:n]) {
				t.Fatal("re-encoding the decoded frame differs from the input")
			}
		}
		// Whatever the bytes, framing them round-trips.
		if maxPayload >= len(b) {
			q, m, err := DecodeFrame(AppendFrame(nil, b), maxPayload)
			if err != nil || m != HeaderSize+len(b) || !bytes.Equal(q, b) {
				t.Fatalf("round trip failed: %v", err)
			}
		}
	})
}
