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

	"github.com/angzarr-mesh/angzarr/internal/identity"
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
	// Service host and Port of the business logic: Port is the container
	// port the logic listens on, ServicePort the port of the Service that
	// sends to it (0: the same).
	Service     string
	Port        int
	ServicePort int
	// ServiceAccount the pods run as ("default" when unset): the
	// workload's identity, a writer of its domain.
	ServiceAccount string
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

// watchKubernetes runs informers on Deployments, Pods and Services (in
// namespace, or all when "") and calls fn with every annotated workload,
// sorted, once the caches have synced and after every change, until ctx is
// done.
func watchKubernetes(ctx context.Context, client kubernetes.Interface, namespace string, log *slog.Logger, fn func([]Workload)) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 10*time.Minute, informers.WithNamespace(namespace))
	deployments := factory.Apps().V1().Deployments()
	pods := factory.Core().V1().Pods()
	services := factory.Core().V1().Services()
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
	if _, err := services.Informer().AddEventHandler(handler); err != nil {
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
		ss, err := services.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		ws := annotatedWorkloads(ds, ps, ss, log)
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
// Deployment's ReplicaSet are represented by the Deployment. Each takes its
// Service host and port from the Service in front of it (servicePort).
func annotatedWorkloads(ds []*appsv1.Deployment, ps []*corev1.Pod, ss []*corev1.Service, log *slog.Logger) []Workload {
	byKey := map[string]Workload{}
	for _, d := range ds {
		tpl := d.Spec.Template
		if w, ok := workloadOf(d.Namespace, d.Name, tpl.Annotations, tpl.Labels, tpl.Spec.Containers, ss, log); ok {
			w.ServiceAccount = serviceAccount(tpl.Spec)
			byKey[w.Namespace+"/"+w.Name] = w
		}
	}
	for _, p := range ps {
		name := podWorkloadName(p)
		if _, ok := byKey[p.Namespace+"/"+name]; ok {
			continue
		}
		if w, ok := workloadOf(p.Namespace, name, p.Annotations, p.Labels, p.Spec.Containers, ss, log); ok {
			w.ServiceAccount = serviceAccount(p.Spec)
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
func workloadOf(ns, name string, ann, podLabels map[string]string, containers []corev1.Container, ss []*corev1.Service, log *slog.Logger) (Workload, bool) {
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
	if w.Service != "" {
		if err := checkHost(w.Service); err != nil {
			log.Warn("ignoring workload: invalid service annotation", "workload", ns+"/"+name, "err", err)
			return Workload{}, false
		}
	}
	portName := ""
	if p := strings.TrimSpace(ann[PortAnnotation]); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			log.Warn("ignoring workload: invalid port annotation", "workload", ns+"/"+name, "port", p)
			return Workload{}, false
		}
		w.Port = n
		portName = containerPortName(containers, n)
	} else {
		w.Port, portName = containerPort(containers)
	}
	if w.Port == 0 {
		log.Warn("ignoring workload: no port (set angzarr.io/port or a container port)", "workload", ns+"/"+name)
		return Workload{}, false
	}
	svc, svcPort := servicePort(ns, w.Service, podLabels, w.Port, portName, ss)
	switch {
	case svc != nil:
		if w.Service == "" {
			w.Service = serviceHost(svc)
		}
		if svcPort != w.Port {
			w.ServicePort = svcPort
		}
	case w.Service == "":
		w.Service = fmt.Sprintf("%s.%s.svc.cluster.local", name, ns)
		// Debug: this runs again on every pod, deployment or service change.
		log.Debug("workload: no Service sends to its port; assuming one named after it, on the same port",
			"workload", ns+"/"+name, "service", w.Service, "port", w.Port)
	}
	return w, true
}

// containerPort is the port named "grpc", else the first declared port,
// and its name.
func containerPort(cs []corev1.Container) (int, string) {
	first, firstName := 0, ""
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == "grpc" {
				return int(p.ContainerPort), p.Name
			}
			if first == 0 {
				first, firstName = int(p.ContainerPort), p.Name
			}
		}
	}
	return first, firstName
}

// containerPortName is the name the containers give port n, if any.
func containerPortName(cs []corev1.Container, n int) string {
	for _, c := range cs {
		for _, p := range c.Ports {
			if int(p.ContainerPort) == n {
				return p.Name
			}
		}
	}
	return ""
}

// servicePort finds the Service in front of a workload's logic port and
// that Service's port for it: Istio names a Service's outbound clusters by
// the Service port, not the container port (outbound|<port>||<host>), so
// callers must use it. The candidates are the Service the host names (when
// it is <name>.<ns>.svc.cluster.local of the workload's namespace), else
// every Service of the namespace whose selector matches the pod's labels,
// by name. A Service port sends to the logic when its targetPort is the
// container port by number or by name (unset: the port itself). nil when
// none does.
func servicePort(ns, host string, podLabels map[string]string, port int, portName string, ss []*corev1.Service) (*corev1.Service, int) {
	var named string
	if host != "" {
		name, rest, _ := strings.Cut(host, ".")
		if rest != ns+".svc.cluster.local" && rest != ns+".svc" && rest != ns {
			return nil, 0 // outside the namespace: nothing to read
		}
		named = name
	}
	cands := make([]*corev1.Service, 0, 1)
	for _, s := range ss {
		if s.Namespace != ns {
			continue
		}
		if named != "" {
			if s.Name == named {
				cands = append(cands, s)
			}
			continue
		}
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			cands = append(cands, s)
		}
	}
	slices.SortFunc(cands, func(a, b *corev1.Service) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range cands {
		for _, sp := range s.Spec.Ports {
			if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				continue
			}
			tp := sp.TargetPort
			switch {
			case tp.IntVal == 0 && tp.StrVal == "":
				if int(sp.Port) == port {
					return s, int(sp.Port)
				}
			case tp.StrVal != "":
				if portName != "" && tp.StrVal == portName {
					return s, int(sp.Port)
				}
			case int(tp.IntVal) == port:
				return s, int(sp.Port)
			}
		}
	}
	return nil, 0
}

// serviceHost is a Service's cluster host name.
func serviceHost(s *corev1.Service) string {
	return s.Name + "." + s.Namespace + ".svc.cluster.local"
}

// addWorkloadIdentity makes an annotated workload's service account a
// writer of its domain (after the identities the domain had, declared or
// defaulted from its workloads). A name that makes no identity adds none.
func addWorkloadIdentity(d *Domain, td string, w Workload) {
	if w.ServiceAccount == "" {
		return
	}
	id, err := identity.New(td, w.Namespace, w.ServiceAccount)
	if err != nil {
		return
	}
	if d.Identities == nil {
		d.Identities = slices.Clone(d.identities(td))
	}
	if !slices.Contains(d.Identities, id.String()) {
		d.Identities = append(d.Identities, id.String())
	}
}

// serviceAccount is the service account a pod runs as.
func serviceAccount(spec corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	return "default"
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
// workload of a declared domain becomes one more of its workloads (and
// gives it the Service port it found, when the topology sets none and the
// Service and container port are the declared ones); a workload of an
// undeclared domain declares it.
func mergeWorkloads(t *Topology, ws []Workload) *Topology {
	out := t.clone()
	for _, w := range ws {
		ref := WorkloadRef{Name: w.Name, Namespace: w.Namespace}
		d, ok := out.domain(w.Domain)
		if !ok {
			out.Domains = append(out.Domains, Domain{Name: w.Domain, Service: w.Service, Port: w.Port, ServicePort: w.ServicePort, Workloads: []WorkloadRef{ref}})
			// Its identity is the service account, not one guessed from the name.
			out.Domains[len(out.Domains)-1].Identities = []string{}
			addWorkloadIdentity(&out.Domains[len(out.Domains)-1], out.trustDomain(), w)
			continue
		}
		addWorkloadIdentity(d, out.trustDomain(), w)
		if len(d.Workloads) == 0 {
			d.Workloads = d.workloads()
		}
		if !slices.ContainsFunc(d.Workloads, func(w WorkloadRef) bool { return w.Name == ref.Name && w.Namespace == ref.Namespace }) {
			d.Workloads = append(d.Workloads, ref)
		}
		// The declared Service, found in front of the workload on another
		// port: callers must use that port. A servicePort in the topology
		// wins.
		if d.ServicePort == 0 && w.ServicePort != 0 && w.Service == d.Service && w.Port == d.Port {
			d.ServicePort = w.ServicePort
		}
	}
	return out
}
