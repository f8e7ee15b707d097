package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/sdk"
)

// Everything is the Config.Component value that serves every component.
const Everything = "all"

// ErrUnknownComponent is returned for a component name the shop lacks.
var ErrUnknownComponent = errors.New("shop: unknown component")

// Config says what the shop binary serves.
type Config struct {
	// Component is Everything (the default when empty) or a component reference
	// for Lookup: "order", "loyalty-earn", "saga:fulfillment".
	Component string
	// Listen is the address to listen on (default 127.0.0.1:50051). With
	// Everything, the components listen on consecutive ports from it, in the order
	// of All(); port 0 gives each its own free port.
	Listen string
	// Logger reports each component's address; slog.Default when nil.
	Logger *slog.Logger
	// Ready, when set, is called with each component and its address once
	// it listens.
	Ready func(c Component, addr string)
}

// Run serves the configured components until ctx is done, then stops them
// gracefully.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Component == "" {
		cfg.Component = Everything
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:50051"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	components := All()
	if cfg.Component != Everything {
		c, err := Lookup(cfg.Component)
		if err != nil {
			return err
		}
		components = []Component{c}
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("shop: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("shop: listen port %q: %w", portText, err)
	}

	var listeners []net.Listener
	for i, c := range components {
		p := port
		if p != 0 {
			p += i
		}
		lis, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			for _, l := range listeners {
				_ = l.Close()
			}
			return fmt.Errorf("shop: %s: %w", c.Ref(), err)
		}
		listeners = append(listeners, lis)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(components))
	for i, c := range components {
		addr := listeners[i].Addr().String()
		cfg.Logger.Info("serving", "component", c.Name, "kind", c.Kind, "addr", addr)
		if cfg.Ready != nil {
			cfg.Ready(c, addr)
		}
		wg.Go(func() {
			if errs[i] = Serve(ctx, listeners[i], c); errs[i] != nil {
				cancel() // one failed: stop the others
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Serve serves component c on lis (with health and reflection) until ctx is
// done.
func Serve(ctx context.Context, lis net.Listener, c Component) error {
	s := grpc.NewServer()
	service, err := c.Register(s)
	if err != nil {
		_ = lis.Close()
		return err
	}
	return sdk.ServeServer(ctx, lis, s, service)
}
