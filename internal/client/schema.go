package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/angzarr-mesh/angzarr/schema"
)

// SchemaCheckConfig is `angzarr schema check`.
type SchemaCheckConfig struct {
	// Against is the FileDescriptorSet the events were stored under.
	Against string
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
	if c.Against == "" || (c.DescriptorSet == "") == (c.Reflect == "") {
		return errors.New("schema check: give --against FILE and one of --descriptor-set FILE or --reflect HOST:PORT")
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
		n := protoreflect.FullName(g[strings.LastIndex(g, "/")+1:])
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
	if output == OutputJSON {
		enc := json.NewEncoder(w)
		for _, c := range changes {
			if err := enc.Encode(struct {
				Rule   schema.Rule `json:"rule"`
				Type   string      `json:"type"`
				Path   string      `json:"path,omitempty"`
				Number int32       `json:"number,omitempty"`
				Detail string      `json:"detail"`
			}{c.Rule, string(c.Type), c.Path, c.Number, c.Detail}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(changes) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tTYPE\tFIELD\t#\tDETAIL")
	for _, c := range changes {
		num := ""
		if c.Number != 0 {
			num = fmt.Sprint(c.Number)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Rule, c.Type, c.Path, num, c.Detail)
	}
	return tw.Flush()
}
