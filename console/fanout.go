package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// fanoutJSON is every subscriber's position now and its lag over the last
// minutes.
type fanoutJSON struct {
	Subscribers []subscriberJSON `json:"subscribers"`
	// History is the lag of every subscriber per sample, oldest first.
	History []historyJSON `json:"history"`
}

type subscriberJSON struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Lag         uint64            `json:"lag"`
	LagCapped   bool              `json:"lagCapped,omitempty"`
	LagByDomain map[string]uint64 `json:"lagByDomain"`
	DeadLetters int               `json:"deadLetters"`
	Partitions  []partitionJSON   `json:"partitions"`
	Error       string            `json:"error,omitempty"`
}

type partitionJSON struct {
	Domain    string `json:"domain"`
	Partition uint32 `json:"partition"`
	Committed uint64 `json:"committed"`
	End       uint64 `json:"end"`
	Started   bool   `json:"started"`
}

type historyJSON struct {
	At  time.Time         `json:"at"`
	Lag map[string]uint64 `json:"lag"`
}

// getFanout samples every subscriber now (so the page is never stale) and
// adds the kept history.
func (c *Console) getFanout(w http.ResponseWriter, r *http.Request) {
	cfg := c.topo.current()
	now := c.samples.take(r.Context(), cfg)
	out := fanoutJSON{Subscribers: []subscriberJSON{}, History: []historyJSON{}}
	for _, sub := range cfg.GetSubscriptions() {
		ss := now.Subs[sub.GetName()]
		sj := subscriberJSON{Name: sub.GetName(), Kind: kindName(sub.GetKind()), Lag: ss.Lag, LagCapped: ss.LagCapped, LagByDomain: ss.LagByDomain,
			DeadLetters: ss.DeadLetters, Error: ss.Err, Partitions: []partitionJSON{}}
		for _, p := range ss.Partitions {
			sj.Partitions = append(sj.Partitions, partitionJSON{Domain: p.GetDomain(), Partition: p.GetPartition(),
				Committed: p.GetCommitted(), End: p.GetEnd(), Started: p.GetStarted()})
		}
		out.Subscribers = append(out.Subscribers, sj)
	}
	for _, s := range append(c.samples.history(), now) {
		h := historyJSON{At: s.At, Lag: map[string]uint64{}}
		for name, ss := range s.Subs {
			h.Lag[name] = ss.Lag
		}
		out.History = append(out.History, h)
	}
	writeJSON(w, out)
}

// deadLetterJSON is one parked event or saga command.
type deadLetterJSON struct {
	ID         string      `json:"id"`
	Subscriber string      `json:"subscriber"`
	Kind       string      `json:"kind"`
	Cause      string      `json:"cause"`
	Error      string      `json:"error"`
	Attempts   uint32      `json:"attempts"`
	DeadAt     time.Time   `json:"deadAt"`
	Events     []eventJSON `json:"events"`
	// Command is the parked saga command, decoded (for a command parked on
	// its own).
	Command      json.RawMessage `json:"command,omitempty"`
	CommandIndex uint32          `json:"commandIndex,omitempty"`
}

func (c *Console) getDeadLetters(w http.ResponseWriter, r *http.Request) {
	sub := r.URL.Query().Get("subscriber")
	if sub != "" {
		if err := subscriberName("subscriber", sub); err != nil {
			badRequest(w, err)
			return
		}
	}
	resp, err := c.admin.ListDeadLetters(r.Context(), &pb.ListDeadLettersRequest{Subscriber: sub})
	if err != nil {
		upstream(w, err)
		return
	}
	out := struct {
		DeadLetters []deadLetterJSON `json:"deadLetters"`
	}{DeadLetters: []deadLetterJSON{}}
	for _, d := range resp.GetDeadLetters() {
		dj := deadLetterJSON{ID: d.GetId(), Subscriber: d.GetSubscriber(), Kind: kindName(d.GetKind()), Cause: causeName(d.GetCause()),
			Error: d.GetError(), Attempts: d.GetAttempts(), DeadAt: d.GetDeadAt().AsTime(), Events: decodeBook(d.GetBook(), true)}
		if cmd := d.GetCommand(); cmd != nil {
			if j, err := jsonOpts.Marshal(cmd); err == nil {
				dj.Command, dj.CommandIndex = j, d.GetCommandIndex()
			}
		}
		out.DeadLetters = append(out.DeadLetters, dj)
	}
	writeJSON(w, out)
}

func causeName(c pb.DeadLetterCause) string {
	if c == pb.DeadLetterCause_DEAD_LETTER_CAUSE_UNSPECIFIED {
		return "unrecorded"
	}
	return kindLower(c.String(), "DEAD_LETTER_CAUSE_")
}

// actionRequest is the body of replay and skip.
type actionRequest struct {
	Subscriber string   `json:"subscriber"`
	IDs        []string `json:"ids"`
}

// parseAction reads and checks an action's body: a subscriber and at
// least one dead letter id (an action names what it acts on).
func parseAction(r *http.Request) (*actionRequest, error) {
	var req actionRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, errors.New("body: want {\"subscriber\": NAME, \"ids\": [ID, ...]}")
	}
	if err := subscriberName("subscriber", req.Subscriber); err != nil {
		return nil, err
	}
	if len(req.IDs) == 0 || len(req.IDs) > 1000 {
		return nil, errors.New("ids: 1 to 1000 dead letter ids")
	}
	for _, id := range req.IDs {
		if err := deadLetterID(id); err != nil {
			return nil, err
		}
	}
	return &req, nil
}

// replayResultJSON is the outcome of one replayed dead letter.
type replayResultJSON struct {
	ID        string `json:"id"`
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty"`
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	req, err := parseAction(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	resp, err := c.admin.ReplayDeadLetters(r.Context(), &pb.ReplayDeadLettersRequest{Subscriber: req.Subscriber, Ids: req.IDs})
	if err != nil {
		upstream(w, err)
		return
	}
	out := struct {
		Results []replayResultJSON `json:"results"`
	}{Results: []replayResultJSON{}}
	for _, res := range resp.GetResults() {
		out.Results = append(out.Results, replayResultJSON{ID: res.GetId(), Delivered: res.GetDelivered(), Error: res.GetError()})
	}
	c.log.Info("console: replayed", "principal", principal(r).Name, "subscriber", req.Subscriber, "ids", req.IDs, "results", len(out.Results))
	writeJSON(w, out)
}

func (c *Console) skip(w http.ResponseWriter, r *http.Request) {
	req, err := parseAction(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	resp, err := c.admin.DiscardDeadLetters(r.Context(), &pb.DiscardDeadLettersRequest{Subscriber: req.Subscriber, Ids: req.IDs})
	if err != nil {
		upstream(w, err)
		return
	}
	c.log.Info("console: skipped", "principal", principal(r).Name, "subscriber", req.Subscriber, "ids", resp.GetDiscarded())
	writeJSON(w, struct {
		Discarded []string `json:"discarded"`
	}{Discarded: append([]string{}, resp.GetDiscarded()...)})
}
