// Command angzarr is the single CLI of Angzarr Mesh: the event service, the
// control plane, the local proxy (wasmhost), the local mesh, and client verbs.
// Each subcommand parses its flags into the owning package's config and calls
// its Run; no logic lives here.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
