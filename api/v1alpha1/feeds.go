package v1alpha1

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FeedAnnotationPrefix prefixes the annotations kubectl medseg feed stamps a device with when it
// changes its risk inputs: feeds.medseg.io/kev, /epss, /vex, each "RFC3339-time source". Only
// the identities that may write risk inputs may change them (the protected-inputs policy).
const FeedAnnotationPrefix = "feeds.medseg.io/"

// LastFeed reads the feed annotations: the newest stamp, or nil.
func (d *MedicalDevice) LastFeed() *FeedChange {
	var out *FeedChange
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
		if out == nil || t.After(out.At.Time) || t.Equal(out.At.Time) && feed < out.Feed {
			if len(source) > 256 {
				source = source[:256]
			}
			out = &FeedChange{Feed: feed, Source: source, At: metav1.NewTime(t)}
		}
	}
	return out
}
