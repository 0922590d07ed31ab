"""`python -m benchmarks.predict --model <export> --data <CoNLL file or folder>`: sentences a second of
`transformers.pipeline` (its default, then batch_size=32: the speed references) against `NerPredictor` on torch
(with `--compiled`, also torch compiled), ONNX Runtime fp32 and ONNX Runtime int8, on the same test sentences in the
same process; with each the share of sentences whose entities equal lit_ner.evaluate's reading (`lit_ner.inference`
on the torch model, which evaluate scores), and the entity-level F1 of the predicted words against the gold tags
(seqeval); with `--evaluate`, each backend's F1 on the whole test split through `lit_ner.evaluate`. One table, ratios
to the pipeline's default (docs/benchmarks.md)."""

import argparse
import contextlib
import io
import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import torch
from seqeval.metrics import f1_score

from lit_ner.data.formats import conll_lines
from lit_ner.data.schemes import entity_spans
from lit_ner.predictor import NerPredictor, word_starts


def test_sentences(path: Path, limit: int) -> tuple[list[list[str]], list[list[str]]]:
    """(words, gold tags) of the first `limit` sentences of a CoNLL file (a folder: its test.txt), read as training
    and lit_ner.predict read CoNLL files."""
    path = path / "test.txt" if path.is_dir() else path
    lines, sep, sentences, _ = conll_lines(path)
    rows = [[lines[n].split(sep) for n in numbers] for numbers in sentences[:limit]]
    return [[r[0] for r in row] for row in rows], [[r[-1] for r in row] for row in rows]


def as_tags(words: list[str], entities: list[dict[str, Any]]) -> list[str]:
    """IOB2 tags of the words from character-offset entities over `" ".join(words)` (a word is in an entity when
    its first character is)."""
    starts, tags = word_starts(words), ["O"] * len(words)
    for e in entities:
        inside = [i for i, s in enumerate(starts) if e["start"] <= s < e["end"]]
        for k, i in enumerate(inside):
            tags[i] = f"{'I' if k else 'B'}-{e['type']}"
    return tags


Side = Callable[[list[list[str]]], list[list[str]]]  # sentences' words -> their predicted IOB2 tags


def timed(run: Side, words: list[list[str]]) -> tuple[float, list[list[str]]]:
    start = time.perf_counter()
    found = run(words)
    return len(words) / (time.perf_counter() - start), found


def served(
    model: str, texts: list[str], clients: int, threads: int, workers: int, offline: Callable[[], float], rounds: int
) -> dict[str, float]:
    """Start `lit_ner.serve` on a free port; each round, time `offline()` (sentences/s) with the server stopped, then
    send every text as its own request from `clients` concurrent clients. The median of the rounds' served/offline
    ratios, the median served sentences/s, latency percentiles (ms) over all rounds, and the share of the `threads`
    CPUs the clients used."""
    import http.client
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "lit_ner.serve", f"model={model}", f"port={port}", "max_batch_size=32",
               "batch_timeout=0.01", f"workers={workers}"]  # fmt: skip
    # its own process group: LitServe's workers are processes of their own, stopped with the server below
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              start_new_session=True)  # fmt: skip
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):  # the model loaded
                    break
            except OSError:
                time.sleep(0.5)

        # one kept-alive connection a client, as an HTTP client library keeps it; new ones each round (the server
        # closes a connection left idle for 5 s, as while the offline side runs)
        clients_of = {"round": threading.local()}

        def call(text: str) -> float:
            start = time.perf_counter()
            local = clients_of["round"]
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            local.connection.request("POST", "/predict", json.dumps({"text": text}), {"Content-Type": "application/json"})
            answer = local.connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"lit_ner.serve answered {answer.status} to a test sentence")
            return time.perf_counter() - start

        latencies: list[float] = []
        speeds, ratios, shares = [], [], []
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(call, texts[:64]))  # warm-up
            for _ in range(rounds):  # the offline side just before, its pair: the machine's speed drifts
                os.killpg(server.pid, signal.SIGSTOP)  # even idle, LitServe's loops poll (0.3 of a core here)
                try:
                    alone = offline()
                finally:
                    os.killpg(server.pid, signal.SIGCONT)
                clients_of["round"] = threading.local()
                start, cpu = time.perf_counter(), time.process_time()
                latencies += pool.map(call, texts)
                seconds = time.perf_counter() - start
                speeds.append(len(texts) / seconds)
                shares.append((time.process_time() - cpu) / seconds / threads)  # this process: the clients alone
                ratios.append(speeds[-1] / alone)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    latencies.sort()
    pick = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {"per_second": median(speeds), "ratio": median(ratios), "p50": pick(0.5), "p99": pick(0.99),
            "clients_cpu": median(shares)}


BACKENDS = {"NerPredictor, torch": ("torch", None), "NerPredictor, ONNX Runtime fp32": ("onnx", None),
            "NerPredictor, ONNX Runtime int8": ("onnx", "int8")}  # fmt: skip
PIPELINE, TORCH = "transformers.pipeline (default)", "NerPredictor, torch"  # the ratios' bases
COMPILED = "NerPredictor, torch compiled"  # the torch backend's own arithmetic: its test F1 is the torch row's


def forward_gflop(predictor: NerPredictor, words: list[list[str]]) -> tuple[float, int]:
    """The GFLOP of the model's forward over these sentences, batched as NerPredictor batches them (torch's own
    count, FlopCounterMode), and the tokens of a typical batch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        predictor.words(words)
    tokens = sum(len(predictor.tokenizer(w, is_split_into_words=True)["input_ids"]) for w in words) / len(words)
    return counter.get_total_flops() / 1e9, round(predictor.batch_size * tokens)


def matmul_rate(model: torch.nn.Module, rows: int) -> float:
    """The GFLOP/s torch's matmul reaches on this CPU at the shapes of the model's linear layers, for `rows` tokens.
    With forward_gflop it bounds any fp32 forward from above: that leaves out all other work, and counts attention's
    small products at the rate of the big ones."""
    weights = [layer.weight for layer in model.modules() if isinstance(layer, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1]) for w in weights}
    with torch.inference_mode():
        for w in weights:
            inputs[w.shape[1]] @ w.T
        start = time.perf_counter()
        for _ in range(5):
            for w in weights:
                inputs[w.shape[1]] @ w.T
        seconds = time.perf_counter() - start
    return 5 * sum(2 * rows * w.shape[0] * w.shape[1] for w in weights) / seconds / 1e9


def evaluated(model: str, data: list[str], backend: str, quantize: str | None) -> float:
    """Micro F1 of `lit_ner.evaluate model=<model> <data> backend=... [quantize=...]` on the test split."""
    from lit_ner.app import compose_config
    from lit_ner.evaluate import evaluate

    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):  # its report: not here
        args = [f"model.model_name_or_path={model}", *data, f"backend={backend}", "split=test", f"output_dir={out}"]
        args += [f"quantize={quantize}"] if quantize else []
        report = evaluate(compose_config("evaluate", args))  # it reads as the export was trained
    return report["scores"]["default"]["micro avg"]["f1"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="an exported folder (<run>/model)")
    p.add_argument("--data", required=True, type=Path, help="a CoNLL file, or a folder with test.txt")
    p.add_argument("--sentences", type=int, default=1000)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--output", type=Path, default=None, help="also write the table here (markdown)")
    p.add_argument("--clients", type=int, default=0, help="also serve the model (lit_ner.serve) to this many clients")
    p.add_argument("--workers", type=int, default=1, help="lit_ner.serve's workers=, each with threads/workers")
    p.add_argument("--rounds", type=int, default=3,
                   help="time every side once a round, report medians (the machine's speed drifts)")
    p.add_argument("--compiled", action="store_true", help="also NerPredictor with compile=True (torch.compile)")
    p.add_argument("--evaluate", default=None, metavar="OVERRIDES",
                   help="also each backend's test F1 through lit_ner.evaluate with these data overrides, e.g. "
                        "'data=conll2003 data.path=../shared/datasets/conll2003'")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import pipeline

    from lit_ner.export_onnx import export_onnx
    from lit_ner.runners import onnx_path

    if not onnx_path(Path(args.model), "int8").is_file():
        export_onnx(Path(args.model), "int8")
    words, gold = test_sentences(args.data, args.sentences)
    texts = [" ".join(w) for w in words]
    ner = pipeline("token-classification", model=args.model, aggregation_strategy="simple", device="cpu")

    def piped(batch_size: int) -> Side:
        def run(sentences: list[list[str]]) -> list[list[str]]:
            batch = [" ".join(w) for w in sentences]
            out = ner(batch, batch_size=batch_size) if batch_size > 1 else ner(batch)
            return [as_tags(w, [{"type": e["entity_group"], "start": e["start"], "end": e["end"]} for e in found])
                    for w, found in zip(sentences, out)]  # fmt: skip

        return run

    def predicting(predictor: NerPredictor) -> Side:
        def run(sentences: list[list[str]]) -> list[list[str]]:
            tags = [["O"] * len(w) for w in sentences]
            for sentence, found in zip(tags, predictor.words(sentences)):  # entities, as predict and serve give them
                for e in found:
                    sentence[e["word_start"] : e["word_end"]] = [f"B-{e['type']}"] + [f"I-{e['type']}"] * (
                        e["word_end"] - e["word_start"] - 1)  # fmt: skip
            return tags

        return run

    predictors = {name: NerPredictor.from_pretrained(args.model, device="cpu", backend=backend, quantize=quantize)
                  for name, (backend, quantize) in BACKENDS.items()}  # fmt: skip
    if args.compiled:
        predictors[COMPILED] = NerPredictor.from_pretrained(args.model, device="cpu", compile=True)
    sides = {PIPELINE: piped(1), "transformers.pipeline (batch_size=32)": piped(32)}
    sides |= {name: predicting(predictor) for name, predictor in predictors.items()}
    for run in sides.values():
        run(words[:32])  # warm-up: first-call allocations, ONNX Runtime's graph preparation, the compile
    on_torch = predictors[TORCH]
    # lit_ner.evaluate's reading of these sentences: the word tags of lit_ner.inference on the torch model
    evaluated_entities = [entity_spans(t.tags) for t in on_torch.word_tags(words)]
    gflop, tokens = forward_gflop(on_torch, words)
    speeds: dict[str, list[float]] = {name: [] for name in sides}
    found: dict[str, list] = {}
    bounds = []  # sentences/s of the fp32 ceiling (below), once a round
    for _ in range(args.rounds):  # every side once a round: the machine's drift moves a round's sides together
        for name, run in sides.items():
            speed, found[name] = timed(run, words)
            speeds[name].append(speed)
        bounds.append(len(words) * matmul_rate(on_torch.runner.model, tokens) / gflop)
    default = speeds[PIPELINE]
    rows = [
        f"{len(words)} test sentences of {args.data}, model {args.model}, {args.threads} CPU threads",
        "",
        "| side | sentences/s | × pipeline default | × NerPredictor, torch | entities equal to lit_ner.evaluate's "
        "| F1 (seqeval, words) |" + (" test F1 (lit_ner.evaluate) |" if args.evaluate else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if args.evaluate else ""),
    ]
    for name, tags in found.items():
        same = sum(entity_spans(t) == e for t, e in zip(tags, evaluated_entities)) / len(words)
        f1 = f1_score(gold, tags)
        ratios = [median(a / b for a, b in zip(speeds[name], speeds[to])) for to in (PIPELINE, TORCH)]
        row = f"| {name} | {median(speeds[name]):.1f} | {ratios[0]:.2f} | {ratios[1]:.2f} | {same:.2%} | {f1:.4f} |"
        if args.evaluate:  # after the timings: it would share the CPU with them
            row += f" {evaluated(args.model, shlex.split(args.evaluate), *BACKENDS[name]):.4f} |" if name in BACKENDS else " – |"
        rows.append(row)
    bound = median(bounds)
    rows += [
        "",
        f"Medians of {args.rounds} rounds; \"×\": the median of the rounds' ratios. The fp32 ceiling: the forward "
        f"over these sentences is {gflop:.1f} GFLOP (torch's FlopCounterMode, NerPredictor's batches of at most "
        f"{on_torch.batch_size} rows in length order); torch's matmul at the shapes of its linear layers reached "
        f"{bound * gflop / len(words):.0f} GFLOP/s on this CPU, so no fp32 forward passes {bound:.0f} sentences/s "
        f"here, {median(a / b for a, b in zip(bounds, default)):.2f}× the pipeline's default.",
    ]
    if args.clients:
        offline = lambda: timed(lambda _: on_torch(texts), words)[0]  # noqa: E731  the requests' own texts
        load = served(args.model, texts, args.clients, args.threads, args.workers, offline, args.rounds)
        rows += [
            "",
            f"lit_ner.serve (torch, {args.workers} worker(s), max_batch_size 32, batch_timeout 10 ms), {args.clients} "
            f"concurrent clients, one sentence a request ({args.rounds} rounds, each beside an offline run): "
            f"{load['per_second']:.1f} sentences/s, {load['ratio']:.2f}× offline NerPredictor on torch; latency p50 "
            f"{load['p50']:.0f} ms, p99 {load['p99']:.0f} ms; the clients themselves used {load['clients_cpu']:.0%} of "
            f"the {args.threads} CPU threads",
        ]
    print("\n".join(rows))
    if args.output:
        args.output.write_text("\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
