package discover_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/medseg/medseg/api/v1alpha1"
	"github.com/medseg/medseg/internal/discover"
	"github.com/medseg/medseg/internal/discover/capture"
)

// relay is a real gRPC server implementing Hubble's Observer API, streaming recorded flows.
type relay struct {
	observerpb.UnimplementedObserverServer
	flows []*flowpb.Flow
	lost  uint64
	reqs  chan *observerpb.GetFlowsRequest
}

func (s *relay) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	s.reqs <- req
	if s.lost > 0 {
		if err := stream.Send(capture.Lost(s.lost, t0)); err != nil {
			return err
		}
	}
	for _, f := range s.flows {
		if err := stream.Send(capture.Response(f)); err != nil {
			return err
		}
	}
	if req.GetFollow() {
		<-stream.Context().Done()
	}
	return nil
}

// serve starts the server on loopback and returns its address.
func serve(t *testing.T, srv observerpb.ObserverServer, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	observerpb.RegisterObserverServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func edgeCapture() ([]*v1alpha1.MedicalDevice, *capture.Builder) {
	devs := []*v1alpha1.MedicalDevice{mdev("radiology", "ct-1", "dicom-gw", "10.50.0.11"), mdev("icu", "monitor-6", "mon-gw", "2001:db8:50::6")}
	gw := gwPod("radiology", "dicom-gw-0", "dicom-gw", "10.244.1.10")
	monGw := gwPod("icu", "mon-gw-0", "mon-gw", "fd00:10:244::20")
	pacs := appPod("clinical-apps", "pacs-0", "pacs", "10.244.2.10")
	central := appPod("icu", "central-0", "central-station", "fd00:10:244::30")
	b := capture.NewBuilder(t0, 50*time.Millisecond)
	for i := 0; i < 7; i++ {
		b.Proxied(capture.PodEndpoint(pacs), gw, 11104, "10.50.0.11", 104, "TCP", true, capture.Forwarded)
		b.Proxied(capture.External("203.0.113.7"), gw, 8443, "10.50.0.11", 443, "TCP", false, capture.Forwarded)
		b.Proxied(capture.PodEndpoint(central), monGw, 7000, "2001:db8:50::6", 7001, "UDP", true, capture.Forwarded)
		b.Connection(capture.PodEndpoint(pacs), capture.External("10.50.0.11"), "TCP", 104, capture.Dropped)
	}
	return devs, b
}

// TestLiveRelayMatchesTheRecording: the production client, streaming from a real gRPC Observer
// server on loopback, learns exactly what the same records give offline, and asks Relay for
// the gateways' and devices' flows in the window.
func TestLiveRelayMatchesTheRecording(t *testing.T) {
	devs, b := edgeCapture()
	srv := &relay{flows: b.Flows(), lost: 2, reqs: make(chan *observerpb.GetFlowsRequest, 1)}
	addr := serve(t, srv)

	offline := discoverJSONPB(t, devs, b, "", discover.ProposeOptions{})

	conn, err := discover.Dial(discover.RelayOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ix := discover.NewIndex(devs)
	agg := discover.NewAggregator(ix, discover.Options{})
	since := t0.Add(-time.Hour)
	req := discover.Request(ix.Devices(), nil, since, t0.Add(time.Hour), false)
	if err := discover.Stream(context.Background(), conn, req, func(r *observerpb.GetFlowsResponse) error {
		agg.AddResponse(r.GetFlow(), r.GetLostEvents())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	live := discover.Propose(agg.Result(), ix.Devices(), discover.ProposeOptions{})
	got := <-srv.reqs
	if !got.GetSince().AsTime().Equal(since) || got.GetUntil() == nil || got.GetFollow() {
		t.Errorf("request window: %v", got)
	}
	filters := got.String()
	for _, want := range []string{"k8s:medseg.io/gateway=true", "10.50.0.11", "2001:db8:50::6"} {
		if !strings.Contains(filters, want) {
			t.Errorf("request filters lack %s: %s", want, filters)
		}
	}
	if live.Stats.LostEvents != 2 {
		t.Errorf("lost events: %+v", live.Stats)
	}
	live.Stats, offline.Stats = discover.Stats{}, discover.Stats{}
	lj, _ := json.Marshal(live)
	oj, _ := json.Marshal(offline)
	if string(lj) != string(oj) {
		t.Errorf("live and offline differ:\nlive    %s\noffline %s", lj, oj)
	}
	if len(live.Devices[1].NewFlows()) != 2 || len(live.Devices[1].Bypass) != 1 || live.Devices[1].Bypass[0].Dropped != 7 {
		t.Errorf("ct-1: %+v", live.Devices[1])
	}
}

// TestRelayOverTLS: Relay's server certificate is for *.hubble-relay.cilium.io; the client
// verifies it against the CA file and the server name, as the hubble CLI does.
func TestRelayOverTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay"},
		DNSNames: []string{"*.hubble-relay.cilium.io"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	devs, b := edgeCapture()
	srv := &relay{flows: b.Flows(), reqs: make(chan *observerpb.GetFlowsRequest, 4)}
	addr := serve(t, srv, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	ix := discover.NewIndex(devs)
	count := func(o discover.RelayOptions) (int, error) {
		conn, err := discover.Dial(o)
		if err != nil {
			return 0, err
		}
		defer func() { _ = conn.Close() }()
		n := 0
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = discover.Stream(ctx, conn, discover.Request(ix.Devices(), nil, time.Time{}, time.Time{}, false), func(*observerpb.GetFlowsResponse) error {
			n++
			return nil
		})
		return n, err
	}
	n, err := count(discover.RelayOptions{Address: "tls://" + addr, ServerName: "ui.hubble-relay.cilium.io", CAFiles: []string{ca}})
	if err != nil || n != len(b.Flows()) {
		t.Fatalf("TLS: %d records, %v", n, err)
	}
	if _, err := count(discover.RelayOptions{Address: addr, TLS: true, ServerName: "other.example.org", CAFiles: []string{ca}}); err == nil ||
		!strings.Contains(err.Error(), "Hubble Relay") {
		t.Errorf("wrong server name accepted: %v", err)
	}
	if _, err := count(discover.RelayOptions{Address: addr}); err == nil {
		t.Error("plaintext to a TLS server succeeded")
	}
}
