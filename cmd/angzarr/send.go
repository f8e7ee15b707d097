package main

import (
	"github.com/spf13/cobra"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/client"
)

// newSendCmd is `angzarr send`: one command to a domain's coordinator.
func newSendCmd() *cobra.Command {
	var cfg client.SendConfig
	var id clientIdentityFlags
	cmd := &cobra.Command{
		Use:   "send DOMAIN ROOT TYPE [JSON]",
		Short: "Send a command to a domain and print the CommandResponse as JSON",
		Long: `send sends one command to DOMAIN's angzarr.BusinessCoordinator (by default the
domain's proxy of the local mesh, from .angzarr/endpoints.json) and prints the
CommandResponse (the new events) as JSON.

ROOT is the aggregate: a UUID, or any other text, which stands for its UUIDv5
in the examples' namespace ` + roots.NamespaceID + `
(examples/go/roots): "alice" is always the same customer, "sku-1" the product
and the inventory of product sku-1.

TYPE is the command's message type, full ("examples.CreateCustomer") or short
when unambiguous ("CreateCustomer"): the example shop's types are built in,
others come from --descriptor-set (protoc --include_imports
--descriptor_set_out=FILE). JSON is the command in protojson ({} when left out).

Sequences: a command carries the aggregate's next sequence as the client knows
it. --expect-sequence defaults to 0, a new aggregate; for an aggregate with N
events pass --expect-sequence N (angzarr events DOMAIN ROOT shows them), or
--auto-resequence to let the framework take the current sequence and retry on
conflicts. A stale sequence is refused (ABORTED) with the right one.

  angzarr send customer alice examples.CreateCustomer '{"name":"Alice","email":"alice@example.com"}'
  angzarr send customer alice AddLoyaltyPoints '{"points":50,"reason":"welcome"}' --expect-sequence 1
  angzarr send order order-1 ConfirmPayment '{"paymentReference":"ref-1"}' --auto-resequence`,
		Args: cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Domain, cfg.Root, cfg.Type = args[0], args[1], args[2]
			if len(args) == 4 {
				cfg.JSON = args[3]
			}
			cfg.Out = cmd.OutOrStdout()
			dial, err := id.dial()
			if err != nil {
				return err
			}
			cfg.Dial = dial
			return client.Send(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	id.add(f)
	f.StringVar(&cfg.Addr, "addr", "", "the domain's BusinessCoordinator HOST:PORT (default: its proxy in DATA-DIR/endpoints.json)")
	f.StringVar(&cfg.DataDir, "data-dir", ".angzarr", "the local mesh's data directory (for endpoints.json)")
	f.StringVar(&cfg.DescriptorSet, "descriptor-set", "", "FileDescriptorSet with types not built in")
	f.StringVar(&cfg.Sync, "sync", "", "call HandleSync with this mode: none, simple (wait for sync projectors) or cascade (and sagas); default: Handle")
	f.Uint32Var(&cfg.ExpectSequence, "expect-sequence", 0, "the aggregate's next sequence (its number of events); 0 is a new aggregate")
	f.BoolVar(&cfg.AutoResequence, "auto-resequence", false, "let the framework use the current sequence (and retry on conflicts)")
	f.StringVar(&cfg.CorrelationID, "correlation-id", "", "correlation id of the workflow (default: the framework assigns one)")
	f.StringVar(&cfg.IdempotencyKey, "idempotency-key", "", "make a repeated send take effect once")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "bound the call (default 30s)")
	return cmd
}
