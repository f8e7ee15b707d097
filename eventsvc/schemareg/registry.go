// Package schemareg is the event service's schema registry: for every type
// a domain has stored (events, and snapshot states), the descriptors it
// was stored under, recorded on first use (Recording, around the store's
// Append) and on each compatible change (Register, which the control plane
// calls with a domain's descriptors before it pushes the domain's
// configuration). A Register whose descriptors would misread a stored
// type (package schema's rules at WIRE_JSON) is refused with every
// breaking change and the number of stored events it affects, and nothing
// is recorded.
//
// The registry keeps itself as events in the store it guards: one
// aggregate per domain in the system domain "angzarr-schema" (Domain), root
// the UUIDv5 of the domain's name, holding SchemaDescriptorsRecorded and
// SchemaTypeRecorded events. So it is exactly as durable as the events it
// describes, survives restarts on every backend, is shared by every event
// service replica of a store (appends are compare-and-set, retried on a
// conflict), and its own history is readable with `angzarr events
// angzarr-schema`.
//
// Where descriptors come from is the control plane's business (a
// descriptor set named in the topology wins over the logic's gRPC
// reflection); the registry only judges them.
package schemareg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema"
)

// Domain is the system domain the registry keeps its events in. A
// topology may not declare it.
const Domain = "angzarr-schema"

// rootNamespace makes the registry aggregate's root from a domain name.
var rootNamespace = uuid.MustParse("0b8f6a3e-6f0c-5b7e-9a51-3c2d1e4f5a60")

// Root is the registry aggregate of domain.
func Root(domain string) uuid.UUID { return uuid.NewSHA1(rootNamespace, []byte(domain)) }

// Store is what the registry needs of the event store.
type Store interface {
	store.Appender
	store.Loader
	store.Reader
	store.LogReader
}

// Options configure a Registry.
type Options struct {
	// Logger receives the registry's logs. Default slog.Default().
	Logger *slog.Logger
	// CountLimit bounds how many log entries a refusal scans to count the
	// stored events each change affects. Default 100,000.
	CountLimit int
}

// Registry records and checks the schemas of stored types.
type Registry struct {
	st   Store
	opts Options

	mu       sync.Mutex
	known    map[string]map[string]bool // domain -> stored types recorded (monotonic)
	refusals map[string]*pb.SchemaRefusal
	// parsed holds the recorded descriptor sets already built, by
	// fingerprint: a recorded set never changes, and every load of a
	// registry aggregate would otherwise build each of them again.
	parsed map[string]*protoregistry.Files
}

// New returns a registry over st.
func New(st Store, opts Options) *Registry {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CountLimit == 0 {
		opts.CountLimit = 100_000
	}
	return &Registry{st: st, opts: opts, known: map[string]map[string]bool{}, refusals: map[string]*pb.SchemaRefusal{},
		parsed: map[string]*protoregistry.Files{}}
}

// recordedSet is one SchemaDescriptorsRecorded of a domain.
type recordedSet struct {
	seq         uint32
	raw         []byte
	files       *protoregistry.Files
	fingerprint string
	source      string
	at          time.Time
}

// typeState is a stored type's latest SchemaTypeRecorded.
type typeState struct {
	version     uint32
	fingerprint string
	snapshot    bool
	at          time.Time
	set         *recordedSet // nil for version 0
}

// state is a domain's registry aggregate, folded.
type state struct {
	domain  string
	next    uint32
	sets    map[uint32]*recordedSet
	current *recordedSet
	types   map[string]*typeState
}

// load folds the domain's registry aggregate.
func (r *Registry) load(ctx context.Context, domain string) (*state, error) {
	l, err := r.st.Load(ctx, store.Aggregate{Domain: Domain, Root: Root(domain)}, store.LoadQuery{})
	if err != nil {
		return nil, fmt.Errorf("schema registry: load %s: %w", domain, err)
	}
	s := &state{domain: domain, next: l.Next, sets: map[uint32]*recordedSet{}, types: map[string]*typeState{}}
	for _, p := range l.Pages {
		at := p.GetCreatedAt().AsTime()
		m, err := p.GetEvent().UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("schema registry: %s#%d: %w", domain, p.GetNum(), err)
		}
		switch e := m.(type) {
		case *pb.SchemaDescriptorsRecorded:
			files, err := r.parsedSet(e.GetFingerprint(), e.GetFileDescriptorSet())
			if err != nil {
				return nil, fmt.Errorf("schema registry: %s#%d: %w", domain, p.GetNum(), err)
			}
			rs := &recordedSet{seq: p.GetNum(), raw: e.GetFileDescriptorSet(), files: files, fingerprint: e.GetFingerprint(), source: e.GetSource(), at: at}
			s.sets[p.GetNum()], s.current = rs, rs
		case *pb.SchemaTypeRecorded:
			ts := &typeState{version: e.GetVersion(), fingerprint: e.GetFingerprint(), snapshot: e.GetSnapshot(), at: at}
			if e.DescriptorsSequence != nil {
				ts.set = s.sets[e.GetDescriptorsSequence()]
			}
			s.types[e.GetType()] = ts
		}
	}
	r.remember(domain, s)
	return s, nil
}

// remember adds the recorded types to the first-use cache.
func (r *Registry) remember(domain string, s *state) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.known[domain]
	if k == nil {
		k = map[string]bool{}
		r.known[domain] = k
	}
	for t := range s.types {
		k[t] = true
	}
}

// parsedSet builds a recorded descriptor set, once per fingerprint.
func (r *Registry) parsedSet(fingerprint string, raw []byte) (*protoregistry.Files, error) {
	r.mu.Lock()
	files := r.parsed[fingerprint]
	r.mu.Unlock()
	if files != nil {
		return files, nil
	}
	files, err := parseSet(raw)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.parsed[fingerprint] = files
	r.mu.Unlock()
	return files, nil
}

func parseSet(raw []byte) (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("not a FileDescriptorSet: %w", err)
	}
	return schema.Files(&set, schema.WellKnown)
}

// message finds a message type in files.
func message(files *protoregistry.Files, name string) (protoreflect.MessageDescriptor, bool) {
	if files == nil {
		return nil, false
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, false
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	return md, ok
}

// maxAttempts bounds the retries of a registry append that lost a race
// with another writer (another replica, or a first use meanwhile).
const maxAttempts = 8

// append stores pages on the domain's registry aggregate at s.next.
func (r *Registry) append(ctx context.Context, s *state, events []proto.Message) error {
	pages := make([]*pb.EventPage, len(events))
	for i, e := range events {
		a, err := anypb.New(e)
		if err != nil {
			return err
		}
		pages[i] = &pb.EventPage{Sequence: &pb.EventPage_Num{Num: s.next + uint32(i)}, Event: a}
	}
	_, err := r.st.Append(ctx, &store.AppendRequest{Aggregate: store.Aggregate{Domain: Domain, Root: Root(s.domain)}, Expected: s.next, Pages: pages})
	return err
}

// A use is a type an append stored.
type use struct {
	name     string
	snapshot bool
}

// uses lists the types of an append's pages and snapshot.
func uses(req *store.AppendRequest) []use {
	var out []use
	for _, p := range req.Pages {
		out = append(out, use{name: typeName(p.GetEvent())})
	}
	if req.Snapshot != nil {
		out = append(out, use{name: typeName(req.Snapshot), snapshot: true})
	}
	return out
}

func typeName(a *anypb.Any) string { return string(schema.MessageName(a.GetTypeUrl())) }

// allKnown reports whether the cache knows every type req uses: the
// check on every append, which builds nothing (unknown, which does, runs
// only when it fails).
func (r *Registry) allKnown(req *store.AppendRequest) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.known[req.Aggregate.Domain]
	if k == nil {
		return false
	}
	for _, p := range req.Pages {
		if !k[typeName(p.GetEvent())] {
			return false
		}
	}
	return req.Snapshot == nil || k[typeName(req.Snapshot)]
}

// unknown returns the uses whose type the cache does not know for domain.
func (r *Registry) unknown(domain string, us []use) []use {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.known[domain]
	var out []use
	for _, u := range us {
		if !k[u.name] && !slices.ContainsFunc(out, func(o use) bool { return o.name == u.name }) {
			out = append(out, u)
		}
	}
	return out
}

// recordFirstUse records the types of us the domain's registry does not
// hold yet: at version 1 with the domain's current descriptors when they
// define the type, else at version 0 (stored before any descriptors of the
// domain named it; Register gives it version 1 later).
func (r *Registry) recordFirstUse(ctx context.Context, domain string, us []use) error {
	for attempt := 1; ; attempt++ {
		s, err := r.load(ctx, domain)
		if err != nil {
			return err
		}
		var events []proto.Message
		for _, u := range us {
			if s.types[u.name] != nil {
				continue
			}
			e := &pb.SchemaTypeRecorded{Domain: domain, Type: u.name, Snapshot: u.snapshot}
			if md, ok := message(filesOf(s.current), u.name); ok {
				e.Version, e.Fingerprint, e.DescriptorsSequence = 1, schema.Fingerprint(md), proto.Uint32(s.current.seq)
			} else {
				r.opts.Logger.Warn("schema registry: a type was stored that no registered descriptors of its domain define; it is unprotected until they do",
					"domain", domain, "type", u.name)
			}
			events = append(events, e)
		}
		if len(events) == 0 {
			return nil
		}
		err = r.append(ctx, s, events)
		if errors.Is(err, store.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err == nil {
			r.mu.Lock()
			for _, u := range us {
				r.known[domain][u.name] = true
			}
			r.mu.Unlock()
		}
		return err
	}
}

func filesOf(rs *recordedSet) *protoregistry.Files {
	if rs == nil {
		return nil
	}
	return rs.files
}

// ErrRefused is matched (errors.Is) by the error of a refused Register; it
// is a *Refusal.
var ErrRefused = errors.New("breaking schema change")

// Refusal is a refused Register: the breaking changes.
type Refusal struct{ *pb.SchemaRefusal }

func (e *Refusal) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "domain %q: %d breaking change(s) to stored types:", e.GetDomain(), len(e.GetChanges()))
	for _, c := range e.GetChanges() {
		fmt.Fprintf(&b, "\n  %s: %s", c.GetRule(), c.GetType())
		if c.GetPath() != "" {
			fmt.Fprintf(&b, ".%s", c.GetPath())
		}
		if c.GetNumber() != 0 {
			fmt.Fprintf(&b, " (#%d)", c.GetNumber())
		}
		more := ""
		if c.GetStoredEventsPartial() {
			more = " at least"
		}
		fmt.Fprintf(&b, ": %s [%s%d stored]", c.GetDetail(), more, c.GetStoredEvents())
	}
	return b.String()
}

// Is makes a *Refusal match ErrRefused.
func (e *Refusal) Is(target error) bool { return target == ErrRefused }

// Register checks the domain's descriptors against every stored type's
// recorded ones and, unless dryRun or refused, records them: as the
// domain's current descriptors when they changed, and as a new version of
// each stored type whose shape changed compatibly (or that had none).
func (r *Registry) Register(ctx context.Context, domain string, raw []byte, dryRun bool, source string) (*pb.RegisterSchemaResponse, error) {
	if err := store.ValidateDomain("domain", domain); err != nil {
		return nil, err
	}
	if domain == Domain {
		return nil, store.Invalid("domain", "%q is the registry's own", Domain)
	}
	if err := store.ValidateText("source", source, 256); err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, store.Invalid("file_descriptor_set", "not a FileDescriptorSet: %v", err)
	}
	files, err := schema.Files(&set, schema.WellKnown)
	if err != nil {
		return nil, store.Invalid("file_descriptor_set", "%v (build it with protoc --include_imports)", err)
	}
	setFP := schema.SetFingerprint(&set)
	for attempt := 1; ; attempt++ {
		s, err := r.load(ctx, domain)
		if err != nil {
			return nil, err
		}
		var changes []*pb.SchemaChange
		var events []proto.Message
		descSeq := s.next // where a new SchemaDescriptorsRecorded goes
		setChanged := s.current == nil || s.current.fingerprint != setFP
		if !setChanged {
			descSeq = s.current.seq
		} else {
			events = append(events, &pb.SchemaDescriptorsRecorded{Domain: domain, FileDescriptorSet: raw, Fingerprint: setFP, Source: source})
		}
		next := map[string]*pb.SchemaTypeVersion{}
		for _, name := range sortedKeys(s.types) {
			ts := s.types[name]
			next[name] = ts.proto(name)
			md, found := message(files, name)
			switch {
			case ts.version == 0 && !found:
				// Still no descriptors for it: nothing to check or record.
			case ts.version == 0:
				events = append(events, &pb.SchemaTypeRecorded{Domain: domain, Type: name, Version: 1, Fingerprint: schema.Fingerprint(md), Snapshot: ts.snapshot, DescriptorsSequence: proto.Uint32(descSeq)})
				next[name].Version, next[name].Fingerprint = 1, schema.Fingerprint(md)
			case found && schema.Fingerprint(md) == ts.fingerprint:
				// Same shape.
			default:
				cs, err := schema.Check(ts.set.files, files, []protoreflect.FullName{protoreflect.FullName(name)}, schema.WireJSON)
				if err != nil {
					return nil, fmt.Errorf("schema registry: %s: %w", name, err)
				}
				for _, c := range cs {
					changes = append(changes, &pb.SchemaChange{Rule: string(c.Rule), Type: string(c.Type), Path: c.Path, Number: c.Number, Detail: c.Detail})
				}
				if len(cs) == 0 {
					fp := schema.Fingerprint(md)
					events = append(events, &pb.SchemaTypeRecorded{Domain: domain, Type: name, Version: ts.version + 1, Fingerprint: fp, Snapshot: ts.snapshot, DescriptorsSequence: proto.Uint32(descSeq)})
					next[name].Version, next[name].Fingerprint = ts.version+1, fp
				}
			}
		}
		resp := &pb.RegisterSchemaResponse{}
		for _, name := range sortedKeys(next) {
			resp.Types = append(resp.Types, next[name])
		}
		if len(changes) > 0 {
			r.count(ctx, domain, changes)
			ref := &Refusal{&pb.SchemaRefusal{Domain: domain, Changes: changes, Source: source, RefusedAt: timestamppb.Now()}}
			if !dryRun {
				r.mu.Lock()
				r.refusals[domain] = ref.SchemaRefusal
				r.mu.Unlock()
				r.opts.Logger.Error("schema registry: refused descriptors that would misread stored events", "domain", domain, "source", source, "changes", len(changes), "err", ref.Error())
			}
			return resp, ref
		}
		if dryRun || len(events) == 0 {
			return resp, nil
		}
		err = r.append(ctx, s, events)
		if errors.Is(err, store.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		delete(r.refusals, domain)
		r.mu.Unlock()
		resp.Recorded = true
		r.opts.Logger.Info("schema registry: descriptors recorded", "domain", domain, "source", source, "events", len(events))
		return resp, nil
	}
}

func (ts *typeState) proto(name string) *pb.SchemaTypeVersion {
	v := &pb.SchemaTypeVersion{Type: name, Version: ts.version, Fingerprint: ts.fingerprint, Snapshot: ts.snapshot}
	if !ts.at.IsZero() {
		v.RecordedAt = timestamppb.New(ts.at)
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// count fills in how many stored events of the domain each change's type
// has, scanning the domain's log up to CountLimit entries (then the counts
// are lower bounds).
func (r *Registry) count(ctx context.Context, domain string, changes []*pb.SchemaChange) {
	counts := map[string]uint64{}
	for _, c := range changes {
		counts[c.GetType()] = 0
	}
	scanned, partial := 0, false
scan:
	for part := range r.st.Partitions() {
		var after uint64
		for {
			if scanned >= r.opts.CountLimit || ctx.Err() != nil {
				partial = true
				break scan
			}
			books, err := r.st.ReadLog(ctx, domain, part, after, 1000)
			if err != nil {
				partial = true
				break scan
			}
			if len(books) == 0 {
				break
			}
			for _, b := range books {
				scanned++
				after = b.GetPosition().GetOffset()
				for _, p := range b.GetPages() {
					if _, ok := counts[typeName(p.GetEvent())]; ok {
						counts[typeName(p.GetEvent())]++
					}
				}
			}
		}
	}
	for _, c := range changes {
		c.StoredEvents, c.StoredEventsPartial = counts[c.GetType()], partial
	}
}

// Status reports the registry of one domain, or of every domain it knows.
func (r *Registry) Status(ctx context.Context, domain string) (*pb.SchemaStatusResponse, error) {
	var domains []string
	if domain != "" {
		if err := store.ValidateDomain("domain", domain); err != nil {
			return nil, err
		}
		domains = []string{domain}
	} else {
		roots, err := store.AllRoots(ctx, r.st, Domain)
		if err != nil {
			return nil, err
		}
		for _, root := range roots {
			name, err := r.domainOf(ctx, root.Root)
			if err != nil {
				return nil, err
			}
			if name != "" {
				domains = append(domains, name)
			}
		}
		slices.Sort(domains)
	}
	out := &pb.SchemaStatusResponse{}
	for _, d := range domains {
		s, err := r.load(ctx, d)
		if err != nil {
			return nil, err
		}
		ds := &pb.DomainSchema{Domain: d}
		for _, name := range sortedKeys(s.types) {
			ds.Types = append(ds.Types, s.types[name].proto(name))
		}
		if s.current != nil {
			ds.DescriptorsFingerprint, ds.DescriptorsSource = s.current.fingerprint, s.current.source
			ds.DescriptorsRecordedAt = timestamppb.New(s.current.at)
		}
		r.mu.Lock()
		ds.LastRefusal = r.refusals[d]
		r.mu.Unlock()
		out.Domains = append(out.Domains, ds)
	}
	return out, nil
}

// domainOf reads the domain name of a registry aggregate from its first
// event.
func (r *Registry) domainOf(ctx context.Context, root uuid.UUID) (string, error) {
	books, err := r.st.Range(ctx, store.Aggregate{Domain: Domain, Root: root}, 0, 0)
	pages := store.Pages(books)
	if err != nil || len(pages) == 0 {
		return "", err
	}
	m, err := pages[0].GetEvent().UnmarshalNew()
	if err != nil {
		return "", err
	}
	switch e := m.(type) {
	case *pb.SchemaDescriptorsRecorded:
		return e.GetDomain(), nil
	case *pb.SchemaTypeRecorded:
		return e.GetDomain(), nil
	}
	return "", nil
}

// Descriptors returns each stored type's latest version with the
// descriptors it was recorded under.
func (r *Registry) Descriptors(ctx context.Context, domain string) (*pb.SchemaDescriptorsResponse, error) {
	if err := store.ValidateDomain("domain", domain); err != nil {
		return nil, err
	}
	s, err := r.load(ctx, domain)
	if err != nil {
		return nil, err
	}
	out := &pb.SchemaDescriptorsResponse{}
	for _, name := range sortedKeys(s.types) {
		ts := s.types[name]
		td := &pb.TypeDescriptors{Version: ts.proto(name)}
		if ts.set != nil {
			td.FileDescriptorSet = ts.set.raw
		}
		out.Types = append(out.Types, td)
	}
	return out, nil
}
