// Command demo runs `make demo`: a local control plane (kube-apiserver and etcd built by
// hack/envtest-assets.sh, on loopback, data in a temporary directory), the medseg and Cilium CRDs,
// the operator in-process, and the story of internal/demo. It never touches the user's
// kubeconfig or cluster. With DEMO_KEEP=1 it stays up until Ctrl-C.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr/funcr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/medseg/medseg/internal/cli"
	"github.com/medseg/medseg/internal/demo"
	"github.com/medseg/medseg/internal/operator"
	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "\nmake demo FAILED: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "medseg-demo-")
	if err != nil {
		return err
	}
	keep := os.Getenv("DEMO_KEEP") == "1"
	logFile, err := os.Create(filepath.Join(dir, "operator.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctrl.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(logFile, time.Now().Format(time.RFC3339), prefix, args) }, funcr.Options{}))

	fmt.Println("medseg demo: a sample hospital on a local control plane (no cluster, no internet)")
	fmt.Println("   starting kube-apiserver and etcd on loopback with the medseg and Cilium CRDs …")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
		if !keep {
			_ = os.RemoveAll(dir)
		}
	}()
	user, err := env.Env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return err
	}
	fmt.Printf("   control plane at %s (kubeconfig %s)\n", env.Config.Host, kcPath)

	opCtx, stopOperator := context.WithCancel(ctx)
	defer stopOperator()
	mgr, err := operator.New(opCtx, env.Config, operator.Config{MetricsAddr: "0", ProbeAddr: "0"})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(opCtx) }()
	fmt.Printf("   medseg operator running in-process (log: %s)\n", logFile.Name())

	err = demo.Run(ctx, demo.Options{Out: os.Stdout, Client: env.Client, Samples: filepath.Join(testenv.RepoRoot(), "config", "samples")})
	if err != nil {
		return err
	}
	fmt.Println("\n━━ Done: medseg assessed, segmented, tightened, detected, repaired and expired, as shown above.")
	reportPath := filepath.Join(os.TempDir(), "medseg-demo-report.html")
	if r, err := cli.LiveReport(ctx, env.Client, time.Now(), "the demo hospital", ""); err != nil {
		fmt.Fprintln(os.Stderr, "building the report:", err)
	} else if f, err := os.Create(reportPath); err == nil {
		if err := report.HTML(f, r); err == nil {
			fmt.Printf("\nThe auditor's report of the hospital as it is now (kubectl medseg report): %s\n", reportPath)
		}
		_ = f.Close()
	}
	fmt.Println("\nThe same decisions, offline, from the sample files:")
	fmt.Println("   go run ./cmd/kubectl-medseg assess -f config/samples")
	if !keep {
		fmt.Println("\nTo explore the live hospital afterwards, run DEMO_KEEP=1 make demo; it stays up until Ctrl-C.")
	} else {
		fmt.Println("\nDEMO_KEEP=1: the control plane and the operator stay up until Ctrl-C. In another terminal:")
		fmt.Printf("   export KUBECONFIG=%s\n", kcPath)
		fmt.Println("   kubectl get medseg -A                 # devices and policies (category medseg)")
		fmt.Println("   kubectl describe mdev -n icu infusion-pump-bed-12")
		fmt.Println("   kubectl get cnp,ccnp -A               # the Cilium policies medseg owns")
		fmt.Println("   go run ./cmd/kubectl-medseg audit     # the audit table, from the live cluster")
		<-ctx.Done()
	}
	stopOperator()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the operator did not stop")
	}
	return nil
}
