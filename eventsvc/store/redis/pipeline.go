package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// pipelineWorkers is how many pipelines may be in flight at once.
const pipelineWorkers = 2

// maxPipeline is the most calls taken into one pipeline.
const maxPipeline = 256

// Bounds of one append group (one appendScript call): at most maxGroup
// appends and, once it holds maxGroupPages pages, no further append.
const (
	maxGroup      = 64
	maxGroupPages = 4000
)

var errClosed = errors.New("redis store closed")

// pipeliner is the group commit of the Redis store. Concurrent calls queue
// while a pipeline is in flight, and the next pipeline carries all of
// them: the appends among them to one slot (one domain partition) go
// together as one appendScript call, in the order they arrived, each still
// checked and applied on its own; loads go as their own script calls. So
// under load one write and one read syscall on each side, one script call
// and one AOF write (and fsync, with appendfsync always) serve many
// appends. A single call waits no longer than it would alone.
type pipeliner struct {
	c       goredis.UniversalClient
	confirm *confirmer                        // nil: no replica confirmation
	nodes   func(addr string) *goredis.Client // a cluster node's client by address, or nil
	calls   chan *call
	done    chan struct{}
	wg      sync.WaitGroup
}

// call is one queued request: a script call, or an append (app set) that
// joins its slot's group.
type call struct {
	ctx    context.Context
	script *goredis.Script
	keys   []string
	args   []any
	app    *appendCall
	reply  chan scriptReply // buffered: the worker never blocks on it
}

// appendCall is one append's share of an appendScript call.
type appendCall struct {
	log, roots string    // the slot's keys: appends with the same log key group
	keys       [5]string // events, snapshot, idempotency, correlation, size
	args       []any     // the 11 head fields, then the pages
	pages      int
}

type scriptReply struct {
	val any
	err error
}

func newPipeliner(c goredis.UniversalClient, cf *confirmer, nodes func(string) *goredis.Client) *pipeliner {
	p := &pipeliner{c: c, confirm: cf, nodes: nodes, calls: make(chan *call, maxPipeline), done: make(chan struct{})}
	for i := 0; i < pipelineWorkers; i++ {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// close stops the workers after the pipelines in flight.
func (p *pipeliner) close() {
	close(p.done)
	p.wg.Wait()
}

// run executes script and returns its reply.
func (p *pipeliner) run(ctx context.Context, script *goredis.Script, keys []string, args ...any) (any, error) {
	return p.submit(&call{ctx: ctx, script: script, keys: keys, args: args, reply: make(chan scriptReply, 1)})
}

// append executes one append in its slot's group and returns its own
// reply (see appendScript).
func (p *pipeliner) append(ctx context.Context, a *appendCall) (any, error) {
	return p.submit(&call{ctx: ctx, app: a, reply: make(chan scriptReply, 1)})
}

func (p *pipeliner) submit(c *call) (any, error) {
	select {
	case p.calls <- c:
	case <-p.done:
		return nil, errClosed
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.val, r.err
	case <-c.ctx.Done():
		// The script may still run: the caller sees an unknown outcome, as
		// with any lost reply.
		return nil, c.ctx.Err()
	}
}

func (p *pipeliner) work() {
	defer p.wg.Done()
	batch := make([]*call, 0, maxPipeline)
	for {
		batch = batch[:0]
		select {
		case c := <-p.calls:
			batch = append(batch, c)
		case <-p.done:
			return
		}
	drain:
		for len(batch) < maxPipeline {
			select {
			case c := <-p.calls:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		p.exec(batch)
	}
}

// unit is one script call of a pipeline: a lone script call, or a group
// of appends to one slot.
type unit struct {
	script *goredis.Script
	keys   []string
	args   []any
	calls  []*call
	pages  int
	group  bool
	moved  string // the address a MOVED reply sent the unit to
}

// units turns a batch into script calls, grouping appends by slot in
// arrival order.
func units(batch []*call) []*unit {
	var out []*unit
	open := map[string]*unit{} // the open group of each slot
	for _, c := range batch {
		if c.app == nil {
			out = append(out, &unit{script: c.script, keys: c.keys, args: c.args, calls: []*call{c}})
			continue
		}
		a := c.app
		u := open[a.log]
		if u == nil || len(u.calls) >= maxGroup || u.pages >= maxGroupPages {
			u = &unit{script: appendScript, keys: []string{a.log, a.roots}, args: []any{0}, group: true}
			open[a.log] = u
			out = append(out, u)
		}
		u.keys = append(u.keys, a.keys[:]...)
		u.args = append(u.args, a.args...)
		u.calls = append(u.calls, c)
		u.pages += a.pages
		u.args[0] = len(u.calls)
	}
	return out
}

// exec sends one batch: a lone script call directly, several in one
// pipeline. Calls whose script is not cached on the server (NOSCRIPT, e.g.
// after a restart) are retried one by one with Run, which loads it. This
// is the one place a batch's writes pass through on their way to Redis,
// and its replies on their way back: with replicas to wait for, it goes
// through execConfirmed instead, one pipeline per master ending in the
// replicas' confirmation, before any reply is handed out.
func (p *pipeliner) exec(batch []*call) {
	us := units(batch)
	// Callers' deadlines differ; the pipeline is bounded by the client's
	// read and write timeouts instead.
	ctx := context.WithoutCancel(batch[0].ctx)
	if p.confirm.enabled() {
		p.execConfirmed(ctx, us)
		return
	}
	if len(us) == 1 {
		u := us[0]
		v, err := u.script.Run(ctx, p.c, u.keys, u.args...).Result()
		u.answer(v, err)
		return
	}
	pipe := p.c.Pipeline()
	cmds := make([]*goredis.Cmd, len(us))
	for i, u := range us {
		cmds[i] = u.script.EvalSha(ctx, pipe, u.keys, u.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, u := range us {
		v, err := cmds[i].Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			v, err = u.script.Run(ctx, p.c, u.keys, u.args...).Result()
		}
		u.answer(v, err)
	}
}

// maxRounds bounds how often a unit that did not run (NOSCRIPT, MOVED)
// is sent again.
const maxRounds = 4

// execConfirmed sends the units of each master in one pipeline on one
// connection, followed by the replicas' confirmation (confirmer.queue),
// the masters in parallel. No reply of a pipeline is handed out before
// the confirmation: a failed one answers every call of the pipeline with
// an unknown outcome (loads too: what they read may be lost, e.g. the
// prior result of an idempotency key). Units that did not run (the
// script was not cached, or the slot moved) go again in a later round.
func (p *pipeliner) execConfirmed(ctx context.Context, us []*unit) {
	for round := 0; len(us) > 0; round++ {
		byNode := map[*goredis.Client][]*unit{}
		var order []*goredis.Client
		for _, u := range us {
			n, err := p.master(ctx, u)
			if err != nil {
				u.answer(nil, err)
				continue
			}
			if byNode[n] == nil {
				order = append(order, n)
			}
			byNode[n] = append(byNode[n], u)
		}
		var (
			mu    sync.Mutex
			wg    sync.WaitGroup
			again []*unit
		)
		for _, n := range order {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := p.execNode(ctx, n, byNode[n], round+1 < maxRounds)
				mu.Lock()
				again = append(again, r...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		us = again
	}
}

// master is the client of the master a unit goes to.
func (p *pipeliner) master(ctx context.Context, u *unit) (*goredis.Client, error) {
	if u.moved != "" && p.nodes != nil {
		if n := p.nodes(u.moved); n != nil {
			return n, nil
		}
	}
	return masterFor(ctx, p.c, u.keys[0])
}

// execNode runs units on one master, then the confirmation, on one
// connection, and answers them; it returns the units that did not run
// and may go again.
func (p *pipeliner) execNode(ctx context.Context, n *goredis.Client, us []*unit, mayRetry bool) []*unit {
	pipe := n.Pipeline()
	cmds := make([]*goredis.Cmd, len(us))
	for i, u := range us {
		cmds[i] = u.script.EvalSha(ctx, pipe, u.keys, u.args...)
	}
	confirmed := p.confirm.queue(ctx, pipe, us[0].keys[0])
	_, _ = pipe.Exec(ctx) // errors are per command
	cerr := confirmed()
	if cerr != nil {
		cerr = confirmFailed(cerr, appendUnknown)
	}
	var again []*unit
	loaded := map[*goredis.Script]bool{}
	for i, u := range us {
		v, err := cmds[i].Result()
		if err != nil && mayRetry {
			msg := err.Error()
			switch {
			case strings.HasPrefix(msg, "NOSCRIPT"):
				if !loaded[u.script] {
					loaded[u.script] = true
					_ = u.script.Load(ctx, n).Err() // a failure shows in the next round
				}
				again = append(again, u)
				continue
			case strings.HasPrefix(msg, "MOVED "):
				if f := strings.Fields(msg); len(f) == 3 {
					u.moved = f[2]
				}
				reloadState(p.c)
				again = append(again, u)
				continue
			}
		}
		if err == nil && cerr != nil {
			v, err = nil, cerr
		}
		if err != nil && isRouting(err) {
			reloadState(p.c)
		}
		u.answer(v, err)
	}
	return again
}

// answer hands each call of the unit its reply: a group's reply is one
// reply per append.
func (u *unit) answer(v any, err error) {
	if !u.group {
		u.calls[0].reply <- scriptReply{v, err}
		return
	}
	replies, _ := v.([]any)
	if err == nil && len(replies) != len(u.calls) {
		err = fmt.Errorf("redis append: %d replies for %d appends", len(replies), len(u.calls))
	}
	for j, c := range u.calls {
		if err != nil {
			c.reply <- scriptReply{nil, err}
		} else {
			c.reply <- scriptReply{replies[j], nil}
		}
	}
}
