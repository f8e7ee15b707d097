package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Defaults of Config.
const (
	DefaultListen         = "127.0.0.1:13140"
	DefaultNodeID         = "angzarr-console"
	DefaultSampleInterval = 5 * time.Second
	DefaultHistory        = 60
	DefaultLiveBuffer     = 200
	DefaultPageSize       = 50
	MaxPageSize           = 500
)

// TopologySource delivers the fan-out configuration the control plane
// derives from the topology (xdsclient.FanoutClient has this shape).
type TopologySource interface {
	// Run calls apply with the current configuration and every new one
	// until ctx is done.
	Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error
}

// Config configures the console.
type Config struct {
	// EventService is the event service's gRPC address (host:port).
	// Required.
	EventService string
	// ControlPlane is the control plane's xDS address (host:port): the
	// topology comes from it. Optional: without it (and without Topology)
	// the Topology view is empty and domains are those the event service
	// lists.
	ControlPlane string
	// Topology, when set, is used instead of an xDS client of ControlPlane.
	Topology TopologySource
	// Listen is the HTTP listen address (Run only). Default
	// "127.0.0.1:13140".
	Listen string
	// DialOptions are used for both gRPC connections. Default: plaintext
	// (insecure.NewCredentials); the mesh identities of #18 pass their
	// transport credentials here.
	DialOptions []grpc.DialOption
	// Authenticator tells who makes each request. Default: a
	// TokenAuthenticator of Tokens.
	Authenticator Authenticator
	// Tokens maps each login token to its user name (the default
	// Authenticator). Each token is at least 16 bytes.
	Tokens map[string]string
	// Authorizer decides what each principal may do. Default: a
	// RoleAuthorizer of Operators and Readers (everyone else: nothing).
	Authorizer Authorizer
	// Operators may read and act on dead letters (the default Authorizer).
	Operators []string
	// Readers may read (the default Authorizer).
	Readers []string
	// NodeID is the console's xDS node id. Default "angzarr-console".
	NodeID string
	// SampleInterval is how often subscriber positions are sampled for
	// the lag plots and the rates. Default 5s.
	SampleInterval time.Duration
	// History is how many samples are kept (60 × 5s: the last 5 minutes).
	History int
	// LiveBuffer is how many recent events the Live view starts with.
	// Default 200.
	LiveBuffer int
	// Logger receives the console's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DialOptions == nil {
		c.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	if c.NodeID == "" {
		c.NodeID = DefaultNodeID
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.LiveBuffer == 0 {
		c.LiveBuffer = DefaultLiveBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Authorizer == nil {
		c.Authorizer = &RoleAuthorizer{Operators: c.Operators, Readers: c.Readers}
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.EventService == "" {
		errs = append(errs, errors.New("event service: an address is required"))
	}
	if c.Authenticator == nil && len(c.Tokens) == 0 {
		errs = append(errs, errors.New("no way to log in: give tokens or an authenticator"))
	}
	if c.SampleInterval < 0 {
		errs = append(errs, fmt.Errorf("sample interval %v: must not be negative", c.SampleInterval))
	}
	if c.History < 0 || c.LiveBuffer < 0 {
		errs = append(errs, errors.New("history and live buffer must not be negative"))
	}
	if c.Authorizer != nil && (len(c.Operators) > 0 || len(c.Readers) > 0) {
		errs = append(errs, errors.New("operators and readers are for the default authorizer: not with an Authorizer"))
	}
	if c.Authenticator == nil {
		if _, err := NewTokenAuthenticator(c.Tokens); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
