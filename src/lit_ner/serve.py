"""`python -m lit_ner.serve model=<export> [port=8000] [workers=1] [max_batch_size=32] [batch_timeout=0.01]
[max_chars=100000] [backend=torch|onnx] [quantize=int8] [min_score=...]`: the exported model as an HTTP service on
LitServe; `GET /` is a page to try it in a browser.

POST /predict with a JSON object: `{"text": "..."}`, `{"texts": ["...", ...]}` or `{"tokens": ["word", ...]}`; the
answer is `{"entities": [...]}` (a list of lists for `texts`), the entities `lit_ner.predict` gives. Requests that
arrive together are batched on the server (LitServe's batching: up to `max_batch_size` requests, waiting at most
`batch_timeout` seconds), so many clients get the batched throughput. A bad request gets a 4xx with a one-line reason
(`{"detail": "..."}`) and fails alone: the requests batched with it get their entities, and the server goes on; a
request the model fails on gets a 500, alone too. A model that cannot be loaded stops the start-up with one
`lit_ner: error:` line. `workers` inference processes share the CPU threads (each gets torch's thread count divided
by `workers`): on a CPU, one worker a core serves more than one worker with every core. Needs the serve extra:
`pip install -e '.[serve]'` in a clone, or `pip install '<lit_ner wheel file>[serve]'`."""

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lit_ner.errors import ConfigError, key_values, needs_extra, reported
from lit_ner.inference import parse_thresholds
from lit_ner.models import model_name
from lit_ner.predictor import NerPredictor
from lit_ner.report_html import service_page

try:  # the serve extra; without it the command still answers --help and says what to install
    import litserve as ls
    from fastapi import HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse
except ImportError:
    ls = None

USAGE = (
    "usage: python -m lit_ner.serve model=<export folder> [port=8000] [workers=1] [max_batch_size=32] "
    "[batch_timeout=0.01] [max_chars=100000] [backend=torch|onnx] [quantize=int8] [min_score=0.5|PER:0.6,LOC:0.4]"
)
DEFAULTS = {"port": "8000", "workers": "1", "max_batch_size": "32", "batch_timeout": "0.01", "max_chars": "100000",
            "backend": "torch", "quantize": "", "min_score": ""}  # fmt: skip
OPTIONS = {
    "model": "an export (<run>/model)",
    "port": "the HTTP port",
    "workers": "inference processes; they share the CPU threads",
    "max_batch_size": "requests predicted as one batch",
    "batch_timeout": "seconds a batch waits to fill",
    "max_chars": "a longer request gets 413",
    "backend": "onnx: the export's ONNX model in ONNX Runtime",
    "quantize": "with backend=onnx: its int8 model",
    "min_score": "drop entities scoring below, one value or per type (default: the export's thresholds)",
}
ABOUT = (
    'Serve a trained model over HTTP (LitServe): POST /predict with {"text": ...}, {"texts": [...]} or {"tokens": '
    '[...]}\nanswers {"entities": ...}, the entities lit_ner.predict gives; requests that arrive together are '
    "predicted as one\nbatch; GET / is a page to try the model in a browser. Needs the serve extra:\n"
    f"{needs_extra('serve')}." + """

examples:
  python -m lit_ner.serve model=outputs/quickstart/<run>/model port=8000
  python -m lit_ner.serve model=<run>/model backend=onnx quantize=int8 workers=2
  curl -X POST localhost:8000/predict -d '{"text": "Alan Walker wrote it in 1940."}'"""
)
FIELDS = ("text", "texts", "tokens")
logger = logging.getLogger(__name__)


def read_request(request: Any, max_chars: int) -> tuple[str, Any]:
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
    if sum(map(len, strings)) > max_chars:
        raise HTTPException(413, f"the request has {sum(map(len, strings))} characters; this server takes at most "
                                 f"{max_chars} a request (max_chars=)")  # fmt: skip
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
        self, folder: str, backend: str, quantize: str | None, max_chars: int, threads: int, min_score: Any = None,
        **batching: Any,
    ) -> None:
        super().__init__(**batching)
        self.folder, self.backend, self.quantize, self.max_chars = folder, backend, quantize, max_chars
        self.min_score = min_score
        self.threads = threads  # CPU threads of this worker (torch's, and ONNX Runtime's, which reads torch's)

    def setup(self, device: str) -> None:
        device = "cpu" if self.backend == "onnx" else device
        torch.set_num_threads(self.threads)
        self.predictor = NerPredictor.from_pretrained(
            self.folder, device=device, backend=self.backend, quantize=self.quantize, min_score=self.min_score
        )

    def decode_request(self, request: dict) -> Any:  # dict: LitServe reads a JSON object body
        """(field, value) of a valid request, the HTTPException of a bad one (returned, not raised: see above)."""
        try:
            return read_request(request, self.max_chars)
        except HTTPException as err:
            return err

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, requests: Any) -> Any:
        """The entities of each valid request, all of them in one go (`entities`); if that raises, each request
        alone, so that only the one the model fails on gets a 500 (its traceback in the server's log)."""
        batched = isinstance(requests, list)
        requests = requests if batched else [requests]
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
    for key in ("port", "workers", "max_batch_size", "max_chars"):
        if not args[key].isdigit() or int(args[key]) < (0 if key == "port" else 1):
            raise ConfigError(f"{key}={args[key]}: expected a whole number{'' if key == 'port' else ', 1 or more'}")
    try:
        if float(args["batch_timeout"]) < 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"batch_timeout={args['batch_timeout']}: expected seconds, 0 or more") from None
    return args


def with_page(server: Any, title: str) -> None:
    """`GET /` answers a page with a text box whose entities are marked (through POST /predict), in place of
    LitServe's plain "litserve running"."""
    page = service_page(title)
    server.app.router.routes = [r for r in server.app.router.routes if getattr(r, "path", None) != "/"]
    server.app.add_api_route("/", lambda: HTMLResponse(page), methods=["GET"], include_in_schema=False)


def main(argv: Sequence[str] | None = None) -> None:
    with reported():
        args = parse(sys.argv[1:] if argv is None else argv)
        if ls is None:
            raise ConfigError(f"lit_ner.serve needs the serve extra (LitServe): {needs_extra('serve')}")
        quantize, thresholds = args["quantize"] or None, parse_thresholds(args["min_score"] or None)
        # load once here: a folder that cannot serve stops now, with one line, not in a worker's traceback
        NerPredictor.from_pretrained(args["model"], device="cpu", backend=args["backend"], quantize=quantize)
        threads = max(1, torch.get_num_threads() // int(args["workers"]))
        api = NerAPI(
            str(Path(args["model"]).expanduser()), args["backend"], quantize, int(args["max_chars"]), threads,
            thresholds, max_batch_size=int(args["max_batch_size"]), batch_timeout=float(args["batch_timeout"]),
        )  # fmt: skip
    # fast_queue: LitServe's ZeroMQ transport between the HTTP server and the workers (pyzmq comes with litserve);
    # 131.6 against 128.9 sentences/s with its default queues at 32 clients in one paired run here, within noise
    server = ls.LitServer(api, accelerator="cpu" if args["backend"] == "onnx" else "auto",
                          workers_per_device=int(args["workers"]), fast_queue=True)  # fmt: skip
    with_page(server, f"lit_ner: {model_name(args['model'])}")
    server.run(port=int(args["port"]), generate_client_file=False)


if __name__ == "__main__":
    main()
