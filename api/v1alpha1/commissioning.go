package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FlowsHash is the hash commissioning approves: "sha256:" and 64 hex digits over a canonical
// form of the flows that covers everything that changes what the network allows (name,
// direction, tier, protocol, ports, peers, access) and nothing that does not (description,
// list order, peer order, selector order). Defaults are applied first (protocol TCP, access
// Standing), so a flow hashes alike whether it was read from a file or from the API server.
//
// The canonical form is versioned by its field names; adding a field to Flow must not change
// the hash of flows that do not use it, or every device would fall back to onboarding on
// upgrade (see TestFlowsHashIsStable).
func FlowsHash(flows []Flow) string {
	type peer struct {
		CIDR              string             `json:"cidr,omitempty"`
		NamespaceSelector *canonicalSelector `json:"ns,omitempty"`
		PodSelector       *canonicalSelector `json:"pod,omitempty"`
	}
	type flow struct {
		Name        string   `json:"name"`
		Direction   string   `json:"direction"`
		Tier        string   `json:"tier"`
		Protocol    string   `json:"protocol"`
		GatewayPort int32    `json:"gatewayPort"`
		DevicePort  int32    `json:"devicePort,omitempty"`
		PeerPort    int32    `json:"peerPort,omitempty"`
		Access      string   `json:"access"`
		Peers       []string `json:"peers"`
	}
	out := make([]flow, 0, len(flows))
	for _, f := range flows {
		c := flow{Name: f.Name, Direction: string(f.Direction), Tier: string(f.Tier), Protocol: string(f.Protocol),
			GatewayPort: f.GatewayPort, DevicePort: f.DevicePort, PeerPort: f.PeerPort, Access: string(f.Access), Peers: []string{}}
		if c.Protocol == "" {
			c.Protocol = string(ProtocolTCP)
		}
		if c.Access == "" {
			c.Access = string(AccessStanding)
		}
		for _, p := range f.Peers {
			raw, _ := json.Marshal(peer{CIDR: p.CIDR, NamespaceSelector: canonical(p.NamespaceSelector), PodSelector: canonical(p.PodSelector)})
			c.Peers = append(c.Peers, string(raw))
		}
		sort.Strings(c.Peers)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	raw, _ := json.Marshal(out)
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonicalSelector is a label selector with its expressions and values sorted; nil stays nil
// (an unset namespaceSelector means the device's namespace, {} every namespace).
type canonicalSelector struct {
	MatchLabels      map[string]string `json:"l,omitempty"`
	MatchExpressions []string          `json:"e,omitempty"`
}

func canonical(s *metav1.LabelSelector) *canonicalSelector {
	if s == nil {
		return nil
	}
	c := &canonicalSelector{}
	if len(s.MatchLabels) > 0 {
		c.MatchLabels = s.MatchLabels
	}
	for _, r := range s.MatchExpressions {
		vals := append([]string(nil), r.Values...)
		sort.Strings(vals)
		c.MatchExpressions = append(c.MatchExpressions, r.Key+" "+string(r.Operator)+" "+strings.Join(vals, ","))
	}
	sort.Strings(c.MatchExpressions)
	return c
}

// CommissioningState is whether spec.commissioning approves the device's current flows.
type CommissioningState struct {
	// Commissioned is true when spec.commissioning.flowsHash equals FlowsHash(spec.flows).
	Commissioned bool
	// Reason is ReasonCommissioned, ReasonNotCommissioned or ReasonFlowsChanged.
	Reason string
	// Message explains it for people.
	Message string
	// FlowsHash is the hash of the current flows.
	FlowsHash string
}

// CommissioningState compares spec.commissioning with the current flows.
func (s *MedicalDeviceSpec) CommissioningState() CommissioningState {
	st := CommissioningState{FlowsHash: FlowsHash(s.Flows)}
	c := s.Commissioning
	switch {
	case c == nil:
		st.Reason = ReasonNotCommissioned
		st.Message = "the device's flows have not been approved for clinical use (spec.commissioning is unset); run kubectl medseg commission"
	case c.FlowsHash != st.FlowsHash:
		st.Reason = ReasonFlowsChanged
		st.Message = "spec.flows changed after " + c.ApprovedBy + " commissioned them (ticket " + c.Ticket + ", " +
			c.ApprovedAt.UTC().Format("2006-01-02T15:04:05Z") + "): approved " + c.FlowsHash + ", now " + st.FlowsHash + "; commission the device again"
	default:
		st.Commissioned = true
		st.Reason = ReasonCommissioned
		st.Message = "flows approved by " + c.ApprovedBy + " (ticket " + c.Ticket + ", " + c.ApprovedAt.UTC().Format("2006-01-02T15:04:05Z") + ")"
	}
	return st
}
