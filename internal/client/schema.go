package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema"
)

// SchemaCheckConfig is `angzarr schema check`.
type SchemaCheckConfig struct {
	// Against is a FileDescriptorSet the events were stored under; empty:
	// the event service's schema registry for Domain (a dry-run Register,
	// which also counts the stored events each change affects).
	Against string
	// Domain is the domain whose stored types the registry checks.
	Domain string
	// Addr is the event service (default DataDir's endpoints.json's).
	Addr, DataDir string
	// Dial is the transport to the event service; nil: DialFor(DataDir).
	Dial grpc.DialOption
	// DescriptorSet is the new descriptors as a file; Reflect, a running
	// service to ask instead (HOST:PORT). Exactly one is set.
	DescriptorSet, Reflect string
	// Types are the stored event types (full names or type URLs); empty:
	// every message Against defines.
	Types []string
	// Level is "wire_json" (default) or "wire".
	Level  string
	Output string // OutputTable or OutputJSON
	Out    io.Writer
}

// ErrBreaking is returned (wrapped) when the check found breaking changes,
// so the command exits non-zero in CI.
var ErrBreaking = errors.New("breaking schema changes")

// SchemaCheck compares the new descriptors with the stored ones and prints
// every breaking change; it returns ErrBreaking when there is one.
func SchemaCheck(ctx context.Context, c SchemaCheckConfig) error {
	level, err := schema.ParseLevel(c.Level)
	if err != nil {
		return err
	}
	if c.Output != OutputTable && c.Output != OutputJSON {
		return fmt.Errorf("--output %q: want %s or %s", c.Output, OutputTable, OutputJSON)
	}
	if (c.Against == "") == (c.Domain == "") || (c.DescriptorSet == "") == (c.Reflect == "") {
		return errors.New("schema check: give --against FILE or --domain DOMAIN (the registry), and one of --descriptor-set FILE or --reflect HOST:PORT")
	}
	if c.Domain != "" {
		return c.checkRegistry(ctx)
	}
	old, err := schema.ReadFileSet(c.Against)
	if err != nil {
		return err
	}
	types, err := storedTypes(old, c.Types)
	if err != nil {
		return err
	}
	var cur *protoregistry.Files
	if c.DescriptorSet != "" {
		if cur, err = schema.ReadFileSet(c.DescriptorSet); err != nil {
			return err
		}
	} else if cur, err = reflectFiles(ctx, c.Reflect, old, types); err != nil {
		return err
	}
	changes, err := schema.Check(old, cur, types, level)
	if err != nil {
		return err
	}
	if err := printChanges(c.Out, c.Output, changes); err != nil {
		return err
	}
	if len(changes) > 0 {
		return fmt.Errorf("%w: %d in %d stored types (%s)", ErrBreaking, len(changes), len(types), level)
	}
	if c.Output == OutputTable {
		_, err = fmt.Fprintf(c.Out, "no breaking change in %d stored types (%s)\n", len(types), level)
	}
	return err
}

// storedTypes validates the names given (a type URL's last part counts) or
// lists every message of old, sorted.
func storedTypes(old *protoregistry.Files, given []string) ([]protoreflect.FullName, error) {
	var out []protoreflect.FullName
	for _, g := range given {
		n := schema.MessageName(g)
		if !n.IsValid() {
			return nil, fmt.Errorf("--types: %q is not a message name or type URL", g)
		}
		out = append(out, n)
	}
	if len(given) > 0 {
		return out, nil
	}
	old.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(fd.Path(), "google/protobuf/") {
			return true
		}
		ms := fd.Messages()
		for i := range ms.Len() {
			out = append(out, ms.Get(i).FullName())
		}
		return true
	})
	slices.Sort(out)
	if len(out) == 0 {
		return nil, errors.New("--against defines no message to check")
	}
	return out, nil
}

// reflectFiles asks a running service for the files of the stored types.
// A type the service does not define is not an error here: Check reports
// it as deleted (MESSAGE_NO_DELETE), which is what it is for stored events.
func reflectFiles(ctx context.Context, addr string, old *protoregistry.Files, types []protoreflect.FullName) (*protoregistry.Files, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	set, _, err := schema.Reflect(ctx, conn, types)
	if err != nil {
		return nil, explain(err, addr)
	}
	return schema.Files(set, schema.WellKnown)
}

func printChanges(w io.Writer, output string, changes []schema.Change) error {
	return printChangesCounted(w, output, changes, nil)
}

// printChangesCounted prints changes with, when counts is not nil, the
// stored events each affects.
func printChangesCounted(w io.Writer, output string, changes []schema.Change, counts map[int]string) error {
	if output == OutputJSON {
		enc := json.NewEncoder(w)
		for i, c := range changes {
			if err := enc.Encode(struct {
				Rule   schema.Rule `json:"rule"`
				Type   string      `json:"type"`
				Path   string      `json:"path,omitempty"`
				Number int32       `json:"number,omitempty"`
				Detail string      `json:"detail"`
				Stored string      `json:"storedEvents,omitempty"`
			}{c.Rule, string(c.Type), c.Path, c.Number, c.Detail, counts[i]}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(changes) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if counts != nil {
		fmt.Fprintln(tw, "RULE\tTYPE\tFIELD\t#\tSTORED\tDETAIL")
	} else {
		fmt.Fprintln(tw, "RULE\tTYPE\tFIELD\t#\tDETAIL")
	}
	for i, c := range changes {
		num := ""
		if c.Number != 0 {
			num = fmt.Sprint(c.Number)
		}
		if counts != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Rule, c.Type, c.Path, num, counts[i], c.Detail)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Rule, c.Type, c.Path, num, c.Detail)
		}
	}
	return tw.Flush()
}

// registryStatus connects to the event service (addr, or dataDir's
// endpoints.json's; with dial, or the local mesh's DialFor) and asks its schema registry for domain's status ("":
// every domain). The caller closes conn.
func registryStatus(ctx context.Context, addr, dataDir string, dial grpc.DialOption, domain string) (conn *grpc.ClientConn, st *pb.SchemaStatusResponse, _ string, err error) {
	if addr == "" {
		f, err := endpoints.Read(dataDir)
		if err != nil {
			return nil, nil, "", err
		}
		addr = f.EventService
	}
	if dial == nil {
		if dial, err = DialFor(dataDir); err != nil {
			return nil, nil, "", err
		}
	}
	if conn, err = grpc.NewClient(addr, dial); err != nil {
		return nil, nil, "", err
	}
	if st, err = pb.NewSchemaRegistryClient(conn).Status(ctx, &pb.SchemaStatusRequest{Domain: domain}); err != nil {
		conn.Close()
		return nil, nil, "", explain(err, addr)
	}
	return conn, st, addr, nil
}

// checkRegistry asks the registry to judge the new descriptors (a dry
// run): what the control plane would be told.
func (c SchemaCheckConfig) checkRegistry(ctx context.Context) error {
	conn, st, addr, err := registryStatus(ctx, c.Addr, c.DataDir, c.Dial, c.Domain)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := pb.NewSchemaRegistryClient(conn)
	var types []protoreflect.FullName
	for _, d := range st.GetDomains() {
		for _, ty := range d.GetTypes() {
			types = append(types, protoreflect.FullName(ty.GetType()))
		}
	}
	var raw []byte
	if c.DescriptorSet != "" {
		if raw, err = os.ReadFile(c.DescriptorSet); err != nil {
			return fmt.Errorf("descriptor set: %w", err)
		}
	} else {
		lc, err := grpc.NewClient(c.Reflect, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer lc.Close()
		set, _, err := schema.Reflect(ctx, lc, types)
		if err != nil {
			return explain(err, c.Reflect)
		}
		if raw, err = proto.Marshal(set); err != nil {
			return err
		}
	}
	_, err = reg.Register(ctx, &pb.RegisterSchemaRequest{Domain: c.Domain, FileDescriptorSet: raw, DryRun: true, Source: "angzarr schema check"})
	if status.Code(err) == codes.FailedPrecondition {
		var changes []schema.Change
		counts := map[int]string{}
		for _, d := range status.Convert(err).Details() {
			if r, ok := d.(*pb.SchemaRefusal); ok {
				for _, ch := range r.GetChanges() {
					n := fmt.Sprint(ch.GetStoredEvents())
					if ch.GetStoredEventsPartial() {
						n = ">=" + n
					}
					counts[len(changes)] = n
					changes = append(changes, schema.Change{Rule: schema.Rule(ch.GetRule()), Type: protoreflect.FullName(ch.GetType()),
						Path: ch.GetPath(), Number: ch.GetNumber(), Detail: ch.GetDetail()})
				}
			}
		}
		if err := printChangesCounted(c.Out, c.Output, changes, counts); err != nil {
			return err
		}
		return fmt.Errorf("%w: %d in domain %s's %d stored types (WIRE_JSON)", ErrBreaking, len(changes), c.Domain, len(types))
	}
	if err != nil {
		return explain(err, addr)
	}
	if c.Output == OutputTable {
		_, err = fmt.Fprintf(c.Out, "no breaking change in domain %s's %d stored types (WIRE_JSON)\n", c.Domain, len(types))
	}
	return err
}

// SchemaStatusConfig is `angzarr schema status`.
type SchemaStatusConfig struct {
	// Domain is one domain; empty for every domain the registry knows.
	Domain        string
	Addr, DataDir string
	// Dial is the transport to the event service; nil: DialFor(DataDir).
	Dial   grpc.DialOption
	Output string // OutputTable or OutputJSON
	Out    io.Writer
}

// SchemaStatus prints what the schema registry holds: each stored type's
// version, each domain's current descriptors and its last refusal.
func SchemaStatus(ctx context.Context, c SchemaStatusConfig) error {
	if c.Output != OutputTable && c.Output != OutputJSON {
		return fmt.Errorf("--output %q: want %s or %s", c.Output, OutputTable, OutputJSON)
	}
	conn, st, _, err := registryStatus(ctx, c.Addr, c.DataDir, c.Dial, c.Domain)
	if err != nil {
		return err
	}
	defer conn.Close()
	if c.Output == OutputJSON {
		b, err := protojson.Marshal(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.Out, "%s\n", b)
		return err
	}
	short := func(fp string) string {
		if len(fp) > 12 {
			return fp[:12]
		}
		return cmp.Or(fp, "-")
	}
	tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tTYPE\tKIND\tVERSION\tFINGERPRINT\tRECORDED")
	for _, d := range st.GetDomains() {
		for _, ty := range d.GetTypes() {
			kind, recorded := "event", "-"
			if ty.GetSnapshot() {
				kind = "snapshot"
			}
			if ty.GetRecordedAt() != nil {
				recorded = ty.GetRecordedAt().AsTime().UTC().Format(time.RFC3339)
			}
			version := fmt.Sprint(ty.GetVersion())
			if ty.GetVersion() == 0 {
				version = "0 (no descriptors: unguarded)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.GetDomain(), ty.GetType(), kind, version, short(ty.GetFingerprint()), recorded)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range st.GetDomains() {
		if d.GetDescriptorsFingerprint() == "" {
			fmt.Fprintf(c.Out, "\n%s: no descriptors registered (name them in the topology: domains[].descriptors)\n", d.GetDomain())
		} else {
			fmt.Fprintf(c.Out, "\n%s: descriptors %s from %s at %s\n", d.GetDomain(), short(d.GetDescriptorsFingerprint()),
				d.GetDescriptorsSource(), d.GetDescriptorsRecordedAt().AsTime().UTC().Format(time.RFC3339))
		}
		if r := d.GetLastRefusal(); r != nil {
			fmt.Fprintf(c.Out, "%s: REFUSED at %s, from %s, %d breaking change(s):\n", d.GetDomain(),
				r.GetRefusedAt().AsTime().UTC().Format(time.RFC3339), r.GetSource(), len(r.GetChanges()))
			for _, ch := range r.GetChanges() {
				fmt.Fprintf(c.Out, "  %s %s.%s: %s (%d stored)\n", ch.GetRule(), ch.GetType(), ch.GetPath(), ch.GetDetail(), ch.GetStoredEvents())
			}
		}
	}
	return nil
}
