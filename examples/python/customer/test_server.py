"""Starts server.py as its own process and talks to it over real gRPC:
health, a ContextualCommand, a rejection."""
import os
import subprocess
import sys
import unittest

import grpc

import gen_path  # noqa: F401
import health
from angzarr import aggregate_pb2_grpc
from examples import customer_pb2 as pb
from test_logic import CREATED, contextual

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen(
            [sys.executable, SERVER, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True)
        line = cls.proc.stdout.readline()  # readiness: the server says where it listens
        if not line.startswith("listening on "):
            cls.proc.kill()
            raise RuntimeError("server did not start: %r" % line)
        cls.channel = grpc.insecure_channel(line.split()[-1])
        grpc.channel_ready_future(cls.channel).result(timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.proc.terminate()
        code = cls.proc.wait(timeout=10)
        cls.proc.stdout.close()
        if code != 0:
            raise RuntimeError("server exited with %d after SIGTERM" % code)

    def check(self, service):
        call = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        req = b"" if not service else b"\x0a" + bytes([len(service)]) + service.encode()
        return call(req, timeout=10)

    def test_health(self):
        self.assertEqual(self.check(""), health.SERVING)
        self.assertEqual(self.check("angzarr.BusinessLogic"), health.SERVING)
        with self.assertRaises(grpc.RpcError) as caught:
            self.check("nope")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_contextual_command(self):
        stub = aggregate_pb2_grpc.BusinessLogicStub(self.channel)
        book = stub.Handle(contextual([], pb.CreateCustomer(name="Ann", email="ann@example.com")), timeout=10)
        self.assertEqual(len(book.pages), 1)
        got = pb.CustomerCreated()
        self.assertTrue(book.pages[0].event.Unpack(got))
        self.assertEqual(got, CREATED)
        self.assertEqual(book.cover.correlation_id, "test")

    def test_rejection_over_the_wire(self):
        stub = aggregate_pb2_grpc.BusinessLogicStub(self.channel)
        with self.assertRaises(grpc.RpcError) as caught:
            stub.Handle(contextual([CREATED], pb.CreateCustomer(name="Ann", email="a@x")), timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("already exists", caught.exception.details())


if __name__ == "__main__":
    unittest.main()
