"""A TCP proxy that delays every byte by a fixed time each way: latency where netem is missing.

`python delay_proxy.py LISTEN_ADDRESS LISTEN_PORT TARGET_ADDRESS TARGET_PORT ONE_WAY_MS`

Each direction of each connection is a delay line: what is read at time t is written at
t + ONE_WAY_MS, in order, whatever was read meanwhile (no bandwidth limit, no reordering).
A round trip through it takes 2 × ONE_WAY_MS more. Used by the hosts section of `make bench`.
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await line.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            line.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    line.put_nowait((0.0, b""))
    await delivering


async def _serve(listen: str, port: int, target: str, target_port: int, delay: float) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, upstream_writer, delay),
            _pipe(upstream_reader, writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(connection, listen, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen, port, target, target_port, one_way_ms = sys.argv[1:6]
    asyncio.run(_serve(listen, int(port), target, int(target_port), float(one_way_ms) / 1000))
