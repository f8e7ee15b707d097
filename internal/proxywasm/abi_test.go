package proxywasm

import "testing"

// TestSpecValues pins the numbers to the proxy-wasm ABI 0.2.1 spec and
// proxy-wasm-cpp-host's wasm_api_impl.h enums: the filter and wasmhost
// both take them from here, so a wrong one would go unnoticed by tests
// that run the one against the other.
func TestSpecValues(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"OK", uint32(StatusOK), 0}, {"NOT_FOUND", uint32(StatusNotFound), 1},
		{"BAD_ARGUMENT", uint32(StatusBadArgument), 2}, {"SERIALIZATION_FAILURE", uint32(StatusSerializationFailure), 3},
		{"PARSE_FAILURE", uint32(StatusParseFailure), 4}, {"INVALID_MEMORY_ACCESS", uint32(StatusInvalidMemoryAccess), 6},
		{"EMPTY", uint32(StatusEmpty), 7}, {"CAS_MISMATCH", uint32(StatusCASMismatch), 8},
		{"INTERNAL_FAILURE", uint32(StatusInternalFailure), 10}, {"BROKEN_CONNECTION", uint32(StatusBrokenConnection), 11},
		{"UNIMPLEMENTED", uint32(StatusUnimplemented), 12},
		{"buffer request body", uint32(BufferRequestBody), 0}, {"buffer response body", uint32(BufferResponseBody), 1},
		{"buffer downstream", uint32(BufferDownstreamData), 2}, {"buffer upstream", uint32(BufferUpstreamData), 3},
		{"buffer http call response", uint32(BufferHTTPCallResponse), 4}, {"buffer grpc receive", uint32(BufferGRPCReceive), 5},
		{"buffer vm config", uint32(BufferVMConfiguration), 6}, {"buffer plugin config", uint32(BufferPluginConfig), 7},
		{"buffer call data", uint32(BufferCallData), 8},
		{"map request headers", uint32(MapRequestHeaders), 0}, {"map request trailers", uint32(MapRequestTrailers), 1},
		{"map response headers", uint32(MapResponseHeaders), 2}, {"map response trailers", uint32(MapResponseTrailers), 3},
		{"map grpc initial", uint32(MapGRPCInitialMetadata), 4}, {"map grpc trailing", uint32(MapGRPCTrailingMetadata), 5},
		{"map call headers", uint32(MapHTTPCallResponseHeaders), 6}, {"map call trailers", uint32(MapHTTPCallResponseTrailers), 7},
		{"stream request", uint32(StreamRequest), 0}, {"stream response", uint32(StreamResponse), 1},
		{"stream downstream", uint32(StreamDownstream), 2}, {"stream upstream", uint32(StreamUpstream), 3},
		{"continue", uint32(ActionContinue), 0}, {"pause", uint32(ActionPause), 1},
		{"continue and don't end", uint32(ActionContinueDontEnd), 2}, {"stop no buffer", uint32(ActionDataStopNoBuffer), 3},
		{"trace", uint32(LogTrace), 0}, {"critical", uint32(LogCritical), 5},
		{"counter", uint32(MetricCounter), 0}, {"gauge", uint32(MetricGauge), 1}, {"histogram", uint32(MetricHistogram), 2},
		// WASI preview 1 witx errno.
		{"ESUCCESS", uint32(ErrnoSuccess), 0}, {"EBADF", uint32(ErrnoBadf), 8}, {"EFAULT", uint32(ErrnoFault), 21},
		{"EINVAL", uint32(ErrnoInval), 28}, {"ENOENT", uint32(ErrnoNoent), 44}, {"ENOSYS", uint32(ErrnoNosys), 52},
		{"EEXIST", uint32(ErrnoExist), 20}, {"ENOTSUP", uint32(ErrnoNotsup), 58},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[Status]string{StatusOK: "OK", StatusCASMismatch: "CAS_MISMATCH", 5: "status 5", 99: "status 99"} {
		if got := st.String(); got != want {
			t.Errorf("Status(%d) = %q, want %q", uint32(st), got, want)
		}
	}
}
