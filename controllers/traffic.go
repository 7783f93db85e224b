package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
)

// TrafficConfig configures a TrafficFollower.
type TrafficConfig struct {
	// Relay is how to reach Hubble Relay.
	Relay discover.RelayOptions
	// Dial connects to Relay; nil means discover.Dial. Tests dial in-process servers.
	Dial func(discover.RelayOptions) (grpc.ClientConnInterface, func() error, error)
	// Reader lists the devices (the manager's cache).
	Reader client.Reader
	// Window is how far back counts go (default 24h); Interval the shortest time between two
	// wake-ups of one device (default 1m); Tick how often traffic is summarised (default 10s).
	Window, Interval, Tick time.Duration
	Clock                  clock.Clock
	Log                    logr.Logger
}

// TrafficFollower follows Hubble Relay's flows of gateway pods and device addresses and keeps,
// per device, what was observed in a recent window. The device reconciler reads it through
// Snapshot; the follower wakes a device's reconcile when its traffic changed, at most once per
// Interval, so status writes stay bounded however many flows arrive: never one per flow.
type TrafficFollower struct {
	TrafficConfig

	events chan event.GenericEvent

	mu          sync.Mutex
	ix          *discover.Index
	cur, prev   *discover.Aggregator
	rotated     time.Time
	snapshot    map[types.NamespacedName]*deviceTraffic
	unavailable string
	flows       uint64
	filter      string
	restart     chan struct{}
}

// deviceTraffic is one device's last summarised traffic, its fingerprint and when the device
// was last woken.
type deviceTraffic struct {
	traffic discover.DeviceTraffic
	print   uint64
	woken   time.Time
	pending bool
}

// NewTrafficFollower builds a follower; Start it with the manager.
func NewTrafficFollower(c TrafficConfig) *TrafficFollower {
	f := &TrafficFollower{TrafficConfig: c}
	if f.Window <= 0 {
		f.Window = 24 * time.Hour
	}
	if f.Interval <= 0 {
		f.Interval = time.Minute
	}
	if f.Tick <= 0 {
		f.Tick = 10 * time.Second
	}
	if f.Clock == nil {
		f.Clock = clock.RealClock{}
	}
	if f.Dial == nil {
		f.Dial = func(o discover.RelayOptions) (grpc.ClientConnInterface, func() error, error) {
			c, err := discover.Dial(o)
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		}
	}
	f.events = make(chan event.GenericEvent, 1024)
	f.snapshot = map[types.NamespacedName]*deviceTraffic{}
	f.ix = discover.NewIndex(nil)
	f.cur = discover.NewAggregator(f.ix, f.aggOptions())
	f.rotated = f.Clock.Now()
	f.unavailable = "not connected to Hubble Relay at " + f.Relay.Address + " yet"
	f.restart = make(chan struct{}, 1)
	return f
}

func (f *TrafficFollower) aggOptions() discover.Options {
	return discover.Options{MaxKeys: 1 << 16}
}

// Events are the wake-ups of devices whose traffic changed, for a source.Channel.
func (f *TrafficFollower) Events() <-chan event.GenericEvent { return f.events }

// Snapshot is the device's traffic for its status.
func (f *TrafficFollower) Snapshot(key types.NamespacedName) *TrafficSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &TrafficSnapshot{Unavailable: f.unavailable, Traffic: discover.DeviceTraffic{Window: f.Window}}
	if t, ok := f.snapshot[key]; ok {
		s.Traffic = t.traffic
	}
	return s
}

// Flows counts the flow records the follower received.
func (f *TrafficFollower) Flows() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flows
}

// NeedLeaderElection: only the leader writes status, so only it follows.
func (f *TrafficFollower) NeedLeaderElection() bool { return true }

// Start follows Relay until ctx ends, reconnecting with back-off, and summarises every Tick.
func (f *TrafficFollower) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.follow(ctx)
	}()
	t := time.NewTicker(f.Tick)
	defer t.Stop()
	f.summarise(ctx)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			f.summarise(ctx)
		}
	}
}

// follow keeps one GetFlows stream open, following from where the last one stopped.
func (f *TrafficFollower) follow(ctx context.Context) {
	backoff := time.Second
	// What Relay still holds of the window first (its ring buffers are small), then from where
	// the last stream stopped.
	since := f.Clock.Now().Add(-f.Window)
	for ctx.Err() == nil {
		f.mu.Lock()
		req := discover.Request(f.ix.Devices(), nil, since, time.Time{}, true)
		f.filter = fmt.Sprint(req.GetWhitelist())
		f.mu.Unlock()
		err := f.stream(ctx, req, &since)
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		if err != nil {
			f.unavailable = fmt.Sprintf("cannot follow Hubble Relay at %s since %s: %v", f.Relay.Address, f.Clock.Now().UTC().Format(time.RFC3339), err)
		}
		f.mu.Unlock()
		if err == nil {
			backoff = time.Second // the filter changed: restart at once
			continue
		}
		f.Log.Info("following Hubble Relay failed; retrying", "address", f.Relay.Address, "in", backoff, "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func (f *TrafficFollower) stream(ctx context.Context, req *observerpb.GetFlowsRequest, since *time.Time) error {
	conn, closeConn, err := f.Dial(f.Relay)
	if err != nil {
		return err
	}
	defer func() { _ = closeConn() }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-f.restart:
			cancel()
		case <-sctx.Done():
		}
	}()
	first := true
	return discover.Stream(sctx, conn, req, func(r *observerpb.GetFlowsResponse) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if first {
			f.unavailable, first = "", false
		}
		if fl := r.GetFlow(); fl != nil {
			f.flows++
			if t := fl.GetTime(); t != nil {
				*since = t.AsTime()
			}
		}
		f.cur.AddResponse(r.GetFlow(), r.GetLostEvents())
		return nil
	})
}

// summarise re-reads the devices, rotates the window, and wakes the devices whose traffic
// changed, each at most once per Interval.
func (f *TrafficFollower) summarise(ctx context.Context) {
	var list v1alpha1.MedicalDeviceList
	if err := f.Reader.List(ctx, &list); err != nil {
		f.Log.Error(err, "listing MedicalDevices for the traffic summary")
		return
	}
	devs := make([]*v1alpha1.MedicalDevice, len(list.Items))
	for i := range list.Items {
		devs[i] = &list.Items[i]
	}
	now := f.Clock.Now()
	f.mu.Lock()
	f.ix.Update(devs)
	if now.Sub(f.rotated) >= f.Window/2 {
		f.prev, f.cur, f.rotated = f.cur, discover.NewAggregator(f.ix, f.aggOptions()), now
	}
	results := []*discover.Result{f.cur.Result()}
	if f.prev != nil {
		results = append(results, f.prev.Result())
	}
	by := discover.ByDevice(results...)
	seen := map[types.NamespacedName]bool{}
	var wake []types.NamespacedName
	for _, d := range f.ix.Devices() {
		key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
		seen[key] = true
		t := by[d]
		if t == nil {
			t = &discover.DeviceTraffic{}
		}
		t.Window = f.Window
		p := fingerprint(t)
		st, ok := f.snapshot[key]
		if !ok {
			st = &deviceTraffic{print: fingerprint(&discover.DeviceTraffic{Window: f.Window})}
			f.snapshot[key] = st
		}
		if p != st.print {
			t.At = now
			st.traffic, st.print, st.pending = *t, p, true
		}
		if st.pending && now.Sub(st.woken) >= f.Interval {
			st.pending, st.woken = false, now
			wake = append(wake, key)
		}
	}
	for k := range f.snapshot {
		if !seen[k] {
			delete(f.snapshot, k)
		}
	}
	filter := fmt.Sprint(discover.Request(f.ix.Devices(), nil, time.Time{}, time.Time{}, true).GetWhitelist())
	restart := f.filter != "" && filter != f.filter
	f.mu.Unlock()
	if restart {
		select {
		case f.restart <- struct{}{}:
		default:
		}
	}
	for _, k := range wake {
		d := &v1alpha1.MedicalDevice{}
		d.Namespace, d.Name = k.Namespace, k.Name
		select {
		case f.events <- event.GenericEvent{Object: d}:
		case <-ctx.Done():
			return
		}
	}
}

// fingerprint hashes what a device's traffic status shows.
func fingerprint(t *discover.DeviceTraffic) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, t.Drops, t.LastDrop.Unix(), t.Bypass)
	for _, o := range t.Observations {
		fmt.Fprint(h, o.Direction, o.Protocol, o.GatewayPort, o.Port, o.Peer.String(), o.Connections, o.Dropped, o.LastSeen.Unix())
	}
	return h.Sum64()
}
