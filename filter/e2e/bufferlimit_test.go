//go:build !wasip1

package e2e

import (
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestBufferLimit: Envoy buffers a body the filter stopped only up to the
// listener's per_connection_buffer_limit_bytes (1 MiB by default) and
// answers a larger command 413 (gRPC UNKNOWN) before the filter sees it
// whole. With the limit the control plane sets (the filter's max_body_bytes
// plus 64 KiB), a 1.5 MiB command goes through, and one past max_body_bytes
// gets the filter's RESOURCE_EXHAUSTED, not Envoy's 413.
func TestBufferLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		size  int
		want  codes.Code
	}{
		{"1.5 MiB command, Envoy's default limit", 0, 3 << 19, codes.Unknown},
		{"1.5 MiB command, the control plane's limit", int(controlplane.BufferLimitBytes(0)), 3 << 19, codes.OK},
		{"5 MiB command, the control plane's limit", int(controlplane.BufferLimitBytes(0)), 5 << 20, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, BufferLimitBytes: tc.limit,
				Config: config.Config{}})
			root := newRoot(t)
			cb := command(root, 0, 1)
			pad := protowire.AppendTag(nil, 1000, protowire.BytesType)
			cb.Pages[0].Command.Value = protowire.AppendBytes(append(cb.Pages[0].Command.Value, pad...), []byte(strings.Repeat("p", tc.size)))
			_, err := s.Coordinator().Handle(ctxT(t), cb)
			if tc.want == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
				if pages := stored(t, s, root); len(pages) != 1 {
					t.Fatalf("stored %v", pages)
				}
				return
			}
			wantCode(t, err, tc.want)
			if pages := stored(t, s, root); len(pages) != 0 {
				t.Fatalf("a refused command stored %v", pages)
			}
		})
	}
}
