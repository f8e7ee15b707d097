package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

var (
	_ store.Store         = (*Store)(nil)
	_ store.EncodedLoader = (*Store)(nil)
	_ store.Checkpointer  = (*Store)(nil)
	_ store.DeadLetters   = (*Store)(nil)
)

// DefaultPartitions is the default number of log partitions per domain.
const DefaultPartitions = 16

// Options configure the Redis store.
type Options struct {
	// Addrs are host:port addresses: one server, or seed nodes of a cluster.
	Addrs []string
	// Cluster selects Redis Cluster mode.
	Cluster bool
	// DB is the database number (single server only). Default 0.
	DB int
	// Username and Password authenticate, when set.
	Username, Password string
	// Partitions is the number of log partitions per domain, fixed once the
	// store holds data. Default DefaultPartitions.
	Partitions uint32
	// PoolSize is the number of connections per server. Default 64.
	PoolSize int
	// Limits bound appends; zero fields take their defaults.
	Limits store.Limits
	// MinReplicas is how many replicas of a master must confirm a batch
	// of appends before any of them is acknowledged, and a log entry
	// before the fan-out delivers it (WAIT, or WAITAOF on Redis 7.2 and
	// later). 0, the default, waits for none: an acknowledged append is
	// lost if its master fails over before its replica received it.
	MinReplicas int
	// ReplicaTimeout is how long a batch waits for the replicas; when it
	// passes, the batch's appends are answered UNAVAILABLE (their outcome
	// is unknown). Default DefaultReplicaTimeout, at most 5s.
	ReplicaTimeout time.Duration
	// Logger receives the warnings about unsafe server settings found at
	// Open. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if len(o.Addrs) == 0 {
		errs = append(errs, errors.New("redis: no address"))
	}
	if len(o.Addrs) > 1 && !o.Cluster {
		errs = append(errs, errors.New("redis: several addresses need cluster mode"))
	}
	if o.Cluster && o.DB != 0 {
		errs = append(errs, errors.New("redis: a cluster has only database 0"))
	}
	if o.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("redis: %d partitions: at most 1024", o.Partitions))
	}
	if o.MinReplicas < 0 || o.MinReplicas > 16 {
		errs = append(errs, fmt.Errorf("redis: min replicas %d: want 0 to 16", o.MinReplicas))
	}
	if o.ReplicaTimeout < 0 || o.ReplicaTimeout > 5*time.Second {
		errs = append(errs, fmt.Errorf("redis: replica timeout %s: want 0 to 5s", o.ReplicaTimeout))
	}
	if err := o.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Store is the Redis event store.
type Store struct {
	c          goredis.UniversalClient
	partitions uint32
	limits     store.Limits
	domains    sync.Map // domains known to be in az:domains
	pipe       *pipeliner
	confirm    *confirmer              // nil: replicas confirm nothing
	blocking   goredis.UniversalClient // blocking tail reads (tail.go)
}

// Open connects and checks the partition layout.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Partitions == 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 64
	}
	if opts.ReplicaTimeout == 0 {
		opts.ReplicaTimeout = DefaultReplicaTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var c goredis.UniversalClient
	var nodes sync.Map // address -> *goredis.Client of a cluster node
	nodeByAddr := func(addr string) *goredis.Client {
		if n, ok := nodes.Load(addr); ok {
			return n.(*goredis.Client)
		}
		return nil
	}
	if opts.Cluster {
		cc := goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: opts.Addrs, Username: opts.Username, Password: opts.Password,
			PoolSize: opts.PoolSize, MaxRetries: -1, MaxRedirects: 8,
			DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		})
		// Node clients by address, for MOVED replies (pipeline.go); recorded
		// once go-redis has finished setting them up.
		cc.OnNewNode(func(n *goredis.Client) { nodes.Store(n.Options().Addr, n) })
		c = cc
	} else {
		c = goredis.NewClient(&goredis.Options{
			Addr: opts.Addrs[0], DB: opts.DB, Username: opts.Username, Password: opts.Password,
			PoolSize: opts.PoolSize, MaxRetries: -1,
			DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		})
	}
	s := &Store{c: c, partitions: opts.Partitions, limits: opts.Limits.WithDefaults()}
	if err := s.checkLayout(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := s.migrateRoots(ctx); err != nil {
		c.Close()
		return nil, err
	}
	checkSettings(ctx, c, opts, opts.Logger)
	if opts.MinReplicas > 0 {
		aof, err := detectWaitAOF(ctx, c)
		if err != nil {
			opts.Logger.Warn("redis: cannot read the servers' version (INFO), confirming with WAIT", "err", err)
		}
		s.confirm = &confirmer{replicas: opts.MinReplicas, timeout: opts.ReplicaTimeout, aof: aof}
		if !aof {
			opts.Logger.Info("redis: replicas confirm appends with WAIT (WAITAOF needs Redis 7.2 on every master): "+
				"a confirmed append is in the replicas' memory, not yet necessarily in their append-only files",
				"min_replicas", opts.MinReplicas)
		}
	}
	if !opts.Cluster {
		nodeByAddr = nil
	}
	s.pipe = newPipeliner(c, s.confirm, nodeByAddr)
	s.blocking = newBlockingClient(opts)
	return s, nil
}

// checkLayout records the partition count on first use and refuses a
// different one later: the keys of existing aggregates depend on it.
func (s *Store) checkLayout(ctx context.Context) error {
	want := strconv.FormatUint(uint64(s.partitions), 10)
	if err := s.c.HSetNX(ctx, "az:meta", "partitions", want).Err(); err != nil {
		return wrap("record layout", err)
	}
	got, err := s.c.HGet(ctx, "az:meta", "partitions").Result()
	if err != nil {
		return wrap("read layout", err)
	}
	if got != want {
		return fmt.Errorf("redis: the store was laid out with %s partitions, not %s", got, want)
	}
	return nil
}

// migrateRoots moves the roots of the unordered sets (az:roots:, written
// by earlier versions) into the sorted sets Roots pages, then deletes the
// old sets. It runs at every Open, so roots a replica of an earlier version
// registered during a rolling upgrade are moved by the next Open; it reads
// one EXISTS per domain partition when there is nothing to move.
func (s *Store) migrateRoots(ctx context.Context) error {
	domains, err := s.domainList(ctx)
	if err != nil || len(domains) == 0 {
		return err
	}
	type part struct {
		domain string
		p      uint32
		cmd    *goredis.IntCmd
	}
	var parts []part
	pipe := s.c.Pipeline()
	for _, d := range domains {
		for p := range s.partitions {
			parts = append(parts, part{d, p, pipe.Exists(ctx, oldRootsKey(d, p))})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wrap("look for unordered root sets", err)
	}
	for _, pt := range parts {
		if pt.cmd.Val() == 0 {
			continue
		}
		old, idx := oldRootsKey(pt.domain, pt.p), rootsKey(pt.domain, pt.p)
		var cursor uint64
		for {
			members, next, err := s.c.SScan(ctx, old, cursor, "", 1000).Result()
			if err != nil {
				return wrap("migrate roots", err)
			}
			if len(members) > 0 {
				zs := make([]goredis.Z, len(members))
				for i, m := range members {
					zs[i] = goredis.Z{Member: m}
				}
				if err := s.c.ZAdd(ctx, idx, zs...).Err(); err != nil {
					return wrap("migrate roots", err)
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		if err := s.c.Del(ctx, old).Err(); err != nil {
			return wrap("migrate roots", err)
		}
	}
	return nil
}

// Partitions implements store.LogReader.
func (s *Store) Partitions() uint32 { return s.partitions }

// Close stops the pipeline workers and closes the connections.
func (s *Store) Close() error {
	s.pipe.close()
	return errors.Join(s.blocking.Close(), s.c.Close())
}

// partition maps a root to its partition.
func (s *Store) partition(agg store.Aggregate) uint32 {
	return fnv32a(agg.Root[:]) % s.partitions
}

// fnv32a is FNV-1a of b, as hash/fnv's New32a computes it, without its
// allocation (partition runs on every append and load).
func fnv32a(b []byte) uint32 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, c := range b {
		h ^= uint32(c)
		h *= prime32
	}
	return h
}

// tag is the hash tag shared by every key of a domain partition.
func tag(domain string, p uint32) string {
	return "{" + domain + ":" + strconv.FormatUint(uint64(p), 10) + "}"
}

// aggKeys are the keys of one aggregate.
type aggKeys struct {
	p                                     uint32
	events, snap, idem, log, roots, corrs string // corrs is the correlation key prefix
	size                                  string
}

func (s *Store) keys(agg store.Aggregate) aggKeys {
	p := s.partition(agg)
	// Every key is built in one buffer and sliced from one string (one
	// allocation per append instead of one per key): they are made on
	// every append and load.
	var root [2 * len(agg.Root)]byte
	hex.Encode(root[:], agg.Root[:])
	var ps [10]byte
	pn := strconv.AppendUint(ps[:0], uint64(p), 10)
	tagLen := len(agg.Domain) + len(pn) + 3 // {domain:p}
	b := make([]byte, 0, 7*tagLen+6*len(root)+64)
	var ends [7]int
	put := func(i int, prefix string, withRoot bool, suffix string) {
		b = append(b, prefix...)
		b = append(b, '{')
		b = append(b, agg.Domain...)
		b = append(b, ':')
		b = append(b, pn...)
		b = append(b, '}')
		b = append(b, suffix...)
		if withRoot {
			b = append(b, root[:]...)
		}
		ends[i] = len(b)
	}
	put(0, "az:ev:", true, ":")
	put(1, "az:snap:", true, ":")
	put(2, "az:idem:", true, ":")
	put(3, "az:log:", false, "")
	put(4, "az:rootidx:", false, "")
	put(5, "az:corr:", false, ":")
	put(6, "az:size:", true, ":")
	all := string(b)
	key := func(i int) string {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		return all[start:ends[i]]
	}
	return aggKeys{
		p:      p,
		events: key(0),
		snap:   key(1),
		idem:   key(2),
		log:    key(3),
		roots:  key(4),
		corrs:  key(5),
		size:   key(6),
	}
}

// rootsKey is the sorted set of a domain partition's roots (score 0, so
// ordered by their bytes: ZRANGE BYLEX pages them).
func rootsKey(domain string, p uint32) string { return "az:rootidx:" + tag(domain, p) }

// oldRootsKey is the unordered set of a partition's roots that stores
// written before rootsKey kept (see migrateRoots).
func oldRootsKey(domain string, p uint32) string { return "az:roots:" + tag(domain, p) }

func eventsKey(domain string, p uint32, root []byte) string {
	return "az:ev:" + tag(domain, p) + ":" + hex.EncodeToString(root)
}

// registerDomain adds the domain to az:domains once per process, before its
// first append here (a listed domain without events is harmless; an
// unlisted domain with events would be missed by ByCorrelation and Roots).
func (s *Store) registerDomain(ctx context.Context, domain string) error {
	if _, ok := s.domains.Load(domain); ok {
		return nil
	}
	if err := s.c.SAdd(ctx, "az:domains", domain).Err(); err != nil {
		return wrap("register domain", err)
	}
	s.domains.Store(domain, true)
	return nil
}

// wrap classifies a Redis error: context errors pass through, server
// replies that mean "not now" and every connection problem become
// store.ErrUnavailable, other server replies are internal errors.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		// None of these ran the command. NOSCRIPT is one of them: a
		// master promoted by a failover has no script cached, and when
		// loading it there fails too (the pipeline's rounds run out while
		// the cluster settles), the append did not run and a retry is safe.
		for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "MOVED", "ASK", "NOSCRIPT"} {
			if strings.HasPrefix(msg, p) {
				return store.Unavailable(fmt.Errorf("redis %s: %w", op, err))
			}
		}
		return fmt.Errorf("redis %s: %w", op, err)
	}
	return store.Unavailable(fmt.Errorf("redis %s: %w", op, err))
}
