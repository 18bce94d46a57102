"""A TCP fault proxy: the network between the agent and the broker, made
to misbehave on command or on a schedule.

    agent --TLS--> FaultProxy(127.0.0.1:P) --> mosquitto (TLS, real)

It forwards bytes; it never looks inside (TLS passes through untouched,
so the agent and mosquitto still authenticate each other). What it can do,
and how close each is to the real thing:

- **partition**: a blackhole. Nothing is forwarded either way and nothing
  is closed: bytes wait (as unacknowledged segments wait in a sender's
  TCP buffer), a FIN waits behind them, new connections are accepted but
  not connected upstream until the partition heals. Neither end hears
  anything, so only keepalives (MQTT PINGREQ, publish timeouts) notice,
  exactly as with a pulled cable. When it heals, whatever was held is
  delivered in order, as TCP retransmission would; an end that has given
  up in the meantime gets a reset.
- **reset**: every open connection is closed with an RST (SO_LINGER 0) on
  both sides, as a NAT or firewall dropping its state does.
- **latency**: each chunk is delivered ``latency_ms`` after it was read,
  in order, in each direction (so the round trip grows by twice that).
- **bandwidth**: each direction is paced to ``bandwidth`` bytes/s.
- **loss**: TCP hides packet loss from applications; what they see is
  delay. Each chunk is cut into MSS-sized segments (1448 bytes); each
  segment is lost with probability ``loss``; a lost segment is resent
  after the retransmission timeout, which starts at ``rto_ms`` (Linux's
  minimum, 200 ms) and doubles while the retransmission is lost too
  (exponential backoff), and everything behind it waits (head-of-line
  blocking). After ``max_retries`` losses in a row the connection is
  reset, as a real stack gives up (Linux waits ~15 retries; the default
  here, 6, is ~25 s of backoff, so a test sees it). Not modelled:
  reordering, duplicates, congestion-window shrinkage after loss, and
  loss of bare ACKs (invisible at this layer).

The proxy runs its own event loop in a thread, so synchronous code (the
live scenario runner, tests, the demo) calls its methods directly; each
is thread-safe. ``schedule`` takes timed actions. ``python -m
simulator.faults.fault_proxy --target HOST:PORT`` runs one with commands on
standard input (``help`` lists them).
"""

import argparse
import asyncio
import random
import socket
import struct
import sys
import threading
import time

MSS = 1448  # TCP payload per segment on a 1500-byte Ethernet MTU with timestamps
CHUNK = 16384
QUEUE_CHUNKS = 64  # per direction: then the reader stops and the sender's kernel buffer fills
_EOF = object()


class ProxyStats:
    def __init__(self):
        self.connections = 0
        self.open = 0
        self.bytes_up = 0  # client -> target
        self.bytes_down = 0
        self.lost_segments = 0
        self.stall_ms = 0
        self.resets = 0
        self.gave_up = 0  # connections reset after max_retries losses in a row

    def as_dict(self):
        return dict(self.__dict__)


class _Link:
    """One proxied connection: two directions, each a reader and a writer
    joined by a bounded queue (so latency and stalls hold data in order)."""

    def __init__(self, proxy, client_reader, client_writer):
        self.proxy = proxy
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.target_writer = None
        self.tasks = []
        self.closed = False

    async def run(self):
        proxy = self.proxy
        up = asyncio.Queue(QUEUE_CHUNKS)
        down = asyncio.Queue(QUEUE_CHUNKS)
        # Read the client at once (its bytes wait in the queue during a
        # partition); connect upstream only once the network lets us.
        self.tasks.append(asyncio.ensure_future(self._read(self.client_reader, up)))
        try:
            await proxy._healed.wait()
            target_reader, self.target_writer = await asyncio.open_connection(proxy.target_host, proxy.target_port)
        except OSError:
            self.abort()
            return
        self.tasks.append(asyncio.ensure_future(self._write(up, self.target_writer, "up")))
        self.tasks.append(asyncio.ensure_future(self._read(target_reader, down)))
        self.tasks.append(asyncio.ensure_future(self._write(down, self.client_writer, "down")))
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.abort()

    async def _read(self, reader, queue):
        try:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((time.monotonic(), data or _EOF))
                if not data:
                    return
        except (OSError, asyncio.IncompleteReadError):
            await queue.put((time.monotonic(), _EOF))

    async def _write(self, queue, writer, direction):
        proxy = self.proxy
        stats = proxy.stats
        while True:
            read_at, data = await queue.get()
            delay = read_at + proxy.latency_ms / 1000.0 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await proxy._healed.wait()
            if data is _EOF:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if proxy.loss > 0 and not await self._survive_loss(len(data)):
                stats.gave_up += 1
                self.reset()
                return
            await proxy._healed.wait()  # a partition may have begun during the stall
            if proxy.bandwidth:
                await asyncio.sleep(len(data) / float(proxy.bandwidth))
            writer.write(data)
            if direction == "up":
                stats.bytes_up += len(data)
            else:
                stats.bytes_down += len(data)
            try:
                await writer.drain()
            except OSError:
                self.abort()
                return

    async def _survive_loss(self, nbytes):
        """Retransmission delay for one chunk; False if the stack gives up."""
        proxy = self.proxy
        segments = (nbytes + MSS - 1) // MSS
        p_chunk = 1.0 - (1.0 - proxy.loss) ** segments  # some segment of it is lost
        rto = proxy.rto_ms
        tries = 0
        while proxy.loss > 0 and proxy.rng.random() < p_chunk:
            tries += 1
            proxy.stats.lost_segments += 1
            if tries > proxy.max_retries:
                return False
            proxy.stats.stall_ms += rto
            await asyncio.sleep(rto / 1000.0)
            rto = min(rto * 2, 120000)  # Linux caps the RTO at 120 s
            p_chunk = proxy.loss  # the retransmission is one segment
        return True

    def reset(self):
        """Close both sockets with an RST."""
        for writer in (self.client_writer, self.target_writer):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
        self.abort()

    def abort(self):
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.target_writer):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        self.proxy._links.discard(self)
        self.proxy.stats.open -= 1


class FaultProxy:
    """``FaultProxy(target_port).start()``; ``.port`` is where to connect."""

    def __init__(self, target_port, target_host="127.0.0.1", listen_port=0, seed=0, rto_ms=200, max_retries=6):
        self.target_host = target_host
        self.target_port = target_port
        self.listen_port = listen_port
        self.port = None
        self.rng = random.Random(seed)
        self.rto_ms = rto_ms
        self.max_retries = max_retries
        self.latency_ms = 0.0
        self.bandwidth = None
        self.loss = 0.0
        self.partitioned = False
        self.stats = ProxyStats()
        self._links = set()
        self._loop = None
        self._thread = None
        self._server = None
        self._healed = None
        self._timers = []

    # -- life ---------------------------------------------------------------

    def start(self):
        ready = threading.Event()
        failure = []

        def main():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except OSError as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _listen(self):
        self._healed = asyncio.Event()
        self._healed.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        link = _Link(self, reader, writer)
        self._links.add(link)
        self.stats.connections += 1
        self.stats.open += 1
        await link.run()

    def stop(self):
        if self._loop is None or self._loop.is_closed():
            return

        async def shutdown():
            for timer in self._timers:
                timer.cancel()
            self._server.close()
            for link in list(self._links):
                link.abort()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _call(self, fn, *args):
        """Run fn on the proxy's loop and wait for it (thread-safe)."""
        async def run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    # -- faults -------------------------------------------------------------

    def partition(self, on=True):
        """Blackhole (True) or heal (False)."""
        def apply():
            self.partitioned = on
            if on:
                self._healed.clear()
            else:
                self._healed.set()
        self._call(apply)

    def reset(self):
        """RST every open connection; returns how many."""
        def apply():
            links = list(self._links)
            for link in links:
                link.reset()
            self.stats.resets += len(links)
            return len(links)
        return self._call(apply)

    def set_latency(self, ms):
        self._call(setattr, self, "latency_ms", float(ms))

    def set_bandwidth(self, bytes_per_s):
        self._call(setattr, self, "bandwidth", int(bytes_per_s) if bytes_per_s else None)

    def set_loss(self, rate):
        if not 0.0 <= rate < 1.0:
            raise ValueError("loss rate %r: must be in [0, 1)" % (rate,))
        self._call(setattr, self, "loss", float(rate))

    def clear(self):
        """Back to a healthy network (open connections stay open)."""
        self.set_latency(0)
        self.set_bandwidth(None)
        self.set_loss(0.0)
        self.partition(False)

    def schedule(self, at_s, action, *args):
        """Do ``action(*args)`` (a method name, e.g. "partition") ``at_s``
        seconds from now."""
        method = getattr(self, action)

        def fire():
            # The methods wait on this loop: call them from another thread.
            threading.Thread(target=method, args=args, daemon=True).start()

        def arm():
            self._timers.append(self._loop.call_later(at_s, fire))

        self._loop.call_soon_threadsafe(arm)

    def snapshot(self):
        return self._call(self.stats.as_dict)


# -- a console for people ---------------------------------------------------

COMMANDS = """commands, one per line:
  partition on|off    blackhole both directions (nothing closed) / heal
  reset               RST every open connection
  latency MS          add MS milliseconds each way
  bandwidth B         limit each direction to B bytes/s (0: no limit)
  loss RATE           segment loss probability, 0-1 (retransmission stalls)
  clear               healthy again
  status              counters
  quit"""


def _command(proxy, line):
    words = line.split()
    if not words:
        return True
    verb, args = words[0], words[1:]
    try:
        if verb == "quit":
            return False
        if verb == "partition" and args in (["on"], ["off"]):
            proxy.partition(args[0] == "on")
        elif verb == "reset" and not args:
            print("reset %d connections" % proxy.reset())
        elif verb == "latency" and len(args) == 1:
            proxy.set_latency(float(args[0]))
        elif verb == "bandwidth" and len(args) == 1:
            proxy.set_bandwidth(int(args[0]))
        elif verb == "loss" and len(args) == 1:
            proxy.set_loss(float(args[0]))
        elif verb == "clear" and not args:
            proxy.clear()
        elif verb == "status" and not args:
            print(" ".join("%s=%s" % kv for kv in sorted(proxy.snapshot().items())))
        else:
            print("error: %r not understood\n%s" % (line.strip(), COMMANDS))
            return True
        print("ok %s" % line.strip())
    except ValueError as exc:
        print("error: %s" % exc)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description="TCP fault proxy: " + __doc__.splitlines()[0], epilog=COMMANDS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="where to forward (the broker)")
    parser.add_argument("--listen", type=int, default=0, metavar="PORT", help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the loss model")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--target %r: write HOST:PORT, e.g. 127.0.0.1:8883" % args.target)
    proxy = FaultProxy(int(port), target_host=host, listen_port=args.listen, seed=args.seed).start()
    print("listening 127.0.0.1:%d -> %s" % (proxy.port, args.target), flush=True)
    try:
        for line in sys.stdin:
            if not _command(proxy, line):
                break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
