package filter

import (
	"time"

	"github.com/angzarr-mesh/angzarr/filter/config"
)

// Plugin is the filter's root context: the configuration, the live streams
// and the callouts in flight. Callout results arrive here and are routed to
// their stream. A Plugin is used from one goroutine (the VM's).
type Plugin struct {
	host     Host
	cfg      *config.Config
	streams  map[uint32]*Stream
	callouts map[uint32]pendingCall
	metrics  *metrics
	random   func() uint64
	// cache holds recently written histories (nil when switched off).
	cache *aggCache
	// forwardBuf is the storage forwardCommand builds each command's
	// ContextualCommand in (empty; reused).
	forwardBuf []byte
}

// pendingCall is a callout waiting for its result.
type pendingCall struct {
	stream          uint32
	service, method string
	done            func(s *Stream, msg []byte, st *Status)
}

// what names the call for messages: "angzarr.EventStore/Load" (built only
// when a message needs it).
func (c *pendingCall) what() string { return c.service + "/" + c.method }

// NewPlugin returns a root context with the pass-through configuration; the
// host calls Configure before any stream starts.
func NewPlugin(h Host) *Plugin {
	cfg, _ := config.Decode(nil)
	return &Plugin{
		host:     h,
		cfg:      cfg,
		streams:  map[uint32]*Stream{},
		callouts: map[uint32]pendingCall{},
		metrics:  newMetrics(h),
		random:   defaultRandom,
	}
}

// SetRandom replaces the source of correlation ids (tests).
func (p *Plugin) SetRandom(r func() uint64) { p.random = r }

// Config returns the configuration in force.
func (p *Plugin) Config() *config.Config { return p.cfg }

// GCPause records the pause of a garbage collection the binding ran at the
// end of one of this plugin's streams.
func (p *Plugin) GCPause(d time.Duration) { p.metrics.gcPause(d) }

// Configure decodes and applies the plugin configuration. On error the old
// configuration stays, one line is logged and the error is returned (the
// binding then fails proxy_on_configure).
func (p *Plugin) Configure(raw []byte) error {
	cfg, err := config.Decode(raw)
	if err != nil {
		p.host.Log(LogError, "angzarr filter: bad configuration: "+err.Error())
		return err
	}
	p.cfg = cfg
	p.metrics.configure(cfg.Domains, cfg.Coordinators)
	// A new configuration starts with an empty cache (it may serve other
	// domains, or bound the cache differently).
	p.cache = newAggCache(cfg.AggregateCacheBytes)
	if cfg.PassThrough() {
		p.host.Log(LogInfo, "angzarr filter: configured as pass-through (no domains)")
	} else {
		p.host.Log(LogInfo, "angzarr filter: serving domains "+joinDomains(cfg.Domains))
		var untyped []string
		for _, d := range cfg.Domains {
			if len(cfg.EventTypesOf(d)) == 0 {
				untyped = append(untyped, d)
			}
		}
		if len(untyped) > 0 {
			p.host.Log(LogInfo, "angzarr filter: no event types declared (event_types), every Record refused, for domains "+joinDomains(untyped))
		}
	}
	return nil
}

func joinDomains(ds []string) string {
	out := ""
	for i, d := range ds {
		if i > 0 {
			out += ","
		}
		out += d
	}
	return out
}

// NewStream creates the state of a new HTTP stream (context id).
func (p *Plugin) NewStream(id uint32) *Stream {
	s := &Stream{p: p, id: id}
	p.streams[id] = s
	return s
}

// Stream returns a live stream by context id.
func (p *Plugin) Stream(id uint32) (*Stream, bool) {
	s, ok := p.streams[id]
	return s, ok
}

// DeleteStream forgets a stream; results of its callouts still in flight
// are dropped when they arrive.
func (p *Plugin) DeleteStream(id uint32) {
	if s, ok := p.streams[id]; ok {
		s.gone()
		delete(p.streams, id)
	}
}

// Streams is the number of live streams (tests, leak checks).
func (p *Plugin) Streams() int { return len(p.streams) }

// Callouts is the number of callouts in flight (tests, leak checks).
func (p *Plugin) Callouts() int { return len(p.callouts) }

// call starts a unary gRPC callout for stream s; done runs with the answer
// (or the failure) once it arrives, with s as the effective context. Every
// callout carries the stream's trace context (readTraceHeaders) as
// metadata.
func (p *Plugin) call(s *Stream, cluster, service, method string, b []byte, timeout time.Duration,
	done func(s *Stream, msg []byte, st *Status)) *Status {
	return p.callMD(s, cluster, service, method, nil, b, timeout, done)
}

// callMD is call with initial metadata (the trace context is added).
func (p *Plugin) callMD(s *Stream, cluster, service, method string, md [][2]string, b []byte, timeout time.Duration,
	done func(s *Stream, msg []byte, st *Status)) *Status {
	token, err := p.host.GrpcCall(cluster, p.cfg.Authority(cluster), service, method, s.withTrace(md), b, timeout)
	if err != nil {
		return statusf(Unavailable, "cannot call %s/%s on cluster %q: %v", service, method, cluster, err)
	}
	p.callouts[token] = pendingCall{stream: s.id, service: service, method: method, done: done}
	return nil
}

// OnGrpcReceive delivers a callout's response message of size bytes (read
// from the gRPC receive buffer).
func (p *Plugin) OnGrpcReceive(token uint32, size int) {
	c, ok := p.callouts[token]
	if !ok {
		return
	}
	delete(p.callouts, token)
	msg, err := p.host.GetBuffer(GrpcReceive, 0, size)
	st := (*Status)(nil)
	if err != nil {
		st = statusf(Unavailable, "%s: cannot read the response: %v", c.what(), err)
	}
	p.deliver(c, msg, st)
}

// OnGrpcClose delivers a callout's end. A callout whose response was
// already delivered is finished; otherwise it failed with code and message.
func (p *Plugin) OnGrpcClose(token uint32, code Code, message string) {
	c, ok := p.callouts[token]
	if !ok {
		return
	}
	delete(p.callouts, token)
	if code == OK {
		p.deliver(c, nil, statusf(Unavailable, "%s: the call ended without a response", c.what()))
		return
	}
	p.deliver(c, nil, &Status{Code: code, Message: message})
}

// OnGrpcTrailingMetadata does nothing: the filter makes only unary
// callouts, and Envoy delivers no trailing metadata for those (its wasm
// Context's GrpcCallClientHandler has only onSuccessRaw and onFailure; see
// compensationRequested), nor does wasmhost. A callout's failure is its
// code and message.
func (p *Plugin) OnGrpcTrailingMetadata(token uint32) {}

// deliver switches to the callout's stream and runs its continuation; a
// result for a stream that is gone is dropped.
func (p *Plugin) deliver(c pendingCall, msg []byte, st *Status) {
	s, ok := p.streams[c.stream]
	if !ok {
		return
	}
	if err := p.host.SetEffectiveContext(c.stream); err != nil {
		p.DeleteStream(c.stream)
		return
	}
	c.done(s, msg, st)
}
