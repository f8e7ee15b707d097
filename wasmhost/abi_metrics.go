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
func abiDefineMetric(v *vm, s []uint64) proxywasm.Status {
	t := proxywasm.MetricType(s[0])
	if t > proxywasm.MetricHistogram {
		return proxywasm.StatusBadArgument
	}
	name, ok := v.readString(uint32(s[1]), uint32(s[2]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	m := v.gen.h.metrics.define(t, name)
	v.nextMetric[t]++
	id := v.nextMetric[t]*metricIDStep + uint32(t)
	v.metrics[id] = m
	if !v.writeU32(uint32(s[3]), id) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_increment_metric(metric_id, offset i64)
func abiIncrementMetric(v *vm, s []uint64) proxywasm.Status {
	id, offset := uint32(s[0]), int64(s[1])
	m, ok := v.metrics[id]
	switch proxywasm.MetricType(id & metricTypeMask) {
	case proxywasm.MetricCounter:
		if !ok {
			return proxywasm.StatusNotFound
		}
		if offset <= 0 {
			return proxywasm.StatusBadArgument
		}
		m.value.Add(offset)
	case proxywasm.MetricGauge:
		if !ok {
			return proxywasm.StatusNotFound
		}
		m.value.Add(offset)
	default:
		return proxywasm.StatusBadArgument
	}
	return proxywasm.StatusOK
}

// proxy_record_metric(metric_id, value u64)
func abiRecordMetric(v *vm, s []uint64) proxywasm.Status {
	id, value := uint32(s[0]), s[1]
	m, ok := v.metrics[id]
	if !ok {
		return proxywasm.StatusNotFound
	}
	switch m.typ {
	case proxywasm.MetricCounter:
		m.value.Add(int64(value))
	case proxywasm.MetricGauge:
		m.value.Store(int64(value))
	case proxywasm.MetricHistogram:
		m.record(value)
	}
	return proxywasm.StatusOK
}

// proxy_get_metric(metric_id, return_value_ptr)
func abiGetMetric(v *vm, s []uint64) proxywasm.Status {
	id := uint32(s[0])
	m, ok := v.metrics[id]
	switch proxywasm.MetricType(id & metricTypeMask) {
	case proxywasm.MetricCounter, proxywasm.MetricGauge:
		if !ok {
			return proxywasm.StatusNotFound
		}
	default:
		return proxywasm.StatusBadArgument
	}
	if !v.writeU64(uint32(s[1]), uint64(m.value.Load())) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}
