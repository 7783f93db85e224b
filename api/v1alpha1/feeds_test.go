package v1alpha1

import "testing"

// TestLastFeed: the newest stamp wins, to the sub-second (feeds run back to back), and a
// malformed stamp is ignored; the time is kept to the second, as the status stores it, so the
// status compares equal after a round trip.
func TestLastFeed(t *testing.T) {
	d := &MedicalDevice{}
	if d.LastFeed() != nil {
		t.Fatal("no stamp, no last feed")
	}
	d.Annotations = map[string]string{
		FeedAnnotationPrefix + "epss": "2026-12-01T10:00:00.25Z FIRST EPSS 2026-12-01",
		FeedAnnotationPrefix + "vex":  "2026-12-01T10:00:00.75Z VEX AM-2026-014",
		FeedAnnotationPrefix + "kev":  "yesterday CISA KEV",
		"other":                       "2030-01-01T00:00:00Z x",
	}
	lf := d.LastFeed()
	if lf == nil || lf.Feed != "vex" || lf.Source != "VEX AM-2026-014" || lf.At.Nanosecond() != 0 {
		t.Errorf("last feed %+v", lf)
	}
}
