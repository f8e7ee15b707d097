package sdk

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Upcaster turns stored events of old versions into current ones, built
// from typed conversions (UpcastFrom). It serves angzarr.Upcaster; declare
// it in the topology under its domain's upcasters, with Types.
type Upcaster struct {
	angzarr.UnimplementedUpcasterServer

	domain string
	convs  map[protoreflect.FullName]func(*anypb.Any) (*anypb.Any, error)
}

var _ angzarr.UpcasterServer = (*Upcaster)(nil)

// NewUpcaster returns an upcaster of the domain with no conversion yet.
func NewUpcaster(domain string) *Upcaster {
	return &Upcaster{domain: domain, convs: map[protoreflect.FullName]func(*anypb.Any) (*anypb.Any, error){}}
}

// UpcastFrom registers the conversion of stored Old events to New. New must
// not be a type the upcaster takes (Upcast refuses such an answer), so a
// chain v1 → v2 → v3 is two conversions from v1 and v2 each to v3.
func UpcastFrom[Old, New proto.Message](u *Upcaster, conv func(Old) New) {
	u.convs[nameOf[Old]()] = func(raw *anypb.Any) (*anypb.Any, error) {
		old, err := unpack[Old](raw)
		if err != nil {
			return nil, err
		}
		return anypb.New(conv(old))
	}
}

// Types are the full names of the old types the upcaster takes, sorted:
// what the topology lists for it.
func (u *Upcaster) Types() []string {
	out := make([]string, 0, len(u.convs))
	for n := range u.convs {
		out = append(out, string(n))
	}
	slices.Sort(out)
	return out
}

// Upcast implements angzarr.Upcaster. An event of a type it does not take,
// or of another domain, is an error: the event service sends only the
// types declared, so anything else is a misconfiguration to show, not to
// pass silently.
func (u *Upcaster) Upcast(_ context.Context, req *angzarr.UpcastRequest) (*angzarr.UpcastResponse, error) {
	if req.GetDomain() != u.domain {
		return nil, status.Errorf(codes.InvalidArgument, "upcaster of domain %q asked for domain %q", u.domain, req.GetDomain())
	}
	out := &angzarr.UpcastResponse{Events: make([]*anypb.Any, len(req.GetEvents()))}
	for i, ev := range req.GetEvents() {
		conv, ok := u.convs[messageName(ev.GetTypeUrl())]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "event %d: this upcaster does not take %s (it takes %v)", i, messageName(ev.GetTypeUrl()), u.Types())
		}
		cur, err := conv(ev)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "event %d: %v", i, err)
		}
		out.Events[i] = cur
	}
	return out, nil
}
