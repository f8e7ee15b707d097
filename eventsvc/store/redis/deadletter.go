package redis

import (
	"context"
	"regexp"
	"slices"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Dead letters of a subscriber live in the stream az:dlq:{SUBSCRIBER}, one
// entry per dead letter whose field "r" is the marshalled angzarr.DeadLetter;
// the entry id is the dead letter's id. az:dlqsubs lists the subscribers
// that ever had one.

const dlqSubs = "az:dlqsubs"

func dlqKey(subscriber string) string { return "az:dlq:{" + subscriber + "}" }

var streamID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// AddDeadLetter implements store.DeadLetters.
func (s *Store) AddDeadLetter(ctx context.Context, dl *pb.DeadLetter) (string, error) {
	sub := dl.GetSubscriber()
	if err := store.ValidateDomain("subscriber", sub); err != nil {
		return "", err
	}
	rec := proto.Clone(dl).(*pb.DeadLetter)
	rec.Id = ""
	b, err := proto.Marshal(rec)
	if err != nil {
		return "", store.Invalid("dead_letter", "%v", err)
	}
	if err := s.c.SAdd(ctx, dlqSubs, sub).Err(); err != nil {
		return "", wrap("register dead letter subscriber", err)
	}
	id, err := s.c.XAdd(ctx, &goredis.XAddArgs{Stream: dlqKey(sub), Values: []any{"r", b}}).Result()
	return id, wrap("add dead letter", err)
}

// ListDeadLetters implements store.DeadLetters.
func (s *Store) ListDeadLetters(ctx context.Context, subscriber string, limit int) ([]*pb.DeadLetter, error) {
	if limit <= 0 {
		limit = 1000
	}
	subs := []string{subscriber}
	if subscriber == "" {
		var err error
		if subs, err = s.c.SMembers(ctx, dlqSubs).Result(); err != nil {
			return nil, wrap("list dead letter subscribers", err)
		}
		slices.Sort(subs)
	}
	var out []*pb.DeadLetter
	for _, sub := range subs {
		if len(out) >= limit {
			break
		}
		msgs, err := s.c.XRangeN(ctx, dlqKey(sub), "-", "+", int64(limit-len(out))).Result()
		if err != nil {
			return nil, wrap("list dead letters", err)
		}
		for _, m := range msgs {
			dl := &pb.DeadLetter{}
			if err := proto.Unmarshal([]byte(str(m.Values["r"])), dl); err != nil {
				return nil, wrap("decode dead letter", err)
			}
			dl.Id = m.ID
			out = append(out, dl)
		}
	}
	return out, nil
}

// RemoveDeadLetter implements store.DeadLetters.
func (s *Store) RemoveDeadLetter(ctx context.Context, subscriber, id string) error {
	if store.ValidateDomain("subscriber", subscriber) != nil || !streamID.MatchString(id) {
		return store.ErrNotFound
	}
	n, err := s.c.XDel(ctx, dlqKey(subscriber), id).Result()
	if err != nil {
		return wrap("remove dead letter", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
