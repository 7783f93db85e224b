package integration

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/medseg/medseg/internal/operator"
)

// TestMetricsNeedAuthorizedToken runs the operator with secure metrics, as the chart does: over
// HTTPS, a request without a token is refused (401), a ServiceAccount the API server
// authenticates but RBAC does not allow GET /metrics is refused (403), and one bound to a role
// like the chart's <release>-metrics-reader reads the metrics.
func TestMetricsNeedAuthorizedToken(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const addr, ns = "127.0.0.1:18443", "metrics-auth"
	runOperatorWith(t, func(c *operator.Config) {
		c.MetricsAddr, c.SecureMetrics, c.MetricsCertDir = addr, true, t.TempDir()
	})
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	for _, sa := range []string{"prometheus", "nosy"} {
		g.Expect(env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}})).To(Succeed())
	}
	g.Expect(env.Client.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}})).To(Succeed())
	g.Expect(env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-metrics-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "test-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns}}})).To(Succeed())
	cs, err := kubernetes.NewForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the endpoint's certificate is self-signed
	get := func(tok string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	g.Eventually(func() error { _, _, err := get(""); return err }, timeout, pollInterval).Should(Succeed(), "the metrics endpoint serves HTTPS")
	code, _, _ := get("")
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	code, _, _ = get(token("nosy"))
	g.Expect(code).To(Equal(http.StatusForbidden))
	prom := token("prometheus")
	g.Eventually(func(g Gomega) {
		code, body, err := get(prom)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(strings.Contains(body, "controller_runtime_") || strings.Contains(body, "go_goroutines")).To(BeTrue())
	}, timeout, pollInterval).Should(Succeed())
}
