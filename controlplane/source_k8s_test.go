package controlplane

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// No Kubernetes API server runs here: these tests use client-go's fake
// clientset, which serves the same typed API and watch semantics the
// informers use, from memory.

func deployment(ns, name string, ann map[string]string, port int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: ann, Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "logic",
					Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9102}, {Name: "grpc", ContainerPort: port}},
				}}},
			},
		},
	}
}

// TestAnnotatedWorkloads reads Deployments and pods the way Istio names
// workloads.
func TestAnnotatedWorkloads(t *testing.T) {
	yes := true
	ds := []*appsv1.Deployment{
		deployment("shop", "order", map[string]string{DomainAnnotation: "order"}, 50051),
		deployment("shop", "web", nil, 8080),
		deployment("shop", "bad", map[string]string{DomainAnnotation: "Not_A_Name"}, 1),
		deployment("billing", "invoice", map[string]string{DomainAnnotation: "invoice", PortAnnotation: "9000",
			ServiceAnnotation: "invoices.billing.svc.cluster.local"}, 1),
	}
	ds[0].Spec.Template.Spec.ServiceAccountName = "order-writer"
	ps := []*corev1.Pod{
		{ // a pod of the order Deployment: represented by the Deployment
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "order-5d8c7-abcde",
				Labels:          map[string]string{"pod-template-hash": "5d8c7"},
				Annotations:     map[string]string{DomainAnnotation: "order"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "order-5d8c7", Controller: &yes}}},
		},
		{ // a StatefulSet's pod
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ledger-0",
				Annotations:     map[string]string{DomainAnnotation: "ledger", PortAnnotation: "7000"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "ledger", Controller: &yes}}},
		},
		{ // a bare pod with the domain as a label
			ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "probe", Labels: map[string]string{DomainAnnotation: "probe"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{ContainerPort: 8000}}}}},
		},
	}
	got := annotatedWorkloads(ds, ps, nil, slog.New(slog.DiscardHandler))
	want := []Workload{
		{Namespace: "billing", Name: "invoice", Domain: "invoice", Service: "invoices.billing.svc.cluster.local", Port: 9000, ServiceAccount: "default"},
		{Namespace: "lab", Name: "probe", Domain: "probe", Service: "probe.lab.svc.cluster.local", Port: 8000, ServiceAccount: "default"},
		{Namespace: "shop", Name: "ledger", Domain: "ledger", Service: "ledger.shop.svc.cluster.local", Port: 7000, ServiceAccount: "default"},
		{Namespace: "shop", Name: "order", Domain: "order", Service: "order.shop.svc.cluster.local", Port: 50051, ServiceAccount: "order-writer"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("workloads\n got %+v\nwant %+v", got, want)
	}
}

// TestKubernetesSource: annotating a Deployment is all a team does; the
// control plane (with the fake clientset) maps the Istio sidecar of that
// workload to the domain and pushes its filter, live.
func TestKubernetesSource(t *testing.T) {
	checkLeaks(t)
	ctx := context.Background()
	kube := fake.NewClientset(deployment("billing", "invoice", map[string]string{DomainAnnotation: "invoice"}, 9000))
	tp := startPlane(t, shopYAML(t), kube)

	// A domain declared only by an annotation.
	s := ecdsStream(t, tp.conn, istioNode("invoice-7c-x", "billing", "invoice", nil))
	s.subscribe(resource.ExtensionConfigType, FilterName)
	r := s.next(resource.ExtensionConfigType, wait)
	p := pluginOf(t, r, FilterName)
	if !slices.Equal(p.Domains, []string{"invoice"}) || p.BusinessLogicCluster != IstioLogicCluster(9000) {
		t.Errorf("annotated workload got %+v", p)
	}
	s.ack(r)

	// A workload without the annotation is pass-through until annotated.
	web := ecdsStream(t, tp.conn, istioNode("web-1", "shop", "web", nil))
	web.subscribe(resource.ExtensionConfigType, FilterName)
	wr := web.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, wr, FilterName); !p.PassThrough() {
		t.Fatalf("unannotated workload got %+v", p)
	}
	web.ack(wr)
	if _, err := kube.AppsV1().Deployments("shop").Create(ctx,
		deployment("shop", "web", map[string]string{DomainAnnotation: "cart"}, 50051), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wr = web.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, wr, FilterName); !slices.Equal(p.Domains, []string{"cart"}) {
		t.Errorf("after annotating, the web workload got %+v, want the cart domain", p)
	}
	web.ack(wr)

	// Removing the annotation returns it to pass-through.
	d, err := kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(d.Spec.Template.Annotations, DomainAnnotation)
	if _, err := kube.AppsV1().Deployments("shop").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wr = web.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, wr, FilterName); !p.PassThrough() {
		t.Errorf("after removing the annotation: %+v", p)
	}
}

func service(ns, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

// TestServicePorts: the Service in front of a workload names the host and
// the port callers use, which need not be the container port; only a
// Service of the workload's namespace whose selector matches its pods and
// whose targetPort is the logic's port (by number or name) counts.
func TestServicePorts(t *testing.T) {
	ds := []*appsv1.Deployment{
		deployment("shop", "cart", map[string]string{DomainAnnotation: "cart"}, 50051),
		deployment("shop", "order", map[string]string{DomainAnnotation: "order"}, 50051),
		deployment("shop", "ledger", map[string]string{DomainAnnotation: "ledger"}, 7000),
		deployment("billing", "invoice", map[string]string{DomainAnnotation: "invoice",
			ServiceAnnotation: "invoices.billing.svc.cluster.local"}, 9000),
	}
	ss := []*corev1.Service{
		// cart: by the port's name, on port 80.
		service("shop", "cart-api", map[string]string{"app": "cart"},
			corev1.ServicePort{Name: "http-metrics", Port: 9102, TargetPort: intstr.FromInt32(9102)},
			corev1.ServicePort{Name: "grpc", Port: 80, TargetPort: intstr.FromString("grpc")}),
		// order: a Service of another namespace and one selecting other
		// pods do not count; its own sends by number to 50051 on 50051.
		service("other", "order", map[string]string{"app": "order"}, corev1.ServicePort{Port: 8080, TargetPort: intstr.FromInt32(50051)}),
		service("shop", "orders-v2", map[string]string{"app": "order", "v": "2"}, corev1.ServicePort{Port: 8081, TargetPort: intstr.FromInt32(50051)}),
		service("shop", "order", map[string]string{"app": "order"}, corev1.ServicePort{Port: 50051}),
		// ledger: a Service whose port does not reach 7000.
		service("shop", "ledger", map[string]string{"app": "ledger"}, corev1.ServicePort{Port: 7001}),
		// invoice: the annotation names the Service; it sends 443 to 9000.
		service("billing", "invoices", map[string]string{"tier": "billing"}, corev1.ServicePort{Port: 443, TargetPort: intstr.FromInt32(9000)}),
		service("billing", "invoice", map[string]string{"app": "invoice"}, corev1.ServicePort{Port: 1, TargetPort: intstr.FromInt32(9000)}),
	}
	got := annotatedWorkloads(ds, nil, ss, slog.New(slog.DiscardHandler))
	want := []Workload{
		{Namespace: "billing", Name: "invoice", Domain: "invoice", Service: "invoices.billing.svc.cluster.local", Port: 9000, ServicePort: 443, ServiceAccount: "default"},
		{Namespace: "shop", Name: "cart", Domain: "cart", Service: "cart-api.shop.svc.cluster.local", Port: 50051, ServicePort: 80, ServiceAccount: "default"},
		{Namespace: "shop", Name: "ledger", Domain: "ledger", Service: "ledger.shop.svc.cluster.local", Port: 7000, ServiceAccount: "default"},
		{Namespace: "shop", Name: "order", Domain: "order", Service: "order.shop.svc.cluster.local", Port: 50051, ServiceAccount: "default"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("workloads\n got %+v\nwant %+v", got, want)
	}
}

// TestServicePortReachesIstioClusters: the customer Service sends its
// port 8080 to the logic's container port 50051. The customer sidecar
// calls its logic on the container port (IstioLogicCluster(50051)), while a
// CASCADE from the order sidecar goes to the Service port
// (outbound|8080||...), as Istio names those clusters.
func TestServicePortReachesIstioClusters(t *testing.T) {
	checkLeaks(t)
	kube := fake.NewClientset(
		deployment("shop", "customer", map[string]string{DomainAnnotation: "customer"}, 50051),
		service("shop", "customer", map[string]string{"app": "customer"},
			corev1.ServicePort{Name: "grpc", Port: 8080, TargetPort: intstr.FromString("grpc")}))
	tp := startPlane(t, shopYAML(t), kube)

	cs := ecdsStream(t, tp.conn, istioNode("customer-7c-x", "shop", "customer", nil))
	cs.subscribe(resource.ExtensionConfigType, FilterName)
	r := cs.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, r, FilterName); !slices.Equal(p.Domains, []string{"customer"}) || p.BusinessLogicCluster != IstioLogicCluster(50051) {
		t.Errorf("customer's own sidecar got domains %v, logic %q; want %q", p.Domains, p.BusinessLogicCluster, IstioLogicCluster(50051))
	}
	ord := ecdsStream(t, tp.conn, istioNode("order-7c-x", "shop", "order", nil))
	ord.subscribe(resource.ExtensionConfigType, FilterName)
	r = ord.next(resource.ExtensionConfigType, wait)
	p := pluginOf(t, r, FilterName)
	if got, want := p.Coordinators["customer"], "outbound|8080||customer.shop.svc.cluster.local"; got != want {
		t.Errorf("order's sidecar reaches customer at %q, want %q", got, want)
	}
}
