package devmesh

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// PortError is a component's port that cannot be listened on.
type PortError struct {
	// Component is the component's name ("eventsvc", "proxy/order", ...).
	Component string
	// Addr is the address it was to listen on.
	Addr string
	// Err is the listen error.
	Err error
}

func (e *PortError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("%s: port %s is already in use (another angzarr dev, or another program, listens there): stop it, or move the whole mesh with --base-port N, or this component alone with --port %s=PORT",
			e.Component, e.Addr, e.Component)
	}
	return fmt.Sprintf("%s: cannot listen on %s: %v (choose other ports with --base-port N or --port %s=PORT)", e.Component, e.Addr, e.Err, e.Component)
}

func (e *PortError) Unwrap() error { return e.Err }

// listenAll listens on every slot of plan except those skip names, and
// reports every port that is taken at once. On error nothing stays open.
func listenAll(host string, plan []slot, skip map[string]bool) (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	var errs []error
	for _, s := range plan {
		if skip[s.name] {
			continue
		}
		lis, err := net.Listen("tcp", s.addr(host))
		if err != nil {
			errs = append(errs, &PortError{Component: s.name, Addr: s.addr(host), Err: err})
			continue
		}
		out[s.name] = lis
	}
	if len(errs) > 0 {
		for _, l := range out {
			l.Close()
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}
