package sqlite

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Dead letters live in the dead_letters table as marshalled
// angzarr.DeadLetter records; the id is the row's AUTOINCREMENT key.

// AddDeadLetter implements store.DeadLetters.
func (s *Store) AddDeadLetter(ctx context.Context, dl *pb.DeadLetter) (string, error) {
	if err := store.ValidateDomain("subscriber", dl.GetSubscriber()); err != nil {
		return "", err
	}
	rec := proto.Clone(dl).(*pb.DeadLetter)
	rec.Id = ""
	b, err := proto.Marshal(rec)
	if err != nil {
		return "", store.Invalid("dead_letter", "%v", err)
	}
	r, err := s.w.ExecContext(ctx, `INSERT INTO dead_letters (subscriber, record) VALUES (?, ?)`, dl.GetSubscriber(), b)
	if err != nil {
		return "", wrap("add dead letter", err)
	}
	id, err := r.LastInsertId()
	if err != nil {
		return "", wrap("add dead letter", err)
	}
	return strconv.FormatInt(id, 10), nil
}

// ListDeadLetters implements store.DeadLetters.
func (s *Store) ListDeadLetters(ctx context.Context, subscriber string, limit int) ([]*pb.DeadLetter, error) {
	if limit <= 0 {
		limit = 1000
	}
	q, args := `SELECT id, record FROM dead_letters ORDER BY subscriber, id LIMIT ?`, []any{limit}
	if subscriber != "" {
		q, args = `SELECT id, record FROM dead_letters WHERE subscriber = ? ORDER BY id LIMIT ?`, []any{subscriber, limit}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list dead letters", err)
	}
	defer rows.Close()
	var out []*pb.DeadLetter
	for rows.Next() {
		var (
			id  int64
			rec []byte
		)
		if err := rows.Scan(&id, &rec); err != nil {
			return nil, wrap("list dead letters", err)
		}
		dl := &pb.DeadLetter{}
		if err := proto.Unmarshal(rec, dl); err != nil {
			return nil, wrap("decode dead letter", err)
		}
		dl.Id = strconv.FormatInt(id, 10)
		out = append(out, dl)
	}
	return out, wrap("list dead letters", rows.Err())
}

// RemoveDeadLetter implements store.DeadLetters.
func (s *Store) RemoveDeadLetter(ctx context.Context, subscriber, id string) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return store.ErrNotFound
	}
	r, err := s.w.ExecContext(ctx, `DELETE FROM dead_letters WHERE id = ? AND subscriber = ?`, n, subscriber)
	if err != nil {
		return wrap("remove dead letter", err)
	}
	k, err := r.RowsAffected()
	if err != nil {
		return wrap("remove dead letter", err)
	}
	if k == 0 {
		return store.ErrNotFound
	}
	return nil
}
