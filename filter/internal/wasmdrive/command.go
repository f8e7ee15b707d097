//go:build !wasip1

package wasmdrive

import (
	"fmt"

	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Aggregate is an in-memory counter aggregate the driver answers callouts
// for: the event service (Load, Append) and the business logic.
type Aggregate struct {
	Pages []*pb.EventPage
}

// Handle sends cmd through the module as /angzarr.BusinessCoordinator/Handle
// and answers every callout from agg, returning the client's answer: the
// CommandResponse, or the status of a local reply or rewritten trailers.
func (d *Driver) Handle(agg *Aggregate, cmd *pb.CommandBook) (*pb.CommandResponse, int32, error) {
	reqMsg, err := proto.Marshal(cmd)
	if err != nil {
		return nil, 0, err
	}
	s, err := d.NewStream(map[string]string{":path": "/angzarr.BusinessCoordinator/Handle", ":method": "POST",
		"content-type": "application/grpc", "content-length": fmt.Sprint(len(reqMsg) + 5)})
	if err != nil {
		return nil, 0, err
	}
	defer s.Finish()
	if a, err := s.RequestHeaders(false); err != nil || a != proxywasm.ActionContinue {
		return nil, 0, fmt.Errorf("request headers: %d %v", a, err)
	}
	// Continue right away: the module forwarded the request within the
	// callback (a command on a cached history needs no load).
	bodyAction, err := s.RequestBody(grpcframe.Encode(reqMsg), true)
	if err != nil {
		return nil, 0, err
	}
	if err := d.answer(agg); err != nil {
		return nil, 0, err
	}
	if l := d.Local(); l != nil {
		return nil, l.GrpcStatus, nil
	}
	if bodyAction != proxywasm.ActionContinue && !d.Continued(proxywasm.StreamRequest) {
		return nil, 0, fmt.Errorf("request not continued")
	}
	msg, err := grpcframe.Decode(d.Body(proxywasm.BufferRequestBody))
	if err != nil {
		return nil, 0, err
	}
	cc := &pb.ContextualCommand{}
	if err := proto.Unmarshal(msg, cc); err != nil {
		return nil, 0, err
	}
	book, err := counter.Decide(cc, 0)
	if err != nil {
		return nil, 0, err
	}
	respMsg, _ := proto.Marshal(book)
	if _, err := s.ResponseHeaders(map[string]string{":status": "200", "content-type": "application/grpc"}, false); err != nil {
		return nil, 0, err
	}
	if _, err := s.ResponseBody(grpcframe.Encode(respMsg), false); err != nil {
		return nil, 0, err
	}
	if a, err := s.ResponseTrailers(map[string]string{"grpc-status": "0"}); err != nil {
		return nil, 0, err
	} else if a == proxywasm.ActionContinue {
		return nil, 0, fmt.Errorf("response trailers did not pause for the append")
	}
	if err := d.answer(agg); err != nil {
		return nil, 0, err
	}
	if !d.Continued(proxywasm.StreamResponse) {
		return nil, 0, fmt.Errorf("response not continued")
	}
	var code int32
	fmt.Sscan(d.Headers(proxywasm.MapResponseTrailers)["grpc-status"], &code)
	if code != 0 {
		return nil, code, nil
	}
	out, err := grpcframe.Decode(d.Body(proxywasm.BufferResponseBody))
	if err != nil {
		return nil, 0, err
	}
	resp := &pb.CommandResponse{}
	return resp, 0, proto.Unmarshal(out, resp)
}

// answer serves queued callouts until none is left.
func (d *Driver) answer(agg *Aggregate) error {
	for {
		calls := d.Calls()
		if len(calls) == 0 {
			return nil
		}
		for _, c := range calls {
			var out proto.Message
			switch c.Method {
			case "Load":
				out = &pb.LoadResponse{Book: &pb.EventBook{Pages: agg.Pages}, NextSequence: uint32(len(agg.Pages))}
			case "Append":
				req := &pb.AppendRequest{}
				if err := proto.Unmarshal(c.Message, req); err != nil {
					return err
				}
				if req.GetExpectedSequence() != uint32(len(agg.Pages)) {
					if err := d.Fail(c, uint32(codes.Aborted), "conflict"); err != nil {
						return err
					}
					continue
				}
				agg.Pages = append(agg.Pages, req.GetPages()...)
				out = &pb.AppendResponse{Book: &pb.EventBook{Cover: req.GetCover(), Pages: req.GetPages()}, NextSequence: uint32(len(agg.Pages))}
			default:
				return fmt.Errorf("unexpected callout %s/%s", c.Service, c.Method)
			}
			b, _ := proto.Marshal(out)
			if err := d.Reply(c, b); err != nil {
				return err
			}
		}
	}
}
