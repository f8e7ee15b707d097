package authz

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Full method names the policy knows.
const (
	mLoad             = "/angzarr.EventStore/Load"
	mAppend           = "/angzarr.EventStore/Append"
	mReadLog          = "/angzarr.EventStore/ReadLog"
	mListRoots        = "/angzarr.EventStore/ListRoots"
	mGetEvents        = "/angzarr.EventQuery/GetEvents"
	mSynchronize      = "/angzarr.EventQuery/Synchronize"
	mGetRoots         = "/angzarr.EventQuery/GetAggregateRoots"
	mFanoutAdminPfx   = "/angzarr.FanoutAdmin/"
	mGatewayPfx       = "/angzarr.CommandGateway/"
	mPMSync           = "/angzarr.ProcessManagerCoordinator/HandleSync"
	mSchemaRegister   = "/angzarr.SchemaRegistry/Register"
	mSchemaStatus     = "/angzarr.SchemaRegistry/Status"
	mSchemaDescs      = "/angzarr.SchemaRegistry/Descriptors"
	mHealthPfx        = "/grpc.health.v1.Health/"
	mReflectionPfx    = "/grpc.reflection."
	actionReadHistory = "read"
)

// open reports whether a method needs no decision beyond an identity
// (health checks, reflection).
func open(method string) bool {
	return hasPrefix(method, mHealthPfx) || hasPrefix(method, mReflectionPfx)
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// decide decides one request message of method by caller id.
func (p *Policy) decide(id, method string, msg any) *denial {
	switch {
	case method == mLoad:
		req, _ := msg.(*pb.LoadRequest)
		_, d := p.write(id, req.GetCover().GetDomain(), "load")
		return d
	case method == mAppend:
		req, _ := msg.(*pb.AppendRequest)
		return p.appendAllowed(id, req)
	case method == mReadLog:
		req, _ := msg.(*pb.ReadLogRequest)
		return p.read(id, req.GetDomain(), "read the log of")
	case method == mListRoots:
		req, _ := msg.(*pb.ListRootsRequest)
		return p.read(id, req.GetDomain(), "list the roots of")
	case method == mGetEvents || method == mSynchronize:
		req, _ := msg.(*pb.Query)
		return p.read(id, req.GetCover().GetDomain(), "query")
	case method == mGetRoots:
		if _, ok := msg.(*emptypb.Empty); !ok {
			return &denial{id, "call " + method, "request type"}
		}
		return p.read(id, "", "list the roots")
	case method == mPMSync:
		// A domain's filter runs process-manager steps for its own
		// events (CASCADE); the dispatcher checks the PM is fed by it.
		req, _ := msg.(*pb.ProcessManagerSyncRequest)
		_, d := p.write(id, req.GetTrigger().GetCover().GetDomain(), "run process-manager steps for events of")
		return d
	case hasPrefix(method, mFanoutAdminPfx):
		return p.admin(id, "use "+method)
	case hasPrefix(method, mGatewayPfx):
		if d := p.read(id, gatewayDomain(msg), "stream commands of"); d != nil {
			return d
		}
		return p.gatewaySaga(id, msg)
	case method == mSchemaRegister:
		req, _ := msg.(*pb.RegisterSchemaRequest)
		if p.registrars.has(id) || p.admins.has(id) {
			return nil
		}
		if req.GetDryRun() {
			return p.read(id, req.GetDomain(), "check descriptors of")
		}
		return &denial{id, fmt.Sprintf("register descriptors of domain %q", req.GetDomain()), "schema_registrars"}
	case method == mSchemaStatus || method == mSchemaDescs:
		if p.registrars.has(id) {
			return nil
		}
		domain := ""
		switch req := msg.(type) {
		case *pb.SchemaStatusRequest:
			domain = req.GetDomain()
		case *pb.SchemaDescriptorsRequest:
			domain = req.GetDomain()
		}
		return p.read(id, domain, "read the schema of")
	}
	return &denial{id, "call " + method, "no rule"}
}

// gatewaySaga refuses a gateway command that passes for a saga's (a saga
// origin or a saga idempotency key) unless an admin sends it: the gateway
// executes commands with the event service's identity, which the domains'
// filters trust with saga keys.
func (p *Policy) gatewaySaga(id string, msg any) *denial {
	cmd := gatewayCommand(msg)
	if cmd.GetSagaOrigin() == nil && !strings.HasPrefix(cmd.GetIdempotencyKey(), sagakey.Prefix) || p.admins.has(id) {
		return nil
	}
	return &denial{id, "send a saga's command through the gateway", "admins"}
}

// gatewayCommand is a gateway request's command.
func gatewayCommand(msg any) *pb.CommandBook {
	switch m := msg.(type) {
	case *pb.CommandBook:
		return m
	case *pb.ExecuteStreamCountRequest:
		return m.GetCommand()
	case *pb.ExecuteStreamTimeRequest:
		return m.GetCommand()
	}
	return nil
}

// gatewayDomain is the domain of a gateway request's command.
func gatewayDomain(msg any) string {
	return gatewayCommand(msg).GetCover().GetDomain()
}

// appendAllowed allows a domain's writers to append events with types and
// sequences, with a snapshot of the state after them; snapshot-only
// appends, forced sequences and untyped events need the domain's rule to
// allow them (admins may).
func (p *Policy) appendAllowed(id string, req *pb.AppendRequest) *denial {
	domain := req.GetCover().GetDomain()
	r, d := p.write(id, domain, "append to")
	if d != nil {
		return d
	}
	admin := p.admins.has(id)
	allow := func(ok bool, what, flag string) *denial {
		if ok || admin {
			return nil
		}
		return &denial{id, fmt.Sprintf("append %s to domain %q", what, domain), fmt.Sprintf("domains[%s].%s", domain, flag)}
	}
	if len(req.GetPages()) == 0 && req.GetSnapshotState() != nil {
		if d := allow(r != nil && r.snapshotOnly, "a snapshot without events", "allow_snapshot_only"); d != nil {
			return d
		}
	}
	for _, pg := range req.GetPages() {
		if pg.GetForce() {
			if d := allow(r != nil && r.forced, "a page with a forced sequence", "allow_forced_sequences"); d != nil {
				return d
			}
		}
		if pg.GetEvent().GetTypeUrl() == "" {
			if d := allow(r != nil && r.untyped, "an event without a type", "allow_untyped_events"); d != nil {
				return d
			}
		}
	}
	if s := req.GetSnapshotState(); s != nil && s.GetTypeUrl() == "" {
		if d := allow(r != nil && r.untyped, "a snapshot without a type", "allow_untyped_events"); d != nil {
			return d
		}
	}
	return nil
}
