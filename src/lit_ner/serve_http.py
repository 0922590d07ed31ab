"""The HTTP side of lit_ner.serve, around LitServe: what stands between the network and the model (the API key, the
size and the read time of a request's body, the queue depth past which a request is refused at once), the routes
beside /predict (the page, the probes, Prometheus /metrics), and the process's life (the drain on SIGTERM)."""

import asyncio
import hmac
import json
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from litserve.loops.base import _SENTINEL_VALUE
from litserve.utils import WorkerSetupStatus
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import choose_encoder

from lit_ner.report_html import service_page

PREDICT = "/predict"
OPEN = {"/health", "/ready"}  # the probes: an orchestrator sends no secret, and they tell nothing about the model
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
Message = dict[str, Any]


@dataclass(frozen=True)
class Gate:
    """The settings the middleware enforces (serve.py's `key=value` arguments of the same names)."""

    api_key: str | None
    max_bytes: int
    read_timeout: float
    max_queue: int


class BatchSizes:
    """The sizes of the batches the inference workers predicted, as a Prometheus histogram. The workers are processes
    of their own (LitServe spawns them, and starts a new one for a dead one), so the counts live in one shared array
    that travels to them with the LitAPI; the HTTP server reads it when /metrics is asked."""

    def __init__(self, max_batch_size: int) -> None:
        self.bounds = sorted({b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b < max_batch_size} | {max_batch_size})
        # spawn's Array: its lock may be sent to spawned processes (a fork context's may not)
        self.counts = mp.get_context("spawn").Array("q", len(self.bounds) + 1)  # one count a bucket, then the sum

    def observe(self, size: int) -> None:
        with self.counts.get_lock():
            self.counts[bisect_left(self.bounds, size)] += 1
            self.counts[len(self.bounds)] += size

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self.counts.get_lock():
            counts = self.counts[:]
        buckets, seen = [], 0
        for bound, count in zip(self.bounds, counts):
            seen += count
            buckets.append((str(bound), seen))
        buckets.append(("+Inf", seen))
        yield HistogramMetricFamily("lit_ner_batch_size", "Requests in each batch the model predicted",
                                    buckets=buckets, sum_value=counts[-1])  # fmt: skip


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (the process-wide one also holds whatever the
    libraries register)."""

    def __init__(self, batch_sizes: BatchSizes) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lit_ner_requests", "Answers to POST /predict, by status code", ["code"],
                                registry=self.registry)  # fmt: skip
        self.seconds = Histogram("lit_ner_request_seconds", "Seconds from a POST /predict's arrival to its answer",
                                 registry=self.registry, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                                                  60))  # fmt: skip
        self.queue = Gauge("lit_ner_queue_depth", "POST /predict requests in the service, not yet answered",
                           registry=self.registry)  # fmt: skip
        self.registry.register(batch_sizes)  # type: ignore[arg-type]  (a collector: it has collect())


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


class Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


class Guard:
    """The ASGI middleware in front of the app. Every route but the probes and the page at `GET /` needs the API key
    when one is set (an unknown path too, so that no route is told apart). POST /predict is counted into the queue
    depth (past `max_queue`, 503 at once: the worker cannot catch up, a client should come back), its body is read
    here, at most `max_bytes` of it within `read_timeout` seconds (a Content-Length over the limit is refused before
    a byte is read), then handed to LitServe, which parses it once; every answer is counted by status and timed.
    A refusal closes the connection: the rest of a body the service did not read cannot be the next request."""

    def __init__(self, app: Callable[..., Awaitable[None]], gate: Gate, metrics: Metrics) -> None:
        self.app, self.gate, self.metrics = app, gate, metrics
        self.depth = 0  # one HTTP server (a thread of serve's main process), one event loop: no lock needed

    async def __call__(self, scope: Message, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] != PREDICT:
            if self.authorized(scope):
                return await self.app(scope, receive, send)
            return await refuse(send, Refused(401, "send the API key as the X-API-Key header (or Authorization: "
                                                   "Bearer <key>)"))  # fmt: skip
        start, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        entered = False
        try:
            if not self.authorized(scope):
                raise Refused(401, "send the API key as the X-API-Key header (or Authorization: Bearer <key>)")
            if self.depth >= self.gate.max_queue:
                raise Refused(503, f"the service holds {self.depth} requests, its most (max_queue="
                                   f"{self.gate.max_queue}); try again in a moment", {"Retry-After": "1"})  # fmt: skip
            entered = True
            self.depth += 1
            self.metrics.queue.set(self.depth)
            body = await self.read_body(scope, receive)
            await self.app(scope, replay(body, receive), sending)
        except Refused as refusal:
            await refuse(sending, refusal)
        except Disconnected:
            status = 499  # nginx's code for a client gone before its answer
        finally:
            if entered:
                self.depth -= 1
                self.metrics.queue.set(self.depth)
            self.metrics.requests.labels(str(status)).inc()
            self.metrics.seconds.observe(time.perf_counter() - start)

    def authorized(self, scope: Message) -> bool:
        key = self.gate.api_key
        if key is None or (scope["path"] in OPEN | {"/"} and scope["method"] in ("GET", "HEAD")):
            return True
        headers = dict(scope["headers"])
        bearer = headers.get(b"authorization", b"")
        given = headers.get(b"x-api-key") or (bearer[7:] if bearer.startswith(b"Bearer ") else b"")
        return hmac.compare_digest(given, key.encode())

    async def read_body(self, scope: Message, receive: Callable) -> bytes:
        limit, seconds = self.gate.max_bytes, self.gate.read_timeout
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and int(length) > limit:  # h11 has checked it is a number
            raise Refused(413, f"the request body has {int(length)} bytes; this service takes at most {limit} "
                               f"(max_bytes={limit})")  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline, chunks, size = loop.time() + seconds, [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - loop.time())
            except TimeoutError:
                raise Refused(408, f"the request body did not arrive within {seconds:g} s "
                                   f"(read_timeout={seconds:g})") from None  # fmt: skip
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:  # a body sent without a length (chunked) is counted as it arrives
                raise Refused(413, f"the request body has more than {limit} bytes; this service takes at most "
                                   f"{limit} (max_bytes={limit})")  # fmt: skip
            if not message.get("more_body", False):
                return b"".join(chunks)


def replay(body: bytes, receive: Callable) -> Callable[[], Awaitable[Message]]:
    """The app's `receive`: the body read already, then whatever the connection says next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def refuse(send: Callable, refusal: Refused) -> None:
    body = json.dumps({"detail": refusal.detail}).encode()
    headers = {"content-type": "application/json", "content-length": str(len(body)), "connection": "close"}
    headers |= {k.lower(): v for k, v in refusal.headers.items()}
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def add_routes(server: Any, title: str, keyed: bool, metrics: Metrics) -> None:
    """`GET /` answers a page with a text box whose entities are marked (through POST /predict; with a key box when
    the service has a key), in place of LitServe's plain "litserve running"; `/health` answers while the process
    lives, `/ready` once every worker has loaded the model (LitServe's /health), `/metrics` for Prometheus."""
    page = service_page(title, keyed)

    def ready() -> PlainTextResponse:
        status = getattr(server, "workers_setup_status", None)  # LitServe fills it in run(), workers update it
        loaded = bool(status) and all(v == WorkerSetupStatus.READY for v in status.values())
        return PlainTextResponse("ok" if loaded else "not ready", 200 if loaded else 503)

    def metrics_page(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))  # Prometheus asks OpenMetrics
        return Response(encoder(metrics.registry), media_type=content_type)

    replaced = {"/", server.healthcheck_path}
    server.app.router.routes = [r for r in server.app.router.routes if getattr(r, "path", None) not in replaced]
    server.app.add_api_route("/", lambda: HTMLResponse(page), methods=["GET"], include_in_schema=False)
    server.app.add_api_route("/health", lambda: PlainTextResponse("ok"), methods=["GET"], include_in_schema=False)
    server.app.add_api_route("/ready", ready, methods=["GET"], include_in_schema=False)
    server.app.add_api_route("/metrics", metrics_page, methods=["GET"], include_in_schema=False)


def listen_in_this_process_only(port: int) -> None:
    """LitServe binds the port, then forks its manager, which would hold the listening socket open after the HTTP
    server closed it (the kernel goes on accepting connections that nobody answers): a forked child closes it."""

    def after_fork() -> None:
        for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
            try:
                probe = socket.socket(fileno=int(name))
            except (OSError, ValueError):
                continue  # not a socket
            try:
                # bound, not yet listening: uvicorn listens on it once the workers are up
                ours = probe.type == socket.SOCK_STREAM and probe.getsockname()[1] == port
            except (OSError, IndexError, TypeError):
                ours = False
            probe.detach()  # the descriptor stays the child's copy of LitServe's socket's, closed below if ours
            if ours:
                os.close(int(name))

    os.register_at_fork(after_in_child=after_fork)


def drain_on_sigterm(server: Any, grace: float) -> None:
    """SIGTERM (docker stop, Kubernetes, systemd) or Ctrl-C drains: the HTTP server stops accepting connections and
    answers the requests it holds, for at most `grace` seconds (uvicorn's graceful shutdown) while the workers still
    predict; then LitServe stops the workers and its manager, and `run` returns: exit 0, no process left.

    The signals are blocked in every thread (main blocks them first) and taken here by one thread with sigwait: the
    main thread waits inside LitServe on its manager, where a Python handler would not run, and the HTTP server is a
    thread of this process (see main), which uvicorn leaves without signal handlers and LitServe cannot terminate,
    so this thread asks it to exit (uvicorn's `should_exit`)."""
    http: list[tuple[threading.Thread, Any]] = []
    draining = threading.Event()
    server.uvicorn_graceful_timeout = grace  # LitServe hands it to uvicorn as timeout_graceful_shutdown

    def drain() -> None:
        signal.sigwait(STOP_SIGNALS)
        if getattr(server, "_shutdown_event", None) is None:  # no worker started yet: nothing to drain
            os._exit(0)
        draining.set()
        for thread, uvicorn_server in list(http):
            uvicorn_server.should_exit = True
            thread.join(grace + 5)
        server._shutdown_event.set()  # LitServe's own shutdown: transport, workers, manager
        # the workers leave SIGTERM to this process (NerAPI.setup): LitServe's end-of-queue value stops each loop, set
        # after the event, so that LitServe's watch does not take a stopped worker for a dead one and start another
        for lit_api in server.litapi_connector:
            for _ in range(len(server._inference_workers_config_for_api(lit_api.api_path))):
                server._get_request_queue(lit_api.api_path).put(_SENTINEL_VALUE)

    start_server = server._start_server

    def started(*args: Any, **kwargs: Any) -> dict:
        threads = start_server(*args, **kwargs)
        for thread in threads.values():  # the uvicorn.Server each thread runs
            http.append((thread, thread._target.__self__))
            http[-1][1].should_exit = draining.is_set()  # a signal before the server started: it stops at once
        return threads

    server._start_server = started
    threading.Thread(target=drain, name="lit_ner-drain", daemon=True).start()
