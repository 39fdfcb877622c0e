"""A TCP relay that delays every byte by a fixed time each way: a stand-in for a hosted Redis.

    python3 benchmarks/relay.py LISTEN_PORT TARGET_PORT DELAY_MS

Each chunk read from one side is written to the other DELAY_MS later, in order, without holding
back the chunks read meanwhile (a pipe with latency, not a slow link): 10 ms each way is a 20 ms
round trip. Used by run.py's near part; it prints "ready" once it listens.
"""

import asyncio
import sys
import time


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def receive() -> None:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((time.monotonic() + delay, b""))

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:  # the sender is done: say so, the other way may still carry data
                if writer.can_write_eof():
                    writer.write_eof()
                break
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), send())
    except OSError:
        writer.close()  # a reset: the other way ends too


def main(listen: int, target: int, delay: float) -> None:
    async def serve() -> None:
        async def relay(client_reader, client_writer) -> None:
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(
                pipe(client_reader, server_writer, delay), pipe(server_reader, client_writer, delay)
            )
            client_writer.close()
            server_writer.close()

        server = await asyncio.start_server(relay, "127.0.0.1", listen)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000)
