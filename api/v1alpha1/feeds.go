package v1alpha1

import (
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FeedAnnotationPrefix prefixes the annotations kubectl medseg feed stamps a device with when it
// changes its risk inputs: feeds.medseg.io/kev, /epss, /vex, each "RFC3339-time source". Only
// the identities that may write risk inputs may change them (the protected-inputs policy).
const FeedAnnotationPrefix = "feeds.medseg.io/"

// LastFeed reads the feed annotations: the newest stamp, or nil.
func (d *MedicalDevice) LastFeed() *FeedChange {
	var out *FeedChange
	var best time.Time
	for k, v := range d.Annotations {
		feed, ok := strings.CutPrefix(k, FeedAnnotationPrefix)
		if !ok {
			continue
		}
		at, source, _ := strings.Cut(v, " ")
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			continue
		}
		if len(feed) > 16 {
			continue // not one of medseg's feeds (kev, epss, vex)
		}
		if best.IsZero() || t.After(best) || t.Equal(best) && feed < out.Feed {
			best = t
			// Stored to the second, as metav1.Time is, so the status compares equal after a
			// round trip; the order above used the full precision.
			out = &FeedChange{Feed: feed, Source: CutUTF8(source, 256), At: metav1.NewTime(t.Truncate(time.Second))}
		}
	}
	return out
}

// CutUTF8 shortens s to at most n bytes without splitting a character.
func CutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
