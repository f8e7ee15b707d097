package fanout

import (
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Coordinator returns a client for the BusinessCoordinator of domain at the
// address the current fan-out configuration gives it (FanoutConfig.domains:
// through the domain's own filter). The event service's CommandGateway
// executes commands with it.
func (d *Dispatcher) Coordinator(domain string) (pb.BusinessCoordinatorClient, error) {
	addr, err := d.endpoint(domain)
	if err != nil {
		return nil, err
	}
	conn, err := d.conns.get(addr)
	if err != nil {
		return nil, err
	}
	return pb.NewBusinessCoordinatorClient(conn), nil
}
