package wasmhost

import "net/http"

// AdminHandler serves the admin endpoints:
//
//   - GET /stats/prometheus: plugin metrics (Envoy naming, see metrics.go),
//     the host's own wasmhost_* metrics, then the OpenTelemetry instruments
//     of the default meter provider (angzarr_command_duration_seconds,
//     angzarr_command_total), Prometheus text format;
//   - GET /ready: 200 "LIVE" while a plugin generation is loaded, else 503.
func (h *Host) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		h.metrics.writePrometheus(w)
		if err := h.commands.writePrometheus(w); err != nil {
			h.log.Warn("stats/prometheus: OpenTelemetry metrics", "err", err)
		}
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if h.gen.Load() == nil {
			http.Error(w, "NOT READY", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("LIVE\n"))
	})
	return mux
}
