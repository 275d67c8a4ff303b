#!/usr/bin/env python3
"""Hostile load against a running Cistern, run by hand (figures go to
docs/BENCHMARKS.md). Three attacks, one after the other, each while a
normal client keeps reading one object through the JSON API with a session
token:

  1. 1,000 concurrent HTTP Basic requests with made-up user names, each
     from its own loopback address (127.1.x.y);
  2. 2,000 slow connections that send a request head a byte at a time;
  3. 1,000 stalled uploads that announce 100 MiB and send 3 bytes.

For each it prints the server's peak RSS (VmHWM) and RSS afterwards, the
normal client's p50/p99 latency and errors, how the attackers were
answered, and whether /health/ready still answers 200.

    python3 bench/hostile.py --web 127.0.0.1:9001 --s3 127.0.0.1:9000 \\
        --pid "$(pgrep -f 'cistern serve')" --user admin --password a-long-secret

Only loopback addresses are accepted: the attacks are bounded in count and
time and never leave this machine.
"""

import argparse
import asyncio
import base64
import json
import statistics
import time


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


async def request(host, port, raw, timeout=30.0, source=None):
    """Sends one raw request on a new connection (from the loopback address
    `source`, if given); returns (status, body)."""
    local = (source, 0) if source else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=local), timeout)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
        return status, body
    finally:
        writer.close()


class NormalClient:
    """Reads one object again and again with a session token, on one
    kept-alive connection (reopened when the server closes it)."""

    def __init__(self, host, port, token, path):
        self.host, self.port, self.token, self.path = host, port, token, path
        self.latencies, self.errors = [], 0
        self.stop = asyncio.Event()

    async def run(self):
        reader = writer = None
        raw = (f"GET {self.path} HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {self.token}\r\n\r\n").encode()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(raw)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await asyncio.wait_for(reader.readexactly(length), 10)
                if int(head.split(b" ", 2)[1]) != 200:
                    self.errors += 1
                if b"connection: close" in head.lower():
                    writer.close()
                    writer = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                self.errors += 1
                if writer is not None:
                    writer.close()
                writer = None
            self.latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    def figures(self):
        if not self.latencies:
            return "no requests"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (f"{len(ordered)} requests, p50 {statistics.median(ordered) * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms, errors {self.errors}")


async def unknown_users(host, port, count):
    # Each attacker has an address of its own (127.1.x.y), as a botnet
    # would: the per-address throttle does not stop them, the bounded
    # password queue has to.
    async def one(i):
        credential = base64.b64encode(f"nobody-{i}:made-up-password-{i}".encode()).decode()
        raw = (f"GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credential}\r\n"
               "Connection: close\r\n\r\n").encode()
        try:
            source = f"127.1.{i // 250}.{i % 250 + 1}"
            status, _ = await request(host, port, raw, timeout=60, source=source)
            return str(status)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            return type(e).__name__
    results = await asyncio.gather(*(one(i) for i in range(count)))
    return summary(results)


async def slow_heads(host, port, count, seconds):
    head = b"GET /api/v1/buckets HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200

    async def one():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            return type(e).__name__
        started = time.monotonic()
        try:
            for byte in head:
                if time.monotonic() - started > seconds:
                    return "still open"
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1024), 1.0)
                    if not data:
                        return "closed by server"
                    return "answered " + data.split(b" ", 2)[1].decode()
                except asyncio.TimeoutError:
                    continue
            return "sent whole head"
        except OSError:
            return "closed by server"
        finally:
            writer.close()
    results = await asyncio.gather(*(one() for _ in range(count)))
    return summary(results)


async def stalled_uploads(host, port, count, token, bucket, seconds):
    async def one(i):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            return type(e).__name__
        try:
            writer.write((f"PUT /api/v1/buckets/{bucket}/objects/stalled-{i} HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: Bearer {token}\r\nContent-Length: {100 << 20}\r\n\r\nabc").encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(1024), seconds)
            if not data:
                return "closed by server"
            return "answered " + data.split(b" ", 2)[1].decode()
        except asyncio.TimeoutError:
            return "still open"
        except OSError:
            return "closed by server"
        finally:
            writer.close()
    results = await asyncio.gather(*(one(i) for i in range(count)))
    return summary(results)


def summary(results):
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items(), key=lambda kv: -kv[1]))


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", default="127.0.0.1:9001")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the attacker counts")
    parser.add_argument("--hold", type=float, default=45.0, help="seconds the slow attackers keep trying")
    args = parser.parse_args()
    host, port = args.web.rsplit(":", 1)
    port = int(port)
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit("only loopback targets")

    login = json.dumps({"name": args.user, "password": args.password}).encode()
    status, body = await request(host, port, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: "
                                 + str(len(login)).encode() + b"\r\n\r\n" + login)
    assert status == 200, (status, body)
    token = json.loads(body)["token"]
    bucket = f"hostile-{int(time.time())}"
    new_bucket = json.dumps({"name": bucket}).encode()
    await request(host, port, (f"POST /api/v1/buckets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                               f"Content-Type: application/json\r\nContent-Length: {len(new_bucket)}\r\n\r\n").encode()
                  + new_bucket)
    payload = b"x" * 4096
    await request(host, port, (f"PUT /api/v1/buckets/{bucket}/objects/probe HTTP/1.1\r\nHost: x\r\n"
                               f"Authorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
                  + payload)

    print(f"server RSS at start: {rss_kib(args.pid, 'VmRSS') // 1024} MiB")
    attacks = [
        ("unknown users, Basic", lambda: unknown_users(host, port, int(1000 * args.scale))),
        ("slow heads", lambda: slow_heads(host, port, int(2000 * args.scale), args.hold)),
        ("stalled uploads", lambda: stalled_uploads(host, port, int(1000 * args.scale), token, bucket, args.hold)),
    ]
    for name, attack in attacks:
        reset_peak(args.pid)
        normal = NormalClient(host, port, token, f"/api/v1/buckets/{bucket}/objects/probe")
        runner = asyncio.create_task(normal.run())
        started = time.monotonic()
        outcome = await attack()
        elapsed = time.monotonic() - started
        normal.stop.set()
        await runner
        ready_started = time.monotonic()
        try:
            ready, _ = await request(host, port, b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
        except (OSError, asyncio.TimeoutError) as e:
            ready = type(e).__name__
        ready_ms = (time.monotonic() - ready_started) * 1000
        print(f"## {name}")
        print(f"  attackers ({elapsed:.1f} s): {outcome}")
        print(f"  normal client: {normal.figures()}")
        print(f"  server peak RSS {rss_kib(args.pid, 'VmHWM') // 1024} MiB, "
              f"RSS after {rss_kib(args.pid, 'VmRSS') // 1024} MiB")
        print(f"  /health/ready afterwards: {ready} in {ready_ms:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
