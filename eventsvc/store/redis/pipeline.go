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
	c     goredis.UniversalClient
	calls chan *call
	done  chan struct{}
	wg    sync.WaitGroup
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
	keys       [4]string // events, snapshot, idempotency, correlation
	args       []any     // the 10 head fields, then the pages
	pages      int
}

type scriptReply struct {
	val any
	err error
}

func newPipeliner(c goredis.UniversalClient) *pipeliner {
	p := &pipeliner{c: c, calls: make(chan *call, maxPipeline), done: make(chan struct{})}
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
// and its replies on their way back: where a per-batch replica or AOF
// confirmation (WAIT/WAITAOF) belongs, before any reply is handed out.
func (p *pipeliner) exec(batch []*call) {
	us := units(batch)
	// Callers' deadlines differ; the pipeline is bounded by the client's
	// read and write timeouts instead.
	ctx := context.WithoutCancel(batch[0].ctx)
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
