package filter

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// fakeHost is an in-memory Host: per-stream header maps and buffers,
// recorded local replies and continues, queued callouts and metrics.
type fakeHost struct {
	now       time.Time
	logs      []string
	streams   map[uint32]*fakeStream
	current   uint32
	calls     []*fakeCall
	nextToken uint32
	grpcBuf   []byte
	metricIDs map[string]uint32
	metricVal map[string]int64
	hist      map[string][]uint64
	failCall  bool // GrpcCall fails (cluster unknown)
}

type fakeStream struct {
	maps      [4]map[string]string
	bufs      map[BufferType][]byte
	reply     *fakeReply
	continued []StreamType
	gone      bool
	props     map[string]string
}

type fakeReply struct {
	code    Code
	message string
	headers map[string]string
}

type fakeCall struct {
	token                    uint32
	stream                   uint32
	cluster, service, method string
	authority                string
	msg                      []byte
	timeout                  time.Duration
	metadata                 [][2]string
}

func newFakeHost() *fakeHost {
	return &fakeHost{
		now:       time.Unix(1700000000, 0),
		streams:   map[uint32]*fakeStream{},
		metricIDs: map[string]uint32{},
		metricVal: map[string]int64{},
		hist:      map[string][]uint64{},
	}
}

func (h *fakeHost) stream(id uint32) *fakeStream {
	fs, ok := h.streams[id]
	if !ok {
		fs = &fakeStream{bufs: map[BufferType][]byte{}, props: map[string]string{}}
		for i := range fs.maps {
			fs.maps[i] = map[string]string{}
		}
		h.streams[id] = fs
	}
	return fs
}

func (h *fakeHost) cur() *fakeStream { return h.stream(h.current) }

func (h *fakeHost) Log(l LogLevel, msg string) { h.logs = append(h.logs, fmt.Sprintf("%d %s", l, msg)) }
func (h *fakeHost) Now() time.Time {
	h.now = h.now.Add(time.Microsecond)
	return h.now
}

func (h *fakeHost) GetHeader(m MapType, key string) (string, bool) {
	v, ok := h.cur().maps[m][key]
	return v, ok
}

func (h *fakeHost) ReplaceHeader(m MapType, key, value string) error {
	h.cur().maps[m][key] = value
	return nil
}

func (h *fakeHost) RemoveHeader(m MapType, key string) error {
	delete(h.cur().maps[m], key)
	return nil
}

func (h *fakeHost) GetBuffer(b BufferType, start, size int) ([]byte, error) {
	var buf []byte
	if b == GrpcReceive {
		buf = h.grpcBuf
	} else {
		buf = h.cur().bufs[b]
	}
	if start > len(buf) {
		return nil, errors.New("bad argument")
	}
	end := start + size
	if end > len(buf) {
		end = len(buf)
	}
	return append([]byte(nil), buf[start:end]...), nil
}

func (h *fakeHost) SetBuffer(b BufferType, data []byte) error {
	h.cur().bufs[b] = append([]byte(nil), data...)
	return nil
}

func (h *fakeHost) SendLocalReply(c Code, msg string, headers [][2]string) error {
	fs := h.cur()
	if fs.reply != nil {
		return errors.New("second local reply")
	}
	r := &fakeReply{code: c, message: msg, headers: map[string]string{}}
	for _, kv := range headers {
		r.headers[kv[0]] = kv[1]
	}
	fs.reply = r
	return nil
}

func (h *fakeHost) ContinueStream(s StreamType) error {
	h.cur().continued = append(h.cur().continued, s)
	return nil
}

func (h *fakeHost) GrpcCall(cluster, authority, service, method string, md [][2]string, msg []byte, timeout time.Duration) (uint32, error) {
	if h.failCall {
		return 0, errors.New("cluster not found")
	}
	h.nextToken++
	h.calls = append(h.calls, &fakeCall{token: h.nextToken, stream: h.current, cluster: cluster, authority: authority, service: service,
		method: method, msg: append([]byte(nil), msg...), timeout: timeout, metadata: md})
	return h.nextToken, nil
}

func (h *fakeHost) SetEffectiveContext(id uint32) error {
	if fs, ok := h.streams[id]; !ok || fs.gone {
		return ErrStreamGone
	}
	h.current = id
	return nil
}

func (h *fakeHost) DefineMetric(t MetricType, name string) (uint32, error) {
	if strings.Contains(name, " ") {
		return 0, errors.New("bad name")
	}
	id, ok := h.metricIDs[name]
	if !ok {
		id = uint32(len(h.metricIDs) + 1)
		h.metricIDs[name] = id
	}
	return id, nil
}

func (h *fakeHost) metricName(id uint32) string {
	for n, i := range h.metricIDs {
		if i == id {
			return n
		}
	}
	return "?"
}

func (h *fakeHost) IncrementMetric(id uint32, d int64) error {
	h.metricVal[h.metricName(id)] += d
	return nil
}

func (h *fakeHost) RecordMetric(id uint32, v uint64) error {
	n := h.metricName(id)
	h.hist[n] = append(h.hist[n], v)
	return nil
}

// SetProperty stores on the effective stream; like Envoy and wasmhost it
// refuses the root context (no stream).
func (h *fakeHost) SetProperty(path, value string) error {
	if h.current == 0 {
		return errors.New("not found: no stream")
	}
	h.cur().props[path] = value
	return nil
}
