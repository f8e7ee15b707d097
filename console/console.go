package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Console is the web console: an http.Handler (Handler) and the background
// work that feeds it (Run: the topology, the position samples, the live
// feed).
type Console struct {
	cfg   Config
	log   *slog.Logger
	authn Authenticator
	authz Authorizer

	conns []*grpc.ClientConn
	query pb.EventQueryClient
	store pb.EventStoreClient
	admin pb.FanoutAdminClient

	topo    *topology
	samples *sampler
	live    *liveHub
	csrfKey []byte
	handler http.Handler
}

// New returns a console of the configuration. It connects lazily: nothing
// needs to run yet. Close releases its connections.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	cfg = cfg.withDefaults()
	c := &Console{cfg: cfg, log: cfg.Logger, authn: cfg.Authenticator, authz: cfg.Authorizer, csrfKey: make([]byte, 32)}
	if c.authn == nil {
		a, err := NewTokenAuthenticator(cfg.Tokens)
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		c.authn = a
	}
	if _, err := rand.Read(c.csrfKey); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.EventService, cfg.DialOptions...)
	if err != nil {
		return nil, fmt.Errorf("console: event service: %w", err)
	}
	c.conns = append(c.conns, conn)
	c.query, c.store, c.admin = pb.NewEventQueryClient(conn), pb.NewEventStoreClient(conn), pb.NewFanoutAdminClient(conn)
	src := cfg.Topology
	if src == nil && cfg.ControlPlane != "" {
		cp, err := grpc.NewClient(cfg.ControlPlane, cfg.DialOptions...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("console: control plane: %w", err)
		}
		c.conns = append(c.conns, cp)
		src = &xdsclient.FanoutClient{Conn: cp, Node: &core.Node{Id: cfg.NodeID, Cluster: "angzarr-console"},
			Logger: c.log.With("component", "console/xds")}
	}
	c.topo = &topology{src: src, log: c.log}
	c.samples = newSampler(c.admin, c.query, c.topo, cfg.History)
	c.live = newLiveHub(c.query, c.topo, cfg.LiveBuffer, c.log)
	c.samples.rates = c.live.rates
	c.handler = c.routes()
	return c, nil
}

// Close releases the gRPC connections.
func (c *Console) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// Run feeds the console until ctx is done: it follows the topology,
// samples the subscribers' positions and keeps the live feed.
func (c *Console) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.topo.run(ctx) })
	g.Go(func() error { return c.samples.run(ctx, c.cfg.SampleInterval) })
	g.Go(func() error { return c.live.run(ctx) })
	return g.Wait()
}

// Handler is the console's HTTP handler.
func (c *Console) Handler() http.Handler { return c.handler }

// Serve serves the console on lis until ctx is done.
func Serve(ctx context.Context, lis net.Listener, cfg Config) error {
	c, err := New(cfg)
	if err != nil {
		lis.Close()
		return err
	}
	defer c.Close()
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Run listens on cfg.Listen and serves the console until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return Serve(ctx, lis, cfg)
}

// LoginURL is the URL that logs a browser in with token at the console
// listening on addr.
func LoginURL(addr, token string) string {
	return "http://" + addr + "/login?token=" + url.QueryEscape(token)
}

// csrfToken is the session's CSRF token: an HMAC of the session under a
// key made at start (a restart invalidates them; the page fetches a new
// one).
func (c *Console) csrfToken(p Principal) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte(p.Name + "\x00" + p.Session))
	return hex.EncodeToString(m.Sum(nil))
}
