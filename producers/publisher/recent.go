package publisher

import (
	"sync"

	"github.com/google/uuid"
)

// recentCapacity is how many recently numbered event ids are remembered.
const recentCapacity = 1 << 17

// recentSeqs remembers the sequence number the publisher gave to each of
// the most recent events that arrived without one. A resend of such an
// event (a gateway client repeating a request whose answer it lost, or
// retrying after a 503) gets the same number back instead of a new one,
// so the resend leaves no hole in the source's numbering that would read
// as lost events. The memory is bounded (oldest forgotten first) and not
// persisted: a resend after a restart, or after recentCapacity newer
// events, is numbered anew. Clients that send their own source.seq never
// depend on it.
type recentSeqs struct {
	mu    sync.Mutex
	seqs  map[uuid.UUID]uint64
	order []uuid.UUID // ring of ids in insertion order
	next  int
}

func newRecentSeqs() *recentSeqs {
	return &recentSeqs{seqs: make(map[uuid.UUID]uint64)}
}

// get returns the number given to id, if it is remembered.
func (r *recentSeqs) get(id uuid.UUID) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.seqs[id]
	return seq, ok
}

// put remembers that id was given seq.
func (r *recentSeqs) put(id uuid.UUID, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seqs[id]; ok {
		r.seqs[id] = seq
		return
	}
	if len(r.order) < recentCapacity {
		r.order = append(r.order, id)
	} else {
		delete(r.seqs, r.order[r.next])
		r.order[r.next] = id
		r.next = (r.next + 1) % recentCapacity
	}
	r.seqs[id] = seq
}
