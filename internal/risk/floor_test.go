package risk

import (
	"testing"
	"time"

	"github.com/medseg/medseg/api/v1alpha1"
)

func TestApplyFloor(t *testing.T) {
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	floor := &Floor{Priority: v1alpha1.PriorityImmediate, UID: "old", At: created.Add(-time.Hour)}
	before, after := created.Add(-time.Minute), created.Add(time.Minute)
	cases := []struct {
		name     string
		floor    *Floor
		uid      string
		lastFeed *time.Time
		assessed v1alpha1.Priority
		want     v1alpha1.Priority
	}{
		{"a recreated device is held at its last known priority", floor, "new", nil, v1alpha1.PriorityDefer, v1alpha1.PriorityImmediate},
		{"a feed stamp from before the new object does not count", floor, "new", &before, v1alpha1.PriorityDefer, v1alpha1.PriorityImmediate},
		{"once a feed wrote to the new object its own inputs decide", floor, "new", &after, v1alpha1.PriorityDefer, v1alpha1.PriorityDefer},
		{"the same object is never held: its inputs may lower it", floor, "old", nil, v1alpha1.PriorityDefer, v1alpha1.PriorityDefer},
		{"a higher assessment is kept", &Floor{Priority: v1alpha1.PriorityScheduled, UID: "old"}, "new", nil, v1alpha1.PriorityOutOfCycle, v1alpha1.PriorityOutOfCycle},
		{"no memory, no floor", nil, "new", nil, v1alpha1.PriorityDefer, v1alpha1.PriorityDefer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ApplyFloor(Assessment{Priority: c.assessed, Summary: "own"}, c.floor, c.uid, created, c.lastFeed)
			if got.Priority != c.want {
				t.Errorf("priority %s, want %s (%s)", got.Priority, c.want, got.Summary)
			}
		})
	}
}
