package telemetry

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// consoleExporter prints one line per finished span:
//
//	span saga.orchestrate 2.1ms trace=4bf9… span=00f0… parent=a3ce… service=angzarr-dev domain=order root=… correlation_id=… [error: …]
type consoleExporter struct {
	mu sync.Mutex
	w  io.Writer
}

var _ sdktrace.SpanExporter = (*consoleExporter)(nil)

// ExportSpans implements sdktrace.SpanExporter.
func (e *consoleExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	var b strings.Builder
	for _, s := range spans {
		sc := s.SpanContext()
		fmt.Fprintf(&b, "span %s %v trace=%s span=%s", s.Name(), s.EndTime().Sub(s.StartTime()).Round(time.Microsecond), sc.TraceID(), sc.SpanID())
		if p := s.Parent(); p.IsValid() {
			fmt.Fprintf(&b, " parent=%s", p.SpanID())
		}
		if v, ok := s.Resource().Set().Value("service.name"); ok {
			fmt.Fprintf(&b, " service=%s", v.String())
		}
		for _, kv := range s.Attributes() {
			fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.String())
		}
		if st := s.Status(); st.Description != "" {
			fmt.Fprintf(&b, " error=%q", st.Description)
		}
		b.WriteByte('\n')
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := io.WriteString(e.w, b.String())
	return err
}

// Shutdown implements sdktrace.SpanExporter.
func (e *consoleExporter) Shutdown(context.Context) error { return nil }
