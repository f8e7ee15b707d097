package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Checkpoints live in the checkpoints table: the log position after which a
// subscriber reads a domain's (only) partition. A fetched batch is not
// recorded anywhere, so entries fetched and not committed come back.

// checkArgs validates the names and the partition of a checkpoint call.
func checkArgs(subscriber, domain string, partition uint32) error {
	if err := store.ValidateDomain("subscriber", subscriber); err != nil {
		return err
	}
	if err := store.ValidateDomain("domain", domain); err != nil {
		return err
	}
	if partition != 0 {
		return store.Invalid("partition", "%d: the log has 1 partition", partition)
	}
	return nil
}

// OpenCheckpoint implements store.Checkpointer.
func (s *Store) OpenCheckpoint(ctx context.Context, subscriber, domain string, partition uint32, latest bool) (bool, error) {
	if err := checkArgs(subscriber, domain, partition); err != nil {
		return false, err
	}
	q := `INSERT OR IGNORE INTO checkpoints (subscriber, domain, part, after_pos) VALUES (?, ?, 0, 0)`
	args := []any{subscriber, domain}
	if latest {
		q = `INSERT OR IGNORE INTO checkpoints (subscriber, domain, part, after_pos)
			SELECT ?, ?, 0, COALESCE((SELECT MAX(pos) FROM events WHERE domain = ?), 0)`
		args = append(args, domain)
	}
	r, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return false, wrap("open checkpoint", err)
	}
	n, err := r.RowsAffected()
	return n > 0, wrap("open checkpoint", err)
}

// checkpoint reads a subscriber's checkpoint.
func (s *Store) checkpoint(ctx context.Context, subscriber, domain string) (uint64, error) {
	var after int64
	err := s.r.QueryRowContext(ctx, `SELECT after_pos FROM checkpoints WHERE subscriber = ? AND domain = ? AND part = 0`,
		subscriber, domain).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNoCheckpoint
	}
	return uint64(after), wrap("read checkpoint", err)
}

// Fetch implements store.Checkpointer: the log after the checkpoint.
func (s *Store) Fetch(ctx context.Context, subscriber, domain string, partition uint32, limit int) ([]store.LogEntry, error) {
	if err := checkArgs(subscriber, domain, partition); err != nil {
		return nil, err
	}
	after, err := s.checkpoint(ctx, subscriber, domain)
	if err != nil {
		return nil, err
	}
	return s.readLog(ctx, domain, partition, after, limit)
}

// Commit implements store.Checkpointer: the checkpoint moves to the largest
// offset (never backwards).
func (s *Store) Commit(ctx context.Context, subscriber, domain string, partition uint32, offsets []uint64) error {
	if err := checkArgs(subscriber, domain, partition); err != nil {
		return err
	}
	var top uint64
	for _, o := range offsets {
		top = max(top, o)
	}
	if top == 0 {
		return nil
	}
	r, err := s.w.ExecContext(ctx, `UPDATE checkpoints SET after_pos = MAX(after_pos, ?) WHERE subscriber = ? AND domain = ? AND part = 0`,
		int64(top), subscriber, domain)
	if err != nil {
		return wrap("commit checkpoint", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return wrap("commit checkpoint", err)
	}
	if n == 0 {
		return store.ErrNoCheckpoint
	}
	return nil
}

// Progress implements store.Checkpointer.
func (s *Store) Progress(ctx context.Context, subscriber, domain string, partition uint32) (*pb.PartitionProgress, error) {
	if err := checkArgs(subscriber, domain, partition); err != nil {
		return nil, err
	}
	after, err := s.checkpoint(ctx, subscriber, domain)
	if err != nil {
		return nil, err
	}
	var end int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(pos), 0) FROM events WHERE domain = ?`, domain).Scan(&end); err != nil {
		return nil, wrap("read log end", err)
	}
	return &pb.PartitionProgress{Domain: domain, Partition: 0, Committed: after, End: uint64(end)}, nil
}

// ResetCheckpoint implements store.Checkpointer.
func (s *Store) ResetCheckpoint(ctx context.Context, subscriber, domain string, partition uint32) error {
	if err := checkArgs(subscriber, domain, partition); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO checkpoints (subscriber, domain, part, after_pos) VALUES (?, ?, 0, 0)
		ON CONFLICT (subscriber, domain, part) DO UPDATE SET after_pos = 0`, subscriber, domain)
	return wrap("reset checkpoint", err)
}
