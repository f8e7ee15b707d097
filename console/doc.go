// Package console is the web console of Angzarr Mesh, for people: see the
// streams, follow a workflow across domains, watch the fan-out and fix what
// is parked.
//
// It is an http.Handler serving a JSON API and a static UI embedded in the
// binary (no build step, no CDN). Everything it shows comes from the public
// gRPC APIs of the event service (EventQuery; EventStore.ListRoots, paged
// by cursor, for the aggregate list; FanoutAdmin) and the control plane (the fan-out
// configuration over xDS): it holds no store of its own and no back door
// into one. It is read-only except for the deliberate operator actions on
// dead letters (replay, skip).
//
// Every request is authenticated (an Authenticator: tokens by default, a
// client certificate's identity once #18's identities land) and every view
// and action is authorized (an Authorizer: readers read, operators also
// act). Action endpoints take only POSTs with a per-session CSRF token in a
// header, and every response carries a strict Content-Security-Policy: the
// UI runs no inline script.
//
// Views: Topology (domains, sagas, process managers, projectors and the
// flow of events between them, with rates and health), Streams (domains,
// aggregates paged, an aggregate's events decoded to JSON, as of a sequence
// or a time, raw, each linked to its workflow), Workflows (every event sharing a correlation id, as a
// timeline with step durations), Fan-out (each subscriber's position and
// lag over the last minutes, dead letters) and Live (server-sent events fed
// by EventQuery.Synchronize).
package console
