"""Puts the generated protobuf stubs (gen/, see scripts/protogen.sh) first
on sys.path, so `from examples import customer_pb2` finds them."""
import os
import sys

GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen")
if GEN not in sys.path:
    sys.path.insert(0, GEN)
