package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// FanoutClient is the event service's xDS client for its fan-out
// configuration: over ADS it subscribes to the FanoutConfig resource
// (FanoutName) and hands each new version to apply, ACKing what apply
// accepts and NACKing what it refuses. Its Run has the shape of the event
// service's fan-out Source.
type FanoutClient struct {
	// Conn is a connection to the control plane. Required.
	Conn grpc.ClientConnInterface
	// Node identifies the event service replica. Required.
	Node *core.Node
	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
}

// Run calls apply with the current configuration, then with every new one,
// until ctx is done (then it returns nil). An error of apply on the first
// configuration ends Run with it; later errors are NACKed and leave the
// previous configuration in place. A broken stream is reopened with
// backoff.
func (c *FanoutClient) Run(ctx context.Context, apply func(*angzarr.FanoutConfig) error) error {
	if c.Conn == nil || c.Node == nil || apply == nil {
		return errors.New("controlplane: FanoutClient needs Conn, Node and apply")
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	applied := ""
	backoff := 100 * time.Millisecond
	for {
		err := c.stream(ctx, apply, &applied)
		if ctx.Err() != nil {
			return nil
		}
		var first *firstApplyError
		if errors.As(err, &first) {
			return first.err
		}
		log.Warn("fan-out xDS stream ended; reconnecting", "node", c.Node.GetId(), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// firstApplyError is apply refusing the very first configuration.
type firstApplyError struct{ err error }

func (e *firstApplyError) Error() string { return e.err.Error() }

func (c *FanoutClient) stream(ctx context.Context, apply func(*angzarr.FanoutConfig) error, applied *string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(c.Conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	names := []string{FanoutName}
	if err := s.Send(&discovery.DiscoveryRequest{Node: c.Node, TypeUrl: FanoutTypeURL, ResourceNames: names, VersionInfo: *applied}); err != nil {
		return err
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		fc, err := decodeFanout(resp)
		if err == nil {
			err = apply(fc)
			if err != nil && *applied == "" {
				return &firstApplyError{err}
			}
		}
		req := &discovery.DiscoveryRequest{TypeUrl: FanoutTypeURL, ResourceNames: names, ResponseNonce: resp.GetNonce()}
		if err != nil {
			req.VersionInfo = *applied
			req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		} else {
			*applied = resp.GetVersionInfo()
			req.VersionInfo = *applied
		}
		if err := s.Send(req); err != nil {
			return err
		}
	}
}

func decodeFanout(resp *discovery.DiscoveryResponse) (*angzarr.FanoutConfig, error) {
	if resp.GetTypeUrl() != FanoutTypeURL || len(resp.GetResources()) != 1 {
		return nil, fmt.Errorf("want one %s, got %d resources of %s", FanoutTypeURL, len(resp.GetResources()), resp.GetTypeUrl())
	}
	fc := &angzarr.FanoutConfig{}
	if err := resp.GetResources()[0].UnmarshalTo(fc); err != nil {
		return nil, fmt.Errorf("fan-out configuration: %w", err)
	}
	return fc, nil
}
