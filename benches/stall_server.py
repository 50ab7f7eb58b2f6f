"""An HTTP/1.1 keep-alive server whose every 200th answer comes 1 s late, for rate mode's fidelity: the truth is
known (0.5 % of answers take 1 s, the rest about nothing), so a generator's p99 should stay small and its p99.9
should be 1 s. Listens on 127.0.0.1:PORT (argv[1]); stops when killed.
"""
import asyncio
import sys

STALL_EVERY = 200
STALL_SECONDS = 1.0
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
count = 0


async def serve(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            count += 1
            if count % STALL_EVERY == 0:
                await asyncio.sleep(STALL_SECONDS)
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
