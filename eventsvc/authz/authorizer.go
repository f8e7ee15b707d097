package authz

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Options configure an Authorizer.
type Options struct {
	// Resolver tells who calls (the peer certificate, or the sidecar's
	// XFCC header when Resolver.TrustXFCC). Default: the peer certificate.
	Resolver identity.Resolver
	// Logger receives denials (at Warn). Default slog.Default().
	Logger *slog.Logger
	// MeterProvider provides angzarr.eventsvc.authz.denied. Default none.
	MeterProvider metric.MeterProvider
}

// Authorizer decides the event service's calls from the policy in force.
// Until a policy arrives every call but health checks is refused.
type Authorizer struct {
	opts   Options
	policy atomic.Pointer[Policy]
	denied metric.Int64Counter
}

// New returns an Authorizer without a policy.
func New(opts Options) (*Authorizer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	mp := opts.MeterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	c, err := mp.Meter("github.com/angzarr-mesh/angzarr/eventsvc/authz").Int64Counter("angzarr.eventsvc.authz.denied",
		metric.WithDescription("Calls refused by authorization, by method and reason (unauthenticated, or the rule that would allow them)."))
	if err != nil {
		return nil, err
	}
	return &Authorizer{opts: opts, denied: c}, nil
}

// Update compiles and installs p; an invalid p changes nothing.
func (a *Authorizer) Update(p *pb.AccessPolicy) error {
	c, err := Compile(p)
	if err != nil {
		return err
	}
	a.policy.Store(c)
	return nil
}

// Policy is the policy in force (nil before the first).
func (a *Authorizer) Policy() *Policy { return a.policy.Load() }

// Source wraps a fan-out configuration source: each configuration's access
// policy is installed before the dispatcher applies it, and a
// configuration with an invalid policy is refused as a whole.
func (a *Authorizer) Source(inner fanout.Source) fanout.Source {
	return source{inner: inner, a: a}
}

type source struct {
	inner fanout.Source
	a     *Authorizer
}

func (s source) Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error {
	return s.inner.Run(ctx, func(c *pb.FanoutConfig) error {
		if _, err := Compile(c.GetAccess()); err != nil {
			return err
		}
		if err := apply(c); err != nil {
			return err
		}
		return s.a.Update(c.GetAccess())
	})
}

// caller resolves the caller or returns UNAUTHENTICATED.
func (a *Authorizer) caller(ctx context.Context, method string) (string, error) {
	id, err := a.opts.Resolver.Caller(ctx)
	if err != nil {
		a.denied.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("reason", "unauthenticated")))
		a.opts.Logger.WarnContext(ctx, "unauthenticated call refused", "method", method, "err", err)
		return "", status.Errorf(codes.Unauthenticated, "%s: %v", method, err)
	}
	return id.String(), nil
}

// check decides one request message.
func (a *Authorizer) check(ctx context.Context, id, method string, msg any) error {
	p := a.policy.Load()
	var d *denial
	if p == nil {
		d = &denial{id, "call " + method, "no access policy received yet"}
	} else {
		d = p.decide(id, method, msg)
	}
	if d == nil {
		return nil
	}
	a.denied.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("reason", d.rule)))
	a.opts.Logger.WarnContext(ctx, "call refused", "method", method, "identity", id, "rule", d.rule)
	return status.Error(codes.PermissionDenied, d.Error())
}

// Unary is the unary server interceptor.
func (a *Authorizer) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if open(info.FullMethod) {
			return handler(ctx, req)
		}
		id, err := a.caller(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		if err := a.check(ctx, id, info.FullMethod, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the stream server interceptor: every message the client sends
// is decided (a Synchronize stream may ask for another domain later).
func (a *Authorizer) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if open(info.FullMethod) {
			return handler(srv, ss)
		}
		id, err := a.caller(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &checkedStream{ServerStream: ss, a: a, id: id, method: info.FullMethod})
	}
}

type checkedStream struct {
	grpc.ServerStream
	a          *Authorizer
	id, method string
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.a.check(s.Context(), s.id, s.method, m)
}
