package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// Metric ids encode their type in their two low bits (metricTypeMask);
// each type numbers its ids in steps of metricIDStep.
const (
	metricTypeMask = 0x3
	metricIDStep   = 0x4
)

// Metric host functions, with Envoy's rules: ids encode the type in their
// two low bits; counters only grow (increment by <= 0 is BAD_ARGUMENT);
// gauges go up and down and record() sets them; histograms only record();
// get_metric of a histogram is BAD_ARGUMENT; an unknown id is NOT_FOUND.

// proxy_define_metric(type, name_ptr, name_size, return_metric_id_ptr)
func abiDefineMetric(v *vm, s []uint64) {
	t := proxywasm.MetricType(s[0])
	if t > proxywasm.MetricHistogram {
		setStatus(s, proxywasm.StatusBadArgument)
		return
	}
	name, ok := v.readString(uint32(s[1]), uint32(s[2]))
	if !ok {
		setStatus(s, proxywasm.StatusInvalidMemoryAccess)
		return
	}
	m := v.gen.h.metrics.define(t, name)
	v.nextMetric[t]++
	id := v.nextMetric[t]*metricIDStep + uint32(t)
	v.metrics[id] = m
	if !v.writeU32(uint32(s[3]), id) {
		setStatus(s, proxywasm.StatusInvalidMemoryAccess)
		return
	}
	setStatus(s, proxywasm.StatusOK)
}

// proxy_increment_metric(metric_id, offset i64)
func abiIncrementMetric(v *vm, s []uint64) {
	id, offset := uint32(s[0]), int64(s[1])
	m, ok := v.metrics[id]
	switch proxywasm.MetricType(id & metricTypeMask) {
	case proxywasm.MetricCounter:
		if !ok {
			setStatus(s, proxywasm.StatusNotFound)
			return
		}
		if offset <= 0 {
			setStatus(s, proxywasm.StatusBadArgument)
			return
		}
		m.value.Add(offset)
	case proxywasm.MetricGauge:
		if !ok {
			setStatus(s, proxywasm.StatusNotFound)
			return
		}
		m.value.Add(offset)
	default:
		setStatus(s, proxywasm.StatusBadArgument)
		return
	}
	setStatus(s, proxywasm.StatusOK)
}

// proxy_record_metric(metric_id, value u64)
func abiRecordMetric(v *vm, s []uint64) {
	id, value := uint32(s[0]), s[1]
	m, ok := v.metrics[id]
	if !ok {
		setStatus(s, proxywasm.StatusNotFound)
		return
	}
	switch m.typ {
	case proxywasm.MetricCounter:
		m.value.Add(int64(value))
	case proxywasm.MetricGauge:
		m.value.Store(int64(value))
	case proxywasm.MetricHistogram:
		m.record(value)
	}
	setStatus(s, proxywasm.StatusOK)
}

// proxy_get_metric(metric_id, return_value_ptr)
func abiGetMetric(v *vm, s []uint64) {
	id := uint32(s[0])
	m, ok := v.metrics[id]
	switch proxywasm.MetricType(id & metricTypeMask) {
	case proxywasm.MetricCounter, proxywasm.MetricGauge:
		if !ok {
			setStatus(s, proxywasm.StatusNotFound)
			return
		}
	default:
		setStatus(s, proxywasm.StatusBadArgument)
		return
	}
	if !v.writeU64(uint32(s[1]), uint64(m.value.Load())) {
		setStatus(s, proxywasm.StatusInvalidMemoryAccess)
		return
	}
	setStatus(s, proxywasm.StatusOK)
}
