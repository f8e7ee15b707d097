//go:build wasip1

package abi

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go runtime in a wasmexport module, and Envoy 1.33:
//
//   - The runtime's own goroutines (GC mark workers, sweeper, scavenger) run
//     only while an export's goroutine blocks. Left alone, the automatic
//     collector stalls mid-cycle after a while and the heap grows without
//     bound (measured: 1.1 GB of linear memory after 100,000 commands).
//   - Once the network poller is initialised — which the first timer does,
//     and the scavenger arms one after it released memory — every
//     start-the-world polls it with poll_oneoff, which Envoy 1.33 answers
//     with ENOSYS: "fatal error: poll_oneoff failed" (golang/go#78513).
//
//   - The automatic collector relies on background mark workers that only
//     run when the export's goroutine yields; marking by assists alone trips
//     the GC CPU limiter, which then disables assists and is only re-checked
//     by sysmon (absent on wasm) or the scheduler: the cycle never ends.
//
// So the filter runs the collector itself, between streams: automatic GC is
// off, and debug.FreeOSMemory (a full GC, then every free page released
// synchronously) runs once enough has been allocated since the last one.
// Releasing every free page keeps the background scavenger without work
// (it only releases free pages, and at each collection the retained heap
// equals the heap in use), so it never sleeps on a timer, the poller stays
// uninitialised and no start-the-world ever calls poll_oneoff. Blocking in
// the collection lets the mark workers run; the scheduler never idles
// because the workers have work until the cycle ends.

// gcMinGarbage is the least allocation between two collections. Each
// collection blocks the worker (Envoy's event loop) for its pause.
// BenchmarkFilterModule measures the pause also as the CPU time of the
// callback that collected (the OS thread's CPU clock: on the shared,
// loaded 2-core machine the wall clock mostly counts other processes).
// With the aggregate cache off (live heap 76 KiB), wazero compiler, load
// average 10-18 (2026-12-07):
//
//	a second FreeOSMemory right after one (no garbage): ~0.43 ms
//	4 MiB of garbage: p50 1.86 ms (four runs, ±2%), one per 500 commands
//	runtime.GC() instead of FreeOSMemory, 4 MiB: p50 1.88 ms (the
//	  release of free pages costs nothing measurable)
//	the cache on (live heap 4 MiB): p50 2.14 ms
//
// So a collection costs about 0.4 ms however little there is to collect,
// plus about 0.35 ms per MiB of garbage; the live heap (the cache's
// histories are pointer-free []byte) adds little. No pacing reaches tens
// of microseconds; what shortens the pauses is less garbage per command.
// Since each command's ContextualCommand is built in a reused buffer
// (Stream.forwardCommand), a command leaves about 5 KiB of garbage instead
// of 8, and at 2 MiB: p50 1.44 ms, p99 2.7 ms (4 MiB before: 1.86 / 3.4),
// one collection per 414 commands (500 before), the same GC CPU per
// command (3.5 µs, 3.7 before). With the cache on, the live heap (4 MiB)
// sets the threshold: one collection per 1219 commands instead of 769, GC
// CPU per command 1.9 µs instead of 2.8, the pause unchanged (p50 2.4 ms,
// 2.1 ms before: within the runs' spread).
const gcMinGarbage = 2 << 20

// gcMaxSkip bounds how many stream ends pass without reading the
// allocation counter (see collectGarbage).
const gcMaxSkip = 16

var gcState struct {
	on      bool
	samples []metrics.Sample
	// nextAt is the cumulative allocation at which to collect next.
	nextAt uint64
	// lastAllocs is the cumulative allocation at the last reading, ends
	// the stream ends since, and skip how many stream ends pass before
	// the next reading.
	lastAllocs uint64
	ends, skip int
}

// takeOverGC switches automatic collection off (once, at VM start; never
// during _initialize).
func takeOverGC() {
	if gcState.on {
		return
	}
	gcState.on = true
	gcState.samples = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	debug.SetGCPercent(-1)
	gcState.lastAllocs = readAllocs()
	gcState.nextAt = gcState.lastAllocs + gcMinGarbage
}

func readAllocs() uint64 {
	metrics.Read(gcState.samples)
	return gcState.samples[0].Value.Uint64()
}

// collectGarbage, at the end of a stream, collects when at least
// max(gcMinGarbage, live heap) bytes were allocated since the last
// collection (GOGC=100 pacing, done between streams).
//
// Reading the allocation counter is most of what this costs per stream,
// so it is read only as often as needed: after each reading, the stream
// ends to skip are the number of average streams (since the previous
// reading) that would use half the allocation left before the next
// collection, at most gcMaxSkip. Far from the threshold that is one
// reading every gcMaxSkip streams; close to it, one every stream, so the
// collection comes about when it did with a reading every stream.
//
// It returns the collection's pause (the worker's thread is blocked for
// it), and false when it did not collect.
func collectGarbage() (pause time.Duration, collected bool) {
	if !gcState.on {
		return 0, false
	}
	gcState.ends++
	if gcState.ends <= gcState.skip {
		return 0, false
	}
	allocs := readAllocs()
	if allocs >= gcState.nextAt {
		start := time.Now()
		debug.FreeOSMemory()
		pause, collected = time.Since(start), true
		allocs = readAllocs()
		live := gcState.samples[1].Value.Uint64()
		if live < gcMinGarbage {
			live = gcMinGarbage
		}
		gcState.nextAt = allocs + live
	}
	perStream := (allocs - gcState.lastAllocs) / uint64(gcState.ends)
	gcState.lastAllocs, gcState.ends, gcState.skip = allocs, 0, 0
	if perStream > 0 {
		gcState.skip = int(min((gcState.nextAt-allocs)/(2*perStream), gcMaxSkip))
	}
	return pause, collected
}
