package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/internal/client"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// adminFlags are the connection flags of the fan-out admin verbs.
type adminFlags struct {
	addr, dataDir string
	timeout       time.Duration
	id            clientIdentityFlags
}

func (a *adminFlags) register(cmd *cobra.Command, timeout time.Duration) {
	cmd.Flags().StringVar(&a.addr, "addr", "", "event service HOST:PORT (default: the local mesh's, from DATA-DIR/endpoints.json, else "+eventsvc.DefaultListen+")")
	cmd.Flags().StringVar(&a.dataDir, "data-dir", ".angzarr", "the local mesh's data directory (for endpoints.json and, when it runs mTLS, its operator certificate)")
	cmd.Flags().DurationVar(&a.timeout, "timeout", timeout, "give up after this long")
	a.id.add(cmd.Flags())
}

// eventService is --addr, or the running local mesh's event service, or the
// event service's default address.
func (a *adminFlags) eventService() string {
	if a.addr != "" {
		return a.addr
	}
	if f, err := endpoints.Read(a.dataDir); err == nil && f.EventService != "" {
		return f.EventService
	}
	return eventsvc.DefaultListen
}

// dial connects to the event service's FanoutAdmin.
func (a *adminFlags) dial(ctx context.Context) (pb.FanoutAdminClient, context.Context, func(), error) {
	dial, err := a.id.dial()
	if err == nil && dial == nil {
		dial, err = client.DialFor(a.dataDir)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := grpc.NewClient(a.eventService(), dial)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	return pb.NewFanoutAdminClient(conn), ctx, func() { cancel(); conn.Close() }, nil
}

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List and replay the fan-out's dead letters",
		Long: `Events a saga or projector failed to handle after the last attempt are parked
in the event service's dead-letter log with the error. A command a saga
returned is parked on its own when it keeps failing (cause "exhausted") or,
refused by its target (cause "refused", never retried), when the aggregate
that triggered the saga asks for it or does not compensate (the saga's
fallback): the saga's other commands ran, and replaying it sends that
command again, and only it. List them, fix the cause, then replay them: each
one delivered leaves the log.

  angzarr dlq list                                         # the local mesh's
  angzarr dlq list --addr 127.0.0.1:1313
  angzarr dlq replay --subscriber order-summary            # all of them
  angzarr dlq replay --subscriber order-summary 12 13      # by id
  angzarr dlq skip --subscriber order-summary 14           # discard, never delivered`,
	}
	cmd.AddCommand(newDLQListCmd(), newDLQReplayCmd(), newDLQSkipCmd())
	return cmd
}

func newDLQListCmd() *cobra.Command {
	var (
		a          adminFlags
		subscriber string
		limit      uint32
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, ctx, done, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := client.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: subscriber, Limit: limit})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSUBSCRIBER\tCAUSE\tAGGREGATE\tSEQUENCES\tCOMMAND\tATTEMPTS\tDEAD AT\tERROR")
			for _, dl := range resp.GetDeadLetters() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", dl.GetId(), dl.GetSubscriber(), cause(dl.GetCause()), aggregate(dl.GetBook().GetCover()),
					sequences(dl.GetBook()), command(dl), dl.GetAttempts(), dl.GetDeadAt().AsTime().Format(time.RFC3339), oneLine(dl.GetError()))
			}
			return tw.Flush()
		},
	}
	a.register(cmd, 30*time.Second)
	cmd.Flags().StringVar(&subscriber, "subscriber", "", "only this subscriber's (default: every subscriber's)")
	cmd.Flags().Uint32Var(&limit, "limit", 0, "most dead letters listed (0: 1000)")
	return cmd
}

func newDLQReplayCmd() *cobra.Command {
	var (
		a          adminFlags
		subscriber string
	)
	cmd := &cobra.Command{
		Use:   "replay --subscriber NAME [ID...]",
		Short: "Deliver dead letters to their subscriber again",
		RunE: func(cmd *cobra.Command, ids []string) error {
			if subscriber == "" {
				return errors.New("--subscriber is required")
			}
			client, ctx, done, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := client.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: subscriber, Ids: ids})
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range resp.GetResults() {
				if r.GetDelivered() {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\tdelivered\n", r.GetId())
				} else {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "%s\tfailed: %s\n", r.GetId(), oneLine(r.GetError()))
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d replayed, %d delivered, %d failed\n", len(resp.GetResults()), len(resp.GetResults())-failed, failed)
			if failed > 0 {
				return fmt.Errorf("%d dead letters failed again and stay in the log", failed)
			}
			return nil
		},
	}
	a.register(cmd, 5*time.Minute)
	cmd.Flags().StringVar(&subscriber, "subscriber", "", "the subscriber whose dead letters are replayed (required)")
	return cmd
}

func newDLQSkipCmd() *cobra.Command {
	var (
		a          adminFlags
		subscriber string
	)
	cmd := &cobra.Command{
		Use:   "skip --subscriber NAME ID...",
		Short: "Discard dead letters without delivering them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, ids []string) error {
			if subscriber == "" {
				return errors.New("--subscriber is required")
			}
			client, ctx, done, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := client.DiscardDeadLetters(ctx, &pb.DiscardDeadLettersRequest{Subscriber: subscriber, Ids: ids})
			if err != nil {
				return err
			}
			for _, id := range resp.GetDiscarded() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tdiscarded\n", id)
			}
			if n := len(ids) - len(resp.GetDiscarded()); n > 0 {
				return fmt.Errorf("%d of the ids were not parked", n)
			}
			return nil
		},
	}
	a.register(cmd, 30*time.Second)
	cmd.Flags().StringVar(&subscriber, "subscriber", "", "the subscriber whose dead letters are discarded (required)")
	return cmd
}

// aggregate renders a cover as domain/root.
func aggregate(c *pb.Cover) string {
	if v := c.GetRoot().GetValue(); len(v) == 16 {
		return fmt.Sprintf("%s/%x-%x-%x-%x-%x", c.GetDomain(), v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])
	}
	return c.GetDomain() + "/?"
}

// sequences renders a book's page sequences as FIRST-LAST.
func sequences(b *pb.EventBook) string {
	p := b.GetPages()
	switch len(p) {
	case 0:
		return "-"
	case 1:
		return fmt.Sprint(p[0].GetNum())
	}
	return fmt.Sprintf("%d-%d", p[0].GetNum(), p[len(p)-1].GetNum())
}

// cause renders a dead letter's cause in lower case ("refused"; "-" when
// not recorded).
func cause(c pb.DeadLetterCause) string {
	if c == pb.DeadLetterCause_DEAD_LETTER_CAUSE_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(c.String(), "DEAD_LETTER_CAUSE_"))
}

// command renders the saga command a dead letter parks on its own as
// #INDEX TYPE -> DOMAIN/ROOT ("-" for a parked event).
func command(dl *pb.DeadLetter) string {
	c := dl.GetCommand()
	if c == nil {
		return "-"
	}
	kind := "?"
	if p := c.GetPages(); len(p) > 0 {
		u := p[0].GetCommand().GetTypeUrl()
		kind = u[strings.LastIndex(u, ".")+1:]
	}
	return fmt.Sprintf("#%d %s -> %s", dl.GetCommandIndex(), kind, aggregate(c.GetCover()))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
