package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// park stores book in the dead-letter log with the last error, retrying
// the store with backoff until it succeeds or ctx is done (the batch is
// then not committed, and the entry comes back).
func (w *worker) park(ctx context.Context, book *pb.EventBook, cause error, attempts int) {
	dl := &pb.DeadLetter{
		Subscriber: w.sub.GetName(), Kind: w.sub.GetKind(), Book: book,
		Error: cause.Error(), Attempts: uint32(attempts), DeadAt: timestamppb.Now(),
	}
	for try := 1; ; try++ {
		id, err := w.d.st.AddDeadLetter(ctx, dl)
		if err == nil {
			w.d.metrics.deadLetter(ctx, w.sub.GetName())
			w.d.metrics.compensation(ctx, w.sub, w.domain, cause)
			w.d.log.Warn("fanout dead letter", "subscriber", w.sub.GetName(), "id", id, "domain", w.domain,
				"position", book.GetPosition(), "attempts", attempts, "err", cause)
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.d.log.Error("fanout add dead letter failed", "subscriber", w.sub.GetName(), "err", err)
		if !w.d.backoff.sleep(ctx, try) {
			return
		}
	}
}

// DeadLetters lists up to limit dead letters of subscriber (every
// subscriber's when empty), oldest first.
func (d *Dispatcher) DeadLetters(ctx context.Context, subscriber string, limit int) ([]*pb.DeadLetter, error) {
	return d.st.ListDeadLetters(ctx, subscriber, limit)
}

// Replay delivers the subscriber's dead letters with the given ids (all of
// them when ids is empty) once more, in order, to the subscriber as it is
// configured now. Each one delivered leaves the dead-letter log; one that
// fails again stays, and its result carries the error.
func (d *Dispatcher) Replay(ctx context.Context, subscriber string, ids []string) ([]*pb.ReplayResult, error) {
	sub, err := d.subscription(subscriber)
	if err != nil {
		return nil, err
	}
	all, err := d.st.ListDeadLetters(ctx, subscriber, 0)
	if err != nil {
		return nil, err
	}
	var out []*pb.ReplayResult
	found := map[string]bool{}
	dl := d.deliverer(sub)
	for _, letter := range all {
		if len(ids) > 0 && !slices.Contains(ids, letter.GetId()) {
			continue
		}
		found[letter.GetId()] = true
		res := &pb.ReplayResult{Id: letter.GetId()}
		if err := dl.deliver(ctx, letter.GetBook()); err != nil {
			res.Error = err.Error()
		} else if err := d.st.RemoveDeadLetter(ctx, subscriber, letter.GetId()); err != nil && !errors.Is(err, store.ErrNotFound) {
			res.Error = fmt.Sprintf("delivered, but not removed from the dead-letter log: %v", err)
		} else {
			res.Delivered = true
			d.metrics.delivered(ctx, subscriber, "replayed")
		}
		out = append(out, res)
	}
	for _, id := range ids {
		if !found[id] {
			out = append(out, &pb.ReplayResult{Id: id, Error: "no such dead letter of " + subscriber})
		}
	}
	return out, nil
}
