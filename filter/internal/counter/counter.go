// Package counter is a tiny business-logic service for the filter's tests
// and benchmarks: an aggregate holding one integer. Its commands and events
// are google.protobuf.Int64Value deltas; its state (and snapshot) is the sum.
// A command that would take the counter below zero is rejected with
// FAILED_PRECONDITION, and a delta of zero with INVALID_ARGUMENT.
package counter

import (
	"context"
	"net"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Domain is the counter's domain name.
const Domain = "counter"

// EventType is the full name of the counter's events (Event).
const EventType = "google.protobuf.Int64Value"

// Command returns a command page adding delta, expecting sequence seq.
func Command(delta int64, seq uint32) *pb.CommandPage {
	a, _ := anypb.New(wrapperspb.Int64(delta))
	return &pb.CommandPage{Sequence: seq, Command: a}
}

// Event returns an event page recording delta.
func Event(delta int64) *pb.EventPage {
	a, _ := anypb.New(wrapperspb.Int64(delta))
	return &pb.EventPage{Event: a}
}

// State sums a history: the snapshot (if any) and every event after it.
func State(book *pb.EventBook) (int64, error) {
	var sum int64
	if st := book.GetSnapshot().GetState(); st != nil {
		v := &wrapperspb.Int64Value{}
		if err := st.UnmarshalTo(v); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "counter snapshot: %v", err)
		}
		sum = v.GetValue()
	}
	for _, p := range book.GetPages() {
		v := &wrapperspb.Int64Value{}
		if err := p.GetEvent().UnmarshalTo(v); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "counter event: %v", err)
		}
		sum += v.GetValue()
	}
	return sum, nil
}

// Decide is the counter's business logic. A command book without pages is
// the framework's no-op probe and gets an empty EventBook. When snapshotEvery
// > 0, it asks for a snapshot every snapshotEvery events.
func Decide(cc *pb.ContextualCommand, snapshotEvery int) (*pb.EventBook, error) {
	sum, err := State(cc.GetEvents())
	if err != nil {
		return nil, err
	}
	out := &pb.EventBook{Cover: cc.GetCommand().GetCover()}
	for _, p := range cc.GetCommand().GetPages() {
		v := &wrapperspb.Int64Value{}
		if err := p.GetCommand().UnmarshalTo(v); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "counter command must be google.protobuf.Int64Value: %v", err)
		}
		switch {
		case v.GetValue() == 0:
			return nil, status.Error(codes.InvalidArgument, "counter: a delta of zero changes nothing")
		case sum+v.GetValue() < 0:
			return nil, status.Errorf(codes.FailedPrecondition, "counter: %d%+d would go below zero", sum, v.GetValue())
		}
		sum += v.GetValue()
		out.Pages = append(out.Pages, Event(v.GetValue()))
	}
	if snapshotEvery > 0 && len(out.Pages) > 0 {
		before := uint32(0)
		if s := cc.GetEvents().GetSnapshot(); s != nil {
			before = s.GetSequence()
		}
		next := before + uint32(len(cc.GetEvents().GetPages()))
		after := next + uint32(len(out.Pages))
		if after/uint32(snapshotEvery) != next/uint32(snapshotEvery) {
			out.SnapshotState, _ = anypb.New(wrapperspb.Int64(sum))
		}
	}
	return out, nil
}

// Service serves Decide as angzarr.BusinessLogic.
type Service struct {
	pb.UnimplementedBusinessLogicServer
	// SnapshotEvery asks for a snapshot every so many events (0: never).
	SnapshotEvery int
	// Seen, when set, is called with each Handle call's context (tests:
	// the request's metadata).
	Seen func(ctx context.Context, cc *pb.ContextualCommand)
}

var _ pb.BusinessLogicServer = (*Service)(nil)

// Handle implements angzarr.BusinessLogic/Handle.
func (s *Service) Handle(ctx context.Context, cc *pb.ContextualCommand) (*pb.EventBook, error) {
	if s.Seen != nil {
		s.Seen(ctx, cc)
	}
	return Decide(cc, s.SnapshotEvery)
}

// Serve serves the counter on lis until ctx ends.
func Serve(ctx context.Context, lis net.Listener, svc *Service) error {
	srv := grpc.NewServer()
	pb.RegisterBusinessLogicServer(srv, svc)
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	err := srv.Serve(lis)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
