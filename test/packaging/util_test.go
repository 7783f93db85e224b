package packaging

import "sigs.k8s.io/controller-runtime/pkg/envtest"

func envtestAdmin() envtest.User {
	return envtest.User{Name: "helm-admin", Groups: []string{"system:masters"}}
}
