// Package ciliumsim evaluates flows against Cilium policies with Cilium's own policy engine
// (pkg/policy: the selector cache, rule resolution and policy.LookupFlow), so medseg's tests
// can check what rendered policies actually allow rather than how they look.
//
// It is test support: identities are declared up front, then rules are added, then flows are
// looked up.
package ciliumsim

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"

	"github.com/cilium/cilium/pkg/endpoint/regeneration"
	"github.com/cilium/cilium/pkg/identity"
	"github.com/cilium/cilium/pkg/identity/identitymanager"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	ciliumlabels "github.com/cilium/cilium/pkg/labels"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	policyapi "github.com/cilium/cilium/pkg/policy/api"
	policytypes "github.com/cilium/cilium/pkg/policy/types"
	testidentity "github.com/cilium/cilium/pkg/testutils/identity"
	testpolicy "github.com/cilium/cilium/pkg/testutils/policy"
	"github.com/cilium/cilium/pkg/u8proto"
)

// Sim is a policy repository with a fixed set of identities.
type Sim struct {
	logger *slog.Logger
	ids    identity.IdentityMap
	byName map[string]*identity.Identity
	nextK8 identity.NumericIdentity
	nextCI identity.NumericIdentity
	repo   *policy.Repository
	idm    identitymanager.IDManager
}

// New returns an empty simulation.
func New() *Sim {
	option.Config.EnableIPv4 = true
	option.Config.EnableIPv6 = true
	return &Sim{
		logger: slog.New(slog.DiscardHandler),
		ids:    identity.IdentityMap{},
		byName: map[string]*identity.Identity{},
		nextK8: 10000,
		nextCI: identity.IdentityScopeLocal,
	}
}

// Pod declares a pod identity: its namespace, the namespace's labels and the pod's labels.
func (s *Sim) Pod(name, namespace string, namespaceLabels, podLabels map[string]string) *identity.Identity {
	lbls := ciliumlabels.LabelArray{ciliumlabels.NewLabel("io.kubernetes.pod.namespace", namespace, ciliumlabels.LabelSourceK8s)}
	for k, v := range namespaceLabels {
		lbls = append(lbls, ciliumlabels.NewLabel("io.cilium.k8s.namespace.labels."+k, v, ciliumlabels.LabelSourceK8s))
	}
	for k, v := range podLabels {
		lbls = append(lbls, ciliumlabels.NewLabel(k, v, ciliumlabels.LabelSourceK8s))
	}
	s.nextK8++
	return s.add(name, s.nextK8, lbls.Sort())
}

// CIDR declares the identity of an address or network outside the cluster.
func (s *Sim) CIDR(prefix string) *identity.Identity {
	if id, ok := s.byName["cidr:"+prefix]; ok {
		return id
	}
	p := netip.MustParsePrefix(prefix)
	s.nextCI++
	return s.add("cidr:"+prefix, s.nextCI, ciliumlabels.GetCIDRLabels(p).LabelArray())
}

func (s *Sim) add(name string, nid identity.NumericIdentity, lbls ciliumlabels.LabelArray) *identity.Identity {
	if s.repo != nil {
		panic("ciliumsim: declare identities before adding rules")
	}
	id := identity.NewIdentityFromLabelArray(nid, lbls)
	s.ids[nid] = lbls
	s.byName[name] = id
	return id
}

func (s *Sim) ensureRepo() {
	if s.repo != nil {
		return
	}
	s.idm = identitymanager.NewIDManager(s.logger)
	s.repo = policy.NewPolicyRepository(s.logger, s.ids, nil, nil, s.idm, testpolicy.NewPolicyMetricsNoop())
	s.repo.GetSelectorCache().SetLocalIdentityNotifier(testidentity.NewDummyIdentityNotifier())
	s.idm.Subscribe(testpolicy.SelectorCacheObserver{Cache: s.repo.GetSubjectSelectorCache()})
}

// AddCNP parses a CiliumNetworkPolicy as the Cilium agent does and adds its rules.
func (s *Sim) AddCNP(cnp *ciliumv2.CiliumNetworkPolicy) error {
	rules, err := cnp.DeepCopy().Parse(s.logger, "")
	if err != nil {
		return fmt.Errorf("CiliumNetworkPolicy %s/%s: %w", cnp.Namespace, cnp.Name, err)
	}
	return s.AddRules(rules)
}

// AddCCNP parses a CiliumClusterwideNetworkPolicy as the Cilium agent does and adds its rules.
func (s *Sim) AddCCNP(ccnp *ciliumv2.CiliumClusterwideNetworkPolicy) error {
	rules, err := ccnp.DeepCopy().Parse(s.logger, "")
	if err != nil {
		return fmt.Errorf("CiliumClusterwideNetworkPolicy %s: %w", ccnp.Name, err)
	}
	return s.AddRules(rules)
}

// AddRules adds already parsed rules.
func (s *Sim) AddRules(rules policyapi.Rules) error {
	s.ensureRepo()
	s.repo.MustAddList(rules)
	return nil
}

// Allowed reports whether a connection from one identity to another on proto/port passes both
// the source's egress and the destination's ingress policy.
func (s *Sim) Allowed(from, to *identity.Identity, proto string, port uint16) (bool, error) {
	v, err := s.lookup(from, to, proto, port)
	return v.Egress == policytypes.DecisionAllowed && v.Ingress == policytypes.DecisionAllowed, err
}

func (s *Sim) lookup(from, to *identity.Identity, proto string, port uint16) (policytypes.LookupResult, error) {
	s.ensureRepo()
	p := u8proto.TCP
	if proto == "UDP" {
		p = u8proto.UDP
	}
	verdict, _, _, err := policy.LookupFlow(s.logger, s.repo, s.idm, policytypes.Flow{From: from, To: to, Proto: p, Dport: port})
	return verdict, err
}

// PolicyMapEntries computes the endpoint's policy map as the Cilium agent does for it (its
// selector policy distilled into map state) and returns the number of entries: what counts
// against bpf-policy-map-max.
func (s *Sim) PolicyMapEntries(id *identity.Identity) (int, error) {
	s.ensureRepo()
	s.idm.Add(id)
	defer s.idm.Remove(id)
	sp, _, err := s.repo.ComputeSelectorPolicy(id)
	if err != nil {
		return 0, err
	}
	ep := sp.DistillPolicy(s.logger, mapOwner{id: uint64(id.ID)}, map[string]uint16{policy.FallbackRedirectID: math.MaxUint16})
	defer ep.Detach(s.logger)
	_ = ep.Ready()
	return ep.Len(), nil
}

// mapOwner is the endpoint a policy is distilled for.
type mapOwner struct{ id uint64 }

func (o mapOwner) GetID() uint64                                    { return o.id }
func (mapOwner) GetIngressNamedPort(string, u8proto.U8proto) uint16 { return 0 }
func (mapOwner) PolicyDebug(string, ...any)                         {}
func (mapOwner) IsHost() bool                                       { return false }
func (mapOwner) PreviousMapStateSizes() policy.MapStateSizes        { return policy.MapStateSizes{} }
func (mapOwner) RegenerateIfAlive(*regeneration.ExternalRegenerationMetadata) <-chan bool {
	ch := make(chan bool)
	close(ch)
	return ch
}

// EgressAllowed reports only the source's egress verdict: the right question when the
// destination is outside the cluster (a device), where no endpoint enforces ingress policy.
func (s *Sim) EgressAllowed(from, to *identity.Identity, proto string, port uint16) (bool, error) {
	v, err := s.lookup(from, to, proto, port)
	return v.Egress == policytypes.DecisionAllowed, err
}
