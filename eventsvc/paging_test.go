package eventsvc_test

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// megabytePages returns n pages from first, each with an event of about
// 1 MB whose text starts with prefix-<seq>.
func megabytePages(first uint32, n int, prefix string) []*pb.EventPage {
	pages := storetest.Pages(first, n, prefix)
	for i, p := range pages {
		p.Event = storetest.Event(fmt.Sprintf("%s-%d~%s", prefix, first+uint32(i), strings.Repeat("m", 1000000)))
	}
	return pages
}

// pageText is a megabytePages page's text without its padding.
func pageText(t *testing.T, p *pb.EventPage) string {
	t.Helper()
	var s wrapperspb.StringValue
	if err := p.GetEvent().UnmarshalTo(&s); err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(s.GetValue(), "~")
	return text
}

// TestLongHistoryInPages (issue #20, #18): five ~1 MB events make a
// history beyond one gRPC message (4 MiB by default, also for this
// client). Load answers it in pages a client continues (the idempotency
// lookup on the first page), and GetEvents streams it in books that fit,
// by aggregate and by correlation id; before paging both failed with
// RESOURCE_EXHAUSTED.
func TestLongHistoryInPages(t *testing.T) {
	for name, newURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			// Unbounded histories (as of aggregates stored before the
			// bound): paging must carry them anyway.
			addr := eventsvctest.StartConfig(t, eventsvc.Config{Store: newURL(t), Limits: store.Limits{MaxHistoryBytes: -1}})
			conn := eventsvctest.Dial(t, addr)
			es, eq := pb.NewEventStoreClient(conn), pb.NewEventQueryClient(conn)
			ctx := tctx(t)
			domain, root := storetest.Domain(t), uuid.New()
			for seq := uint32(0); seq < 5; seq++ {
				if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, "big"), ExpectedSequence: seq,
					Pages: megabytePages(seq, 1, "e"), IdempotencyKey: fmt.Sprint("k", seq)}); err != nil {
					t.Fatalf("append %d: %v", seq, err)
				}
			}

			first, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, ""), IdempotencyKey: "k2"})
			if err != nil {
				t.Fatalf("first page: %v", err)
			}
			if first.GetMoreFrom() == 0 || first.GetNextSequence() != 5 || proto.Size(first) > 2<<20 {
				t.Fatalf("first page: more_from %d, next %d, %d bytes", first.GetMoreFrom(), first.GetNextSequence(), proto.Size(first))
			}
			if p := first.GetPrior().GetBook().GetPages(); len(p) != 1 || p[0].GetNum() != 2 {
				t.Fatalf("first page: prior %d pages", len(p))
			}
			pages := first.GetBook().GetPages()
			for more, n := first.GetMoreFrom(), 1; more != 0; n++ {
				if n > 5 {
					t.Fatal("paging does not end")
				}
				next, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, ""), FromSequence: more, ToSequence: first.GetNextSequence()})
				if err != nil {
					t.Fatalf("continuation from %d: %v", more, err)
				}
				if next.GetPrior() != nil || next.GetBook().GetSnapshot() != nil || next.GetNextSequence() != 5 {
					t.Fatalf("continuation from %d: %v prior, %v snapshot, next %d", more, next.GetPrior(), next.GetBook().GetSnapshot(), next.GetNextSequence())
				}
				pages = append(pages, next.GetBook().GetPages()...)
				more = next.GetMoreFrom()
			}
			if len(pages) != 5 {
				t.Fatalf("%d pages loaded, want 5", len(pages))
			}
			for i, p := range pages {
				if p.GetNum() != uint32(i) || pageText(t, p) != fmt.Sprint("e-", i) {
					t.Fatalf("page %d: %d %q", i, p.GetNum(), pageText(t, p))
				}
			}
			_, err = es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, ""), FromSequence: 3, ToSequence: 3})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "to_sequence") {
				t.Fatalf("continuation without an end: %v", err)
			}

			for _, q := range []*pb.Query{
				{Cover: cover(domain, root, "")},
				{Cover: &pb.Cover{CorrelationId: "big"}},
			} {
				stream, err := eq.GetEvents(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for {
					b, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatalf("GetEvents %v: %v", q, err)
					}
					for _, p := range b.GetPages() {
						got = append(got, pageText(t, p))
					}
				}
				if strings.Join(got, ",") != "e-0,e-1,e-2,e-3,e-4" {
					t.Fatalf("GetEvents %v: %v", q, got)
				}
			}
			// The CLI reads it too.
			out, err := exec.CommandContext(ctx, angzarrBin, "events", domain, root.String(), "--addr", addr, "-o", "json").Output()
			if err != nil {
				t.Fatalf("angzarr events: %v", err)
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 5 || !strings.Contains(lines[4], "e-4~") {
				t.Fatalf("angzarr events printed %d lines", len(lines))
			}
		})
	}
}
