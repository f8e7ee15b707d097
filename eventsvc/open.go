package eventsvc

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
)

// StoreURL is a parsed store URL.
type StoreURL struct {
	// Kind is "sqlite", "redis" or "redis+cluster".
	Kind string
	// Path is the SQLite database file.
	Path string
	// Addrs are the Redis addresses.
	Addrs []string
	// DB is the Redis database number.
	DB int
	// Username and Password are the Redis credentials from the URL.
	Username, Password string
	// MinReplicas and ReplicaTimeout are the URL's min-replicas and
	// replica-timeout parameters (redis.Options).
	MinReplicas    int
	ReplicaTimeout time.Duration
}

// ParseStoreURL parses sqlite:PATH, redis://[USER:PASS@]HOST:PORT[/DB] or
// redis+cluster://[USER:PASS@]H1:P1,H2:P2,... A Redis URL takes the query
// parameters min-replicas=N (replicas that must confirm each append before
// it is acknowledged) and replica-timeout=DURATION (how long to wait for
// them); see the redis package.
func ParseStoreURL(s string) (*StoreURL, error) {
	bad := func(format string, args ...any) (*StoreURL, error) {
		return nil, fmt.Errorf("store %q: %s", s, fmt.Sprintf(format, args...))
	}
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")
		if p == "" {
			return bad("sqlite: needs a file path, e.g. sqlite:./events.db")
		}
		return &StoreURL{Kind: "sqlite", Path: p}, nil
	case strings.HasPrefix(s, "redis://"), strings.HasPrefix(s, "redis+cluster://"):
		kind, rest, _ := strings.Cut(s, "://")
		u := &StoreURL{Kind: kind}
		rest, query, hasQuery := strings.Cut(rest, "?")
		if hasQuery {
			q, err := url.ParseQuery(query)
			if err != nil {
				return bad("query: %v", err)
			}
			for k, vs := range q {
				v := vs[len(vs)-1]
				switch k {
				case "min-replicas":
					n, err := strconv.Atoi(v)
					if err != nil || n < 0 {
						return bad("min-replicas %q is not a count", v)
					}
					u.MinReplicas = n
				case "replica-timeout":
					d, err := time.ParseDuration(v)
					if err != nil || d <= 0 {
						return bad("replica-timeout %q is not a duration", v)
					}
					u.ReplicaTimeout = d
				default:
					return bad("unknown parameter %q (want min-replicas, replica-timeout)", k)
				}
			}
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			cred := rest[:at]
			rest = rest[at+1:]
			user, pass, ok := strings.Cut(cred, ":")
			if !ok {
				user, pass = "", cred
			}
			var err error
			if u.Username, err = url.PathUnescape(user); err != nil {
				return bad("user: %v", err)
			}
			if u.Password, err = url.PathUnescape(pass); err != nil {
				return bad("password: %v", err)
			}
		}
		hosts, db, hasDB := strings.Cut(rest, "/")
		if hasDB && db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 {
				return bad("database %q is not a number", db)
			}
			if kind == "redis+cluster" && n != 0 {
				return bad("a cluster has only database 0")
			}
			u.DB = n
		}
		for _, h := range strings.Split(hosts, ",") {
			if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
				return bad("address %q: want HOST:PORT", h)
			}
			u.Addrs = append(u.Addrs, h)
		}
		if kind == "redis" && len(u.Addrs) != 1 {
			return bad("redis:// takes one address; use redis+cluster:// for a cluster")
		}
		return u, nil
	}
	return bad("unknown scheme: want sqlite:PATH, redis://HOST:PORT/DB or redis+cluster://H1:P1,H2:P2")
}

// OpenStore opens the store a URL names.
func OpenStore(ctx context.Context, rawURL string, limits store.Limits, redisPartitions uint32) (store.Store, error) {
	u, err := ParseStoreURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Kind {
	case "sqlite":
		return sqlite.Open(ctx, u.Path, sqlite.Options{Limits: limits})
	default:
		return redis.Open(ctx, redis.Options{
			Addrs: u.Addrs, Cluster: u.Kind == "redis+cluster", DB: u.DB,
			Username: u.Username, Password: u.Password,
			Partitions: redisPartitions, Limits: limits,
			MinReplicas: u.MinReplicas, ReplicaTimeout: u.ReplicaTimeout,
		})
	}
}
