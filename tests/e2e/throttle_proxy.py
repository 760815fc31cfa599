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
    """Copies reader to writer, sleeping so that the bytes sent never run ahead of `rate` a second."""
    started = time.monotonic()
    sent = 0
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    except (ConnectionError, asyncio.CancelledError):
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
