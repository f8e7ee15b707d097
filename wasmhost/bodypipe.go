package wasmhost

import (
	"errors"
	"io"
	"sync"
)

// bodyPipe carries the request body from the pump to the upstream client,
// like io.Pipe (a write waits until the reader took it all), with one
// addition: writeEnd hands over the last bytes and the end of the body
// together, so the reader sees them in one Read returning io.EOF and the
// client sends them as one DATA frame with END_STREAM instead of a second
// empty frame (and a second write) for the end.
type bodyPipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	pending []byte // bytes written, not yet read
	end     bool   // no write follows pending
	err     error  // set by closeWithError (reader) or the end (io.EOF)
	rclosed bool   // the reader closed
}

func newBodyPipe() *bodyPipe {
	p := &bodyPipe{}
	p.cond.L = &p.mu
	return p
}

var errPipeReaderClosed = errors.New("wasmhost: request body reader closed")

// Read implements io.Reader.
func (p *bodyPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) == 0 && !p.end && p.err == nil && !p.rclosed {
		p.cond.Wait()
	}
	if p.rclosed {
		return 0, io.ErrClosedPipe
	}
	if len(p.pending) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		return 0, io.EOF
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	if len(p.pending) == 0 {
		p.pending = nil
		p.cond.Broadcast()
		if p.end {
			return n, io.EOF
		}
	}
	return n, nil
}

// Close closes the reader: pending and later writes fail.
func (p *bodyPipe) Close() error {
	p.mu.Lock()
	p.rclosed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

// write hands b to the reader and waits until it was read; end marks it
// as the body's last bytes (b may be empty).
func (p *bodyPipe) write(b []byte, end bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rclosed {
		return errPipeReaderClosed
	}
	if p.end || p.err != nil {
		return io.ErrClosedPipe
	}
	p.pending, p.end = b, end
	p.cond.Broadcast()
	for len(p.pending) > 0 && !p.rclosed {
		p.cond.Wait()
	}
	if len(p.pending) > 0 { // the reader closed before taking it
		p.pending = nil
		return errPipeReaderClosed
	}
	return nil
}

// Write implements io.Writer.
func (p *bodyPipe) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := p.write(b, false); err != nil {
		return 0, err
	}
	return len(b), nil
}

// writeEnd writes the body's last bytes (possibly none) and its end.
func (p *bodyPipe) writeEnd(b []byte) error { return p.write(b, true) }

// closeWithError ends the body with err for the reader (after what is
// pending).
func (p *bodyPipe) closeWithError(err error) {
	p.mu.Lock()
	if p.err == nil && !p.end {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}
