package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/angzarr-mesh/angzarr/eventsvc/schemareg"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema"
)

// schemaRegistryDomain is the event service's system domain for its
// schema registry; no topology may declare it.
const schemaRegistryDomain = schemareg.Domain

// schemaGuard registers the descriptors of every domain that names a
// source (Domain.Descriptors) with the event service's schema registry
// before a topology is pushed, and again every interval (a file may
// change, a new binary may be rolled out). A refusal (the descriptors
// would misread stored events) rejects the topology; the last good one
// keeps serving. A registry that cannot be reached does not block
// configuration: it is logged and tried again at the next check.
type schemaGuard struct {
	log      *slog.Logger
	baseDir  string        // of the topology file, for relative paths
	registry string        // host:port; "" for the topology's event service
	timeout  time.Duration // per call
	refused  metric.Int64Counter

	// registryDial is how the registry is reached: with the control
	// plane's identity (set by Serve before any check). Logic services are
	// reached in plaintext, as their own proxy reaches them.
	registryDial grpc.DialOption
	// kick receives a value when a check could not register a domain,
	// for an early retry.
	kick chan struct{}

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newSchemaGuard(log *slog.Logger, topologyPath, registry string, mp metric.MeterProvider) (*schemaGuard, error) {
	refused, err := mp.Meter("github.com/angzarr-mesh/angzarr/controlplane").Int64Counter("angzarr.controlplane.schema.refused",
		metric.WithDescription("descriptor sets the schema registry refused because they would misread stored events, by domain"),
		metric.WithUnit("{refusal}"))
	if err != nil {
		return nil, err
	}
	dir := "."
	if topologyPath != "" {
		dir = filepath.Dir(topologyPath)
	}
	return &schemaGuard{log: log, baseDir: dir, registry: registry, timeout: 10 * time.Second, refused: refused,
		kick: make(chan struct{}, 1), conns: map[string]*grpc.ClientConn{}}, nil
}

// conn returns a client connection to addr (the registry's when registry),
// kept for later checks.
func (g *schemaGuard) conn(addr string, registry bool) (*grpc.ClientConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := fmt.Sprint(registry, " ", addr)
	if c, ok := g.conns[key]; ok {
		return c, nil
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if registry && g.registryDial != nil {
		creds = g.registryDial
	}
	c, err := grpc.NewClient(addr, creds)
	if err != nil {
		return nil, err
	}
	g.conns[key] = c
	return c, nil
}

func (g *schemaGuard) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for a, c := range g.conns {
		_ = c.Close()
		delete(g.conns, a)
	}
}

// check registers the descriptors of t's domains; it returns an error
// naming every refused domain and its breaking changes. A domain it could
// not register (no registry yet, reflection failing) is logged and asks
// for an early retry (kick).
func (g *schemaGuard) check(ctx context.Context, t *Topology) error {
	addr := g.registry
	if addr == "" {
		addr = t.EventService.Address
	}
	var refusals []error
	for i := range t.Domains {
		d := &t.Domains[i]
		if d.Descriptors == nil {
			continue
		}
		if err := g.checkDomain(ctx, addr, d); err != nil {
			var ref *schemaRefusal
			if !errors.As(err, &ref) {
				select {
				case g.kick <- struct{}{}:
				default: // one pending retry is enough
				}
				g.log.Warn("schema registry: could not register the domain's descriptors; its stored types are checked again at the next topology or interval",
					"domain", d.Name, "err", err)
				continue
			}
			g.refused.Add(ctx, 1, metric.WithAttributes(attribute.String("domain", d.Name)))
			refusals = append(refusals, err)
		}
	}
	return errors.Join(refusals...)
}

// schemaRefusal is a domain whose descriptors the registry refused.
type schemaRefusal struct {
	domain, source string
	msg            string
}

func (e *schemaRefusal) Error() string {
	return fmt.Sprintf("domains %q: the descriptors from %s would misread stored events: %s", e.domain, e.source, e.msg)
}

func (g *schemaGuard) checkDomain(ctx context.Context, registryAddr string, d *Domain) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	rc, err := g.conn(registryAddr, true)
	if err != nil {
		return err
	}
	reg := pb.NewSchemaRegistryClient(rc)
	raw, source, err := g.descriptors(ctx, reg, d)
	if err != nil || raw == nil {
		return err
	}
	// Every check registers again: the registry records nothing when
	// nothing changed, and so never trusts a cache of what it holds.
	_, err = reg.Register(ctx, &pb.RegisterSchemaRequest{Domain: d.Name, FileDescriptorSet: raw, Source: "controlplane: " + source})
	if status.Code(err) == codes.FailedPrecondition {
		return &schemaRefusal{domain: d.Name, source: source, msg: status.Convert(err).Message()}
	}
	return err
}

// descriptors reads the domain's descriptor set from its source; nil (and
// no error) when reflection has nothing to ask for yet (no stored type).
func (g *schemaGuard) descriptors(ctx context.Context, reg pb.SchemaRegistryClient, d *Domain) (raw []byte, source string, err error) {
	if f := d.Descriptors.File; f != "" {
		if !filepath.IsAbs(f) {
			f = filepath.Join(g.baseDir, f)
		}
		raw, err = os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("domains %q: descriptors: %w", d.Name, err)
		}
		return raw, "file " + f, nil
	}
	st, err := reg.Status(ctx, &pb.SchemaStatusRequest{Domain: d.Name})
	if err != nil {
		return nil, "", err
	}
	var names []protoreflect.FullName
	for _, ds := range st.GetDomains() {
		for _, ty := range ds.GetTypes() {
			names = append(names, protoreflect.FullName(ty.GetType()))
		}
	}
	if len(names) == 0 {
		return nil, "", nil
	}
	slices.Sort(names)
	addr := d.Service + ":" + fmt.Sprint(d.Port)
	lc, err := g.conn(addr, false)
	if err != nil {
		return nil, "", err
	}
	set, _, err := schema.Reflect(ctx, lc, names)
	if err != nil {
		return nil, "", fmt.Errorf("domains %q: reflection of %s: %w", d.Name, addr, err)
	}
	raw, err = proto.Marshal(set)
	return raw, "reflection of " + addr, err
}
