"""`python -m lit_ner.serve model=<export> [key=value ...]` (USAGE lists the settings): the exported model as an HTTP
service on LitServe; `GET /` is a page to try it in a browser.

POST /predict with a JSON object: `{"text": "..."}`, `{"texts": ["...", ...]}` or `{"tokens": ["word", ...]}`; the
answer is `{"entities": [...]}` (a list of lists for `texts`), the entities `lit_ner.predict` gives. Requests that
arrive together are batched on the server (LitServe's batching: up to `max_batch_size` requests, waiting at most
`batch_timeout` seconds), so many clients get the batched throughput. A bad request gets a 4xx with a one-line reason
(`{"detail": "..."}`) and fails alone: the requests batched with it get their entities, and the server goes on; a
request the model fails on gets a 500, alone too. What a request may hold is bounded (body bytes, texts, words,
characters), and so is the queue; it listens on 127.0.0.1 unless `host=` says otherwise, and with LIT_NER_API_KEY set
every route but the probes and the page needs the key (serve_http.py: the HTTP side, /metrics, the drain on
SIGTERM). A bad setting, a port it cannot listen on or a model that cannot be loaded stops the start-up with one
`lit_ner: error:` line. `workers` inference processes share the CPU threads (each gets torch's thread count divided
by `workers`): on a CPU, one worker a core serves more than one worker with every core. Needs the serve extra:
`pip install -e '.[serve]'` in a clone, or `pip install '<lit_ner wheel file>[serve]'`."""

import logging
import math
import multiprocessing
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import torch

from lit_ner.errors import ConfigError, key_values, needs_extra, reported
from lit_ner.inference import parse_thresholds
from lit_ner.models import model_name
from lit_ner.predictor import NerPredictor

try:  # the serve extra; without it the command still answers --help and says what to install
    import litserve as ls
    from fastapi import HTTPException
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse

    from lit_ner.serve_http import STOP_SIGNALS, BatchSizes, Gate, Guard, Metrics, add_routes, drain_on_sigterm, \
        listen_in_this_process_only
except ImportError:
    ls = None

USAGE = (
    "usage: python -m lit_ner.serve model=<export folder> [host=127.0.0.1|0.0.0.0|::] [port=8000] [workers=1] "
    "[max_batch_size=32] [batch_timeout=0.01] [timeout=30] [max_bytes=2000000] [max_texts=32] [max_words=10000] "
    "[max_chars=100000] [max_queue=256] [read_timeout=30] [grace=30] [cors=https://app.example.org,...] "
    "[backend=torch|onnx] [quantize=int8] [min_score=0.5|PER:0.6,LOC:0.4]; the API key: environment variable "
    "LIT_NER_API_KEY"
)
DEFAULTS = {"host": "127.0.0.1", "port": "8000", "workers": "1", "max_batch_size": "32", "batch_timeout": "0.01",
            "timeout": "30", "max_bytes": "2000000", "max_texts": "32", "max_words": "10000", "max_chars": "100000",
            "max_queue": "256", "read_timeout": "30", "grace": "30", "cors": "", "backend": "torch", "quantize": "",
            "min_score": ""}  # fmt: skip
COUNTS = ("workers", "max_batch_size", "max_bytes", "max_texts", "max_words", "max_chars", "max_queue")
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe binds: this machine only, every IPv4 address, every address
OPTIONS = {
    "model": "an export (<run>/model)",
    "host": "the address to listen on: 127.0.0.1 this machine only, 0.0.0.0 or :: every address (containers)",
    "port": "the HTTP port",
    "workers": "inference processes; they share the CPU threads",
    "max_batch_size": "requests predicted as one batch",
    "batch_timeout": "seconds a batch waits to fill",
    "timeout": "seconds a request may wait for a worker (then 504)",
    "max_bytes": "a larger body gets 413, before it is read",
    "max_texts": "texts a request (413 past it)",
    "max_words": "words a request (413 past it)",
    "max_chars": "characters a request (413 past it)",
    "max_queue": "requests in the service at once; past it 503 at once",
    "read_timeout": "seconds to receive a request's body (then 408)",
    "grace": "seconds in-flight requests get to finish after SIGTERM",
    "cors": "origins allowed to call from a browser, comma-separated (default: none)",
    "backend": "onnx: the export's ONNX model in ONNX Runtime",
    "quantize": "with backend=onnx: its int8 model",
    "min_score": "drop entities scoring below, one value or per type (default: the export's thresholds)",
}
ABOUT = (
    'Serve a trained model over HTTP (LitServe): POST /predict with {"text": ...}, {"texts": [...]} or {"tokens": '
    '[...]}\nanswers {"entities": ...}, the entities lit_ner.predict gives; requests that arrive together are '
    "predicted as one\nbatch; GET / is a page to try the model in a browser; /health, /ready, /metrics. With the "
    "environment\nvariable LIT_NER_API_KEY set, every route but /health, /ready and the page needs the key "
    "(X-API-Key).\nNeeds the serve extra: "
    f"{needs_extra('serve')}." + """

examples:
  python -m lit_ner.serve model=outputs/quickstart/<run>/model port=8000
  python -m lit_ner.serve model=<run>/model backend=onnx quantize=int8 workers=2 host=0.0.0.0
  curl -X POST localhost:8000/predict -d '{"text": "Alan Walker wrote it in 1940."}'"""
)
FIELDS = ("text", "texts", "tokens")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may hold. Together they bound one request's compute (texts and words: the model's work;
    characters: a text of few words but many word pieces), so that a small request never waits long behind a large
    one in a batch."""

    texts: int
    words: int
    chars: int


def read_request(request: Any, limits: Limits) -> tuple[str, Any]:
    """(field, value) of a valid request; otherwise an HTTPException with the status and the reason."""
    if not isinstance(request, dict) or sum(field in request for field in FIELDS) != 1:
        raise HTTPException(400, 'send a JSON object with one of "text" (a string), "texts" (a list of strings) '
                                 'or "tokens" (a list of words)')  # fmt: skip
    field = next(f for f in FIELDS if f in request)
    value = request[field]
    strings = [value] if field == "text" else value
    if (field == "text" and not isinstance(value, str)) or not (
        isinstance(strings, list) and all(isinstance(s, str) for s in strings)
    ):
        raise HTTPException(422, f'"{field}" must be {"a string" if field == "text" else "a list of strings"}')
    words = len(value) if field == "tokens" else sum(len(s.split()) for s in strings)
    for what, count, limit, key in (("texts", len(strings) if field == "texts" else 1, limits.texts, "max_texts"),
                                    ("words", words, limits.words, "max_words"),
                                    ("characters", sum(map(len, strings)), limits.chars, "max_chars")):  # fmt: skip
        if count > limit:
            raise HTTPException(413, f"the request has {count} {what}; this service takes at most {limit} a "
                                     f"request ({key}=)")  # fmt: skip
    for i, s in enumerate(strings):
        try:  # valid JSON ("\ud800") but no text: the tokenizer raises TypeError on it
            s.encode("utf-8")
        except UnicodeEncodeError as err:
            where = f'"{field}"' if field == "text" else f'"{field}" item {i}'
            raise HTTPException(422, f"{where} has a lone surrogate (\\u{ord(s[err.start]):04x}) at character "
                                     f"{err.start}: not Unicode text") from None  # fmt: skip
    return field, value


class NerAPI(ls.LitAPI if ls else object):  # type: ignore[misc]
    """LitServe's four steps around NerPredictor: read a request, batch the requests, predict once, answer each.

    A request's error travels as a value, not as an exception: LitServe 0.2.19's batched loop
    (litserve/loops/simple_loops.py, BatchedLoop) runs decode_request for each request, predict, and encode_response
    for each, all in one `try`, and answers every request of the batch with whatever any of these raises (an
    HTTPException as it is, anything else as a 500); it has no per-request error path, and checking the bodies in a
    FastAPI middleware before batching would still leave predict's failures to the whole batch. So decode_request
    returns a bad request's HTTPException, predict passes it on (and isolates a request the model fails on), and
    encode_response answers it with its own status and reason: a JSONResponse, which LitServe hands back and FastAPI
    sends as it is.
    """

    def __init__(
        self, folder: str, backend: str, quantize: str | None, limits: Limits, threads: int, min_score: Any = None,
        batch_sizes: "BatchSizes | None" = None, **batching: Any,
    ) -> None:
        super().__init__(**batching)
        self.folder, self.backend, self.quantize, self.limits = folder, backend, quantize, limits
        self.min_score, self.batch_sizes = min_score, batch_sizes
        self.threads = threads  # CPU threads of this worker (torch's, and ONNX Runtime's, which reads torch's)

    def setup(self, device: str) -> None:
        device = "cpu" if self.backend == "onnx" else device
        torch.set_num_threads(self.threads)
        if multiprocessing.parent_process() is not None:  # a worker of LitServe's, not a test calling setup
            # a SIGTERM or Ctrl-C to the whole process group (systemd sends one) would stop this worker with the
            # requests it holds: the main process drains, then stops the workers (drain_on_sigterm); an orphan stops
            parent = os.getppid()
            signal.signal(signal.SIGTERM, lambda *_: os._exit(1) if os.getppid() != parent else None)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked in the main process (see main)
        self.predictor = NerPredictor.from_pretrained(
            self.folder, device=device, backend=self.backend, quantize=self.quantize, min_score=self.min_score
        )

    def decode_request(self, request: dict) -> Any:  # dict: LitServe reads a JSON object body
        """(field, value) of a valid request, the HTTPException of a bad one (returned, not raised: see above)."""
        try:
            return read_request(request, self.limits)
        except HTTPException as err:
            return err

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, requests: Any) -> Any:
        """The entities of each valid request, all of them in one go (`entities`); if that raises, each request
        alone, so that only the one the model fails on gets a 500 (its traceback in the server's log)."""
        batched = isinstance(requests, list)
        requests = requests if batched else [requests]
        if self.batch_sizes is not None:
            self.batch_sizes.observe(len(requests))
        valid = [r for r in requests if not isinstance(r, HTTPException)]
        try:
            found = self.entities(valid)
        except Exception as err:
            logger.warning("lit_ner.serve: a batch of %d requests failed (%s); each alone now", len(valid),
                           type(err).__name__)  # fmt: skip
            found = [self.alone(r) for r in valid]
        answers = iter(found)
        outputs = [r if isinstance(r, HTTPException) else next(answers) for r in requests]
        return outputs if batched else outputs[0]

    def entities(self, requests: list[tuple[str, Any]]) -> list[Any]:
        """All texts of the requests in one predictor call, all word lists in another: each request's entities."""
        texts = [t for field, value in requests if field != "tokens" for t in ([value] if field == "text" else value)]
        words = [value for field, value in requests if field == "tokens"]
        by_text = iter(self.predictor(texts) if texts else [])
        by_words = iter(self.predictor.words(words) if words else [])
        answers: list[Any] = []
        for field, value in requests:
            if field == "text":
                answers.append(next(by_text))
            elif field == "texts":
                answers.append([next(by_text) for _ in value])
            else:
                answers.append(next(by_words))
        return answers

    def alone(self, request: tuple[str, Any]) -> Any:
        try:
            return self.entities([request])[0]
        except Exception as err:
            logger.exception("lit_ner.serve: the model failed on a %r request", request[0])
            # the exception's message may hold paths or parts of the model: the client gets its type alone
            return HTTPException(500, f"the model failed on this request ({type(err).__name__}); the server's log "
                                      "has the traceback")  # fmt: skip

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    # -> Any: LitServe gives this annotation to the endpoint, and FastAPI refuses `dict | JSONResponse` as a model
    def encode_response(self, output: Any) -> Any:
        if isinstance(output, HTTPException):
            return JSONResponse({"detail": output.detail}, output.status_code)
        return {"entities": output}


def parse(argv: Sequence[str]) -> dict[str, str]:
    args = DEFAULTS | key_values(argv, OPTIONS, ("model",), USAGE, ABOUT)
    for key in COUNTS:
        if not args[key].isdigit() or int(args[key]) < 1:
            raise ConfigError(f"{key}={args[key]}: expected a whole number, 1 or more")
    if not args["port"].isdigit() or not 1024 <= int(args["port"]) <= 65535:
        raise ConfigError(f"port={args['port']}: expected a port from 1024 to 65535 (LitServe refuses the lower ones, "
                          "which need root)")  # fmt: skip
    for key, zero_ok in (("batch_timeout", True), ("grace", True), ("timeout", False), ("read_timeout", False)):
        try:
            seconds = float(args[key])
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and (seconds >= 0 if zero_ok else seconds > 0)):
            raise ConfigError(f"{key}={args[key]}: expected seconds, {'0 or more' if zero_ok else 'more than 0'}")
    if float(args["batch_timeout"]) >= float(args["timeout"]):
        raise ConfigError(f"batch_timeout={args['batch_timeout']}: expected less than timeout={args['timeout']} (a "
                          "request waits at most timeout= seconds for its batch)")  # fmt: skip
    if args["host"] not in HOSTS:
        raise ConfigError(f"host={args['host']}: expected 127.0.0.1 (this machine only), 0.0.0.0 (every IPv4 address, "
                          "as in a container) or :: (every address)")  # fmt: skip
    for origin in filter(None, args["cors"].split(",")):
        if origin != "*" and not re.fullmatch(r"https?://[^/\s,]+", origin):
            raise ConfigError(f"cors={args['cors']}: expected origins such as https://app.example.org, comma-separated "
                              "(scheme and host, no path), or *")  # fmt: skip
    return args


def api_key() -> str | None:
    """The key every route but the probes and the page needs: LIT_NER_API_KEY, from the environment (a command line
    is visible to every user of the machine in `ps`)."""
    key = os.environ.get("LIT_NER_API_KEY")
    if key is not None and not key:
        raise ConfigError("LIT_NER_API_KEY is set but empty: give it the key, or unset it to serve without one")
    if key is not None and not re.fullmatch(r"[!-~]+", key):
        raise ConfigError("LIT_NER_API_KEY is set but not printable ASCII without spaces (an HTTP header carries it)")
    return key


def free_port(host: str, port: int) -> None:
    """Stop with one line now, before the model loads, if (host, port) cannot be listened on: LitServe's bind would
    end in a traceback after the workers started."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"port={port}: cannot listen on {host}:{port} ({err.strerror}); pick another port") from None


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        args = parse(sys.argv[1:] if argv is None else argv)
        if ls is None:
            raise ConfigError(
                f"lit_ner.serve needs the serve extra (LitServe, prometheus-client): {needs_extra('serve')}"
            )
        key, (host, port) = api_key(), (args["host"], int(args["port"]))
        free_port(host, port)
        # before any thread starts (torch's, the tokenizer's, LitServe's): each inherits the block, so that the signals
        # wait for drain_on_sigterm's thread instead of ending the process in whichever thread they reach. The
        # resource tracker of spawned processes first: starting it unblocks both signals in the thread that starts it
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        quantize, thresholds = args["quantize"] or None, parse_thresholds(args["min_score"] or None)
        # load once here: a folder that cannot serve stops now, with one line, not in a worker's traceback
        NerPredictor.from_pretrained(args["model"], device="cpu", backend=args["backend"], quantize=quantize)
        threads = max(1, torch.get_num_threads() // int(args["workers"]))
        limits = Limits(int(args["max_texts"]), int(args["max_words"]), int(args["max_chars"]))
        batch_sizes = BatchSizes(int(args["max_batch_size"]))
        api = NerAPI(
            str(Path(args["model"]).expanduser()), args["backend"], quantize, limits, threads, thresholds, batch_sizes,
            max_batch_size=int(args["max_batch_size"]), batch_timeout=float(args["batch_timeout"]),
        )  # fmt: skip
    metrics = Metrics(batch_sizes)
    gate = Gate(key, int(args["max_bytes"]), float(args["read_timeout"]), int(args["max_queue"]))
    middlewares: list[Any] = [(Guard, {"gate": gate, "metrics": metrics})]
    if args["cors"]:  # outside the guard: a browser's preflight carries no key
        middlewares.append((CORSMiddleware, {"allow_origins": args["cors"].split(","), "allow_methods": ["GET", "POST"],
                                             "allow_headers": ["Content-Type", "X-API-Key", "Authorization"]}))  # fmt: skip
    # fast_queue: LitServe's ZeroMQ transport between the HTTP server and the workers (pyzmq comes with litserve);
    # 131.6 against 128.9 sentences/s with its default queues at 32 clients in one paired run here, within noise.
    # restart_workers: a worker that dies is started again, and the requests it held get a 500 at once;
    # disable_openapi_url: no /docs, /redoc, /openapi.json (LitServe's generated ones say nothing of the API, which
    # docs/reference.md describes)
    server = ls.LitServer(api, accelerator="cpu" if args["backend"] == "onnx" else "auto",
                          workers_per_device=int(args["workers"]), timeout=float(args["timeout"]), fast_queue=True,
                          middlewares=middlewares, restart_workers=True, disable_openapi_url=True)  # fmt: skip
    add_routes(server, f"lit_ner: {model_name(args['model'])}", key is not None, metrics)
    drain_on_sigterm(server, float(args["grace"]))
    listen_in_this_process_only(port)
    # one HTTP server, a thread of this process: the metrics, the queue depth and LitServe's table of the requests
    # in flight live in one place (its watch answers a dead worker's requests from that table), and the HTTP side of
    # a service whose model does the work needs no process of its own
    server.run(host=host, port=port, num_api_servers=1, api_server_worker_type="thread", generate_client_file=False)


if __name__ == "__main__":
    main()
