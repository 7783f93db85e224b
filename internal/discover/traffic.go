package discover

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/medseg/medseg/api/v1alpha1"
)

// DeviceTraffic is what was observed for one device in a window: the input of its status.
type DeviceTraffic struct {
	// Window is how far back the observations go; At when they last changed.
	Window time.Duration
	At     time.Time
	// Observations are the flows seen through the device's gateways.
	Observations []Observation
	// Drops counts dropped connections to or from the device, LastDrop the latest.
	Drops    uint64
	LastDrop time.Time
	// Bypass counts connections between the device and pods other than its gateways.
	Bypass uint64
}

// ByDevice splits results (for example of consecutive windows) into each device's traffic,
// merging the same observation across results.
func ByDevice(results ...*Result) map[*Device]*DeviceTraffic {
	type key struct {
		d        *Device
		dir      v1alpha1.Direction
		proto    v1alpha1.Protocol
		gp, port int32
		peer     *Peer
	}
	out := map[*Device]*DeviceTraffic{}
	get := func(d *Device) *DeviceTraffic {
		t, ok := out[d]
		if !ok {
			t = &DeviceTraffic{}
			out[d] = t
		}
		return t
	}
	drop := func(t *DeviceTraffic, c *Counts) {
		t.Drops += c.Dropped
		if c.Dropped > 0 && c.LastSeen.After(t.LastDrop) {
			t.LastDrop = c.LastSeen
		}
	}
	obs := map[key]int{}
	for _, r := range results {
		for _, o := range r.Observations {
			t := get(o.Device)
			k := key{o.Device, o.Direction, o.Protocol, o.GatewayPort, o.Port, o.Peer}
			if i, ok := obs[k]; ok {
				t.Observations[i].merge(&o.Counts)
			} else {
				obs[k] = len(t.Observations)
				t.Observations = append(t.Observations, o)
			}
			drop(t, &o.Counts)
		}
		for _, b := range r.Bypass {
			t := get(b.Device)
			t.Bypass += b.Connections
			drop(t, &b.Counts)
		}
		for _, u := range r.Unpaired {
			drop(get(u.Device), &u.Counts)
		}
	}
	return out
}

// MaxUndeclared is how many undeclared flows a device's status lists.
const MaxUndeclared = 10

// Summarize is the device's traffic status: the observed flows the given flows (those the device
// would be enforced with) do not cover, most connections first, bounded; drops and bypass.
// Flows every connection of which was dropped are undeclared too: enforcement drops them.
func Summarize(t *DeviceTraffic, namespace string, flows []v1alpha1.Flow) *v1alpha1.TrafficStatus {
	st := &v1alpha1.TrafficStatus{Window: metav1.Duration{Duration: t.Window},
		Drops: int64(t.Drops), BypassConnections: int64(t.Bypass)}
	if !t.At.IsZero() {
		at := metav1.NewTime(t.At.UTC().Truncate(time.Second))
		st.ObservedAt = &at
	}
	if !t.LastDrop.IsZero() {
		ld := metav1.NewTime(t.LastDrop.UTC().Truncate(time.Second))
		st.LastDrop = &ld
	}
	var undeclared []Observation
	for _, o := range t.Observations {
		if covering(flows, namespace, o) >= 0 {
			continue
		}
		undeclared = append(undeclared, o)
		st.UndeclaredConnections += int64(o.Connections)
	}
	sort.Slice(undeclared, func(i, j int) bool {
		a, b := undeclared[i], undeclared[j]
		if a.Connections != b.Connections {
			return a.Connections > b.Connections
		}
		return a.Peer.String() < b.Peer.String()
	})
	st.UndeclaredFlows = int32(len(undeclared))
	for _, o := range undeclared[:min(len(undeclared), MaxUndeclared)] {
		peer := o.Peer.String()
		if len(peer) > 256 {
			peer = peer[:256]
		}
		st.Undeclared = append(st.Undeclared, v1alpha1.ObservedFlow{Direction: o.Direction, Peer: peer, Protocol: o.Protocol,
			GatewayPort: o.GatewayPort, Port: o.Port, Connections: int64(o.Connections),
			LastSeen: metav1.NewTime(o.LastSeen.Truncate(time.Second))})
	}
	return st
}

// Arrow describes an observed flow for people: "clinical-apps/app=pacs → 104/TCP" (ToDevice,
// the device port) or "→ clinical-apps/app=pacs:104/TCP" (FromDevice, the peer port).
func Arrow(f v1alpha1.ObservedFlow) string {
	if f.Direction == v1alpha1.DirectionFromDevice {
		return fmt.Sprintf("→ %s:%d/%s", f.Peer, f.Port, f.Protocol)
	}
	return fmt.Sprintf("%s → %d/%s", f.Peer, f.Port, f.Protocol)
}

// FlowText is an observed flow for people: "ToDevice clinical-apps/app=pacs → 104/TCP via
// gateway port 11114, 1,204 connections, last 2026-11-23T16:31:00Z".
func FlowText(f v1alpha1.ObservedFlow) string {
	return fmt.Sprintf("%s %s via gateway port %d, %s connections, last %s", f.Direction, Arrow(f), f.GatewayPort,
		Thousands(f.Connections), f.LastSeen.UTC().Format(time.RFC3339))
}

// Thousands writes n with thousands separators: 1,204.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + Thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
