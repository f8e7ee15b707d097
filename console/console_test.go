package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/schemareg"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

type event struct {
	Domain, Root, Correlation, Type, Raw, DecodeError string
	Sequence                                          uint32
	Time                                              time.Time
	Data                                              map[string]any
}

type page struct {
	Events []event
	Next   string
}

func TestStreamsBrowseDomainsAggregatesEventsAndTimeTravel(t *testing.T) {
	r := startRig(t)
	a, b, c := uuid.MustParse("00000000-0000-0000-0000-00000000000a"), uuid.MustParse("00000000-0000-0000-0000-00000000000b"), uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	items := []*ex.LineItem{{ProductId: "rug", Name: "Rug", Quantity: 2, UnitPriceCents: 1000}}
	r.appendEvents("order", a, "wf-a", 0, &ex.OrderCreated{CustomerId: "cu-1", Items: items, SubtotalCents: 2000},
		&ex.PaymentSubmitted{PaymentMethod: "card", AmountCents: 2000})
	r.appendEvents("order", a, "wf-a", 2, &ex.OrderCompleted{FinalTotalCents: 2000, LoyaltyPointsEarned: 20, CustomerId: "cu-1"})
	r.appendEvents("order", b, "wf-b", 0, &ex.OrderCreated{CustomerId: "cu-2", Items: items, SubtotalCents: 2000})
	r.appendEvents("order", c, "wf-c", 0, &ex.OrderCreated{CustomerId: "cu-3", Items: items, SubtotalCents: 2000})

	var ds struct{ Domains []string }
	r.mustGet(readerToken, "/api/domains", &ds)
	if strings.Join(ds.Domains, ",") != "customer,fulfillment,order" {
		t.Errorf("domains %v, want the topology's", ds.Domains)
	}

	// Aggregates, paged by root.
	var p1, p2 struct {
		Aggregates []string
		Next       string
	}
	r.mustGet(readerToken, "/api/domains/order/aggregates?limit=2", &p1)
	if len(p1.Aggregates) != 2 || p1.Aggregates[0] != a.String() || p1.Aggregates[1] != b.String() || p1.Next != b.String() {
		t.Fatalf("first page %+v, want a and b and a next page", p1)
	}
	r.mustGet(readerToken, "/api/domains/order/aggregates?limit=2&after="+p1.Next, &p2)
	if len(p2.Aggregates) != 1 || p2.Aggregates[0] != c.String() || p2.Next != "" {
		t.Fatalf("second page %+v, want c only", p2)
	}

	// An aggregate's events, decoded.
	var ev page
	ev = page{}
	r.mustGet(readerToken, "/api/domains/order/aggregates/"+a.String()+"/events", &ev)
	if len(ev.Events) != 3 || ev.Events[0].Type != "examples.OrderCreated" || ev.Events[2].Type != "examples.OrderCompleted" {
		t.Fatalf("events %+v", ev.Events)
	}
	first := ev.Events[0]
	if first.Sequence != 0 || first.Time.IsZero() || first.Data["customerId"] != "cu-1" || first.Raw != "" {
		t.Errorf("first event %+v: want sequence 0 with its time and the decoded customer id, no raw form", first)
	}
	// Paged by sequence.
	ev = page{}
	r.mustGet(readerToken, "/api/domains/order/aggregates/"+a.String()+"/events?limit=2", &ev)
	if len(ev.Events) != 2 || ev.Next != "2" {
		t.Fatalf("page of 2: %+v next %q", ev.Events, ev.Next)
	}
	ev = page{}
	r.mustGet(readerToken, "/api/domains/order/aggregates/"+a.String()+"/events?limit=2&from=2", &ev)
	if len(ev.Events) != 1 || ev.Events[0].Sequence != 2 || ev.Next != "" {
		t.Fatalf("second page: %+v next %q", ev.Events, ev.Next)
	}
	// As of a sequence, as of a time, raw.
	ev = page{}
	r.mustGet(readerToken, "/api/domains/order/aggregates/"+a.String()+"/events?asOfSeq=1&raw=1", &ev)
	if len(ev.Events) != 2 || ev.Events[1].Type != "examples.PaymentSubmitted" || ev.Events[0].Raw == "" {
		t.Fatalf("as of sequence 1 with raw: %+v", ev.Events)
	}
	var all page
	ev = page{}
	r.mustGet(readerToken, "/api/domains/order/aggregates/"+a.String()+"/events", &all)
	cut := all.Events[1].Time.Format(time.RFC3339Nano)
	ev = page{}
	r.mustGet(readerToken, "/api/domains/order/aggregates/"+a.String()+"/events?asOfTime="+cut, &ev)
	if len(ev.Events) != 2 {
		t.Fatalf("as of %s (the first append): %d events, want 2", cut, len(ev.Events))
	}

	// The domain's log, paged with a cursor.
	var l1, l2 page
	r.mustGet(readerToken, "/api/domains/order/log?limit=3", &l1)
	if len(l1.Events) != 3 || l1.Next == "" || l1.Events[0].Correlation != "wf-a" {
		t.Fatalf("log page 1: %+v next %q", l1.Events, l1.Next)
	}
	r.mustGet(readerToken, "/api/domains/order/log?limit=3&cursor="+l1.Next, &l2)
	if len(l2.Events) != 2 || l2.Events[0].Root != b.String() || l2.Events[1].Root != c.String() {
		t.Fatalf("log page 2: %+v", l2.Events)
	}

	// Bad parameters never reach the event service.
	for _, path := range []string{
		"/api/domains/..%2Fx/aggregates", "/api/domains/order/aggregates/not-a-uuid/events",
		"/api/domains/order/aggregates?limit=0", "/api/domains/order/aggregates?limit=100000",
		"/api/domains/order/log?cursor=zz", "/api/domains/order/aggregates/" + a.String() + "/events?asOfTime=yesterday",
		"/api/domains/order/aggregates/" + a.String() + "/events?asOfSeq=1&asOfTime=2026-01-01T00:00:00Z",
		"/api/workflow", "/api/live?domain=%2A", "/api/deadletters?subscriber=a%20b",
	} {
		if code := r.getJSON(readerToken, path, nil); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", path, code)
		}
	}
}

type workflow struct {
	Correlation string
	Domains     []string
	DurationMs  float64
	Steps       []struct {
		Kind, Domain, Root string
		By                 []string
		Events             []event
		TookMs             float64
		Projectors         []string
	}
}

func TestWorkflowIsATimelineAcrossDomainsWithTheSagaSteps(t *testing.T) {
	r := startRig(t)
	order, customer := uuid.New(), uuid.New()
	shipment := uuid.New()
	corr := "checkout-" + order.String()
	r.appendEvents("order", order, corr, 0, &ex.OrderCreated{CustomerId: customer.String(), SubtotalCents: 5000})
	r.appendEvents("inventory-x", uuid.New(), corr, 0, &ex.StockReserved{Quantity: 1})
	r.appendEvents("order", order, corr, 1, &ex.OrderCompleted{FinalTotalCents: 5000, LoyaltyPointsEarned: 50, CustomerId: customer.String()})
	r.appendEvents("customer", customer, corr, 0, &ex.LoyaltyPointsAdded{Points: 50, NewBalance: 50, Reason: "order " + order.String()})
	r.appendEvents("fulfillment", shipment, corr, 0, &ex.ShipmentCreated{OrderId: order.String()})
	r.appendEvents("order", uuid.New(), "another", 0, &ex.OrderCreated{CustomerId: "x"})

	var wf workflow
	r.mustGet(readerToken, "/api/workflow?id="+corr, &wf)
	if wf.Correlation != corr || strings.Join(wf.Domains, ",") != "customer,fulfillment,inventory-x,order" || len(wf.Steps) != 5 {
		t.Fatalf("workflow %+v", wf)
	}
	want := []struct{ kind, domain, by string }{
		// inventory-x is written by nothing the topology knows: a client's
		// command.
		{"command", "order", ""}, {"command", "inventory-x", ""}, {"command", "order", ""},
		{"saga", "customer", "loyalty-earn"}, {"saga", "fulfillment", "fulfillment"},
	}
	for i, w := range want {
		st := wf.Steps[i]
		if st.Kind != w.kind || st.Domain != w.domain || strings.Join(st.By, ",") != w.by {
			t.Errorf("step %d: %s in %s by %v, want %s in %s by %q", i, st.Kind, st.Domain, st.By, w.kind, w.domain, w.by)
		}
		if i > 0 && st.TookMs < 0 {
			t.Errorf("step %d took %v ms", i, st.TookMs)
		}
	}
	if p := wf.Steps[0].Projectors; len(p) != 1 || p[0] != "audit" {
		t.Errorf("the order's projectors %v, want audit", p)
	}
	if wf.Steps[3].Events[0].Type != "examples.LoyaltyPointsAdded" || wf.Steps[3].Events[0].Data["points"] != float64(50) {
		t.Errorf("loyalty step %+v", wf.Steps[3].Events)
	}
	if wf.Steps[0].TookMs != 0 || wf.DurationMs <= 0 {
		t.Errorf("first step took %v ms, workflow %v ms", wf.Steps[0].TookMs, wf.DurationMs)
	}
	// Events of the log link to their workflow: they carry the correlation id.
	var ev page
	r.mustGet(readerToken, "/api/domains/customer/log", &ev)
	if len(ev.Events) != 1 || ev.Events[0].Correlation != corr {
		t.Errorf("the customer's event %+v does not name the workflow", ev.Events)
	}
}

type deadLetter struct {
	ID, Subscriber, Cause, Error string
	Events                       []event
}

func (r *rig) deadLetters(token string) []deadLetter {
	r.t.Helper()
	var out struct{ DeadLetters []deadLetter }
	r.mustGet(token, "/api/deadletters", &out)
	return out.DeadLetters
}

// park makes the audit projector refuse a new order's event until it is
// parked, and returns its dead letter.
func (r *rig) park() deadLetter {
	r.t.Helper()
	before := map[string]bool{}
	for _, d := range r.deadLetters(readerToken) {
		before[d.ID] = true
	}
	root := uuid.New()
	r.audit.poisonRoot(root)
	r.appendEvents("order", root, "poisoned-"+root.String(), 0, &ex.OrderCreated{CustomerId: "p"})
	var dl deadLetter
	r.eventually("the poisoned event is parked", func() (bool, string) {
		for _, d := range r.deadLetters(readerToken) {
			if !before[d.ID] && len(d.Events) == 1 && d.Events[0].Root == root.String() {
				dl = d
				return true, ""
			}
		}
		return false, "not parked yet"
	})
	return dl
}

func TestFanoutShowsPositionsAndDeadLettersAndOnlyOperatorsAct(t *testing.T) {
	r := startRig(t)
	dl := r.park()
	if dl.Subscriber != "audit" || !strings.Contains(dl.Error, "audit store is down") || dl.Cause != "exhausted" || dl.Events[0].Type != "examples.OrderCreated" {
		t.Errorf("dead letter %+v", dl)
	}

	var f struct {
		Subscribers []struct {
			Name        string
			Kind        string
			DeadLetters int
			Partitions  []struct {
				Domain    string
				Committed uint64
				End       uint64
			}
		}
		History []struct{ Lag map[string]uint64 }
	}
	r.mustGet(readerToken, "/api/fanout", &f)
	var names []string
	for _, s := range f.Subscribers {
		names = append(names, s.Kind+":"+s.Name)
		if s.Name == "audit" && (s.DeadLetters != 1 || len(s.Partitions) != 2) {
			t.Errorf("audit: %+v, want 1 dead letter and positions in order and customer", s)
		}
	}
	if strings.Join(names, ",") != "projector:audit,saga:fulfillment,saga:loyalty-earn" {
		t.Errorf("subscribers %v", names)
	}
	if len(f.History) == 0 {
		t.Error("no lag history")
	}

	body := fmt.Sprintf(`{"subscriber":"audit","ids":[%q]}`, dl.ID)
	// Nobody, a stranger and a reader may not replay.
	for _, tok := range []string{"", strangerToken, readerToken} {
		resp, b := r.do(tok, "POST", "/api/deadletters/replay", body, map[string]string{"Content-Type": "application/json"})
		want := http.StatusForbidden
		if tok == "" {
			want = http.StatusUnauthorized
		}
		if resp.StatusCode != want {
			t.Errorf("replay with token %q: %d %s, want %d", tok, resp.StatusCode, b, want)
		}
	}
	if code := r.getJSON(strangerToken, "/api/deadletters", nil); code != http.StatusForbidden {
		t.Errorf("a stranger reads dead letters: %d, want 403", code)
	}
	// An operator needs the CSRF token, JSON and the same origin.
	if resp, _ := r.do(operatorToken, "POST", "/api/deadletters/replay", body, map[string]string{"Content-Type": "application/json"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay without the CSRF token: %d, want 403", resp.StatusCode)
	}
	csrf := r.csrf(operatorToken)
	if resp, _ := r.do(operatorToken, "POST", "/api/deadletters/replay", body, map[string]string{"Content-Type": "application/json", console.CSRFHeader: r.csrf(readerToken)}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay with the reader's CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := r.do(operatorToken, "POST", "/api/deadletters/replay", body, map[string]string{"Content-Type": "application/x-www-form-urlencoded", console.CSRFHeader: csrf}); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("replay as a form: %d, want 415", resp.StatusCode)
	}
	if resp, _ := r.do(operatorToken, "POST", "/api/deadletters/replay", body, map[string]string{"Content-Type": "application/json", console.CSRFHeader: csrf, "Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay from another origin: %d, want 403", resp.StatusCode)
	}
	for _, bad := range []string{`{"subscriber":"audit","ids":[]}`, `{"subscriber":"../audit","ids":["1"]}`, `{"subscriber":"audit","ids":["1; DROP"]}`, `{"subscriber":"audit","ids":["1"],"all":true}`} {
		if resp, _ := r.post(operatorToken, "/api/deadletters/replay", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replay %s: %d, want 400", bad, resp.StatusCode)
		}
	}
	if n := len(r.deadLetters(readerToken)); n != 1 {
		t.Fatalf("%d dead letters after refused actions, want 1", n)
	}

	// Still broken: the replay fails and the dead letter stays.
	resp, b := r.post(operatorToken, "/api/deadletters/replay", body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"delivered":false`) {
		t.Fatalf("replay while broken: %d %s", resp.StatusCode, b)
	}
	// Fixed: the operator's replay delivers it and it leaves the list.
	r.audit.fix()
	resp, b = r.post(operatorToken, "/api/deadletters/replay", body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"delivered":true`) {
		t.Fatalf("replay: %d %s", resp.StatusCode, b)
	}
	if dls := r.deadLetters(readerToken); len(dls) != 0 {
		t.Errorf("dead letters after the replay: %+v", dls)
	}
}

func TestSkipDiscardsADeadLetterForOperatorsOnly(t *testing.T) {
	r := startRig(t)
	dl := r.park()
	body := fmt.Sprintf(`{"subscriber":"audit","ids":[%q]}`, dl.ID)
	if resp, _ := r.post(readerToken, "/api/deadletters/skip", body); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader skips: %d, want 403", resp.StatusCode)
	}
	resp, b := r.post(operatorToken, "/api/deadletters/skip", body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), dl.ID) {
		t.Fatalf("skip: %d %s", resp.StatusCode, b)
	}
	if dls := r.deadLetters(readerToken); len(dls) != 0 {
		t.Errorf("dead letters after the skip: %+v", dls)
	}
	// Skipped, never delivered: the projector still refuses that order.
	resp, b = r.post(operatorToken, "/api/deadletters/skip", body)
	if resp.StatusCode != 200 || strings.Contains(string(b), dl.ID) {
		t.Errorf("second skip: %d %s, want nothing discarded", resp.StatusCode, b)
	}
}

func TestTopologyShowsSubscribersFlowAndHealth(t *testing.T) {
	r := startRig(t)
	r.park()
	type topo struct {
		Domains []struct {
			Name   string
			Rate   float64
			Health string
		}
		Subscribers []struct {
			Name, Kind, Health string
			Sources, Targets   []string
			DeadLetters        int
		}
		Edges []struct{ From, To string }
	}
	var tp topo
	r.eventually("the audit projector is failing", func() (bool, string) {
		r.mustGet(readerToken, "/api/topology", &tp)
		for _, s := range tp.Subscribers {
			if s.Name == "audit" {
				return s.Health == "failing" && s.DeadLetters == 1, fmt.Sprintf("%+v", s)
			}
		}
		return false, "no audit"
	})
	edges := map[string]bool{}
	for _, e := range tp.Edges {
		edges[e.From+">"+e.To] = true
	}
	for _, e := range []string{"domain:order>saga:loyalty-earn", "saga:loyalty-earn>domain:customer", "domain:order>projector:audit", "saga:fulfillment>domain:fulfillment"} {
		if !edges[e] {
			t.Errorf("no edge %s in %v", e, tp.Edges)
		}
	}
	for _, d := range tp.Domains {
		if d.Name == "order" && (d.Rate <= 0 || d.Health != "subscriber failing") {
			t.Errorf("order %+v: want a rate from the poisoned order and the failing subscriber", d)
		}
	}
}

func TestLiveStreamsNewEvents(t *testing.T) {
	r := startRig(t)
	old := uuid.New()
	r.appendEvents("order", old, "old", 0, &ex.OrderCreated{CustomerId: "before"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", r.srv.URL+"/api/live?domain=order", nil)
	req.Header.Set("Authorization", "Bearer "+readerToken)
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() (string, event) {
		var name string
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "event: "); ok {
				name = n
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var e event
				_ = json.Unmarshal([]byte(d), &e)
				return name, e
			}
		}
		t.Fatalf("the stream ended: %v", sc.Err())
		return "", event{}
	}
	// The live hub may not have caught up with the old event when the page
	// connects: it comes before or after ready, but it comes.
	fresh := uuid.New()
	sawOld := false
	for {
		name, e := next()
		if name == "ready" {
			r.appendEvents("order", fresh, "new", 0, &ex.OrderCreated{CustomerId: "after"})
			continue
		}
		if e.Root == old.String() {
			sawOld = true
		}
		if e.Root == fresh.String() {
			if e.Type != "examples.OrderCreated" || e.Correlation != "new" || e.Data["customerId"] != "after" {
				t.Errorf("live event %+v", e)
			}
			break
		}
	}
	if !sawOld {
		t.Error("the event stored before the page connected was not shown")
	}
}

func TestLoginSetsAStrictSessionCookieAndEveryAnswerHasTheCSP(t *testing.T) {
	r := startRig(t)
	client := &http.Client{Transport: r.srv.Client().Transport, Jar: newJar(t), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(r.srv.URL + "/login?token=" + operatorToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("session cookie %q: want HttpOnly and SameSite=Strict", sc)
	}
	resp, err = client.Get(r.srv.URL + "/api/session")
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ User, Role, CSRF string }
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if s.User != "olga" || s.Role != "operator" || len(s.CSRF) != 64 {
		t.Errorf("session %+v", s)
	}
	resp, err = client.Get(r.srv.URL + "/login?token=wrong-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: %d, want 401", resp.StatusCode)
	}

	for _, path := range []string{"/", "/static/app.js", "/api/topology", "/login"} {
		resp, _ := r.do(readerToken, "GET", path, "", nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
	}
	// The page runs no inline script and has no inline handlers or styles.
	_, page := r.do("", "GET", "/", "", nil)
	for _, re := range []string{`<script(?:\s+type="module")?>`, `\son[a-z]+=`, `\sstyle=`} {
		if regexp.MustCompile(re).Match(page) {
			t.Errorf("index.html matches %s", re)
		}
	}
	if !strings.Contains(string(page), `<script type="module" src="/static/app.js">`) {
		t.Error("index.html does not load app.js")
	}
}

func TestReaderAndOperatorRoles(t *testing.T) {
	az := &console.RoleAuthorizer{Operators: []string{"olga"}, Readers: []string{"rita"}}
	ctx := context.Background()
	for _, c := range []struct {
		who  string
		act  console.Action
		deny bool
	}{
		{"olga", console.ActionRead, false}, {"olga", console.ActionReplay, false}, {"olga", console.ActionSkip, false},
		{"rita", console.ActionRead, false}, {"rita", console.ActionReplay, true}, {"rita", console.ActionSkip, true},
		{"sam", console.ActionRead, true}, {"", console.ActionRead, true},
	} {
		err := az.Authorize(ctx, console.Principal{Name: c.who}, c.act)
		if (err != nil) != c.deny {
			t.Errorf("%q %s: %v, deny=%v", c.who, c.act, err, c.deny)
		}
	}
	if _, err := console.NewTokenAuthenticator(map[string]string{"short": "x"}); err == nil {
		t.Error("a 5-byte token was accepted")
	}
}

var _ = pb.SubscriberKind_SUBSCRIBER_KIND_SAGA

func TestFanoutCountsTheEventsASubscriberIsBehindPerDomain(t *testing.T) {
	r := startRig(t)
	held := uuid.New()
	r.audit.mu.Lock()
	r.audit.hold, r.audit.released = held, make(chan struct{})
	r.audit.mu.Unlock()
	// Three appends to one order: the projector holds the first, so it is
	// three order events behind until released.
	for seq := range uint32(3) {
		r.appendEvents("order", held, "held", seq, &ex.OrderCreated{CustomerId: "h"})
	}
	type sub struct {
		Name        string
		Lag         uint64
		LagByDomain map[string]uint64
	}
	lagOf := func() sub {
		var f struct{ Subscribers []sub }
		r.mustGet(readerToken, "/api/fanout", &f)
		for _, s := range f.Subscribers {
			if s.Name == "audit" {
				return s
			}
		}
		t.Fatal("no audit subscriber")
		return sub{}
	}
	r.eventually("the audit projector is 3 order events behind", func() (bool, string) {
		s := lagOf()
		return s.Lag == 3 && s.LagByDomain["order"] == 3 && s.LagByDomain["customer"] == 0, fmt.Sprintf("%+v", s)
	})
	close(r.audit.released)
	r.eventually("the audit projector caught up", func() (bool, string) {
		s := lagOf()
		return s.Lag == 0, fmt.Sprintf("%+v", s)
	})
}

func TestWorkflowShowsRefusalsCompensationsAndWhatIsParked(t *testing.T) {
	r := startRig(t)
	order, customer := uuid.New(), uuid.New()
	corr := "refused-" + order.String()
	r.appendEvents("order", order, corr, 0, &ex.OrderCreated{CustomerId: customer.String(), SubtotalCents: 5000})
	r.appendEvents("customer", customer, corr, 0, &ex.LoyaltyPointsRedeemed{Points: 10, NewBalance: 0})
	// The framework records a refused saga command in the failure domain,
	// and the order compensates.
	r.appendEvents("saga-failures", order, corr, 0, &pb.SagaFailed{Reason: "insufficient points",
		Compensation: &pb.SagaCompensation{Origin: &pb.SagaCommandOrigin{SagaName: "loyalty-earn"}, Reason: "insufficient points"}})
	r.appendEvents("order", order, corr, 1, &ex.OrderCancelled{Reason: "points refused"})

	var wf workflow
	r.mustGet(readerToken, "/api/workflow?id="+corr, &wf)
	var kinds []string
	for _, st := range wf.Steps {
		kinds = append(kinds, st.Kind+":"+st.Domain)
	}
	if got := strings.Join(kinds, " "); got != "command:order saga:customer refusal:saga-failures compensation:order" {
		t.Errorf("steps %s", got)
	}
	if e := wf.Steps[2].Events[0]; e.Type != "angzarr.SagaFailed" || e.Data["reason"] != "insufficient points" {
		t.Errorf("refusal %+v", e)
	}

	// A parked event shows in its workflow.
	dl := r.park()
	var parked struct {
		Steps       []any
		DeadLetters []deadLetter
	}
	r.mustGet(readerToken, "/api/workflow?id="+dl.Events[0].Correlation, &parked)
	if len(parked.Steps) != 1 || len(parked.DeadLetters) != 1 || parked.DeadLetters[0].ID != dl.ID || !strings.Contains(parked.DeadLetters[0].Error, "audit store is down") {
		t.Errorf("workflow of the parked event: %+v", parked)
	}
}

// TestEveryEventOfAnAggregateLinksToItsWorkflow: an aggregate's events
// carry the correlation id each was stored with (the event service returns
// it on aggregate reads), for a reader, across pages and time travel, and
// it leads to the workflow holding that event; strangers and anonymous
// callers read nothing, and a reader cannot act.
func TestEveryEventOfAnAggregateLinksToItsWorkflow(t *testing.T) {
	r := startRig(t)
	cust := uuid.New()
	r.appendEvents("customer", cust, "wf-signup", 0, &ex.CustomerCreated{Name: "Ada", Email: "ada@example.com"})
	r.appendEvents("customer", cust, "wf-order-1", 1, &ex.LoyaltyPointsAdded{Points: 10, NewBalance: 10, Reason: "order 1"},
		&ex.LoyaltyPointsAdded{Points: 5, NewBalance: 15, Reason: "bonus"})
	r.appendEvents("customer", cust, "wf-order-2", 3, &ex.LoyaltyPointsAdded{Points: 20, NewBalance: 35, Reason: "order 2"})
	path := "/api/domains/customer/aggregates/" + cust.String() + "/events"

	var ev page
	r.mustGet(readerToken, path, &ev)
	var got []string
	for _, e := range ev.Events {
		got = append(got, fmt.Sprintf("%d:%s", e.Sequence, e.Correlation))
	}
	if want := "0:wf-signup 1:wf-order-1 2:wf-order-1 3:wf-order-2"; strings.Join(got, " ") != want {
		t.Fatalf("events link to %v, want %s", got, want)
	}
	// A page from the middle and a time travel keep their links.
	ev = page{}
	r.mustGet(readerToken, path+"?from=2&limit=1", &ev)
	if len(ev.Events) != 1 || ev.Events[0].Correlation != "wf-order-1" || ev.Next != "3" {
		t.Errorf("page from 2: %+v next %q", ev.Events, ev.Next)
	}
	ev = page{}
	r.mustGet(readerToken, path+"?asOfSeq=0&raw=1", &ev)
	if len(ev.Events) != 1 || ev.Events[0].Correlation != "wf-signup" {
		t.Errorf("as of 0: %+v", ev.Events)
	}
	// The link leads to the workflow holding the event.
	var wf workflow
	r.mustGet(readerToken, "/api/workflow?id=wf-order-1", &wf)
	if len(wf.Steps) != 1 || len(wf.Steps[0].Events) != 2 || wf.Steps[0].Root != cust.String() || wf.Steps[0].Events[1].Sequence != 2 {
		t.Errorf("workflow wf-order-1: %+v", wf)
	}
	// Authorization: strangers and anonymous callers read nothing; a
	// reader's replay is forbidden.
	if code := r.getJSON(strangerToken, path, nil); code != http.StatusForbidden {
		t.Errorf("a stranger's read: %d, want 403", code)
	}
	if code := r.getJSON("", path, nil); code != http.StatusUnauthorized {
		t.Errorf("an anonymous read: %d, want 401", code)
	}
	if resp, body := r.post(readerToken, "/api/deadletters/replay", `{"subscriber":"audit","id":"1"}`); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's replay: %d %s, want 403", resp.StatusCode, body)
	}
}

// TestAggregatesPageThroughADomain: the aggregate list pages a domain by
// cursor in root order, each page from the event service's paged listing;
// every aggregate once, none left out.
func TestAggregatesPageThroughADomain(t *testing.T) {
	r := startRig(t)
	var want []string
	for range 23 {
		root := uuid.New()
		r.appendEvents("fulfillment", root, "wf", 0, &ex.ShipmentCreated{OrderId: "o"})
		want = append(want, root.String())
	}
	slices.Sort(want)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("more than 5 pages of 5 for 23 aggregates")
		}
		var p struct {
			Aggregates []string
			Next       string
		}
		q := "/api/domains/fulfillment/aggregates?limit=5"
		if after != "" {
			q += "&after=" + after
		}
		r.mustGet(readerToken, q, &p)
		if len(p.Aggregates) > 5 {
			t.Fatalf("%d aggregates on a page of 5", len(p.Aggregates))
		}
		got = append(got, p.Aggregates...)
		if p.Next == "" {
			break
		}
		if p.Next != p.Aggregates[len(p.Aggregates)-1] {
			t.Fatalf("next %q is not the page's last aggregate %v", p.Next, p.Aggregates)
		}
		after = p.Next
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("paged %v, want %v", got, want)
	}
}

// TestDomainsWithoutATopologyComeFromTheStore: with no topology the
// domain list is read from the event service's roots, one root per domain
// (a cursor past each domain), so every domain is listed once however many
// aggregates it holds.
func TestDomainsWithoutATopologyComeFromTheStore(t *testing.T) {
	evs := eventsvctest.StartConfig(t, eventsvc.Config{Store: "sqlite:" + filepath.Join(t.TempDir(), "e.db")})
	st := pb.NewEventStoreClient(eventsvctest.Dial(t, evs))
	for d, n := range map[string]int{"cart": 7, "order": 1, "inventory": 12} {
		for range n {
			root := uuid.New()
			a, _ := anypb.New(&ex.ShipmentCreated{OrderId: "o"})
			if _, err := st.Append(t.Context(), &pb.AppendRequest{Cover: &pb.Cover{Domain: d, Root: &pb.UUID{Value: root[:]}, CorrelationId: "c"},
				Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: a}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := console.New(console.Config{EventService: evs, Topology: staticTopology{&pb.FanoutConfig{}}, Tokens: map[string]string{readerToken: "rita"},
		Readers: []string{"rita"}, SampleInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	srv := httptest.NewServer(c.Handler())
	defer func() {
		srv.Close()
		cancel()
		<-done
		c.Close()
	}()
	r := &rig{t: t, srv: srv}
	var ds struct{ Domains []string }
	r.mustGet(readerToken, "/api/domains", &ds)
	// The schema registry's own domain is in the store too.
	if got, want := strings.Join(ds.Domains, ","), schemareg.Domain+",cart,inventory,order"; got != want {
		t.Fatalf("domains %q, want %q", got, want)
	}
}
