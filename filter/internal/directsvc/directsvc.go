//go:build !wasip1

// Package directsvc is the benchmark baseline: the counter aggregate as a
// team would write it without Angzarr, one gRPC service doing everything
// itself on Redis — load the history, apply the command, compare-and-append
// the new events with a Lua script — behind the same BusinessCoordinator API.
package directsvc

import (
	"context"
	"errors"
	"net"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// appendScript appends ARGV[2..] to the list KEYS[1] if its length is
// ARGV[1]; it returns the new length, or -1 on a conflict.
var appendScript = redis.NewScript(`
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
return redis.call('LLEN', KEYS[1])`)

// Service implements angzarr.BusinessCoordinator/Handle directly on Redis.
type Service struct {
	pb.UnimplementedBusinessCoordinatorServer
	rdb *redis.Client
}

// New returns a service on the Redis at addr.
func New(addr string) *Service {
	return &Service{rdb: redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})}
}

// Close closes the Redis client.
func (s *Service) Close() error { return s.rdb.Close() }

// Handle loads, decides and compare-and-appends.
func (s *Service) Handle(ctx context.Context, cmd *pb.CommandBook) (*pb.CommandResponse, error) {
	key := "direct:" + cmd.GetCover().GetDomain() + ":" + string(cmd.GetCover().GetRoot().GetValue())
	raw, err := s.rdb.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "load: %v", err)
	}
	book := &pb.EventBook{Cover: cmd.GetCover()}
	for _, r := range raw {
		p := &pb.EventPage{}
		if err := proto.Unmarshal([]byte(r), p); err != nil {
			return nil, status.Errorf(codes.DataLoss, "stored event: %v", err)
		}
		book.Pages = append(book.Pages, p)
	}
	next := uint32(len(raw))
	if len(cmd.GetPages()) == 0 || cmd.GetPages()[0].GetSequence() != next {
		return nil, status.Errorf(codes.Aborted, "expected sequence %d", next)
	}
	out, err := counter.Decide(&pb.ContextualCommand{Events: book, Command: cmd}, 0)
	if err != nil {
		return nil, err
	}
	args := []any{next}
	now := timestamppb.Now()
	for i, p := range out.GetPages() {
		p.Sequence = &pb.EventPage_Num{Num: next + uint32(i)}
		p.CreatedAt = now
		b, err := proto.Marshal(p)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode: %v", err)
		}
		args = append(args, b)
	}
	n, err := appendScript.Run(ctx, s.rdb, []string{key}, args...).Int()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "append: %v", err)
	}
	if n < 0 {
		return nil, status.Errorf(codes.Aborted, "expected sequence %d is stale", next)
	}
	return &pb.CommandResponse{Events: out}, nil
}

// Serve serves the service on lis until ctx ends.
func Serve(ctx context.Context, lis net.Listener, s *Service) error {
	srv := grpc.NewServer()
	pb.RegisterBusinessCoordinatorServer(srv, s)
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) && ctx.Err() == nil {
		return err
	}
	return nil
}
