//go:build wasip1

package abi

import (
	"unsafe"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// The proxy-wasm host functions the filter uses, all from Envoy 1.33's
// module "env". Every one returns a proxy_status_t.

//go:wasmimport env proxy_log
func proxyLog(level proxywasm.LogLevel, msg unsafe.Pointer, size uint32) proxywasm.Status

//go:wasmimport env proxy_get_current_time_nanoseconds
func proxyGetCurrentTimeNanoseconds(ret unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(mapType proxywasm.MapType, key unsafe.Pointer, keySize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(mapType proxywasm.MapType, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) proxywasm.Status

//go:wasmimport env proxy_remove_header_map_value
func proxyRemoveHeaderMapValue(mapType proxywasm.MapType, key unsafe.Pointer, keySize uint32) proxywasm.Status

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(bufType proxywasm.BufferType, start uint32, maxSize uint32, retData unsafe.Pointer, retSize unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_get_buffer_status
func proxyGetBufferStatus(bufType proxywasm.BufferType, retSize unsafe.Pointer, retFlags unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(bufType proxywasm.BufferType, start uint32, size uint32, data unsafe.Pointer, dataSize uint32) proxywasm.Status

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(statusCode uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32,
	headers unsafe.Pointer, headersSize uint32, grpcStatus int32) proxywasm.Status

//go:wasmimport env proxy_continue_stream
func proxyContinueStream(streamType proxywasm.StreamType) proxywasm.Status

//go:wasmimport env proxy_grpc_call
func proxyGrpcCall(service unsafe.Pointer, serviceSize uint32, serviceName unsafe.Pointer, serviceNameSize uint32,
	method unsafe.Pointer, methodSize uint32, metadata unsafe.Pointer, metadataSize uint32,
	message unsafe.Pointer, messageSize uint32, timeoutMillis uint32, retToken unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_get_status
func proxyGetStatus(retCode unsafe.Pointer, retMessage unsafe.Pointer, retMessageSize unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_set_effective_context
func proxySetEffectiveContext(contextID uint32) proxywasm.Status

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(metricType proxywasm.MetricType, name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) proxywasm.Status

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, offset int64) proxywasm.Status

//go:wasmimport env proxy_record_metric
func proxyRecordMetric(id uint32, value uint64) proxywasm.Status

//go:wasmimport env proxy_set_property
func proxySetProperty(path unsafe.Pointer, pathSize uint32, value unsafe.Pointer, valueSize uint32) proxywasm.Status
