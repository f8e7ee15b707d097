package wasmhost

// Metric host functions, with Envoy's rules: ids encode the type in their
// two low bits; counters only grow (increment by <= 0 is BAD_ARGUMENT);
// gauges go up and down and record() sets them; histograms only record();
// get_metric of a histogram is BAD_ARGUMENT; an unknown id is NOT_FOUND.

// proxy_define_metric(type, name_ptr, name_size, return_metric_id_ptr)
func abiDefineMetric(v *vm, s []uint64) {
	t := metricType(s[0])
	if t > metricHistogram {
		setStatus(s, statusBadArgument)
		return
	}
	name, ok := v.readString(uint32(s[1]), uint32(s[2]))
	if !ok {
		setStatus(s, statusInvalidMemoryAccess)
		return
	}
	m := v.gen.h.metrics.define(t, name)
	v.nextMetric[t]++
	id := v.nextMetric[t]*metricIDStep + uint32(t)
	v.metrics[id] = m
	if !v.writeU32(uint32(s[3]), id) {
		setStatus(s, statusInvalidMemoryAccess)
		return
	}
	setStatus(s, statusOK)
}

// proxy_increment_metric(metric_id, offset i64)
func abiIncrementMetric(v *vm, s []uint64) {
	id, offset := uint32(s[0]), int64(s[1])
	m, ok := v.metrics[id]
	switch metricType(id & metricTypeMask) {
	case metricCounter:
		if !ok {
			setStatus(s, statusNotFound)
			return
		}
		if offset <= 0 {
			setStatus(s, statusBadArgument)
			return
		}
		m.value.Add(offset)
	case metricGauge:
		if !ok {
			setStatus(s, statusNotFound)
			return
		}
		m.value.Add(offset)
	default:
		setStatus(s, statusBadArgument)
		return
	}
	setStatus(s, statusOK)
}

// proxy_record_metric(metric_id, value u64)
func abiRecordMetric(v *vm, s []uint64) {
	id, value := uint32(s[0]), s[1]
	m, ok := v.metrics[id]
	if !ok {
		setStatus(s, statusNotFound)
		return
	}
	switch m.typ {
	case metricCounter:
		m.value.Add(int64(value))
	case metricGauge:
		m.value.Store(int64(value))
	case metricHistogram:
		m.record(value)
	}
	setStatus(s, statusOK)
}

// proxy_get_metric(metric_id, return_value_ptr)
func abiGetMetric(v *vm, s []uint64) {
	id := uint32(s[0])
	m, ok := v.metrics[id]
	switch metricType(id & metricTypeMask) {
	case metricCounter, metricGauge:
		if !ok {
			setStatus(s, statusNotFound)
			return
		}
	default:
		setStatus(s, statusBadArgument)
		return
	}
	if !v.writeU64(uint32(s[1]), uint64(m.value.Load())) {
		setStatus(s, statusInvalidMemoryAccess)
		return
	}
	setStatus(s, statusOK)
}
