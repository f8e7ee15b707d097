//go:build !wasip1

// Package wasmdrive runs the built filter .wasm directly on wazero, with a
// minimal in-process proxy-wasm host: no network, no proxy. Its env
// functions (guest.go) answer the module's imports from a Host, so the
// filter's own tests run their scenarios through the module against their
// fake host; Driver is a Host of its own, one stream at a time, whose
// callouts the caller answers, to measure what only the module costs (CPU
// per command, heap growth). The real host semantics are wasmhost's job.
package wasmdrive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// Call is a gRPC callout the module made.
type Call struct {
	Token           uint32
	Cluster         string
	Authority       string
	Service, Method string
	Message         []byte
}

// Driver runs one instance of the module on its own runtime and is its
// Host: one stream at a time, callouts queued for the caller to answer.
type Driver struct {
	*Guest
	rt  *Runtime
	ctx context.Context

	next uint32

	// current stream state
	current uint32
	maps    [4]map[string]string
	bufs    map[proxywasm.BufferType][]byte
	grpcBuf []byte
	calls   []Call
	token   uint32
	cont    [2]bool
	local   *LocalReply
	// Props holds the current stream's proxy_set_property values.
	Props map[string]string
	// Gauges holds each gauge's value by metric name: set by
	// proxy_record_metric, moved by proxy_increment_metric.
	Gauges map[string]uint64
	// Histograms holds every value recorded per histogram name.
	Histograms map[string][]uint64
	metrics    map[uint32]string
	histogram  map[uint32]bool
	// Logs collects proxy_log lines.
	Logs []string
}

var _ Host = (*Driver)(nil)

// LocalReply is a proxy_send_local_response.
type LocalReply struct {
	GrpcStatus int32
	Message    string
}

// New compiles and starts the module and configures its root context.
func New(ctx context.Context, wasm, pluginConfig []byte, opts ...Options) (*Driver, error) {
	rt, err := NewRuntime(ctx, wasm, opts...)
	if err != nil {
		return nil, err
	}
	d := &Driver{rt: rt, ctx: ctx, bufs: map[proxywasm.BufferType][]byte{}, Gauges: map[string]uint64{}, Histograms: map[string][]uint64{}, metrics: map[uint32]string{}, histogram: map[uint32]bool{}, next: 1}
	if d.Guest, err = rt.Start(ctx, d, pluginConfig); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("%w (logs %q)", err, d.Logs)
	}
	return d, nil
}

// Close releases the runtime.
func (d *Driver) Close() error { return d.rt.Close(d.ctx) }

// PollCalls is how many poll_oneoff calls were answered ENOSYS.
func (d *Driver) PollCalls() int64 { return d.rt.PollCalls.Load() }

// Stream is one HTTP stream through the module.
type Stream struct {
	d  *Driver
	ID uint32
}

// NewStream creates a stream context with request headers.
func (d *Driver) NewStream(headers map[string]string) (*Stream, error) {
	id := d.next
	d.next++
	d.current = id
	d.maps = [4]map[string]string{headers, {}, {}, {}}
	d.bufs = map[proxywasm.BufferType][]byte{}
	d.cont = [2]bool{}
	d.local = nil
	d.Props = map[string]string{}
	if err := d.Guest.NewStream(id); err != nil {
		return nil, err
	}
	return &Stream{d: d, ID: id}, nil
}

// Headers returns a header map of the current stream (request headers,
// response headers or trailers).
func (d *Driver) Headers(m proxywasm.MapType) map[string]string { return d.maps[m] }

// Body returns a body buffer of the current stream.
func (d *Driver) Body(b proxywasm.BufferType) []byte { return d.bufs[b] }

// Continued reports whether the module resumed a direction (request or
// response) and clears it.
func (d *Driver) Continued(dir proxywasm.StreamType) bool {
	c := d.cont[dir]
	d.cont[dir] = false
	return c
}

// Local returns the local reply sent on the current stream, if any.
func (d *Driver) Local() *LocalReply { return d.local }

// Calls returns and clears the callouts made so far.
func (d *Driver) Calls() []Call {
	c := d.calls
	d.calls = nil
	return c
}

// RequestHeaders runs proxy_on_request_headers.
func (s *Stream) RequestHeaders(eos bool) (proxywasm.Action, error) {
	return s.d.OnRequestHeaders(s.ID, len(s.d.maps[proxywasm.MapRequestHeaders]), eos)
}

// RequestBody sets the request body and runs proxy_on_request_body.
func (s *Stream) RequestBody(body []byte, eos bool) (proxywasm.Action, error) {
	s.d.bufs[proxywasm.BufferRequestBody] = body
	return s.d.OnRequestBody(s.ID, len(body), eos)
}

// ResponseHeaders sets and runs the response headers.
func (s *Stream) ResponseHeaders(h map[string]string, eos bool) (proxywasm.Action, error) {
	s.d.maps[proxywasm.MapResponseHeaders] = h
	return s.d.OnResponseHeaders(s.ID, len(h), eos)
}

// ResponseBody sets and runs the response body.
func (s *Stream) ResponseBody(body []byte, eos bool) (proxywasm.Action, error) {
	s.d.bufs[proxywasm.BufferResponseBody] = body
	return s.d.OnResponseBody(s.ID, len(body), eos)
}

// ResponseTrailers sets and runs the response trailers.
func (s *Stream) ResponseTrailers(t map[string]string) (proxywasm.Action, error) {
	s.d.maps[proxywasm.MapResponseTrailers] = t
	return s.d.OnResponseTrailers(s.ID, len(t))
}

// Reply delivers a callout's response message on the root context.
func (d *Driver) Reply(c Call, msg []byte) error {
	d.grpcBuf = msg
	err := d.OnGrpcReceive(c.Token, len(msg))
	d.grpcBuf = nil
	return err
}

// Fail delivers a callout's failure on the root context.
func (d *Driver) Fail(c Call, code uint32, msg string) error {
	return d.OnGrpcClose(c.Token, code, msg)
}

// Finish ends the stream (proxy_on_done, proxy_on_delete).
func (s *Stream) Finish() error { return s.d.DeleteStream(s.ID) }

// The Host side: the current stream's maps and buffers.

// Log implements Host.
func (d *Driver) Log(_ proxywasm.LogLevel, msg string) { d.Logs = append(d.Logs, msg) }

// Now implements Host.
func (d *Driver) Now() time.Time { return time.Now() }

// GetHeader implements Host.
func (d *Driver) GetHeader(m proxywasm.MapType, key string) (string, bool) {
	v, ok := d.maps[m][key]
	return v, ok
}

// ReplaceHeader implements Host.
func (d *Driver) ReplaceHeader(m proxywasm.MapType, key, value string) error {
	d.maps[m][key] = value
	return nil
}

// RemoveHeader implements Host.
func (d *Driver) RemoveHeader(m proxywasm.MapType, key string) error {
	delete(d.maps[m], key)
	return nil
}

func (d *Driver) buffer(b proxywasm.BufferType) []byte {
	if b == proxywasm.BufferGRPCReceive {
		return d.grpcBuf
	}
	return d.bufs[b]
}

// GetBuffer implements Host.
func (d *Driver) GetBuffer(b proxywasm.BufferType, start, size int) ([]byte, error) {
	buf := d.buffer(b)
	if start > len(buf) {
		return nil, errors.New("start beyond the buffer")
	}
	return buf[start:min(start+size, len(buf))], nil
}

// BufferSize implements Host.
func (d *Driver) BufferSize(b proxywasm.BufferType) int { return len(d.buffer(b)) }

// SetBuffer implements Host.
func (d *Driver) SetBuffer(b proxywasm.BufferType, data []byte) error {
	d.bufs[b] = data
	return nil
}

// SendLocalReply implements Host.
func (d *Driver) SendLocalReply(grpcStatus int32, message string, _ [][2]string) error {
	d.local = &LocalReply{GrpcStatus: grpcStatus, Message: message}
	return nil
}

// ContinueStream implements Host.
func (d *Driver) ContinueStream(s proxywasm.StreamType) error {
	d.cont[s] = true
	return nil
}

// GrpcCall implements Host: the call is queued for Calls.
func (d *Driver) GrpcCall(cluster, authority, service, method string, _ [][2]string, msg []byte, _ time.Duration) (uint32, error) {
	d.token++
	d.calls = append(d.calls, Call{Token: d.token, Cluster: cluster, Authority: authority, Service: service, Method: method, Message: msg})
	return d.token, nil
}

// SetEffectiveContext implements Host: only the current stream exists.
func (d *Driver) SetEffectiveContext(id uint32) error {
	if id != d.current {
		return errors.New("no such stream")
	}
	return nil
}

// DefineMetric implements Host.
func (d *Driver) DefineMetric(t proxywasm.MetricType, name string) (uint32, error) {
	id := uint32(len(d.metrics) + 1)
	d.metrics[id] = name
	d.histogram[id] = t == proxywasm.MetricHistogram
	return id, nil
}

// IncrementMetric implements Host: gauges move by delta (counters are not
// kept).
func (d *Driver) IncrementMetric(id uint32, delta int64) error {
	name := d.metrics[id]
	d.Gauges[name] = uint64(int64(d.Gauges[name]) + delta)
	return nil
}

// RecordMetric implements Host.
func (d *Driver) RecordMetric(id uint32, v uint64) error {
	if d.histogram[id] {
		d.Histograms[d.metrics[id]] = append(d.Histograms[d.metrics[id]], v)
		return nil
	}
	d.Gauges[d.metrics[id]] = v
	return nil
}

// SetProperty implements Host.
func (d *Driver) SetProperty(path, value string) error {
	if d.Props == nil {
		return errors.New("root context: no stream")
	}
	d.Props[path] = value
	return nil
}
