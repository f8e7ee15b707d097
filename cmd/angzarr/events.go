package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/angzarr-mesh/angzarr/internal/client"
)

// newEventsCmd is `angzarr events`: read and follow stored events.
func newEventsCmd() *cobra.Command {
	var (
		cfg                      client.EventsConfig
		id                       clientIdentityFlags
		from, to, asOfSeq, asOfT string
	)
	cmd := &cobra.Command{
		Use:   "events [DOMAIN [ROOT]]",
		Short: "Print stored events: of an aggregate, a domain or a workflow, as of a point, or live",
		Long: `events reads the event service (by default the local mesh's, from
.angzarr/endpoints.json) and prints the events decoded with their types, as a
table or as JSON lines (--output json).

  angzarr events customer alice              # one aggregate (ROOT as in angzarr send)
  angzarr events order                       # a whole domain, in log order
  angzarr events --correlation-id ID         # a workflow across domains (sagas keep the id)
  angzarr events customer alice --as-of-sequence 1
  angzarr events customer alice --as-of-time 5m   # or RFC 3339
  angzarr events order --from 2 --to 5
  angzarr events order --follow              # stored events, then new ones until Ctrl-C
  angzarr events product mug --raw           # as stored: old versions, before upcasting`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				cfg.Domain = args[0]
			}
			if len(args) > 1 {
				cfg.Root = args[1]
			}
			var err error
			for _, s := range []struct {
				flag, val string
				dst       **uint32
			}{{"from", from, &cfg.From}, {"to", to, &cfg.To}, {"as-of-sequence", asOfSeq, &cfg.AsOfSequence}} {
				if s.val != "" {
					if *s.dst, err = client.ParseUint32(s.flag, s.val); err != nil {
						return err
					}
				}
			}
			if asOfT != "" {
				if cfg.AsOfTime, err = client.ParseTime(asOfT, time.Now()); err != nil {
					return err
				}
			}
			cfg.Out = cmd.OutOrStdout()
			dial, err := id.dial()
			if err != nil {
				return err
			}
			cfg.Dial = dial
			return client.Events(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	id.add(f)
	f.StringVar(&cfg.CorrelationID, "correlation-id", "", "events of one workflow, across domains")
	f.StringVar(&from, "from", "", "first sequence of a range")
	f.StringVar(&to, "to", "", "last sequence of a range (inclusive)")
	f.StringVar(&asOfSeq, "as-of-sequence", "", "the aggregate as it stood at this sequence (inclusive)")
	f.StringVar(&asOfT, "as-of-time", "", "the aggregate as it stood at this time: RFC 3339 or a duration ago (5m)")
	f.BoolVarP(&cfg.Follow, "follow", "f", false, "keep printing new events until Ctrl-C (EventQuery.Synchronize)")
	f.BoolVar(&cfg.Raw, "raw", false, "the events as stored, before the domain's upcasters (old versions stay old)")
	f.StringVarP(&cfg.Output, "output", "o", client.OutputTable, "table or json (one object per line)")
	f.StringVar(&cfg.Addr, "addr", "", "event service HOST:PORT (default: DATA-DIR/endpoints.json's)")
	f.StringVar(&cfg.DataDir, "data-dir", ".angzarr", "the local mesh's data directory (for endpoints.json)")
	f.StringVar(&cfg.DescriptorSet, "descriptor-set", "", "FileDescriptorSet with event types not built in")
	return cmd
}
