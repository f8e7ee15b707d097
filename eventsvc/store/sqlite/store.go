package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

var (
	_ store.Store        = (*Store)(nil)
	_ store.Checkpointer = (*Store)(nil)
	_ store.DeadLetters  = (*Store)(nil)
)

// Store is the SQLite event store.
type Store struct {
	w      *sql.DB // the single writer connection
	r      *sql.DB // readers
	limits store.Limits
}

// Options tune the store.
type Options struct {
	// Limits bound appends; zero fields take their defaults.
	Limits store.Limits
}

const schema = `
CREATE TABLE IF NOT EXISTS aggregates (
	domain   TEXT    NOT NULL,
	root     BLOB    NOT NULL,
	next_seq INTEGER NOT NULL,
	PRIMARY KEY (domain, root)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
	pos            INTEGER PRIMARY KEY AUTOINCREMENT,
	domain         TEXT    NOT NULL,
	root           BLOB    NOT NULL,
	seq            INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	correlation_id TEXT    NOT NULL,
	event          BLOB    NOT NULL,
	UNIQUE (domain, root, seq)
);
CREATE INDEX IF NOT EXISTS events_domain_pos ON events (domain, pos);
CREATE INDEX IF NOT EXISTS events_correlation ON events (correlation_id, pos);
CREATE TABLE IF NOT EXISTS snapshots (
	domain TEXT    NOT NULL,
	root   BLOB    NOT NULL,
	seq    INTEGER NOT NULL,
	state  BLOB    NOT NULL,
	PRIMARY KEY (domain, root)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
	domain    TEXT    NOT NULL,
	root      BLOB    NOT NULL,
	key       TEXT    NOT NULL,
	first_seq INTEGER NOT NULL,
	count     INTEGER NOT NULL,
	next_seq  INTEGER NOT NULL,
	pos       INTEGER NOT NULL,
	PRIMARY KEY (domain, root, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
	subscriber TEXT    NOT NULL,
	domain     TEXT    NOT NULL,
	part       INTEGER NOT NULL,
	after_pos  INTEGER NOT NULL,
	PRIMARY KEY (subscriber, domain, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	subscriber TEXT    NOT NULL,
	record     BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_subscriber ON dead_letters (subscriber, id);
`

// Open opens (creating if needed) the database file at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	dsn := func(extra string) string {
		return "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)" + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, store.Unavailable(fmt.Errorf("sqlite: create schema in %s: %w", path, err))
	}
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	return &Store{w: w, r: r, limits: opts.Limits.WithDefaults()}, nil
}

// Partitions implements store.LogReader: SQLite's log has one partition.
func (s *Store) Partitions() uint32 { return 1 }

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// wrap classifies a database error: context errors pass through, the rest
// means the database could not do its job.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return store.Unavailable(fmt.Errorf("sqlite %s: %w", op, err))
}
