package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Annotations on a workload's pod template (or a bare pod) read by the
// Kubernetes source. DomainAnnotation is the only one a team must add.
const (
	// PortAnnotation is the business logic's gRPC port. Default: the
	// container port named "grpc", else the first container port.
	PortAnnotation = "angzarr.io/port"
	// ServiceAnnotation is the host name of the business-logic Service.
	// Default: <workload>.<namespace>.svc.cluster.local.
	ServiceAnnotation = "angzarr.io/service"
)

// Workload is a Kubernetes workload that serves a domain, found through
// the angzarr.io/domain annotation of its pod template.
type Workload struct {
	// Namespace and Name of the workload (the Deployment, or the pod's
	// owner, or the bare pod), as Istio reports it in WORKLOAD_NAME.
	Namespace, Name string
	// Domain from the annotation.
	Domain string
	// Service host and Port of the business logic.
	Service string
	Port    int
}

// NewKubernetesClient connects to the API server: in-cluster when
// kubeconfig is "" or "in-cluster", else with that kubeconfig file.
func NewKubernetesClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" || kubeconfig == "in-cluster" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

// watchKubernetes runs informers on Deployments and Pods (in namespace, or
// all when "") and calls fn with every annotated workload, sorted, once the
// caches have synced and after every change, until ctx is done.
func watchKubernetes(ctx context.Context, client kubernetes.Interface, namespace string, log *slog.Logger, fn func([]Workload)) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 10*time.Minute, informers.WithNamespace(namespace))
	deployments := factory.Apps().V1().Deployments()
	pods := factory.Core().V1().Pods()
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	if _, err := deployments.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	if _, err := pods.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("kubernetes: %v informer did not sync: %w", typ, ctx.Err())
		}
	}
	var last []Workload
	for {
		ds, err := deployments.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		ps, err := pods.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		ws := annotatedWorkloads(ds, ps, log)
		if last == nil || !slices.Equal(ws, last) {
			last = ws
			if last == nil {
				last = []Workload{}
			}
			fn(ws)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// annotatedWorkloads lists the workloads whose pod template (or bare pod)
// carries angzarr.io/domain, one per namespace/name, sorted. Pods owned by a
// Deployment's ReplicaSet are represented by the Deployment.
func annotatedWorkloads(ds []*appsv1.Deployment, ps []*corev1.Pod, log *slog.Logger) []Workload {
	byKey := map[string]Workload{}
	for _, d := range ds {
		tpl := d.Spec.Template
		if w, ok := workloadOf(d.Namespace, d.Name, tpl.Annotations, tpl.Labels, tpl.Spec.Containers, log); ok {
			byKey[w.Namespace+"/"+w.Name] = w
		}
	}
	for _, p := range ps {
		name := podWorkloadName(p)
		if _, ok := byKey[p.Namespace+"/"+name]; ok {
			continue
		}
		if w, ok := workloadOf(p.Namespace, name, p.Annotations, p.Labels, p.Spec.Containers, log); ok {
			byKey[w.Namespace+"/"+w.Name] = w
		}
	}
	out := make([]Workload, 0, len(byKey))
	for _, w := range byKey {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Workload) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// workloadOf reads the annotations of one workload; a malformed one is
// logged and skipped so it cannot block other teams' changes.
func workloadOf(ns, name string, ann, podLabels map[string]string, containers []corev1.Container, log *slog.Logger) (Workload, bool) {
	domain := strings.TrimSpace(ann[DomainAnnotation])
	if domain == "" {
		domain = strings.TrimSpace(podLabels[DomainAnnotation])
	}
	if domain == "" {
		return Workload{}, false
	}
	w := Workload{Namespace: ns, Name: name, Domain: domain}
	if !nameRE.MatchString(domain) {
		log.Warn("ignoring workload: invalid domain annotation", "workload", ns+"/"+name, "domain", domain)
		return Workload{}, false
	}
	w.Service = strings.TrimSpace(ann[ServiceAnnotation])
	if w.Service == "" {
		w.Service = fmt.Sprintf("%s.%s.svc.cluster.local", name, ns)
	}
	if err := checkHost(w.Service); err != nil {
		log.Warn("ignoring workload: invalid service annotation", "workload", ns+"/"+name, "err", err)
		return Workload{}, false
	}
	if p := strings.TrimSpace(ann[PortAnnotation]); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			log.Warn("ignoring workload: invalid port annotation", "workload", ns+"/"+name, "port", p)
			return Workload{}, false
		}
		w.Port = n
	} else {
		w.Port = containerPort(containers)
	}
	if w.Port == 0 {
		log.Warn("ignoring workload: no port (set angzarr.io/port or a container port)", "workload", ns+"/"+name)
		return Workload{}, false
	}
	return w, true
}

// containerPort is the port named "grpc", else the first declared port.
func containerPort(cs []corev1.Container) int {
	first := 0
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == "grpc" {
				return int(p.ContainerPort)
			}
			if first == 0 {
				first = int(p.ContainerPort)
			}
		}
	}
	return first
}

// podWorkloadName names a pod's workload the way Istio does: a
// ReplicaSet's pod belongs to the Deployment (the ReplicaSet name less its
// pod-template-hash), another controller's pod to that controller, a bare
// pod to itself.
func podWorkloadName(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if h := p.Labels["pod-template-hash"]; h != "" {
				return strings.TrimSuffix(o.Name, "-"+h)
			}
		}
		return o.Name
	}
	return p.Name
}

// mergeWorkloads adds Kubernetes workloads to a copy of the topology: a
// workload of a declared domain becomes one more of its workloads; a
// workload of an undeclared domain declares it.
func mergeWorkloads(t *Topology, ws []Workload) *Topology {
	out := t.clone()
	for _, w := range ws {
		ref := WorkloadRef{Name: w.Name, Namespace: w.Namespace}
		d, ok := out.domain(w.Domain)
		if !ok {
			out.Domains = append(out.Domains, Domain{Name: w.Domain, Service: w.Service, Port: w.Port, Workloads: []WorkloadRef{ref}})
			continue
		}
		if len(d.Workloads) == 0 {
			d.Workloads = d.workloads()
		}
		if !slices.Contains(d.Workloads, ref) {
			d.Workloads = append(d.Workloads, ref)
		}
	}
	return out
}
