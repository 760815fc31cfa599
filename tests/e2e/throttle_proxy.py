"""A TCP proxy that slows every connection to a fixed rate in each direction, standing in for a slow link.

Usage: throttle_proxy.py UPSTREAM_HOST:PORT BYTES_PER_SECOND PORT_FILE
Listens on a free loopback port, writes it to PORT_FILE, and forwards each connection to UPSTREAM, each
direction of each connection at most BYTES_PER_SECOND.
"""

import asyncio
import sys
import time

CHUNK = 16 * 1024


async def pump(reader, writer, rate):
    """Copies reader to writer, each chunk no sooner than `rate` allows after the one before it: time a
    connection spends idle earns no credit, so a reused connection is as slow as a new one."""
    ready_at = time.monotonic()
    try:
        while chunk := await reader.read(CHUNK):
            ready_at = max(ready_at, time.monotonic()) + len(chunk) / rate
            await asyncio.sleep(ready_at - time.monotonic())
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(upstream, rate, port_file):
    host, port = upstream.rsplit(":", 1)

    async def serve(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, server_writer, rate),
            pump(server_reader, client_writer, rate),
        )

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    with open(port_file, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
