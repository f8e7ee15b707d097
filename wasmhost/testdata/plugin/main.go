//go:build wasip1

// Command plugin is wasmhost's conformance plugin: a proxy-wasm module in
// standard Go that exercises every host function. The plugin configuration
// ("k=v;k=v") selects a mode; in mode "test" the request header x-case
// selects a scenario. Results are reported as log lines "T <fact>" that the
// tests read back.
package main

import (
	"strconv"
	"strings"
)

const (
	mapReqHeaders   = 0
	mapReqTrailers  = 1
	mapRespHeaders  = 2
	mapRespTrailers = 3
	mapCallHeaders  = 6

	bufReqBody    = 0
	bufRespBody   = 1
	bufCallResp   = 4
	bufGRPCRecv   = 5
	bufVMConfig   = 6
	bufPluginConf = 7

	logInfo = 2
)

var (
	rootID   uint32 // the first root context (the main plugin's)
	config   = map[string]string{}
	contexts = map[uint32]*httpCtx{}
	// calls maps a callout to the stream context that made it. Envoy
	// numbers callouts per root context (several plugins may share the
	// VM, each its own root) and HTTP apart from gRPC, so the key is all
	// three.
	calls   = map[callKey]uint32{}
	queueID uint32
	ticks   int

	// With peak_streams=1 the gauge peak_streams is the most stream
	// contexts alive at once (created, not yet deleted): the handlers
	// running on this VM.
	countPeak   bool
	peakGauge   uint32
	liveStreams uint64
	peakStreams uint64
)

// callKey names a callout: the root context that made it, its token, and
// whether it is an HTTP call.
type callKey struct {
	root, token uint32
	http        bool
}

type httpCtx struct {
	id              uint32
	root            uint32
	kase            string
	paused          bool
	bodyWhilePaused bool
}

func t(msg string) { logf(logInfo, "T "+msg) }

func st(name string, status uint32) { t(name + "=" + strconv.Itoa(int(status))) }

func init() {
	// proxy_log is on the _initialize allow-list.
	t("init")
}

func main() {}

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion() {}

//go:wasmexport proxy_on_context_create
func onContextCreate(id, parent uint32) {
	if parent == 0 {
		if rootID == 0 {
			rootID = id
		}
		return
	}
	contexts[id] = &httpCtx{id: id, root: parent}
	if countPeak {
		liveStreams++
		if liveStreams > peakStreams {
			peakStreams = liveStreams
			proxy_record_metric(peakGauge, peakStreams)
		}
	}
}

//go:wasmexport proxy_on_vm_start
func onVMStart(root, size uint32) uint32 {
	b, _ := getBuffer(bufVMConfig, 0, size)
	t("vm_start vm_config=" + string(b))
	return 1
}

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) uint32 {
	b, s := getBuffer(bufPluginConf, 0, size)
	t("configure status=" + strconv.Itoa(int(s)) + " config=" + string(b))
	for _, kv := range strings.Split(string(b), ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			config[k] = v
		}
	}
	if config["fail_configure"] == "1" {
		return 0
	}
	if config["peak_streams"] == "1" {
		n := "peak_streams"
		st("define_peak_streams", proxy_define_metric(1, sp(n), uint32(len(n)), &peakGauge))
		countPeak = true
	}
	if config["tick"] != "" {
		ms, _ := strconv.Atoi(config["tick"])
		st("set_tick", proxy_set_tick_period_milliseconds(uint32(ms)))
	}
	name := "q"
	st("register_queue", proxy_register_shared_queue(sp(name), 1, &queueID))
	return 1
}

//go:wasmexport proxy_on_tick
func onTick(root uint32) {
	ticks++
	t("tick " + strconv.Itoa(ticks) + " root=" + strconv.Itoa(int(root)))
	if ticks >= 3 {
		proxy_set_tick_period_milliseconds(0)
	}
}

//go:wasmexport proxy_on_queue_ready
func onQueueReady(root, id uint32) {
	var p, n uint32
	s := proxy_dequeue_shared_queue(id, &p, &n)
	t("queue_ready root=" + strconv.Itoa(int(root)) + " status=" + strconv.Itoa(int(s)) + " item=" + string(take(p, n)))
	st("dequeue_again", proxy_dequeue_shared_queue(id, &p, &n))
}

//go:wasmexport proxy_on_done
func onDone(id uint32) uint32 {
	if id == rootID {
		t("root done")
	}
	return 1
}

//go:wasmexport proxy_on_log
func onLog(id uint32) {
	if c := contexts[id]; c != nil && c.kase != "" {
		t("on_log " + c.kase)
	}
}

//go:wasmexport proxy_on_delete
func onDelete(id uint32) {
	if c := contexts[id]; c != nil && c.kase != "" {
		t("on_delete " + c.kase)
	}
	if _, ok := contexts[id]; ok && countPeak {
		liveStreams--
	}
	delete(contexts, id)
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(id, n, eos uint32) uint32 {
	if config["mode"] != "test" {
		return 0
	}
	c := contexts[id]
	c.kase, _ = getHeader(mapReqHeaders, "x-case")
	// The facts the angzarr filter hands to the host, when the request
	// names them.
	for _, k := range []string{"domain", "root", "correlation_id", "outcome"} {
		if v, s := getHeader(mapReqHeaders, "x-"+k); s == 0 {
			setProperty("angzarr."+k, v)
		}
	}
	switch c.kase {
	case "trace", "trace-nomd", "trace-http":
		// Report the trace context the plugin sees; "trace" forwards it
		// into its callout as the angzarr filter does, "trace-nomd" makes
		// the callout without it, "trace-http" makes none.
		tp, _ := getHeader(mapReqHeaders, "traceparent")
		ts, _ := getHeader(mapReqHeaders, "tracestate")
		t("traceparent=" + tp + " tracestate=" + ts)
		if c.kase == "trace-http" {
			return 0
		}
		var md [][2]string
		if c.kase == "trace" && tp != "" {
			md = append(md, [2]string{"traceparent", tp}, [2]string{"tracestate", ts})
		}
		c.paused = true
		grpcCallMD(c, "echo", "grpc.testing.TestService", "EmptyCall", nil, md)
		return 1
	case "headers-hold", "headers-hold-continue", "headers-hold-stuck":
		// Stop the headers; with allow_on_headers_stop_iteration the body
		// still comes (onRequestBody lets them go at its end).
		return 1
	case "headers":
		return caseHeaders()
	case "setpairs":
		pairs, _ := getPairs(mapReqHeaders)
		var out [][2]string
		for _, p := range pairs {
			if strings.HasPrefix(p[0], ":") || p[0] == "content-type" || p[0] == "te" {
				out = append(out, p)
			}
		}
		out = append(out, [2]string{"x-only", "this"})
		b := encodePairs(out)
		st("set_pairs", proxy_set_header_map_pairs(mapReqHeaders, bp(b), uint32(len(b))))
	case "headers-pause":
		c.paused = true
		callout(c, "/delay?ms=30")
		return 1
	case "local-reply":
		sendLocal(403, "denied by plugin", [][2]string{{"x-local-reply", "yes"}}, 7)
		return 1
	case "local-reply-http":
		sendLocal(418, "short and stout", [][2]string{{"x-local-reply", "yes"}}, -1)
		return 1
	case "grpc-call":
		c.paused = true
		grpcCall(c, "echo", "grpc.testing.TestService", "UnaryCall", []byte{0x1a, 0x03, 0x12, 0x01, 0x41})
		return 1
	case "grpc-call-istio-name":
		// An Istio cluster name is no valid :authority (issue #17).
		c.paused = true
		grpcCall(c, istioEcho, "grpc.testing.TestService", "UnaryCall", []byte{0x1a, 0x03, 0x12, 0x01, 0x41})
		return 1
	case "grpc-call-istio-authority":
		// The same cluster, with envoy_grpc.authority set.
		c.paused = true
		grpcCall(c, string(grpcService(istioEcho, "echo.default.svc.cluster.local")), "grpc.testing.TestService", "UnaryCall", []byte{0x1a, 0x03, 0x12, 0x01, 0x41})
		return 1
	case "grpc-call-original-dst":
		// Istio's inbound cluster in passthrough mode (ORIGINAL_DST).
		c.paused = true
		grpcCall(c, "inbound|50051||", "grpc.testing.TestService", "UnaryCall", nil)
		return 1
	case "grpc-call-wait":
		// A call that stays in flight for a second.
		c.paused = true
		grpcCallTimeout(c, "echo", "slow.Service", "Wait", nil, nil, 1000)
		return 1
	case "grpc-cancel":
		// Cancels the token in x-token from this stream's root context.
		v, _ := getHeader(mapReqHeaders, "x-token")
		n, _ := strconv.Atoi(v)
		st("grpc_cancel", proxy_grpc_cancel(uint32(n)))
	case "grpc-call-unimplemented":
		c.paused = true
		grpcCall(c, "echo", "grpc.testing.TestService", "UnimplementedCall", nil)
		return 1
	case "grpc-call-unreachable":
		c.paused = true
		grpcCall(c, "nowhere", "grpc.testing.TestService", "UnaryCall", nil)
		return 1
	case "http-call-timeout":
		calloutTimeout(c, "/delay?ms=5000", 50)
	case "grpc-call-timeout":
		c.paused = true
		grpcCallTimeout(c, "echo", "slow.Service", "Wait", nil, nil, 50)
		return 1
	case "grpc-call-bad-cluster":
		var token uint32
		svc := "no-such-cluster"
		st("grpc_call_bad_cluster", proxy_grpc_call(sp(svc), uint32(len(svc)), nil, 0, nil, 0, nil, 0, nil, 0, 1000, &token))
	case "grpc-call-unknown-service":
		// A GrpcService naming a cluster the host lacks.
		var token uint32
		svc := grpcService("no-such-cluster", "")
		st("grpc_call_unknown_service", proxy_grpc_call(bp(svc), uint32(len(svc)), nil, 0, nil, 0, nil, 0, nil, 0, 1000, &token))
		t("grpc_call_unknown_service_token=" + strconv.Itoa(int(token)))
	case "grpc-stream":
		c.paused = true
		grpcStream(c)
		return 1
	case "effective-gone":
		callout(c, "/delay?ms=50")
	case "properties":
		caseProperties()
	case "metrics":
		caseMetrics()
	case "shared":
		caseShared()
	case "queue":
		var id uint32
		name := "q"
		st("resolve", proxy_resolve_shared_queue(nil, 0, sp(name), 1, &id))
		t("resolved_same=" + strconv.FormatBool(id == queueID))
		other := "nope"
		st("resolve_unknown", proxy_resolve_shared_queue(nil, 0, sp(other), uint32(len(other)), &id))
		item := "hello"
		st("enqueue", proxy_enqueue_shared_queue(queueID, sp(item), uint32(len(item))))
		st("enqueue_unknown", proxy_enqueue_shared_queue(9999, sp(item), uint32(len(item))))
	case "misc":
		caseMisc()
	case "trap-alloc":
		trapInAlloc = true
		getHeader(mapReqHeaders, ":path")
	case "panic":
		panic("boom")
	case "close-stream":
		st("close_stream", proxy_close_stream(0))
		return 1
	case "alloc-stats":
		getHeader(mapReqHeaders, ":path")
		t("alloc_calls=" + strconv.Itoa(allocCalls) + " malloc_calls=" + strconv.Itoa(mallocCalls))
	case "stdout":
		println("T via-stderr")
	}
	return 0
}

func caseHeaders() uint32 {
	path, s := getHeader(mapReqHeaders, ":path")
	t("path=" + path + " status=" + strconv.Itoa(int(s)))
	m, _ := getHeader(mapReqHeaders, ":method")
	a, _ := getHeader(mapReqHeaders, ":authority")
	t("method=" + m + " authority=" + a)
	_, s = getHeader(mapReqHeaders, "x-missing")
	st("get_missing", s)
	v, _ := getHeader(mapReqHeaders, "X-Multi")
	t("multi_first=" + v)
	st("add", addHeader(mapReqHeaders, "X-Added", "added"))
	st("replace", replaceHeader(mapReqHeaders, "x-replace", "new"))
	st("remove", removeHeader(mapReqHeaders, "x-remove"))
	st("replace_path", replaceHeader(mapReqHeaders, ":path", "/echo/rewritten"))
	pairs, s := getPairs(mapReqHeaders)
	t("pairs_status=" + strconv.Itoa(int(s)) + " first=" + pairs[0][0])
	var size uint32
	st("size", proxy_get_header_map_size(mapReqHeaders, &size))
	want := 0
	for _, p := range pairs {
		want += len(p[0]) + len(p[1])
	}
	t("size_ok=" + strconv.FormatBool(int(size) == want))
	_, s = getHeader(mapRespHeaders, ":status")
	st("resp_map_in_request", s)
	st("add_resp_in_request", addHeader(mapRespHeaders, "x", "y"))
	p2, s := getPairs(mapRespHeaders)
	t("resp_pairs status=" + strconv.Itoa(int(s)) + " n=" + strconv.Itoa(len(p2)))
	_, s = getHeader(99, "x")
	st("bad_map", s)
	st("add_call_headers", addHeader(mapCallHeaders, "x", "y"))
	return 0
}

func sendLocal(code uint32, body string, hdrs [][2]string, grpc int32) {
	h := encodePairs(hdrs)
	details := "plugin_reply"
	st("send_local_response", proxy_send_local_response(code, sp(details), uint32(len(details)), sp(body), uint32(len(body)), bp(h), uint32(len(h)), grpc))
}

func callout(c *httpCtx, path string) { calloutTimeout(c, path, 5000) }

func calloutTimeout(c *httpCtx, path string, timeoutMS uint32) {
	h := encodePairs([][2]string{{":method", "GET"}, {":path", path}, {":authority", "echo"}})
	var token uint32
	cluster := "echo"
	s := proxy_http_call(sp(cluster), uint32(len(cluster)), bp(h), uint32(len(h)), nil, 0, nil, 0, timeoutMS, &token)
	st("http_call", s)
	t("http_token=" + strconv.Itoa(int(token)) + " plugin=" + pluginName())
	calls[callKey{c.root, token, true}] = c.id
}

func grpcCall(c *httpCtx, cluster, svc, method string, msg []byte) {
	grpcCallMD(c, cluster, svc, method, msg, [][2]string{{"x-from-plugin", "1"}})
}

func grpcCallMD(c *httpCtx, cluster, svc, method string, msg []byte, pairs [][2]string) {
	grpcCallTimeout(c, cluster, svc, method, msg, pairs, 5000)
}

func grpcCallTimeout(c *httpCtx, cluster, svc, method string, msg []byte, pairs [][2]string, timeoutMS uint32) {
	md := encodePairs(pairs)
	var token uint32
	s := proxy_grpc_call(sp(cluster), uint32(len(cluster)), sp(svc), uint32(len(svc)), sp(method), uint32(len(method)), bp(md), uint32(len(md)), bp(msg), uint32(len(msg)), timeoutMS, &token)
	st("grpc_call", s)
	t("grpc_token_odd=" + strconv.FormatBool(token%2 == 1))
	t("grpc_token=" + strconv.Itoa(int(token)) + " plugin=" + pluginName())
	calls[callKey{c.root, token, false}] = c.id
	if s != 0 {
		proxy_continue_stream(0)
	}
}

var streamToken uint32

func grpcStream(c *httpCtx) {
	cluster, svc, method := "echo", "grpc.testing.TestService", "FullDuplexCall"
	s := proxy_grpc_stream(sp(cluster), uint32(len(cluster)), sp(svc), uint32(len(svc)), sp(method), uint32(len(method)), nil, 0, &streamToken)
	st("grpc_stream", s)
	t("stream_token_even=" + strconv.FormatBool(streamToken%2 == 0))
	calls[callKey{c.root, streamToken, false}] = c.id
	msg := []byte{0x12, 0x02, 0x08, 0x03} // response_parameters { size: 3 }
	st("grpc_send", proxy_grpc_send(streamToken, bp(msg), uint32(len(msg)), 0))
	st("grpc_close", proxy_grpc_close(streamToken))
	st("grpc_send_call_token", proxy_grpc_send(1, nil, 0, 0))
}

//go:wasmexport proxy_on_request_body
func onRequestBody(id, size, eos uint32) uint32 {
	c := contexts[id]
	if c == nil || c.kase == "" {
		return 0
	}
	if c.paused {
		c.bodyWhilePaused = true
	}
	switch c.kase {
	case "body-buffer":
		t("req_body size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
		if eos == 0 {
			return 1
		}
		b, _ := getBuffer(bufReqBody, 0, size)
		st("set_replace", setBuffer(bufReqBody, 0, size, []byte(strings.ToUpper(string(b)))))
		st("set_prepend", setBuffer(bufReqBody, 0, 0, []byte("<")))
		var n, flags uint32
		proxy_get_buffer_status(bufReqBody, &n, &flags)
		st("set_append", setBuffer(bufReqBody, n, 0, []byte(">")))
		st("set_middle", setBuffer(bufReqBody, 1, 1, []byte("x")))
		part, _ := getBuffer(bufReqBody, 1, 3)
		t("partial=" + string(part))
		empty, s := getBuffer(bufReqBody, 1000, 10)
		t("beyond status=" + strconv.Itoa(int(s)) + " len=" + strconv.Itoa(len(empty)))
		return 0
	case "headers-pause":
		t("req_body_after_continue=" + strconv.FormatBool(!c.bodyWhilePaused))
	case "headers-hold-stuck":
		// Never lets the request go.
		t("stuck_body size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
		return 1
	case "headers-hold", "headers-hold-continue":
		t("held_body size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
		if eos == 0 {
			return 1
		}
		// The held headers are still the plugin's to change.
		st("held_add_header", addHeader(mapReqHeaders, "x-held", "1"))
		if c.kase == "headers-hold-continue" {
			st("held_continue", proxy_continue_stream(0))
			return 1
		}
	}
	return 0
}

//go:wasmexport proxy_on_request_trailers
func onRequestTrailers(id, n uint32) uint32 { return 0 }

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(id, n, eos uint32) uint32 {
	c := contexts[id]
	if c == nil || c.kase == "" {
		return 0
	}
	switch c.kase {
	case "local-reply", "local-reply-http":
		s, _ := getHeader(mapRespHeaders, ":status")
		g, _ := getHeader(mapRespHeaders, "grpc-status")
		t("local_reply_response_headers status=" + s + " grpc-status=" + g + " eos=" + strconv.Itoa(int(eos)))
	case "headers":
		st("resp_add", addHeader(mapRespHeaders, "x-resp-added", "yes"))
		_, s := getHeader(mapReqHeaders, ":path")
		st("req_map_in_response", s)
		_, s = getProperty("request", "path")
		st("request_path_in_response", s)
	case "resp-eos":
		t("resp_headers eos=" + strconv.Itoa(int(eos)))
	case "resp-trailers-pause", "trailer-create":
		replaceHeader(mapRespHeaders, "content-length", "")
		removeHeader(mapRespHeaders, "content-length")
	}
	return 0
}

//go:wasmexport proxy_on_response_body
func onResponseBody(id, size, eos uint32) uint32 {
	c := contexts[id]
	if c == nil || c.kase == "" {
		return 0
	}
	switch c.kase {
	case "resp-trailers-pause":
		return 1
	case "resp-eos": // buffer the whole body, release it at its end
		if eos == 0 {
			return 1
		}
	case "trailer-create":
		if eos == 1 {
			st("create_trailer", addHeader(mapRespTrailers, "x-created", "by-plugin"))
		}
	}
	return 0
}

//go:wasmexport proxy_on_response_trailers
func onResponseTrailers(id, n uint32) uint32 {
	c := contexts[id]
	if c == nil || c.kase == "" {
		return 0
	}
	if c.kase == "resp-trailers-pause" {
		b, s := getBuffer(bufRespBody, 0, 1<<20)
		t("buffered_resp_body status=" + strconv.Itoa(int(s)) + " len=" + strconv.Itoa(len(b)))
		callout(c, "/delay?ms=10")
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_http_call_response
func onHTTPCallResponse(root, token, nh, bodySize, nt uint32) {
	id, known := calls[callKey{root, token, true}]
	delete(calls, callKey{root, token, true})
	status, _ := getHeader(mapCallHeaders, ":status")
	body, _ := getBuffer(bufCallResp, 0, bodySize)
	t("http_call_response root_ok=" + strconv.FormatBool(known) + " status=" + status + " body=" + string(body) + " headers=" + strconv.Itoa(int(nh)))
	s := proxy_set_effective_context(id)
	c := contexts[id]
	if c == nil {
		st("set_effective_context_gone", s)
		return
	}
	st("set_effective_context", s)
	switch c.kase {
	case "headers-pause":
		c.paused = false
		st("add_after_callout", addHeader(mapReqHeaders, "x-callout-status", status))
		st("continue", proxy_continue_stream(0))
	case "resp-trailers-pause":
		st("replace_body", setBuffer(bufRespBody, 0, 1<<30, []byte("replaced")))
		st("replace_trailer", replaceHeader(mapRespTrailers, "x-echo-trailer", "changed"))
		st("continue_resp", proxy_continue_stream(1))
	}
}

//go:wasmexport proxy_on_grpc_receive_initial_metadata
func onGRPCInitialMetadata(root, token, n uint32) {
	t("grpc_initial_metadata n_ok=" + strconv.FormatBool(n > 0))
}

//go:wasmexport proxy_on_grpc_receive
func onGRPCReceive(root, token, size uint32) {
	b, _ := getBuffer(bufGRPCRecv, 0, size)
	key := callKey{root, token, false}
	id, known := calls[key]
	t("grpc_receive root_ok=" + strconv.FormatBool(known) + " size=" + strconv.Itoa(int(size)) + " len=" + strconv.Itoa(len(b)))
	if token%2 == 1 {
		delete(calls, key)
		resume(id, "ok")
	}
}

//go:wasmexport proxy_on_grpc_receive_trailing_metadata
func onGRPCTrailingMetadata(root, token, n uint32) {
	t("grpc_trailing_metadata")
}

//go:wasmexport proxy_on_grpc_close
func onGRPCClose(root, token, status uint32) {
	var code, p, n uint32
	proxy_get_status(&code, &p, &n)
	msg := string(take(p, n))
	t("grpc_close status=" + strconv.Itoa(int(status)) + " get_status=" + strconv.Itoa(int(code)) + " message=" + msg)
	id := calls[callKey{root, token, false}]
	delete(calls, callKey{root, token, false})
	if token%2 == 0 {
		resume(id, "stream-closed")
		return
	}
	if proxy_set_effective_context(id) == 0 {
		sendLocal(503, "callout failed: "+msg, nil, 14)
	}
}

// pluginName is the plugin_name property of the running context.
func pluginName() string {
	n, _ := getProperty("plugin_name")
	return n
}

func resume(id uint32, result string) {
	if proxy_set_effective_context(id) != 0 {
		return
	}
	if c := contexts[id]; c != nil {
		c.paused = false
	}
	addHeader(mapReqHeaders, "x-grpc-call", result)
	proxy_continue_stream(0)
}

func caseProperties() {
	for _, p := range [][]string{
		{"plugin_name"}, {"plugin_root_id"}, {"plugin_vm_id"}, {"node", "id"}, {"node", "metadata", "team"},
		{"request", "path"}, {"request", "method"}, {"request", "url_path"}, {"request", "headers", "x-prop"},
		{"request", "host"}, {"source", "address"}, {"destination", "address"},
	} {
		v, s := getProperty(p...)
		t("prop " + strings.Join(p, ".") + "=" + v + " status=" + strconv.Itoa(int(s)))
	}
	v, s := getProperty("destination", "port")
	t("prop destination.port len=" + strconv.Itoa(len(v)) + " status=" + strconv.Itoa(int(s)))
	_, s = getProperty("no", "such")
	st("prop_unknown", s)
	path, val := "my_prop", "my_value"
	st("set_property", proxy_set_property(sp(path), uint32(len(path)), sp(val), uint32(len(val))))
	v, s = getProperty("my_prop")
	t("prop my_prop=" + v + " status=" + strconv.Itoa(int(s)))
}

func setProperty(path, val string) {
	st("set_property "+path, proxy_set_property(sp(path), uint32(len(path)), sp(val), uint32(len(val))))
}

func caseMetrics() {
	var c, g, h, c2 uint32
	def := func(typ uint32, n string, id *uint32) {
		st("define_"+n, proxy_define_metric(typ, sp(n), uint32(len(n)), id))
	}
	def(0, "test_requests_total", &c)
	def(1, "test.inflight", &g)
	def(2, "test_latency", &h)
	def(0, "test_requests_total", &c2)
	st("define_bad_type", proxy_define_metric(7, nil, 0, &c2))
	st("inc_counter", proxy_increment_metric(c, 2))
	st("inc_counter_again", proxy_increment_metric(c2, 1))
	st("inc_counter_zero", proxy_increment_metric(c, 0))
	st("inc_gauge", proxy_increment_metric(g, 5))
	st("dec_gauge", proxy_increment_metric(g, -2))
	st("record_hist", proxy_record_metric(h, 7))
	st("record_hist2", proxy_record_metric(h, 700))
	st("inc_hist", proxy_increment_metric(h, 1))
	var v uint64
	st("get_counter", proxy_get_metric(c, &v))
	t("counter_value=" + strconv.FormatUint(v, 10))
	proxy_get_metric(g, &v)
	t("gauge_value=" + strconv.FormatUint(v, 10))
	st("get_hist", proxy_get_metric(h, &v))
	st("get_unknown", proxy_get_metric(4000, &v))
	st("inc_unknown", proxy_increment_metric(4000, 1))
}

func caseShared() {
	key := "k"
	var p, n, cas uint32
	st("get_missing", proxy_get_shared_data(sp(key), 1, &p, &n, &cas))
	v1 := "v1"
	st("set", proxy_set_shared_data(sp(key), 1, sp(v1), 2, 0))
	s := proxy_get_shared_data(sp(key), 1, &p, &n, &cas)
	t("get status=" + strconv.Itoa(int(s)) + " value=" + string(take(p, n)) + " cas_nonzero=" + strconv.FormatBool(cas != 0))
	v2 := "v2"
	st("set_bad_cas", proxy_set_shared_data(sp(key), 1, sp(v2), 2, cas+1000))
	st("set_good_cas", proxy_set_shared_data(sp(key), 1, sp(v2), 2, cas))
	st("set_stale_cas", proxy_set_shared_data(sp(key), 1, sp(v1), 2, cas))
	proxy_get_shared_data(sp(key), 1, &p, &n, &cas)
	t("final=" + string(take(p, n)))
}

func caseMisc() {
	st("continue_upstream", proxy_continue_stream(3))
	st("continue_bad", proxy_continue_stream(9))
	fn := "nope"
	var p, n uint32
	st("foreign", proxy_call_foreign_function(sp(fn), uint32(len(fn)), nil, 0, &p, &n))
	_, s := getBuffer(99, 0, 10)
	st("buffer_bad_type", s)
	_, s = getBuffer(bufPluginConf, 0, 10)
	st("plugin_config_outside_configure", s)
	b, s := getBuffer(bufVMConfig, 0, 100)
	t("vm_config status=" + strconv.Itoa(int(s)) + " value=" + string(b))
	_, s = getBuffer(bufReqBody, 0, 10)
	st("req_body_in_headers", s)
	st("set_vm_config", setBuffer(bufVMConfig, 0, 100, []byte("x")))
	var level uint32
	st("get_log_level", proxy_get_log_level(&level))
	t("log_level=" + strconv.Itoa(int(level)))
	var now uint64
	st("get_time", proxy_get_current_time_nanoseconds(&now))
	t("time_nonzero=" + strconv.FormatBool(now > 1_600_000_000_000_000_000))
	st("log_bad_level", proxy_log(9, nil, 0))
	st("log_bad_memory", proxy_log(2, unsafePtr(0xFFFFFFF0), 100))
	st("done_not_pending", proxy_done())
	st("set_effective_unknown", proxy_set_effective_context(99999))
	st("set_effective_root", proxy_set_effective_context(rootID))
	_, s = getHeader(mapReqHeaders, ":path")
	st("root_effective_req_headers", s)
}

// istioEcho is the echo cluster under an Istio-shaped name.
const istioEcho = "outbound|9||echo.default.svc.cluster.local"

// grpcService encodes envoy.config.core.v3.GrpcService{envoy_grpc:
// {cluster_name, authority}} (both strings shorter than 128 bytes).
func grpcService(cluster, authority string) []byte {
	inner := []byte{0x0a, byte(len(cluster))}
	inner = append(inner, cluster...)
	inner = append(inner, 0x12, byte(len(authority)))
	inner = append(inner, authority...)
	return append([]byte{0x0a, byte(len(inner))}, inner...)
}
