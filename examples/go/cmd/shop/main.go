// Command shop serves the example shop's components over gRPC: one
// (--component order) or all of them on consecutive ports (--component all).
// See examples/go/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/angzarr-mesh/angzarr/examples/go/shop"
)

func main() {
	var cfg shop.Config
	flag.StringVar(&cfg.Component, "component", shop.Everything, "component to serve: all, a name (order, loyalty-earn, order-summary) or kind:name (saga:fulfillment)")
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:50051", "address to listen on (all: the first of consecutive ports; port 0: free ports)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := shop.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
