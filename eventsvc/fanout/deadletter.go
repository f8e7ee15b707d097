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

// park stores book in the dead-letter log with the last error (cause
// INVALID for a saga's unusable answer, else EXHAUSTED).
func (w *worker) park(ctx context.Context, book *pb.EventBook, cause error, attempts int) {
	why := pb.DeadLetterCause_DEAD_LETTER_CAUSE_EXHAUSTED
	if errors.Is(cause, ErrRefused) {
		why = pb.DeadLetterCause_DEAD_LETTER_CAUSE_INVALID
	}
	w.d.park(ctx, w.domain, &pb.DeadLetter{
		Subscriber: w.sub.GetName(), Kind: w.sub.GetKind(), Book: book,
		Attempts: uint32(attempts), Cause: why,
	}, cause)
}

// park stores dl (an entry of domain's log, or one saga command it
// triggered) in the dead-letter log with the last error, retrying the store with backoff until
// it succeeds or ctx is done (the batch is then not committed, and the
// entry comes back). A crash between parking a saga command and the
// batch's commit parks it again on redelivery (if it fails again): dead
// letters are at least once, and the command's idempotency key keeps a
// replay of both harmless.
func (d *Dispatcher) park(ctx context.Context, domain string, dl *pb.DeadLetter, cause error) {
	dl.Error, dl.DeadAt = cause.Error(), timestamppb.Now()
	book := dl.GetBook()
	for try := 1; ; try++ {
		id, err := d.st.AddDeadLetter(ctx, dl)
		if err == nil {
			d.metrics.deadLetter(ctx, dl.GetSubscriber())
			args := []any{"subscriber", dl.GetSubscriber(), "id", id, "domain", domain,
				"position", book.GetPosition(), "cause", dl.GetCause().String(), "attempts", dl.GetAttempts(), "err", dl.GetError()}
			if c := dl.GetCommand(); c != nil {
				args = append(args, "command_index", dl.GetCommandIndex(), "command_domain", c.GetCover().GetDomain(),
					"command_root", rootString(c.GetCover().GetRoot()), "idempotency_key", c.GetIdempotencyKey())
			}
			d.log.Warn("fanout dead letter", args...)
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.log.Error("fanout add dead letter failed", "subscriber", dl.GetSubscriber(), "err", err)
		if !d.backoff.sleep(ctx, try) {
			return
		}
	}
}

// DeadLetters lists up to limit dead letters of subscriber (every
// subscriber's when empty), oldest first.
func (d *Dispatcher) DeadLetters(ctx context.Context, subscriber string, limit int) ([]*pb.DeadLetter, error) {
	return d.st.ListDeadLetters(ctx, subscriber, limit)
}

// Discard removes the subscriber's dead letters with the given ids without
// delivering them and returns the ids it removed (those not parked are
// left out).
func (d *Dispatcher) Discard(ctx context.Context, subscriber string, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		err := d.st.RemoveDeadLetter(ctx, subscriber, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, id)
		d.log.Info("dead letter discarded", "subscriber", subscriber, "id", id)
	}
	return out, nil
}

// Replay delivers the subscriber's dead letters with the given ids (all of
// them when ids is empty) once more, in order, to the subscriber as it is
// configured now; a dead letter of one saga command sends that command
// again, and only it (replayCommand). Each one delivered leaves the
// dead-letter log; one that fails again stays, and its result carries the
// error.
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
		var err error
		if letter.GetCommand() != nil {
			err = d.replayCommand(ctx, sub, letter)
		} else {
			err = dl.deliver(ctx, letter.GetBook())
		}
		if err != nil {
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

// replayCommand sends a parked saga command once more, as it was sent (its
// origin and idempotency key: applied at most once), if its domain is
// still one of the saga's target domains.
func (d *Dispatcher) replayCommand(ctx context.Context, sub *pb.Subscription, letter *pb.DeadLetter) error {
	cmd := letter.GetCommand()
	switch {
	case sub.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_SAGA && sub.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER:
		return fmt.Errorf("dead letter %s holds a command, but %s is neither a saga nor a process manager", letter.GetId(), sub.GetName())
	case !targets(sub, cmd.GetCover().GetDomain()):
		return &RefusedError{Saga: sub.GetName(), Index: int(letter.GetCommandIndex()),
			Reason: fmt.Sprintf("domain %q is not one of its target domains %v", cmd.GetCover().GetDomain(), sub.GetTargetDomains())}
	}
	s := &sagaDelivery{d: d, sub: sub}
	if _, err := s.execute(ctx, cmd, int(letter.GetAttempts())+1); err != nil {
		return err
	}
	d.metrics.command(ctx, sub.GetName(), "replayed")
	return nil
}
