package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Step kinds of a workflow.
const (
	StepCommand      = "command"      // the workflow's own aggregate deciding on a command
	StepSaga         = "saga"         // stored by a command a saga or process manager issued
	StepRefusal      = "refusal"      // a refused saga command recorded in the failure domain
	StepCompensation = "compensation" // the origin aggregate's answer after a refusal
)

// defaultFailureDomain is where refused saga commands are recorded when
// the configuration names none.
const defaultFailureDomain = "saga-failures"

// workflowJSON is everything that shares a correlation id, as a timeline.
type workflowJSON struct {
	Correlation string     `json:"correlation"`
	Start       time.Time  `json:"start"`
	End         time.Time  `json:"end"`
	DurationMs  float64    `json:"durationMs"`
	Domains     []string   `json:"domains"`
	Steps       []stepJSON `json:"steps"`
	// DeadLetters are the workflow's parked events and saga commands.
	DeadLetters []deadLetterJSON `json:"deadLetters"`
}

// stepJSON is one append: consecutive events of one aggregate.
type stepJSON struct {
	Kind   string `json:"kind"`
	Domain string `json:"domain"`
	Root   string `json:"root"`
	// By names the sagas or process managers that can have issued the
	// command (from the topology: they read the domain of a step since
	// this aggregate's previous one and may write this one); several when
	// the topology allows several. A step nothing in the topology can have
	// caused is a client's command.
	By     []string    `json:"by,omitempty"`
	Events []eventJSON `json:"events"`
	At     time.Time   `json:"at"`
	// TookMs is the time from the previous step's last event to this
	// step's first: what the step took (the saga's or the client's turn).
	TookMs float64 `json:"tookMs"`
	// SinceStartMs is the time from the workflow's first event.
	SinceStartMs float64 `json:"sinceStartMs"`
	// Confirmed is true when By is the one saga whose command stored this
	// step: the store holds the idempotency key that saga's command for an
	// earlier event of the workflow carried.
	Confirmed bool `json:"confirmed,omitempty"`
	// Projectors receive this step's events.
	Projectors []string `json:"projectors,omitempty"`

	// triggers are the events that may have triggered the step's saga.
	triggers []trigger
}

// trigger is an event of the workflow a saga may have reacted to.
type trigger struct {
	domain   string
	root     []byte
	sequence uint32
}

func (c *Console) getWorkflow(w http.ResponseWriter, r *http.Request) {
	id, err := correlationParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	out, err := c.workflow(r.Context(), id)
	if err != nil {
		upstream(w, err)
		return
	}
	writeJSON(w, out)
}

// workflow reads a correlation id's events (EventQuery.GetEvents by
// correlation) and the dead letters, and builds the timeline.
func (c *Console) workflow(ctx context.Context, id string) (*workflowJSON, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.query.GetEvents(ctx, &pb.Query{Cover: &pb.Cover{CorrelationId: id}})
	if err != nil {
		return nil, err
	}
	var books []*pb.EventBook
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		books = append(books, b)
	}
	out := buildWorkflow(id, books, c.topo.current())
	c.confirmCauses(ctx, out)
	if dl, err := c.admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{}); err == nil {
		for _, d := range dl.GetDeadLetters() {
			if d.GetBook().GetCover().GetCorrelationId() != id && d.GetCommand().GetCover().GetCorrelationId() != id {
				continue
			}
			out.DeadLetters = append(out.DeadLetters, deadLetterJSON{ID: d.GetId(), Subscriber: d.GetSubscriber(), Kind: kindName(d.GetKind()),
				Cause: causeName(d.GetCause()), Error: d.GetError(), Attempts: d.GetAttempts(), DeadAt: d.GetDeadAt().AsTime(),
				Events: decodeBook(d.GetBook(), false)})
		}
	}
	return out, nil
}

// buildWorkflow turns a correlation id's books (in append order) into
// steps, attributing each to the command, a saga, a refusal or a
// compensation by the topology.
func buildWorkflow(id string, books []*pb.EventBook, cfg *pb.FanoutConfig) *workflowJSON {
	out := &workflowJSON{Correlation: id, Steps: []stepJSON{}, Domains: []string{}, DeadLetters: []deadLetterJSON{}}
	failures := cfg.GetFailureDomain()
	if failures == "" {
		failures = defaultFailureDomain
	}
	var origin string            // domain/root of the first step
	lastStep := map[string]int{} // aggregate → index of its latest step
	seen := map[string]bool{}    // domains with a step
	refused := false
	var prevEnd time.Time
	for _, b := range books {
		events := decodeBook(b, false)
		if len(events) == 0 {
			continue
		}
		st := stepJSON{Domain: b.GetCover().GetDomain(), Root: rootString(b.GetCover().GetRoot()), Events: events, At: events[0].Time}
		agg := st.Domain + "/" + st.Root
		if origin == "" {
			origin = agg
			out.Start = st.At
		}
		// The domains with events since this aggregate's previous step:
		// what a saga may have reacted to.
		since := map[string]bool{}
		from := 0
		if i, ok := lastStep[agg]; ok {
			from = i + 1
		}
		for _, prev := range out.Steps[from:] {
			since[prev.Domain] = true
			for _, e := range prev.Events {
				root, _ := uuid.Parse(e.Root)
				st.triggers = append(st.triggers, trigger{domain: e.Domain, root: root[:], sequence: e.Sequence})
			}
		}
		switch by := causes(cfg, since, st.Domain); {
		case st.Domain == failures:
			st.Kind, refused = StepRefusal, true
		case len(by) > 0:
			st.Kind, st.By = StepSaga, by
		case refused && agg == origin:
			st.Kind = StepCompensation
		default:
			st.Kind = StepCommand // a client's command (nothing in the topology writes here)
		}
		for _, sub := range cfg.GetSubscriptions() {
			if sub.GetKind() == pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR && slices.Contains(sub.GetSourceDomains(), st.Domain) {
				st.Projectors = append(st.Projectors, sub.GetName())
			}
		}
		if !prevEnd.IsZero() {
			st.TookMs = ms(st.At.Sub(prevEnd))
		}
		st.SinceStartMs = ms(st.At.Sub(out.Start))
		prevEnd = events[len(events)-1].Time
		if prevEnd.After(out.End) {
			out.End = prevEnd
		}
		seen[st.Domain] = true
		lastStep[agg] = len(out.Steps)
		out.Steps = append(out.Steps, st)
	}
	for d := range seen {
		out.Domains = append(out.Domains, d)
	}
	slices.Sort(out.Domains)
	if !out.Start.IsZero() {
		out.DurationMs = ms(out.End.Sub(out.Start))
	}
	return out
}

// causes are the sagas and process managers (anything with targets) that
// read one of the domains that had a step since the aggregate's previous
// one, and may write domain.
func causes(cfg *pb.FanoutConfig, earlier map[string]bool, domain string) []string {
	var out []string
	for _, sub := range cfg.GetSubscriptions() {
		if !slices.Contains(sub.GetTargetDomains(), domain) {
			continue
		}
		if slices.ContainsFunc(sub.GetSourceDomains(), func(d string) bool { return earlier[d] }) {
			out = append(out, sub.GetName())
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Bounds of confirmCauses: the commands a saga may have issued per event,
// and the lookups per workflow.
const (
	maxCommandIndex = 4
	maxCauseLookups = 64
)

// confirmCauses narrows each saga step with several possible sagas to the
// one that issued its command: a saga's command carries the idempotency key
// sagakey.Key(saga, trigger, index), and EventStore.Load reports the append
// an aggregate made with a key. Lookups are bounded; a step left
// unconfirmed keeps every possible saga.
func (c *Console) confirmCauses(ctx context.Context, wf *workflowJSON) {
	lookups := 0
	for i := range wf.Steps {
		st := &wf.Steps[i]
		if st.Kind != StepSaga || len(st.By) < 2 {
			continue
		}
		root, err := uuid.Parse(st.Root)
		if err != nil {
			continue
		}
		cover := &pb.Cover{Domain: st.Domain, Root: &pb.UUID{Value: root[:]}}
		first := st.Events[0].Sequence
		found := ""
	search:
		for _, saga := range st.By {
			for _, t := range st.triggers {
				for idx := range maxCommandIndex {
					if lookups == maxCauseLookups {
						return
					}
					lookups++
					resp, err := c.store.Load(ctx, &pb.LoadRequest{Cover: cover, IdempotencyKey: sagakey.Key(saga, t.domain, t.root, t.sequence, idx)})
					if err != nil {
						return // not allowed, or unavailable: keep the topology's answer
					}
					if p := resp.GetPrior().GetBook().GetPages(); len(p) > 0 && p[0].GetNum() == first {
						found = saga
						break search
					}
				}
			}
		}
		if found != "" {
			st.By, st.Confirmed = []string{found}, true
		}
	}
}
