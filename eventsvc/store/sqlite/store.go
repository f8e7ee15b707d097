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
	_ store.Store         = (*Store)(nil)
	_ store.EncodedLoader = (*Store)(nil)
	_ store.Checkpointer  = (*Store)(nil)
	_ store.DeadLetters   = (*Store)(nil)
)

// Store is the SQLite event store.
type Store struct {
	w       *sql.DB // the single writer connection
	r       *sql.DB // readers
	limits  store.Limits
	commits *committer // the group committer of appends
}

// Options tune the store.
type Options struct {
	// Limits bound appends; zero fields take their defaults.
	Limits store.Limits
}

// schema is the first version of the schema (user_version 0, as files
// created before the schema was versioned have it); migrations bring it up
// to date.
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

// migrations[i] takes the schema from version i to version i+1 (PRAGMA
// user_version). They only add (columns with defaults, tables, indexes):
// a file stays readable and writable by the earlier versions of the store.
var migrations = []string{
	// 0 → 1: the trace context of the append of every event (one log entry
	// of SQLite is a run of rows), "" for events stored before.
	`ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
	ALTER TABLE events ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';`,
	// 1 → 2: the bytes of an aggregate's events after its snapshot
	// (tail_bytes), valid while its next sequence is tail_next (a writer
	// of an earlier version leaves them behind: they are summed again);
	// NULL for aggregates stored before.
	`ALTER TABLE aggregates ADD COLUMN tail_bytes INTEGER;
	ALTER TABLE aggregates ADD COLUMN tail_next INTEGER;`,
}

// migrate creates the schema or brings it up to date, in one writer
// transaction: concurrent opens of one file migrate it once.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version >= len(migrations) {
		return nil // up to date, or written by a later version (additive: usable)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return err
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no bound parameters; len(migrations) is a constant.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

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
	if err := migrate(ctx, w); err != nil {
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
	st, err := prepare(ctx, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, store.Unavailable(fmt.Errorf("sqlite: %s: %w", path, err))
	}
	s := &Store{w: w, r: r, limits: opts.Limits.WithDefaults()}
	s.commits = newCommitter(s, st)
	return s, nil
}

// Partitions implements store.LogReader: SQLite's log has one partition.
func (s *Store) Partitions() uint32 { return 1 }

// Close stops the group committer (appends still queued get
// store.ErrUnavailable) and closes the database.
func (s *Store) Close() error {
	s.commits.close()
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
