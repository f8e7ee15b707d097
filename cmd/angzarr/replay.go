package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

func newReplayCmd() *cobra.Command {
	var (
		a         adminFlags
		projector string
		interval  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay --projector NAME",
		Short: "Rebuild a projector from position 0 of its source logs",
		Long: `replay moves a projector's checkpoints back to the beginning of every source
domain's log; the event service then delivers the whole history to it again
(pages carry their sequences: a projector that keeps its read model resets it
or skips what it has). A progress bar on stderr follows the rebuild until the
projector reaches the end the logs had when it started.

  angzarr replay --projector order-summary                 # the local mesh's
  angzarr replay --projector order-summary --addr 127.0.0.1:1313`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if projector == "" {
				return errors.New("--projector is required")
			}
			client, ctx, done, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			start, err := client.ResetSubscriber(ctx, &pb.ResetSubscriberRequest{Name: projector})
			if err != nil {
				return err
			}
			target := map[string]uint64{}
			var total uint64
			for _, p := range start.GetPartitions() {
				target[partKey(p)] = p.GetEnd()
				total += p.GetEnd()
			}
			bar := &progressBar{w: cmd.ErrOrStderr(), label: projector}
			for {
				pr, err := client.GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: projector})
				if err != nil {
					bar.finish()
					return err
				}
				var doneOffsets uint64
				caughtUp := true
				for _, p := range pr.GetPartitions() {
					t := target[partKey(p)]
					doneOffsets += min(p.GetCommitted(), t)
					if p.GetCommitted() < t {
						caughtUp = false
					}
				}
				bar.draw(doneOffsets, total)
				if caughtUp {
					bar.finish()
					fmt.Fprintf(cmd.OutOrStdout(), "projector %s rebuilt\n", projector)
					return nil
				}
				select {
				case <-ctx.Done():
					bar.finish()
					return fmt.Errorf("projector %s not rebuilt: %w", projector, context.Cause(ctx))
				case <-time.After(interval):
				}
			}
		},
	}
	a.register(cmd, time.Hour)
	cmd.Flags().StringVar(&projector, "projector", "", "the projector to rebuild (required)")
	cmd.Flags().DurationVar(&interval, "interval", 200*time.Millisecond, "how often progress is read")
	return cmd
}

func partKey(p *pb.PartitionProgress) string {
	return fmt.Sprintf("%s/%d", p.GetDomain(), p.GetPartition())
}

// progressBar draws "label [#####-----]  50%" on one terminal line.
type progressBar struct {
	w     io.Writer
	label string
	drawn bool
}

const barWidth = 40

func (b *progressBar) draw(done, total uint64) {
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * barWidth)
	fmt.Fprintf(b.w, "\r%s [%s%s] %3.0f%%", b.label, strings.Repeat("#", n), strings.Repeat("-", barWidth-n), frac*100)
	b.drawn = true
}

func (b *progressBar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
