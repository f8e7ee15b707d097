"""The standard gRPC health service (grpc.health.v1.Health/Check), without
the grpcio-health-checking package (Debian does not ship it).

Its two messages are tiny, so they are encoded by hand:
HealthCheckRequest{string service = 1} and
HealthCheckResponse{ServingStatus status = 1}, SERVING being 1.
"""
import grpc

SERVING = b"\x08\x01"


def _service_of(request):
    """Decodes HealthCheckRequest.service (field 1, length-delimited)."""
    if not request:
        return ""
    if request[0] != 0x0A:
        raise ValueError("unexpected field in HealthCheckRequest")
    length, shift, i = 0, 0, 1
    while True:  # varint length
        b = request[i]
        length |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if b < 0x80:
            break
    return request[i:i + length].decode("utf-8")


def handler(services):
    """A generic handler answering SERVING for "" and each of services, and
    NOT_FOUND for any other service name."""
    known = {""} | set(services)

    def check(request, context):
        if _service_of(request) not in known:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return SERVING

    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=None, response_serializer=None),
    })
