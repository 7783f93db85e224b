package discover

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medseg/medseg/api/v1alpha1"
)

// RelayOptions say how to reach Hubble Relay, as the hubble CLI's flags do.
type RelayOptions struct {
	// Address is host:port, e.g. hubble-relay.kube-system.svc:80; a tls:// prefix turns TLS on.
	Address string
	// TLS, and its settings: the server name to verify (Relay's certificate is for
	// *.hubble-relay.cilium.io), CA files, a client certificate for mTLS, or no verification.
	TLS                bool
	ServerName         string
	CAFiles            []string
	CertFile, KeyFile  string
	InsecureSkipVerify bool
}

// Dial connects to Relay. The connection is lazy: errors surface on the first call.
func Dial(o RelayOptions) (*grpc.ClientConn, error) {
	target := strings.TrimPrefix(o.Address, "tls://")
	if target == "" {
		return nil, errors.New("no Hubble Relay address")
	}
	creds := insecure.NewCredentials()
	if o.TLS || strings.HasPrefix(o.Address, "tls://") {
		cfg := &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12} // #nosec G402 -- only when asked for
		if len(o.CAFiles) > 0 {
			pool := x509.NewCertPool()
			for _, f := range o.CAFiles {
				pem, err := os.ReadFile(filepath.Clean(f))
				if err != nil {
					return nil, fmt.Errorf("reading CA file: %w", err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("%s: no PEM certificate", f)
				}
			}
			cfg.RootCAs = pool
		}
		if o.CertFile != "" || o.KeyFile != "" {
			if o.CertFile == "" || o.KeyFile == "" {
				return nil, errors.New("mTLS needs both a client certificate and a key")
			}
			if _, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile); err != nil {
				return nil, fmt.Errorf("loading the client certificate: %w", err)
			}
			// Read at every handshake, so a rotated certificate (cert-manager) is picked up.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
				return &c, err
			}
		}
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(creds))
}

// Request asks for the flows of gateway pods and device addresses between since and until
// (until zero: now, or for ever when following). Addresses are sent as networks when there are
// many: Relay's filter is a prefilter, the index decides.
func Request(devs []*Device, nets []string, since, until time.Time, follow bool) *observerpb.GetFlowsRequest {
	gw := "k8s:" + v1alpha1.LabelGateway + "=true"
	ips := nets
	if len(ips) == 0 {
		ips = addressFilter(devs)
	}
	req := &observerpb.GetFlowsRequest{
		Follow: follow,
		Whitelist: []*flowpb.FlowFilter{
			{SourceLabel: []string{gw}},
			{DestinationLabel: []string{gw}},
		},
	}
	if len(ips) > 0 {
		req.Whitelist = append(req.Whitelist, &flowpb.FlowFilter{SourceIp: ips}, &flowpb.FlowFilter{DestinationIp: ips})
	}
	if !since.IsZero() {
		req.Since = timestamppb.New(since)
	}
	if !until.IsZero() && !follow {
		req.Until = timestamppb.New(until)
	}
	if since.IsZero() && until.IsZero() && !follow {
		req.Number = ^uint64(0) // everything Relay still holds
	}
	return req
}

// addressFilter lists the devices' addresses, or their /24 (IPv4) and /64 (IPv6) networks when
// there are more than 256.
func addressFilter(devs []*Device) []string {
	set := map[string]bool{}
	var n int
	for _, d := range devs {
		n += len(d.addrs)
	}
	for _, d := range devs {
		for _, a := range d.addrs {
			if n <= 256 {
				set[a.String()] = true
				continue
			}
			bits := 24
			if a.Is6() {
				bits = 64
			}
			set[netip.PrefixFrom(a, bits).Masked().String()] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Stream sends the request and hands every response to fn until the stream ends, fn fails or
// ctx is done (which is not an error).
func Stream(ctx context.Context, conn grpc.ClientConnInterface, req *observerpb.GetFlowsRequest, fn func(*observerpb.GetFlowsResponse) error) error {
	stream, err := observerpb.NewObserverClient(conn).GetFlows(ctx, req)
	if err != nil {
		return relayError(err)
	}
	for {
		res, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				return nil
			}
			return relayError(err)
		}
		if err := fn(res); err != nil {
			return err
		}
	}
}

func relayError(err error) error {
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable:
			return fmt.Errorf("cannot reach Hubble Relay: %s", s.Message())
		case codes.Unimplemented:
			return fmt.Errorf("the server is not Hubble Relay (Observer API not implemented): %s", s.Message())
		}
		return fmt.Errorf("from Hubble Relay: %s: %s", s.Code(), s.Message())
	}
	return fmt.Errorf("from Hubble Relay: %w", err)
}
