package eventsvc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestSynchronizeBlocksOnTheRedisTail: with polling switched off (an
// hour), live Synchronize streams of a domain and of one aggregate on one
// replica still get what is appended through another replica of the same
// Redis Cluster at once: they block on the log's tail (XREAD BLOCK).
func TestSynchronizeBlocksOnTheRedisTail(t *testing.T) {
	url := "redis+cluster://" + strings.Join(testredis.StartCluster(t, 3), ",")
	a := pb.NewEventQueryClient(eventsvctest.Dial(t, eventsvctest.StartConfig(t, eventsvc.Config{Store: url, PollInterval: time.Hour})))
	b := pb.NewEventStoreClient(eventsvctest.Dial(t, eventsvctest.StartConfig(t, eventsvc.Config{Store: url, PollInterval: time.Hour})))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	domain, root := storetest.Domain(t), uuid.New()
	follow := func(q *pb.Query) pb.EventQuery_SynchronizeClient {
		stream, err := a.Synchronize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(q); err != nil {
			t.Fatal(err)
		}
		return stream
	}
	streams := map[string]pb.EventQuery_SynchronizeClient{
		"domain":    follow(&pb.Query{Cover: &pb.Cover{Domain: domain}}),
		"aggregate": follow(&pb.Query{Cover: cover(domain, root, "")}),
	}
	for i := uint32(0); i < 5; i++ {
		if _, err := b.Append(ctx, &pb.AppendRequest{Cover: cover(domain, root, ""), ExpectedSequence: i, Pages: storetest.Pages(i, 1, root.String())}); err != nil {
			t.Fatal(err)
		}
		for name, stream := range streams {
			bk, err := stream.Recv()
			if err != nil {
				t.Fatalf("%s stream: %v", name, err)
			}
			if len(bk.GetPages()) != 1 || bk.GetPages()[0].GetNum() != i {
				t.Fatalf("%s stream got %v, want sequence %d", name, bk.GetPages(), i)
			}
		}
	}
}
