"""The floor of a Python ext_proc: answers every message with one constant, pre-serialised reply.

``python -m meshroute.bench.floor --listen unix:/path --cluster CLUSTER`` serves
``envoy.service.ext_proc.v3.ExternalProcessor/Process`` with grpc.aio and raw bytes (no parsing,
no routing): the reply sets ``x-meshroute-cluster`` so the Envoy that ``meshroute envoy-config``
generated sends the request on. The ``envoy+floor-extproc`` scenario runs it behind the same Envoy
config as meshroute, so the gap between the two rows is meshroute's own per-request work and the gap
to ``envoy-alone`` is what any grpcio ext_proc costs (the reference measured ≈ 0.25×).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc

SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


def reply_bytes(cluster: str) -> bytes:
    from envoy.config.core.v3 import base_pb2
    from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

    header = base_pb2.HeaderValue(key="x-meshroute-cluster", raw_value=cluster.encode())
    mutation = ep.HeaderMutation(set_headers=[base_pb2.HeaderValueOption(header=header)])
    response = ep.ProcessingResponse(
        request_headers=ep.HeadersResponse(response=ep.CommonResponse(header_mutation=mutation))
    )
    data: bytes = response.SerializeToString()
    return data


async def serve(listen: str, reply: bytes) -> None:

    async def process(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield reply

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Process": grpc.stream_stream_rpc_method_handler(process)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meshroute.bench.floor", description=__doc__)
    p.add_argument("--listen", required=True, help="unix:/path or HOST:PORT")
    p.add_argument("--cluster", help="value of x-meshroute-cluster in every reply")
    p.add_argument(
        "--reply-file", type=Path, help="send these serialised ProcessingResponse bytes instead (experiments)"
    )
    args = p.parse_args(argv)
    if (args.cluster is None) == (args.reply_file is None):
        p.error("give exactly one of --cluster and --reply-file")
    reply = args.reply_file.read_bytes() if args.reply_file else reply_bytes(args.cluster)
    asyncio.run(serve(args.listen, reply))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
