package redis

import (
	"context"
	"errors"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// pipelineWorkers is how many pipelines may be in flight at once.
const pipelineWorkers = 2

// maxPipeline is the most script calls sent in one pipeline.
const maxPipeline = 256

var errClosed = errors.New("redis store closed")

// pipeliner sends concurrent script calls in pipelines: while a pipeline is
// in flight, new calls queue up and the next pipeline carries all of them,
// so under load one write and one read syscall serve many appends, on both
// sides of the connection. A single call waits no longer than it would
// alone. Each script stays atomic on its own; pipelining only batches the
// network round trips.
type pipeliner struct {
	c     goredis.UniversalClient
	calls chan *scriptCall
	done  chan struct{}
	wg    sync.WaitGroup
}

type scriptCall struct {
	ctx    context.Context
	script *goredis.Script
	keys   []string
	args   []any
	reply  chan scriptReply // buffered: the worker never blocks on it
}

type scriptReply struct {
	val any
	err error
}

func newPipeliner(c goredis.UniversalClient) *pipeliner {
	p := &pipeliner{c: c, calls: make(chan *scriptCall, maxPipeline), done: make(chan struct{})}
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
	call := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, reply: make(chan scriptReply, 1)}
	select {
	case p.calls <- call:
	case <-p.done:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-call.reply:
		return r.val, r.err
	case <-ctx.Done():
		// The script may still run: the caller sees an unknown outcome, as
		// with any lost reply.
		return nil, ctx.Err()
	}
}

func (p *pipeliner) work() {
	defer p.wg.Done()
	batch := make([]*scriptCall, 0, maxPipeline)
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

// exec sends one pipeline. Calls whose script is not cached on the server
// (NOSCRIPT, e.g. after a restart) are retried one by one with Run, which
// loads the script.
func (p *pipeliner) exec(batch []*scriptCall) {
	if len(batch) == 1 {
		c := batch[0]
		v, err := c.script.Run(c.ctx, p.c, c.keys, c.args...).Result()
		c.reply <- scriptReply{v, err}
		return
	}
	// Callers' deadlines differ; the pipeline is bounded by the client's
	// read and write timeouts instead.
	ctx := context.WithoutCancel(batch[0].ctx)
	pipe := p.c.Pipeline()
	cmds := make([]*goredis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, c := range batch {
		v, err := cmds[i].Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			v, err = c.script.Run(ctx, p.c, c.keys, c.args...).Result()
		}
		c.reply <- scriptReply{v, err}
	}
}
