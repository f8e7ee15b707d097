package wasmhost

import (
	"errors"
	"io"
	"testing"
	"time"
)

func TestBodyPipeDeliversTheEndWithTheLastBytes(t *testing.T) {
	p := newBodyPipe()
	done := make(chan error, 1)
	go func() {
		if _, err := p.Write([]byte("first ")); err != nil {
			done <- err
			return
		}
		done <- p.writeEnd([]byte("last"))
	}()
	buf := make([]byte, 64)
	n, err := p.Read(buf)
	if string(buf[:n]) != "first " || err != nil {
		t.Fatalf("first read: %q, %v", buf[:n], err)
	}
	n, err = p.Read(buf)
	if string(buf[:n]) != "last" || err != io.EOF {
		t.Fatalf("last read: %q, %v; want the last bytes with io.EOF", buf[:n], err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := p.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v", n, err)
	}
}

func TestBodyPipeLastBytesLargerThanTheReadBuffer(t *testing.T) {
	p := newBodyPipe()
	go func() { _ = p.writeEnd([]byte("abcdef")) }()
	buf := make([]byte, 4)
	n, err := p.Read(buf)
	if string(buf[:n]) != "abcd" || err != nil {
		t.Fatalf("partial read: %q, %v (no EOF before the last byte)", buf[:n], err)
	}
	n, err = p.Read(buf)
	if string(buf[:n]) != "ef" || err != io.EOF {
		t.Fatalf("rest: %q, %v", buf[:n], err)
	}
}

func TestBodyPipeWriteWaitsForTheReader(t *testing.T) {
	p := newBodyPipe()
	wrote := make(chan struct{})
	go func() { _, _ = p.Write([]byte("x")); close(wrote) }()
	select {
	case <-wrote:
		t.Fatal("Write returned before the bytes were read")
	case <-time.After(20 * time.Millisecond):
	}
	buf := make([]byte, 1)
	if _, err := p.Read(buf); err != nil {
		t.Fatal(err)
	}
	<-wrote
}

func TestBodyPipeReaderCloseFailsTheWriter(t *testing.T) {
	p := newBodyPipe()
	errc := make(chan error, 1)
	go func() { _, err := p.Write([]byte("never read")); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	p.Close()
	if err := <-errc; !errors.Is(err, errPipeReaderClosed) {
		t.Fatalf("writer got %v", err)
	}
	if _, err := p.Write([]byte("more")); !errors.Is(err, errPipeReaderClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestBodyPipeCloseWithErrorReachesTheReader(t *testing.T) {
	p := newBodyPipe()
	boom := errors.New("boom")
	p.closeWithError(boom)
	if _, err := p.Read(make([]byte, 8)); err != boom {
		t.Fatalf("read: %v", err)
	}
	if err := p.writeEnd(nil); err == nil {
		t.Fatal("writeEnd after closeWithError succeeded")
	}
}
