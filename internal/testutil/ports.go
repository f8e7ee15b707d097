package testutil

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// FreePort returns a port on 127.0.0.1 that was free a moment ago, for a
// server that takes an address rather than a listener (a child process,
// redis-server). Prefer handing a listener on 127.0.0.1:0 where the
// server takes one: nothing can take the port in between.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return FreePorts(tb, 1)
}

// FreePorts returns the first of n consecutive ports on 127.0.0.1 that
// were free a moment ago, below the ephemeral range (32768 up on Linux),
// so that the kernel does not hand them to outgoing connections: for a
// server that places its parts at fixed offsets from a base port (the
// local mesh).
func FreePorts(tb testing.TB, n int) int {
	tb.Helper()
	for range 100 {
		base := 20000 + rand.IntN(12000-n)
		ls := make([]net.Listener, 0, n)
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		ok := len(ls) == n
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	tb.Fatalf("no %d consecutive free ports", n)
	return 0
}

// FreeAddr is FreePort as a 127.0.0.1:port address.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}
