package reliability

import (
	"testing"
	"time"
)

// TestOnlyTheLeaderWrites runs two operators with leader election: only the elected one writes;
// when it stops, the other takes over and converges what changed meanwhile.
func TestOnlyTheLeaderWrites(t *testing.T) {
	keys := hospital(t, "leader", 20, 45)
	a := start(t, true)
	select {
	case <-a.elected:
	case <-time.After(30 * time.Second):
		t.Fatal("the first operator was not elected")
	}
	b := start(t, true)
	converged(t, keys, time.Minute)
	time.Sleep(2 * time.Second)
	if a.counter.Writes() == 0 {
		t.Fatal("the leader wrote nothing")
	}
	if w := b.counter.Writes(); w != 0 {
		t.Fatalf("the non-leader wrote %d times: %v", w, b.counter.Snapshot())
	}
	select {
	case <-b.elected:
		t.Fatal("two leaders")
	default:
	}

	a.stop(t) // releases the lease on cancel
	select {
	case <-b.elected:
	case <-time.After(60 * time.Second):
		t.Fatal("the second operator did not take over")
	}
	more := hospital(t, "leader-after", 5, 46)
	converged(t, more, time.Minute)
	if b.counter.Writes() == 0 {
		t.Fatal("the new leader wrote nothing")
	}
}
