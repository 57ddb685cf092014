package chaos

import (
	"slices"
	"testing"
)

// The schedule is a function of the seed: a failing run replays.
func TestScheduleReplaysFromSeed(t *testing.T) {
	a, b := newSchedule(42, 3), newSchedule(42, 3)
	other := newSchedule(43, 3)
	same := true
	for range 50 {
		sa, sb, so := a.next(), b.next(), other.next()
		if sa != sb {
			t.Fatalf("seed 42 gave %v then %v", sa, sb)
		}
		same = same && sa == so
	}
	if same {
		t.Fatal("seeds 42 and 43 gave the same 50 steps")
	}
}

// Every round plays every kind once; overlapping faults are of another
// kind, never two ClickHouse faults, and end before the first is
// repaired; NATS targets are valid nodes; some steps overlap.
func TestScheduleRules(t *testing.T) {
	for _, seed := range []uint64{0, 1, 7, 1795658535174727989} {
		s := newSchedule(seed, 3)
		overlaps := 0
		for round := range 20 {
			var kinds []Fault
			for range len(Faults) {
				st := s.next()
				kinds = append(kinds, st.Fault)
				if st.Target < 0 || st.Target >= 3 || st.OverlapTarget < 0 || st.OverlapTarget >= 3 {
					t.Fatalf("seed %d: %v: target out of range", seed, st)
				}
				if st.Hold <= 0 || st.Calm <= 0 {
					t.Fatalf("seed %d: %v: no hold or calm", seed, st)
				}
				if st.Overlap == "" {
					continue
				}
				overlaps++
				if !compatible(st.Fault, st.Overlap) {
					t.Errorf("seed %d: %v: %s may not overlap %s", seed, st, st.Overlap, st.Fault)
				}
				if st.OverlapAfter+st.OverlapHold >= st.Hold {
					t.Errorf("seed %d: %v: the overlapping fault outlasts the first", seed, st)
				}
			}
			slices.Sort(kinds)
			want := slices.Clone(Faults)
			slices.Sort(want)
			if !slices.Equal(kinds, want) {
				t.Fatalf("seed %d round %d: kinds %v, want each of %v once", seed, round, kinds, want)
			}
		}
		if overlaps == 0 {
			t.Errorf("seed %d: no step overlaps in %d", seed, 20*len(Faults))
		}
	}
}

func TestCompatible(t *testing.T) {
	tests := []struct {
		name string
		a, b Fault
		want bool
	}{
		{"same kind", FaultNATSKill, FaultNATSKill, false},
		{"two ClickHouse faults", FaultClickHouseStop, FaultSlowClickHouse, false},
		{"NATS kill while ClickHouse is stopped", FaultClickHouseStop, FaultNATSKill, true},
		{"loader kill during a producer cut", FaultProducerCut, FaultLoaderKill, true},
		{"gateway kill while ClickHouse is slow", FaultSlowClickHouse, FaultGatewayKill, true},
		{"nothing during a power cut", FaultPowerCut, FaultProducerCut, false},
		{"a power cut during nothing", FaultNATSKill, FaultPowerCut, false},
		{"a loader start with ClickHouse down is a ClickHouse fault", FaultLoaderStartCHDown, FaultClickHouseKill, false},
		{"one loader process", FaultLoaderKill, FaultLoaderStartCHDown, false},
		{"a NATS kill while the loader starts with ClickHouse down", FaultLoaderStartCHDown, FaultNATSKill, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := compatible(tc.a, tc.b); got != tc.want {
				t.Fatalf("compatible(%s, %s) = %t, want %t", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// A power cut restarts every part once, in an order and with gaps drawn
// from the seed; and the orders differ between power cuts.
func TestSchedulePowerCutOrder(t *testing.T) {
	s := newSchedule(31337, 3)
	var orders [][powerParts]int
	for range 20 * len(Faults) {
		st := s.next()
		if st.Fault != FaultPowerCut {
			continue
		}
		seen := map[int]bool{}
		for i, part := range st.PowerOrder {
			if part < 0 || part >= powerParts || seen[part] {
				t.Fatalf("%v: order %v is not a permutation of the parts", st, st.PowerOrder)
			}
			seen[part] = true
			if st.PowerGaps[i] <= 0 {
				t.Fatalf("%v: no gap before %s", st, partNames[part])
			}
		}
		if st.Overlap != "" {
			t.Fatalf("%v: a power cut overlaps %s", st, st.Overlap)
		}
		orders = append(orders, st.PowerOrder)
	}
	if len(orders) < 20 {
		t.Fatalf("%d power cuts in 20 rounds, want 20", len(orders))
	}
	if slices.IndexFunc(orders[1:], func(o [powerParts]int) bool { return o != orders[0] }) < 0 {
		t.Fatalf("every power cut restarts in the same order %v", orders[0])
	}
}
