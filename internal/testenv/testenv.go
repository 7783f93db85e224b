// Package testenv starts a real kube-apiserver and etcd (envtest) with the medseg CRDs and
// Cilium's CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy CRDs installed, so every
// object a test or the operator writes is validated by the API server itself.
package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	ciliumcrds "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client/crds/v2"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	medsegv1alpha1 "github.com/medseg/medseg/api/v1alpha1"
)

// CiliumCRDFiles are the Cilium CRDs medseg writes or reads.
var CiliumCRDFiles = []string{"ciliumnetworkpolicies.yaml", "ciliumclusterwidenetworkpolicies.yaml"}

// Env is a running API server with a client.
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
}

// RepoRoot returns the repository root, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// NewScheme returns a scheme with client-go, medseg and Cilium v2 types.
func NewScheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, medsegv1alpha1.AddToScheme, ciliumv2.AddToScheme, apiextensionsv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CiliumCRDs decodes the Cilium CRDs that medseg needs from the cilium module.
func CiliumCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	s := k8sruntime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	dec := serializer.NewCodecFactory(s).UniversalDeserializer()
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, name := range CiliumCRDFiles {
		raw, err := fs.ReadFile(ciliumcrds.EmbedFS, name)
		if err != nil {
			return nil, fmt.Errorf("reading Cilium CRD %s: %w", name, err)
		}
		obj, _, err := dec.Decode(raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decoding Cilium CRD %s: %w", name, err)
		}
		crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
		if !ok {
			return nil, fmt.Errorf("%s is a %T, not a CRD", name, obj)
		}
		out = append(out, crd)
	}
	return out, nil
}

// Start starts envtest with the medseg and Cilium CRDs.
func Start() (*Env, error) { return StartWith(Options{MedsegCRDs: true}) }

// Options choose what Start installs.
type Options struct {
	// MedsegCRDs installs config/crd/bases; off when a test installs them itself (e.g. Helm).
	MedsegCRDs bool
	// CertDir fixes the API server's certificate directory, so it can be stopped and started
	// again over the same etcd with the same certificates and port (a restart test).
	CertDir string
	// Profiling serves the API server's /debug/pprof (the benchmark's profiles).
	Profiling bool
}

// StartWith starts envtest. KUBEBUILDER_ASSETS must point at the binaries
// hack/envtest-assets.sh builds; `make test` sets it. A missing variable is an error, never a
// skip: a test that silently does not run proves nothing.
func StartWith(o Options) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	crds, err := CiliumCRDs()
	if err != nil {
		return nil, err
	}
	s, err := NewScheme()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{CRDs: crds, Scheme: s}
	if o.CertDir != "" {
		env.ControlPlane.APIServer = &envtest.APIServer{CertDir: o.CertDir}
		// A stop that does not finish gracefully in time ends with SIGKILL: a crash, which is
		// what a restart test wants anyway.
		env.ControlPlaneStopTimeout = 5 * time.Second
	}
	if o.Profiling {
		if env.ControlPlane.APIServer == nil {
			env.ControlPlane.APIServer = &envtest.APIServer{}
		}
		env.ControlPlane.APIServer.Configure().Set("profiling", "true")
	}
	if o.MedsegCRDs {
		env.CRDDirectoryPaths = []string{filepath.Join(RepoRoot(), "config", "crd", "bases")}
		env.ErrorIfCRDPathMissing = true
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Env: env, Config: cfg, Client: c, Scheme: s}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.Env.Stop() }

// Tool returns the path of a pinned tool the Makefile installs (MEDSEG_HELM, MEDSEG_KUSTOMIZE).
// A missing variable is an error, never a skip.
func Tool(envVar string) (string, error) {
	p := os.Getenv(envVar)
	if p == "" {
		return "", fmt.Errorf("%s is not set: run the tests with `make test`, which installs the pinned tool", envVar)
	}
	return p, nil
}
