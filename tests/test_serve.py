"""The HTTP service (`python -m lit_ner.serve`): the real LitServe server on a free port, called over HTTP with good,
bad and concurrent requests; it answers what NerPredictor answers and keeps serving after bad requests."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lit_ner.predict import NerPredictor
from lit_ner.train import train

pytest.importorskip("litserve", reason="the serve extra: pip install -e '.[dev]'")
TEXTS = [
    "Alan Walker published The Long Road in 1940.",
    "In 1987, Anna Smith wrote a novel called Élodie's Garden.",
    "The library owns 7 copies of Anna's book.",
    "Zoë Ångström was born in Berlin in 1899.",
]
# bad requests of each kind, with the status and (part of) the reason each must get, alone
BAD = [
    ({"txt": TEXTS[0]}, 400, 'one of "text"'),
    ({"text": 5}, 422, '"text" must be a string'),
    ({"text": "x" * 2001}, 413, "at most 2000"),
    ({"text": "Anna \ud800 Smith"}, 422, "lone surrogate"),  # valid JSON, no text the tokenizer takes
    ({"tokens": ["Anna", "\udfff"]}, 422, "lone surrogate"),
]


def post(port: int, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg):
    root = tmp_path_factory.mktemp("serve")
    overrides = ["model.lr=1e-2", "trainer.max_epochs=3", "test=false"]
    folder = Path(train(make_cfg(root / "run", tiny_model, root / "cache", *overrides, size=200))["export"])
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "lit_ner.serve", f"model={folder}", f"port={port}", "max_batch_size=8",
               "batch_timeout=0.05", "max_chars=2000", "workers=2"]  # fmt: skip (two processes share the CPU)
    log = open(root / "server.log", "w")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    # its own process group: LitServe's workers are processes of their own, stopped with the server below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
    yield port, NerPredictor.from_pretrained(folder, device="cpu"), folder
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):  # a worker that outlived the SIGTERM
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


def without_scores(entities: list) -> list:
    if entities and isinstance(entities[0], list):
        return [without_scores(e) for e in entities]
    return [{k: v for k, v in e.items() if k != "score"} for e in entities]


def test_text_texts_and_tokens_get_the_predictors_entities(server) -> None:
    port, predictor, _ = server
    status, answer = post(port, json.dumps({"text": TEXTS[0]}).encode())
    assert status == 200 and without_scores(answer["entities"]) == without_scores(predictor(TEXTS[0]))
    assert any(e["type"] == "DATE" for e in answer["entities"])
    status, answer = post(port, json.dumps({"texts": TEXTS}).encode())
    assert status == 200 and without_scores(answer["entities"]) == without_scores(predictor(TEXTS))
    words = TEXTS[3].split()
    status, answer = post(port, json.dumps({"tokens": words}).encode())
    assert status == 200 and without_scores(answer["entities"]) == without_scores(predictor.words([words])[0])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 422, "JSON decode error"),
        (b"[1, 2]", 422, "valid dictionary"),
        (b'{"txt": "x"}', 400, 'one of "text"'),
        (b'{"text": "a", "tokens": ["a"]}', 400, 'one of "text"'),
        (b'{"text": 5}', 422, '"text" must be a string'),
        (b'{"texts": "abc"}', 422, '"texts" must be a list of strings'),
        (b'{"tokens": ["a", 1]}', 422, '"tokens" must be a list of strings'),
        (json.dumps({"text": "x" * 2001}).encode(), 413, "at most 2000"),
        (json.dumps({"text": "\ud800"}).encode(), 422, '"text" has a lone surrogate'),
        (json.dumps({"texts": ["a", "b\udbff"]}).encode(), 422, '"texts" item 1 has a lone surrogate'),
    ],
)
def test_a_bad_request_gets_a_4xx_with_the_reason_and_the_server_goes_on(server, body, status, says) -> None:
    port, predictor, _ = server
    got, answer = post(port, body)
    detail = answer["detail"] if isinstance(answer["detail"], str) else json.dumps(answer["detail"])
    assert got == status and says in detail
    assert post(port, json.dumps({"text": TEXTS[1]}).encode())[0] == 200


def test_concurrent_clients_each_get_their_own_answer(server) -> None:
    port, predictor, _ = server
    texts = [f"{text} ({i})" for i in range(6) for text in TEXTS]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: post(port, json.dumps({"text": t}).encode()), texts))
    assert all(status == 200 for status, _ in answers)
    assert [without_scores(a["entities"]) for _, a in answers] == without_scores(predictor(texts))


def test_a_bad_request_fails_alone_the_requests_batched_with_it_get_their_entities(server) -> None:
    """48 clients at once, batched by the server (up to 8 a batch within 0.05 s, two workers); one request in six is
    bad, of each kind in turn: each bad one gets its own status and one-line reason, each good one 200 and the
    predictor's entities. (LitServe answers a batch whose decode_request or predict raises with that error, all of
    it: before the fix most good requests got a bad neighbour's 4xx or a 500.)"""
    port, predictor, _ = server
    requests: list[tuple[dict, int | None, str]] = []
    for i in range(48):
        text = f"{TEXTS[i % 4]} ({i})"
        if i % 6 == 3:
            requests.append(BAD[(i // 6) % len(BAD)])
        elif i % 3 == 1:
            requests.append(({"tokens": text.split()}, None, ""))
        else:
            requests.append(({"texts": [text, TEXTS[(i + 1) % 4]]} if i % 6 == 2 else {"text": text}, None, ""))
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda r: post(port, json.dumps(r[0]).encode()), requests))

    def expected(body: dict) -> list:
        if "tokens" in body:
            return without_scores(predictor.words([body["tokens"]])[0])
        return without_scores(predictor(body.get("text", body.get("texts"))))

    good = [(body, answer) for (body, status, _), answer in zip(requests, answers) if status is None]
    wrong = Counter(got for body, (got, answer) in good if got != 200 or
                    without_scores(answer["entities"]) != expected(body))  # fmt: skip
    assert not wrong, f"{sum(wrong.values())} of {len(good)} good requests answered wrong, by status: {dict(wrong)}"
    for (_, status, says), (got, answer) in zip(requests, answers):
        if status is not None:
            detail = answer.get("detail")
            assert (got, isinstance(detail, str)) == (status, True) and says in detail, (status, says, got, answer)
            assert "\n" not in detail and "Traceback" not in detail and ".py" not in detail


def test_a_request_the_model_fails_on_fails_alone(server) -> None:
    """A batch whose predictor call raises is predicted again request by request, as LitServe's batched loop calls
    NerAPI (decode each, batch, predict, unbatch, encode each): only the request the model fails on gets a 500,
    with a one-line reason that shows neither the exception's message nor a path; the others their entities."""
    from lit_ner.serve import NerAPI

    _, predictor, folder = server

    class Poisoned:  # the predictor, raising on one text as a defect would
        def __call__(self, texts: list[str]) -> list:
            if any("poison" in t for t in texts):
                raise RuntimeError("boom in /somewhere/lit_ner/predictor.py")
            return predictor(texts)

        words = staticmethod(predictor.words)

    api = NerAPI(str(folder), "torch", None, 2000, 1, max_batch_size=8)
    api.predictor = Poisoned()
    bodies = [{"text": TEXTS[0]}, {"texts": [TEXTS[1], "poison"]}, {"txt": "x"}, {"tokens": TEXTS[3].split()}]
    outputs = api.unbatch(api.predict(api.batch([api.decode_request(body) for body in bodies])))
    answers = [api.encode_response(output) for output in outputs]
    assert answers[0] == {"entities": predictor(TEXTS[0])}
    assert answers[3] == {"entities": predictor.words([TEXTS[3].split()])[0]}
    assert [(a.status_code, json.loads(a.body)["detail"][:28]) for a in answers[1:3]] == [
        (500, "the model failed on this req"), (400, 'send a JSON object with one ')]  # fmt: skip
    assert "boom" not in answers[1].body.decode() and ".py" not in answers[1].body.decode()


def test_the_service_answers_the_entities_evaluate_scored(server, tmp_path: Path) -> None:
    """Each test sentence sent alone (as its words), answered from batches the server forms: the entities of
    lit_ner.evaluate's prediction file, sentence for sentence."""
    from lit_ner.app import compose_config
    from lit_ner.data.schemes import entity_spans
    from lit_ner.evaluate import evaluate

    port, _, folder = server
    cache = folder.parent.parent / "cache"
    evaluate(compose_config("evaluate", [f"model.model_name_or_path={folder}", f"output_dir={tmp_path}",
                                         f"conll={tmp_path / 'test.conll'}", "data.synthetic_size=200",
                                         f"data.cache_dir={cache}"]))  # fmt: skip
    blocks = (tmp_path / "test.conll").read_text().strip("\n").split("\n\n")
    rows = [[line.split(" ") for line in block.splitlines()] for block in blocks]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: post(port, json.dumps({"tokens": [w[0] for w in r]}).encode()), rows))
    assert all(status == 200 for status, _ in answers)
    expected = [entity_spans([w[2] for w in row]) for row in rows]
    assert sum(map(len, expected)) > 10
    assert [[(e["type"], e["word_start"], e["word_end"]) for e in a["entities"]] for _, a in answers] == expected


def test_a_model_folder_that_cannot_be_loaded_stops_the_start_up(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "lit_ner.serve", f"model={tmp_path}"], capture_output=True,
                          text=True, timeout=120, env=os.environ | {"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("lit_ner: error: model=") and "Traceback" not in done.stderr


def test_the_services_page_shows_the_entities_of_a_text_in_a_browser(server, tmp_path: Path) -> None:
    """GET / is a page: headless Chromium opens it with a text (`/#text=...`), the page asks POST /predict and marks
    the answer's entities in the text, one <mark> each, as the predictor finds them."""
    from urllib.parse import quote

    from test_report_html import CHROMIUM, Elements, chromium

    if CHROMIUM is None:
        pytest.skip("no chromium here (Debian's package chromium; .ci/run installs it)")
    port, predictor, _ = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
        assert answer.status == 200 and "text/html" in answer.headers["Content-Type"]
    url = f"http://127.0.0.1:{port}/#text={quote(TEXTS[0])}"
    page = Elements(chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", url))
    expected = predictor(TEXTS[0])
    assert expected and [m["text"] for m in page.marks] == [e["text"] for e in expected]
    chromium(tmp_path, "--virtual-time-budget=15000", f"--screenshot={tmp_path / 'page.png'}",
             "--window-size=1000,600", url)  # fmt: skip
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
