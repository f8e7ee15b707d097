"""A minimal aggregate runner: what package sdk does for Go, in Python.

It routes each command page to its handler by message type, rebuilds the
state from the snapshot and events with an apply function, and answers the
new events. Business rules live in logic.py; this file knows nothing of them.
"""
import grpc

import gen_path  # noqa: F401  (puts the generated stubs on sys.path)
from angzarr import types_pb2


class Rejection(Exception):
    """A business rule refusing a command: reaches the caller as a gRPC
    status with this code and message, and the framework stores nothing."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message):
    """A malformed command: INVALID_ARGUMENT."""
    return Rejection(grpc.StatusCode.INVALID_ARGUMENT, message)


def precondition(message):
    """A command the state forbids: FAILED_PRECONDITION."""
    return Rejection(grpc.StatusCode.FAILED_PRECONDITION, message)


def not_found(message):
    """A command naming something the aggregate lacks: NOT_FOUND."""
    return Rejection(grpc.StatusCode.NOT_FOUND, message)


def _name(type_url):
    return type_url.rsplit("/", 1)[-1]


def every_n(n):
    """A snapshot policy (before, after) -> bool: snapshot whenever the
    history passes a multiple of n events, so a load never replays more than
    about n events (n = 0: never). What sdk.EveryN is in Go."""
    return lambda before, after: n > 0 and after // n > before // n


def next_sequence(book):
    """The sequence the aggregate's next event gets: one past its last
    numbered page, else the snapshot's sequence, else 0 (sdk.NextSequence)."""
    nxt = book.snapshot.sequence if book.HasField("snapshot") else 0
    for page in book.pages:
        if page.WhichOneof("sequence") == "num":
            nxt = max(nxt, page.num + 1)
        else:
            nxt += 1  # a force-written page still takes a place
    return nxt


class Aggregate:
    """Business logic from handlers (message type -> fn(state, cmd) -> events)
    and an apply function (state, event) that folds an event into a state.
    With a snapshot policy (every_n), the answer carries the new state as
    snapshot_state when the policy asks for one, and the framework stores
    it: loads (and a conflict's retries) replay only the events after it."""

    def __init__(self, domain, new_state, apply, handlers, event_types, snapshot=None):
        self.domain = domain
        self.snapshot = snapshot
        self.new_state = new_state
        self.apply = apply
        self.handlers = {h.DESCRIPTOR.full_name: (h, fn) for h, fn in handlers.items()}
        self.event_types = {e.DESCRIPTOR.full_name: e for e in event_types}

    def unpack_event(self, any_msg):
        cls = self.event_types.get(_name(any_msg.type_url))
        if cls is None:
            return None  # an event without an applier changes nothing
        event = cls()
        any_msg.Unpack(event)
        return event

    def rebuild(self, book):
        """The state after the snapshot and the event pages at or after it."""
        state = self.new_state()
        start = 0
        if book.HasField("snapshot") and book.snapshot.HasField("state"):
            book.snapshot.state.Unpack(state)
            start = book.snapshot.sequence
        for page in book.pages:
            if page.WhichOneof("sequence") == "num" and page.num < start:
                continue
            event = self.unpack_event(page.event)
            if event is not None:
                self.apply(state, event)
        return state

    def decide(self, state, any_cmd):
        """The events of one command, or a Rejection."""
        entry = self.handlers.get(_name(any_cmd.type_url))
        if entry is None:
            raise invalid("domain %s has no handler for command %s" % (self.domain, any_cmd.type_url))
        cls, fn = entry
        cmd = cls()
        any_cmd.Unpack(cmd)
        return fn(state, cmd)

    def handle(self, contextual):
        """Answers a ContextualCommand with an EventBook of new events; a
        command book without pages gets an empty one."""
        state = self.rebuild(contextual.events)
        out = types_pb2.EventBook()
        cover = contextual.command.cover if contextual.command.HasField("cover") else contextual.events.cover
        out.cover.CopyFrom(cover)
        for page in contextual.command.pages:
            for event in self.decide(state, page.command):
                self.apply(state, event)
                out.pages.add().event.Pack(event)
        before = next_sequence(contextual.events)
        if self.snapshot is not None and out.pages and self.snapshot(before, before + len(out.pages)):
            out.snapshot_state.Pack(state)
        return out
