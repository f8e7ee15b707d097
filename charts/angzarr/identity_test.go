package angzarr_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/angzarr-mesh/angzarr/controlplane"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// checkControlPlaneIdentity: with identity.enabled the control plane has
// a sidecar for its outbound calls, which captures neither its xDS port
// (proxies call it without a certificate) nor its metrics port, and the
// event service admits exactly its principal, and only to the schema
// registry; that principal is the identity the topology's access policy
// names as schema registrar. Without identity, no sidecar and no rule.
func checkControlPlaneIdentity(t *testing.T, ix *index, vals map[string]any, d *appsv1.Deployment, tr *controlplane.Translation) {
	t.Helper()
	pod := d.Spec.Template
	principal := fmt.Sprintf("%s/ns/%s/sa/%s", lookup(vals, "identity", "trustDomain"), d.Namespace, pod.Spec.ServiceAccountName)
	rules := registryRules(t, ix, principal)
	if lookup(vals, "identity", "enabled") != true {
		if pod.Annotations["sidecar.istio.io/inject"] != "false" || pod.Labels["sidecar.istio.io/inject"] != "" {
			t.Error("without identity the control plane runs without a sidecar")
		}
		if len(rules) != 0 {
			t.Errorf("without identity, rules for the control plane: %v", rules)
		}
		return
	}
	if pod.Labels["sidecar.istio.io/inject"] != "true" || pod.Annotations["sidecar.istio.io/inject"] != "" {
		t.Errorf("the control plane needs its sidecar under identity (labels %v, annotations %v)", pod.Labels, pod.Annotations)
	}
	if ix.accounts[key(d.Namespace, pod.Spec.ServiceAccountName)] == nil {
		t.Errorf("the control plane's ServiceAccount %s is not rendered", pod.Spec.ServiceAccountName)
	}
	// Exactly the xDS and metrics ports bypass the sidecar.
	var excluded []int32
	for _, s := range strings.Split(pod.Annotations["traffic.sidecar.istio.io/excludeInboundPorts"], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Errorf("excludeInboundPorts %q: %v", pod.Annotations["traffic.sidecar.istio.io/excludeInboundPorts"], err)
		}
		excluded = append(excluded, int32(n))
	}
	var want []int32
	for _, name := range []string{"grpc-xds", "http-metrics"} {
		p, ok := containerPort(d, intstr.FromString(name))
		if !ok {
			t.Fatalf("the control plane has no port %s", name)
		}
		want = append(want, p.ContainerPort)
	}
	if slices.Sort(excluded); !slices.Equal(excluded, slices.Sorted(slices.Values(want))) {
		t.Errorf("inbound ports that bypass the sidecar %v, want xDS and metrics %v", excluded, want)
	}
	var pc struct {
		Hold bool `json:"holdApplicationUntilProxyStarts"`
	}
	if err := json.Unmarshal([]byte(pod.Annotations["proxy.istio.io/config"]), &pc); err != nil || !pc.Hold {
		t.Errorf("proxy.istio.io/config %q: the control plane must wait for its sidecar (%v)", pod.Annotations["proxy.istio.io/config"], err)
	}
	// One rule admits the principal: the event service's gRPC port, the
	// schema registry's methods, nothing else.
	es := ix.deployments[key(releaseNamespace, "angzarr-eventsvc")]
	grpcPort, ok := containerPort(es, intstr.FromString("grpc"))
	if !ok {
		t.Fatal("the event service has no port grpc")
	}
	want2 := fmt.Sprintf("ports [%d] paths [/%s/*]", grpcPort.ContainerPort, pb.SchemaRegistry_ServiceDesc.ServiceName)
	if len(rules) != 1 || rules[0] != want2 {
		t.Errorf("rules admitting %s: %q, want one: %q", principal, rules, want2)
	}
	if regs := tr.Fanout.GetAccess().GetSchemaRegistrars(); !slices.Equal(regs, []string{"spiffe://" + principal}) {
		t.Errorf("the topology's schema registrars %v, want the control plane's sidecar identity spiffe://%s (identity.controlPlane)", regs, principal)
	}
}

// registryRules describes each rule of an AuthorizationPolicy of the event
// service that names principal as a source: "ports [...] paths [...]".
// A rule that admits principal together with others is reported as such.
func registryRules(t *testing.T, ix *index, principal string) []string {
	var out []string
	for _, ap := range ix.authzs {
		if ap.Namespace != releaseNamespace || len(ix.selected(ap.Namespace, ap.Spec.GetSelector().GetMatchLabels())) == 0 {
			continue
		}
		for _, r := range ap.Spec.GetRules() {
			named := false
			for _, f := range r.GetFrom() {
				if ps := f.GetSource().GetPrincipals(); slices.Contains(ps, principal) {
					named = true
					if len(ps) != 1 || len(r.GetFrom()) != 1 {
						t.Errorf("AuthorizationPolicy %s admits %s together with %v", ap.Name, principal, r.GetFrom())
					}
				}
			}
			if !named {
				continue
			}
			var ports, paths []string
			for _, to := range r.GetTo() {
				ports = append(ports, to.GetOperation().GetPorts()...)
				paths = append(paths, to.GetOperation().GetPaths()...)
			}
			out = append(out, fmt.Sprintf("ports %v paths %v", ports, paths))
		}
	}
	return out
}

// checkAuthorizationPolicies: every policy of the release namespace
// selects a rendered workload, and every principal of the release
// namespace it names is the ServiceAccount of a rendered Deployment.
func checkAuthorizationPolicies(t *testing.T, ix *index, vals map[string]any) {
	prefix := fmt.Sprintf("%s/ns/%s/sa/", lookup(vals, "identity", "trustDomain"), releaseNamespace)
	accounts := map[string]bool{}
	for _, d := range ix.deployments {
		if d.Namespace == releaseNamespace {
			accounts[d.Spec.Template.Spec.ServiceAccountName] = true
		}
	}
	for _, ap := range ix.authzs {
		if ap.Namespace == releaseNamespace && ap.Spec.GetSelector() != nil && len(ix.selected(ap.Namespace, ap.Spec.GetSelector().GetMatchLabels())) == 0 {
			t.Errorf("AuthorizationPolicy %s selects no rendered workload", key(ap.Namespace, ap.Name))
		}
		for _, r := range ap.Spec.GetRules() {
			for _, f := range r.GetFrom() {
				for _, p := range f.GetSource().GetPrincipals() {
					if sa, ok := strings.CutPrefix(p, prefix); ok && !accounts[sa] {
						t.Errorf("AuthorizationPolicy %s names %s, the ServiceAccount of no rendered Deployment", key(ap.Namespace, ap.Name), p)
					}
				}
			}
		}
	}
}
