package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"github.com/angzarr-mesh/angzarr/internal/telemetry"
)

// logFlags are the logging flags of the server commands.
type logFlags struct {
	level  slog.Level
	format string
}

func (l *logFlags) add(f *pflag.FlagSet) {
	f.TextVar(&l.level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	f.StringVar(&l.format, "log-format", "text", "log format: text or json; records logged in a trace or a command carry trace_id, span_id and correlation_id")
}

// logger returns the logger the flags describe, writing to stderr.
func (l *logFlags) logger() (*slog.Logger, error) {
	return telemetry.NewLogger(os.Stderr, l.format, l.level)
}

// startTelemetry sets up OpenTelemetry for service (OTLP export from the
// standard OTEL_* variables; spans printed to console when it is set) and
// returns its shutdown, to defer.
func startTelemetry(ctx context.Context, service string, console io.Writer, log *slog.Logger) (func(), error) {
	shutdown, err := telemetry.Config{Console: console}.Setup(ctx, service)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := shutdown(context.Background()); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}, nil
}
