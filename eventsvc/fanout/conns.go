package fanout

import (
	"errors"
	"sync"

	"google.golang.org/grpc"
)

// conns keeps one gRPC client connection per address (subscribers and
// coordinators), created on first use and closed when the dispatcher stops.
type conns struct {
	opts []grpc.DialOption

	mu     sync.Mutex
	m      map[string]*grpc.ClientConn
	closed bool
}

func newConns(opts []grpc.DialOption) *conns {
	return &conns{opts: opts, m: map[string]*grpc.ClientConn{}}
}

var errClosed = errors.New("fanout: dispatcher stopped")

// get returns the connection to addr.
func (c *conns) get(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if cc, ok := c.m[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, c.opts...)
	if err != nil {
		return nil, err
	}
	c.m[addr] = cc
	return cc, nil
}

// close closes every connection; later gets fail.
func (c *conns) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.m {
		cc.Close()
	}
	c.m = map[string]*grpc.ClientConn{}
	c.closed = true
}
