package console_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/internal/client"
	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

var updateDocs = flag.Bool("update-docs", false, "also write the workflow view's screenshot to docs/console.png")

// screenshotDir is where the browser test leaves a screenshot of each view.
const screenshotDir = "../build/console-screenshots"

func TestMain(m *testing.M) {
	code := m.Run()
	wasmbuild.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestConsoleInABrowser runs the shop on a local mesh (angzarr dev in this
// process), drives headless Chromium through every view of the console it
// serves, checks what a person would check, and saves a screenshot of each
// view under build/console-screenshots.
func TestConsoleInABrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (make deps installs Debian's chromium): %v", err)
	}
	token := "browser-test-token-0123456789"
	data := filepath.Join(t.TempDir(), "data")
	mctx, stopMesh := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devmesh.Run(mctx, devmesh.Config{DataDir: data, Filter: wasmbuild.Filter(t), BasePort: testutil.FreePorts(t, 60), // room for shop components main adds (devmesh.PortSpan)
			NoPython: true, ConsoleToken: token, ReadyTimeout: 2 * time.Minute, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() {
		stopMesh()
		if err := <-done; err != nil {
			t.Errorf("angzarr dev: %v", err)
		}
	})
	var ep *endpoints.File
	testutil.EventuallyWhy(t, func() (bool, string) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("angzarr dev stopped: %v", err)
		default:
		}
		f, err := endpoints.Read(data)
		if err != nil || f.PID != os.Getpid() {
			return false, fmt.Sprintf("the mesh is not ready: %v", err)
		}
		ep = f
		return true, ""
	})
	// The mesh runs mTLS with authorization: the test acts as its operator,
	// and its projector has a certificate of the mesh's CA.
	dial, err := client.DialFor(data)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(ep.EventService, dial)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := pb.NewFanoutAdminClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// A projector that refuses one order's events until it is fixed.
	audit := &auditProjector{poison: map[uuid.UUID]bool{}}
	addProjector(t, data, controlplane.Projector{Name: "audit", Address: serveGRPC(t, func(s *grpc.Server) { pb.RegisterProjectorServer(s, audit) }, meshServerOption(t, data, "subscriber-audit")),
		Domains: []string{"order"}, StartPosition: controlplane.StartEarliest})
	testutil.EventuallyWhy(t, func() (bool, string) {
		_, err := admin.GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: "audit"})
		return err == nil, fmt.Sprintf("the dispatcher does not know the audit projector: %v", err)
	})

	// The shop: a customer orders, pays; the sagas credit points and ship.
	customer, order, poison := uuid.New(), uuid.New(), uuid.New()
	corr := "order-" + order.String()
	send := func(domain string, root uuid.UUID, corr string, seq uint32, msg proto.Message) {
		t.Helper()
		c, err := grpc.NewClient(ep.Domains[domain].Coordinator, dial)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a, _ := anypb.New(msg)
		_, err = pb.NewBusinessCoordinatorClient(c).Handle(ctx, &pb.CommandBook{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}, CorrelationId: corr},
			Pages: []*pb.CommandPage{{Sequence: seq, Command: a}}})
		if err != nil {
			t.Fatalf("%s to %s: %v", msg.ProtoReflect().Descriptor().Name(), domain, err)
		}
	}
	items := []*ex.LineItem{{ProductId: "teapot", Name: "Teapot", Quantity: 2, UnitPriceCents: 2500}}
	send("customer", customer, corr, 0, &ex.CreateCustomer{Name: "Ada", Email: "ada@example.com"})
	send("order", order, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	send("order", order, corr, 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 5000})
	send("order", order, corr, 2, &ex.ConfirmPayment{PaymentReference: "pay-1"})
	audit.poisonRoot(poison)
	send("order", poison, "poisoned-order", 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	var parked *pb.DeadLetter
	testutil.EventuallyWhy(t, func() (bool, string) {
		dl, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "audit"})
		if err != nil || len(dl.GetDeadLetters()) == 0 {
			return false, fmt.Sprintf("nothing parked yet: %v", err)
		}
		parked = dl.GetDeadLetters()[0]
		return true, ""
	})
	query := pb.NewEventQueryClient(conn)
	testutil.EventuallyWhy(t, func() (bool, string) {
		s, err := query.GetEvents(ctx, &pb.Query{Cover: &pb.Cover{CorrelationId: corr}})
		if err != nil {
			return false, err.Error()
		}
		domains := map[string]bool{}
		for {
			b, err := s.Recv()
			if err != nil {
				break
			}
			domains[b.GetCover().GetDomain()] = true
		}
		return domains["customer"] && domains["fulfillment"], fmt.Sprintf("the sagas have not acted yet: %v", domains)
	})

	// The browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1400, 1000))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := "http://" + ep.Console
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count of %s: %v", sel, err)
		}
		return n
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			if name == "workflow" && *updateDocs {
				if err := os.WriteFile("../docs/console.png", png, 0o644); err != nil {
					return err
				}
			}
			return os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644)
		})
	}
	ready := func(view string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(`body[data-ready="` + view + `"]`))
	}
	noError := func(view string) {
		t.Helper()
		if count("[data-testid=error]") != 0 {
			t.Errorf("%s shows an error: %s", view, text("[data-testid=error]"))
		}
	}

	// Topology: the shop's domains, sagas and projectors.
	do("topology", chromedp.Navigate(console.LoginURL(ep.Console, token)), ready("topology"), shot("topology"))
	noError("topology")
	topo := text("[data-testid=topology-graph]")
	for _, want := range []string{"saga loyalty-earn", "saga fulfillment", "saga cancellation", "projector order-summary", "projector audit", "order", "fulfillment"} {
		if !strings.Contains(topo, want) {
			t.Errorf("the topology lacks %q: %s", want, topo)
		}
	}
	if who := text("#who"); who != "developer (operator)" {
		t.Errorf("logged in as %q", who)
	}

	// Streams: the order domain's aggregates, then the order's events.
	do("streams", chromedp.Navigate(base+"/#/streams/order"), ready("streams"), shot("streams"))
	noError("streams")
	if aggs := text("[data-testid=aggregates]"); !strings.Contains(aggs, order.String()) {
		t.Errorf("the order domain's aggregates lack %s: %s", order, aggs)
	}
	do("aggregate", chromedp.Navigate(base+"/#/aggregate/order/"+order.String()), ready("aggregate"), shot("aggregate"))
	noError("aggregate")
	events := text("[data-testid=events]")
	for _, want := range []string{"OrderCreated", "PaymentSubmitted", "OrderCompleted", `"customerId"`} {
		if !strings.Contains(events, want) {
			t.Errorf("the order's events lack %s: %s", want, events)
		}
	}

	// Every event links to its workflow; the order's first event leads to
	// the order's workflow.
	if rows, links := count("[data-testid=events] tr[data-testid=event]"), count("[data-testid=events] tr[data-testid=event] a[data-testid=workflow-link]"); rows == 0 || links != rows {
		t.Errorf("%d of the order's %d events link to their workflow", links, rows)
	}
	if link := text("[data-testid=events] tr[data-testid=event] a[data-testid=workflow-link]"); link != corr {
		t.Errorf("the order's first event links to workflow %q, want %q", link, corr)
	}

	// Workflow of the order, reached from its first event: the commands,
	// then the loyalty and fulfillment saga steps.
	do("workflow", chromedp.Click(chromedp.CSS("[data-testid=events] tr[data-testid=event] a[data-testid=workflow-link]")), ready("workflow"), shot("workflow"))
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "#/workflow/"+corr) {
		t.Errorf("the workflow link led to %q (%v), want the workflow %s", loc, err, corr)
	}
	noError("workflow")
	steps := text("[data-testid=steps]")
	sagaSteps, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('tr[data-kind=saga]')].map(r => r.dataset.domain + ":" + r.querySelector('[data-testid=step-by]').textContent + ":" + r.dataset.confirmed)`))
	if err != nil {
		t.Fatal(err)
	}
	// The points could come from loyalty-earn or cancellation (both read
	// orders and write customers): the store's idempotency record says
	// loyalty-earn.
	if !slices.Contains(sagaSteps, "customer:loyalty-earn:yes") || !slices.Contains(sagaSteps, "fulfillment:fulfillment:no") || !strings.Contains(steps, "LoyaltyPointsAdded") || !strings.Contains(steps, "ShipmentCreated") {
		t.Errorf("the workflow's saga steps %v lack loyalty-earn → customer and fulfillment → fulfillment:\n%s", sagaSteps, steps)
	}

	// Fan-out: the parked event is listed; fixed, a replay delivers it and
	// it leaves the list.
	sel := fmt.Sprintf(`tr[data-testid=deadletter][data-id=%q]`, parked.GetId())
	do("fan-out", chromedp.Navigate(base+"/#/fanout"), ready("fanout"), chromedp.WaitVisible(chromedp.CSS(sel)))
	noError("fanout")
	if row := text(sel); !strings.Contains(row, "audit store is down") || !strings.Contains(row, poison.String()[:8]) {
		t.Errorf("the dead letter row lacks the error or the order: %s", row)
	}
	audit.fix()
	do("replay", chromedp.Click(chromedp.CSS(sel+` button[data-testid=replay]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=notice]`)), shot("fanout"))
	if notice, left := text("[data-testid=notice]"), count(sel); !strings.Contains(notice, "Replayed "+parked.GetId()) || left != 0 {
		t.Errorf("after the replay: notice %q, %d rows of the dead letter left", notice, left)
	}
	if dl, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{}); err != nil || len(dl.GetDeadLetters()) != 0 {
		t.Errorf("dead letters after the replay: %v %v", dl, err)
	}

	// Live: the recent events, then a new one without reloading.
	do("live", chromedp.Navigate(base+"/#/live"), ready("live"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=live-event]`)))
	newCustomer := uuid.New()
	send("customer", newCustomer, "live-"+newCustomer.String(), 0, &ex.CreateCustomer{Name: "Bo", Email: "bo@example.com"})
	do("live event", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`a[href="#/aggregate/customer/%s"]`, newCustomer))), shot("live"))
}

// addProjector adds a projector to the running mesh's topology file; the
// control plane reads it again and pushes the fan-out configuration.
// meshServerOption is the transport of a server with a certificate the
// local mesh in data issued for service account sa.
func meshServerOption(t *testing.T, data, sa string) grpc.ServerOption {
	t.Helper()
	ca, err := identity.LoadCA(filepath.Join(data, endpoints.IdentityDir))
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue("angzarr-dev", sa, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.WriteFiles(t.TempDir(), sa, is)
	if err != nil {
		t.Fatal(err)
	}
	files, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return identity.ServerOption(files)
}

func addProjector(t *testing.T, data string, p controlplane.Projector) {
	t.Helper()
	path := filepath.Join(data, devmesh.TopologyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := controlplane.DecodeTopology(b)
	if err != nil {
		t.Fatal(err)
	}
	topo.Projectors = append(topo.Projectors, p)
	if b, err = yaml.Marshal(topo); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
