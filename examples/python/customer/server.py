"""Serves the customer domain's business logic (angzarr.BusinessLogic) over
gRPC, with the gRPC health service.

    /usr/bin/python3 examples/python/customer/server.py --listen 127.0.0.1:50071

It prints "listening on HOST:PORT" once it serves (port 0 picks a free one)
and stops gracefully on SIGTERM or SIGINT.
"""
import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

import gen_path  # noqa: F401  (puts the generated stubs on sys.path)
import health
import logic
from aggregate import Rejection
from angzarr import aggregate_pb2_grpc


class CustomerService(aggregate_pb2_grpc.BusinessLogicServicer):
    """angzarr.BusinessLogic for the customer domain."""

    def __init__(self):
        self.aggregate = logic.logic()

    def Handle(self, request, context):
        try:
            return self.aggregate.handle(request)
        except Rejection as r:
            context.abort(r.code, r.message)


def serve(listen):
    """Starts the server on listen and returns it with the bound address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    aggregate_pb2_grpc.add_BusinessLogicServicer_to_server(CustomerService(), server)
    server.add_generic_rpc_handlers((health.handler(["angzarr.BusinessLogic"]),))
    host = listen.rsplit(":", 1)[0]
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError("cannot listen on %s" % listen)
    server.start()
    return server, "%s:%d" % (host, port)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:50071", help="address to listen on (port 0: a free port)")
    args = parser.parse_args(argv)

    server, addr = serve(args.listen)
    print("listening on " + addr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
