package main

import (
	"github.com/spf13/cobra"

	"github.com/angzarr-mesh/angzarr/internal/client"
)

// newSchemaCmd is `angzarr schema`: guard stored events against breaking
// .proto changes.
func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Check .proto changes against the types events were stored under",
	}
	cmd.AddCommand(newSchemaCheckCmd(), newSchemaStatusCmd())
	return cmd
}

func newSchemaStatusCmd() *cobra.Command {
	var (
		cfg client.SchemaStatusConfig
		id  clientIdentityFlags
	)
	cmd := &cobra.Command{
		Use:   "status [DOMAIN]",
		Short: "Show the schema registry: each stored type's version, each domain's descriptors and last refusal",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				cfg.Domain = args[0]
			}
			cfg.Out = cmd.OutOrStdout()
			dial, err := id.dial()
			if err != nil {
				return err
			}
			cfg.Dial = dial
			return client.SchemaStatus(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	id.add(f)
	f.StringVarP(&cfg.Output, "output", "o", client.OutputTable, "table or json")
	f.StringVar(&cfg.Addr, "addr", "", "event service HOST:PORT (default: DATA-DIR/endpoints.json's)")
	f.StringVar(&cfg.DataDir, "data-dir", ".angzarr", "the local mesh's data directory (for endpoints.json)")
	return cmd
}

func newSchemaCheckCmd() *cobra.Command {
	var (
		cfg client.SchemaCheckConfig
		id  clientIdentityFlags
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Report every change that would misread stored events; exit non-zero if there is one",
		Long: `check compares new descriptors (a FileDescriptorSet file, or a running
service's gRPC reflection) with those the events were stored under, starting
at each stored event type and following every message and enum it reaches.
It reports each breaking change with its rule (buf's WIRE / WIRE_JSON rule
names), the type, the field path and number, and exits non-zero if there is
one, so CI can stop the change before it reaches production.

  protoc --include_imports --descriptor_set_out=new.binpb -I proto proto/examples/*.proto
  angzarr schema check --domain product --descriptor-set new.binpb   # against the event service's registry
  angzarr schema check --against stored.binpb --descriptor-set new.binpb
  angzarr schema check --against stored.binpb --reflect localhost:50051 --types examples.CustomerCreated`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Out = cmd.OutOrStdout()
			dial, err := id.dial()
			if err != nil {
				return err
			}
			cfg.Dial = dial
			return client.SchemaCheck(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	id.add(f)
	f.StringVar(&cfg.Against, "against", "", "FileDescriptorSet the stored events were written under (instead of --domain)")
	f.StringVar(&cfg.Domain, "domain", "", "check against the event service's schema registry for this domain (counts the stored events each change affects)")
	f.StringVar(&cfg.Addr, "addr", "", "event service HOST:PORT, with --domain (default: DATA-DIR/endpoints.json's)")
	f.StringVar(&cfg.DataDir, "data-dir", ".angzarr", "the local mesh's data directory (for endpoints.json)")
	f.StringVar(&cfg.DescriptorSet, "descriptor-set", "", "the new descriptors, as a FileDescriptorSet file")
	f.StringVar(&cfg.Reflect, "reflect", "", "the new descriptors, from this running service's gRPC reflection (HOST:PORT)")
	f.StringSliceVar(&cfg.Types, "types", nil, "stored event types, full names or type URLs (default: every message --against defines)")
	f.StringVar(&cfg.Level, "level", "wire_json", "wire_json (binary and JSON stay readable) or wire (binary only)")
	f.StringVarP(&cfg.Output, "output", "o", client.OutputTable, "table or json (one change per line)")
	return cmd
}
