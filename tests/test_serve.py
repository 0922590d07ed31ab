"""The HTTP service (`python -m lit_ner.serve`): the real LitServe server on a free port, called over HTTP with good,
bad and concurrent requests; it answers what NerPredictor answers and keeps serving after bad requests. Then what a
service on a network needs: its limits (each over-limit request refused with its status and reason, a large body
before it is read), the API key, CORS, the probes and /metrics, where it listens, and its processes: a drain on
SIGTERM that leaves none behind, a killed worker replaced."""

import contextlib
import http.client
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
from lit_ner.serve import Limits, main, parse  # noqa: E402  (after the skip: it needs the serve extra)
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


def post(port: int, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict", data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get(port: int, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """(status, headers, body) of a request without a body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, headers=headers or {})
    answer = connection.getresponse()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_processes(pgid: int) -> dict[int, str]:
    """The live processes of a process group (zombies left out), by pid, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (entry / "stat").read_text()
            state, _, group = stat[stat.rindex(")") + 2 :].split()[:3]
            if int(group) == pgid and state != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
    return found


def start(folder: Path, log: Path, *options: str, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """`python -m lit_ner.serve model=<folder> port=<free> <options>` in a process group of its own (LitServe's
    workers are processes of their own), once /ready answers (the model loaded); its output goes to `log`."""
    port = free_port()
    command = [sys.executable, "-m", "lit_ner.serve", f"model={folder}", f"port={port}", *options]
    env = os.environ | {"HF_HUB_OFFLINE": "1"} | (env or {})
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.read() == b"ok":
                    return process, port
        time.sleep(0.5)
    stop(process)
    pytest.fail(f"the server did not start:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):  # a process that outlived the SIGTERM
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, make_cfg) -> tuple[Path, NerPredictor]:
    root = tmp_path_factory.mktemp("serve")
    overrides = ["model.lr=1e-2", "trainer.max_epochs=3", "test=false"]
    folder = Path(train(make_cfg(root / "run", tiny_model, root / "cache", *overrides, size=200))["export"])
    return folder, NerPredictor.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def server(model, tmp_path_factory: pytest.TempPathFactory):
    """The service at its defaults, but for small limits to test and two workers (two processes share the CPU)."""
    folder, predictor = model
    log = tmp_path_factory.mktemp("server") / "server.log"
    process, port = start(folder, log, "max_batch_size=8", "batch_timeout=0.05", "max_chars=2000", "workers=2",
                          "max_texts=8", "max_words=300", "max_bytes=20000", "read_timeout=2")  # fmt: skip
    yield port, predictor, folder
    stop(process)


KEY = "k3y-for-the-tests"


@pytest.fixture(scope="module")
def keyed(model, tmp_path_factory: pytest.TempPathFactory):
    """The service with an API key, one CORS origin and room for two requests."""
    folder, predictor = model
    log = tmp_path_factory.mktemp("keyed") / "server.log"
    process, port = start(folder, log, "cors=https://app.example.org", "max_queue=2", env={"LIT_NER_API_KEY": KEY})
    yield port, predictor
    stop(process)


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

    api = NerAPI(str(folder), "torch", None, Limits(8, 300, 2000), 1, max_batch_size=8)
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
    command = [sys.executable, "-m", "lit_ner.serve", f"model={tmp_path}", f"port={free_port()}"]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
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


def test_the_page_asks_for_the_key_and_sends_it(keyed, tmp_path: Path) -> None:
    """With LIT_NER_API_KEY set, the page still works: given the key once (`/#key=...`, or typed in its key box), it
    sends it with each request and marks the entities."""
    from urllib.parse import quote

    from test_report_html import CHROMIUM, Elements, chromium

    if CHROMIUM is None:
        pytest.skip("no chromium here (Debian's package chromium; .ci/run installs it)")
    port, predictor = keyed
    url = f"http://127.0.0.1:{port}/#key={KEY}&text={quote(TEXTS[0])}"
    page = Elements(chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", url))
    expected = predictor(TEXTS[0])
    assert expected and [m["text"] for m in page.marks] == [e["text"] for e in expected]


def one_line(detail: object) -> bool:
    """A reason a client can show: one line of text, no traceback, no path."""
    return isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail and ".py" not in detail


def raw_post(port: int, head: dict[str, str], body: bytes = b"") -> socket.socket:
    """A POST /predict sent by hand, `body` only as much as given (the rest is left unsent): a connection held open
    as a slow or a large upload holds it."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    lines = ["POST /predict HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             *(f"{k}: {v}" for k, v in head.items())]  # fmt: skip
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return connection


def answer_of(connection: socket.socket) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of the answer on a connection sent by hand."""
    answer = http.client.HTTPResponse(connection)
    answer.begin()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, json.loads(answer.read())


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"texts": ["Anna"] * 9}, "the request has 9 texts; this service takes at most 8 a request (max_texts=)"),
        ({"tokens": ["Anna"] * 301}, "the request has 301 words; this service takes at most 300 a request (max_words="),
        ({"text": "Anna " * 301}, "301 words"),  # a text's words: separated by white space
        ({"texts": ["Anna Smith"] * 8}, None),  # at the limits: answered
        ({"tokens": ["Anna"] * 300}, None),
    ],
)
def test_a_request_over_a_limit_gets_413_with_the_limit_that_refused_it(server, body, says) -> None:
    """What one request may hold is bounded (texts, words, characters: above, and max_chars in the 4xx test), so
    that one request's compute is bounded: a small request never waits long behind a large one."""
    port, predictor, _ = server
    status, answer = post(port, json.dumps(body).encode())
    if says is None:
        expected = predictor(body["texts"]) if "texts" in body else predictor.words([body["tokens"]])[0]
        assert status == 200 and without_scores(answer["entities"]) == without_scores(expected)
    else:
        assert (status, one_line(answer["detail"])) == (413, True) and says in answer["detail"]


def test_a_body_over_max_bytes_is_refused_before_it_is_read(server) -> None:
    """A Content-Length over max_bytes (20000 here) gets 413 with the headers alone, the body never sent; a body
    without a length (chunked) is counted as it streams, and refused once past the limit, its end never sent. Each
    connection is closed after the answer, so the rest of the body is not read either."""
    port, _, _ = server
    announced = raw_post(port, {"Content-Length": "50000000"}, b'{"text": "')
    status, headers, answer = answer_of(announced)
    assert (status, headers.get("connection"), one_line(answer["detail"])) == (413, "close", True)
    assert answer["detail"] == "the request body has 50000000 bytes; this service takes at most 20000 (max_bytes=20000)"
    streamed = raw_post(port, {"Transfer-Encoding": "chunked"})
    for _ in range(3):  # 3 x 8000 bytes, no last chunk
        streamed.sendall(b"1f40\r\n" + b" " * 8000 + b"\r\n")
    status, headers, answer = answer_of(streamed)
    assert (status, headers.get("connection")) == (413, "close") and "more than 20000 bytes" in answer["detail"]
    assert post(port, json.dumps({"text": "x" * 1900}).encode())[0] == 200  # just under: read and answered


def test_a_body_that_does_not_arrive_in_time_gets_408(server) -> None:
    """read_timeout (2 s here) bounds the reading of a whole body: a client that sends part of it and stops (or
    trickles it) gets 408 and its connection back, instead of holding it open."""
    port, _, _ = server
    start = time.monotonic()
    connection = raw_post(port, {"Content-Length": "100"}, b'{"text": "An')
    status, headers, answer = answer_of(connection)
    assert (status, headers.get("connection"), one_line(answer["detail"])) == (408, "close", True)
    assert answer["detail"] == "the request body did not arrive within 2 s (read_timeout=2)"
    assert time.monotonic() - start < 30  # the socket's own timeout would be 60 s


def test_past_max_queue_the_service_answers_503_at_once(keyed) -> None:
    """max_queue=2: two requests in the service (here, two bodies still arriving) and the third gets 503 with
    Retry-After at once, without its body being read; the two are answered once their bodies arrive."""
    port, predictor = keyed
    body = json.dumps({"text": TEXTS[0]}).encode()
    held = [raw_post(port, {"Content-Length": str(len(body)), "X-API-Key": KEY}, body[:10]) for _ in range(2)]
    deadline = time.monotonic() + 30
    while b"lit_ner_queue_depth 2.0" not in get(port, "/metrics", {"X-API-Key": KEY})[2]:
        assert time.monotonic() < deadline, "the two held requests never entered the service"
        time.sleep(0.1)
    third = raw_post(port, {"Content-Length": str(len(body)), "X-API-Key": KEY})  # no body: refused before it
    status, headers, answer = answer_of(third)
    assert (status, headers.get("retry-after"), one_line(answer["detail"])) == (503, "1", True)
    assert "(max_queue=2)" in answer["detail"]
    for connection in held:
        connection.sendall(body[10:])
        status, _, answer = answer_of(connection)
        assert status == 200 and without_scores(answer["entities"]) == without_scores(predictor(TEXTS[0]))


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/predict"), ("GET", "/info"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json"),
     ("GET", "/redoc"), ("GET", "/no/such/path"), ("POST", "/"), ("POST", "/health")],  # fmt: skip
)
def test_every_route_but_the_probes_and_the_page_needs_the_api_key(keyed, method, path) -> None:
    """LIT_NER_API_KEY set: without the key, or with a wrong one, 401 and a one-line reason (unknown paths too: no
    route is told apart); with it, as X-API-Key or as a bearer token, the route answers."""
    port, _ = keyed
    body = json.dumps({"text": TEXTS[0]}) if path == "/predict" else None
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        answer = connection.getresponse()
        detail = json.loads(answer.read())["detail"]
        assert answer.status == 401 and one_line(detail) and "API key" in detail, (headers, answer.status)
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        # /docs and the other API pages: off; POST to the page or a probe: not a method they answer
        expected = {"/predict": 200, "/info": 200, "/metrics": 200, "/": 405, "/health": 405}.get(path, 404)
        assert connection.getresponse().status == expected


def test_the_probes_and_the_page_answer_without_the_key(keyed) -> None:
    """/health (live) and /ready (the model loaded) for an orchestrator, which sends no secret; GET / is the page,
    which holds no data and asks for the key (an input of its own)."""
    port, _ = keyed
    assert get(port, "/health")[::2] == (200, b"ok") and get(port, "/ready")[::2] == (200, b"ok")
    status, headers, page = get(port, "/")
    assert status == 200 and "text/html" in headers["content-type"] and b'id="key" type="password"' in page


def test_the_api_key_is_checked_before_the_service_starts(tmp_path: Path, monkeypatch, capsys) -> None:
    for value, says in (("", "LIT_NER_API_KEY is set but empty"),
                        ("my secret", "LIT_NER_API_KEY is set but not printable ASCII")):  # fmt: skip
        monkeypatch.setenv("LIT_NER_API_KEY", value)
        with pytest.raises(SystemExit) as stop_:
            main([f"model={tmp_path}", f"port={free_port()}"])
        err = capsys.readouterr().err
        assert stop_.value.code == 2 and err.startswith(f"lit_ner: error: {says}") and err.count("\n") == 1
        assert "secret" not in err  # the key itself is never shown


def test_cors_is_off_unless_origins_are_given(server, keyed) -> None:
    """By default no browser page of another origin may call the service (no Access-Control-Allow-Origin, to a
    preflight or a request); cors=https://app.example.org lets that origin alone, the API key header included."""
    preflight = {"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-api-key"}  # fmt: skip
    port = server[0]
    for method in ("OPTIONS", "GET"):
        assert "access-control-allow-origin" not in get(port, "/predict", preflight, method)[1]
    port = keyed[0]
    status, headers, _ = get(port, "/predict", preflight, "OPTIONS")
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example.org"
    assert "x-api-key" in headers["access-control-allow-headers"].lower()
    status, headers, _ = get(port, "/info", {"Origin": "https://app.example.org", "X-API-Key": KEY})
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example.org"
    other = get(port, "/predict", preflight | {"Origin": "https://elsewhere.example"}, "OPTIONS")[1]
    assert "access-control-allow-origin" not in other


def test_health_ready_and_metrics(server) -> None:
    """/health and /ready answer ok; /metrics, for Prometheus, counts the answers of POST /predict by status code,
    their latency, the queue depth and the sizes of the batches the workers (processes of their own) predicted."""
    port, _, _ = server
    assert get(port, "/health")[::2] == (200, b"ok") and get(port, "/ready")[::2] == (200, b"ok")
    before = metrics(port)
    assert post(port, json.dumps({"text": TEXTS[0]}).encode())[0] == 200
    assert post(port, json.dumps({"texts": ["a"] * 9}).encode())[0] == 413
    after = metrics(port)
    assert after['lit_ner_requests_total{code="200"}'] == before.get('lit_ner_requests_total{code="200"}', 0) + 1
    assert after['lit_ner_requests_total{code="413"}'] == before.get('lit_ner_requests_total{code="413"}', 0) + 1
    assert after["lit_ner_request_seconds_count"] == before["lit_ner_request_seconds_count"] + 2
    assert after["lit_ner_batch_size_count"] >= before["lit_ner_batch_size_count"] + 2  # both went to a worker
    assert after["lit_ner_queue_depth"] == 0
    assert get(port, "/metrics")[1]["content-type"].startswith("text/plain; version=")


def metrics(port: int) -> dict[str, float]:
    status, _, text = get(port, "/metrics")
    assert status == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.decode().splitlines() if line and not line.startswith("#")}  # fmt: skip


def test_docs_and_openapi_are_off_and_the_service_listens_on_loopback_by_default(server) -> None:
    """No host= given: the socket listens on 127.0.0.1 alone (what /proc/net/tcp lists for the port), not on every
    address; the generated API docs are off (docs/reference.md documents the API)."""
    port, _, _ = server
    listening = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                listening.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if table == "tcp" else f"[{address}]")
    assert listening == {"127.0.0.1"}
    assert [get(port, path)[0] for path in ("/docs", "/openapi.json", "/redoc")] == [404, 404, 404]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["port=80"], "port=80: expected a port from 1024 to 65535 (LitServe refuses the lower ones, which need root)"),
        (["port=70000"], "port=70000: expected a port from 1024 to 65535"),
        (["host=10.1.2.3"], "host=10.1.2.3: expected 127.0.0.1 (this machine only), 0.0.0.0"),
        (["max_bytes=0"], "max_bytes=0: expected a whole number, 1 or more"),
        (["max_texts=-1"], "max_texts=-1: expected a whole number, 1 or more"),
        (["max_words=many"], "max_words=many: expected a whole number, 1 or more"),
        (["max_queue=0"], "max_queue=0: expected a whole number, 1 or more"),
        (["timeout=0"], "timeout=0: expected seconds, more than 0"),
        (["read_timeout=-1"], "read_timeout=-1: expected seconds, more than 0"),
        (["grace=soon"], "grace=soon: expected seconds, 0 or more"),
        (["batch_timeout=nan"], "batch_timeout=nan: expected seconds, 0 or more"),
        (["batch_timeout=30"], "batch_timeout=30: expected less than timeout=30"),
        (["cors=https://app.example.org/path"], "cors=https://app.example.org/path: expected origins such as"),
        (["cors=app.example.org"], "cors=app.example.org: expected origins such as"),
    ],
)
def test_a_bad_setting_stops_with_one_line(argv, says, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop_:
        main([f"model={tmp_path}", *argv])
    err = capsys.readouterr().err
    assert stop_.value.code == 2 and err.startswith(f"lit_ner: error: {says}") and err.count("\n") == 1


def test_the_settings_defaults() -> None:
    args = parse(["model=m"])
    assert {k: args[k] for k in ("host", "max_bytes", "max_texts", "max_words", "max_chars", "max_queue", "cors")} == {
        "host": "127.0.0.1", "max_bytes": "2000000", "max_texts": "32", "max_words": "10000", "max_chars": "100000",
        "max_queue": "256", "cors": ""}  # fmt: skip


def test_port_80_or_a_port_in_use_stops_before_binding_with_one_line(tmp_path: Path) -> None:
    """port=80 is one line, not LitServe's traceback. The rule does not depend on the user (LitServe refuses ports
    below 1024 even to root), so this runs as root too, as CI does. A port another process listens on is one line
    too, found before the model loads."""
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "lit_ner.serve", f"model={tmp_path}"]
    done = subprocess.run([*command, "port=80"], capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert done.stderr.startswith("lit_ner: error: port=80: expected a port from 1024 to 65535")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*command, f"port={port}"], capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert done.stderr == f"lit_ner: error: port={port}: cannot listen on 127.0.0.1:{port} (Address already in use); " \
                          "pick another port\n"  # fmt: skip


@pytest.mark.parametrize("to", ["the main process", "the process group"])
def test_sigterm_drains_the_requests_in_flight_and_leaves_no_process(model, tmp_path: Path, to: str) -> None:
    """SIGTERM (to the main process as `docker stop` sends it, or to the whole group as systemd does) while a
    request is in flight (its body half sent): new connections are refused at once, the request in flight is still
    read, predicted and answered, the command exits 0, and none of the service's processes is left."""
    folder, predictor = model
    process, port = start(folder, tmp_path / "server.log")
    try:
        assert len(group_processes(process.pid)) >= 3  # main, LitServe's manager, an inference worker (and more)
        body = json.dumps({"text": TEXTS[1]}).encode()
        in_flight = raw_post(port, {"Content-Length": str(len(body))}, body[:10])
        deadline = time.monotonic() + 30
        while b"lit_ner_queue_depth 1.0" not in get(port, "/metrics")[2]:
            assert time.monotonic() < deadline, "the request never entered the service"
            time.sleep(0.1)
        if to == "the main process":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while True:  # refused while the request in flight is still open
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.1)
        in_flight.sendall(body[10:])
        status, _, answer = answer_of(in_flight)
        assert status == 200 and without_scores(answer["entities"]) == without_scores(predictor(TEXTS[1]))
        assert process.wait(timeout=60) == 0, (tmp_path / "server.log").read_text()[-3000:]
        deadline = time.monotonic() + 10
        while (left := group_processes(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes left after the server exited: {left}"
    finally:
        stop(process)


def test_a_killed_worker_is_replaced_and_its_request_answered(model, tmp_path: Path) -> None:
    """kill -9 of the inference worker while it holds a request: the request gets a one-line 500 (not a hang),
    LitServe's watch starts a new worker (restart_workers=True) and the service answers again, with no process
    more or less than before. The worker holds the request because its batch waits for a second one (max_batch_size
    2, batch_timeout an hour)."""
    folder, predictor = model
    process, port = start(folder, tmp_path / "server.log", "max_batch_size=2", "batch_timeout=3600", "timeout=7200")
    try:
        before = group_processes(process.pid)
        workers = [pid for pid, command in before.items() if "spawn_main" in command]
        assert len(workers) == 1, before
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(post, port, json.dumps({"text": TEXTS[0]}).encode())
            deadline = time.monotonic() + 30
            while b"lit_ner_queue_depth 1.0" not in get(port, "/metrics")[2]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(0.5)  # the worker takes it from the queue within milliseconds
            os.kill(workers[0], signal.SIGKILL)
            status, answer = held.result(timeout=60)
            assert status == 500 and one_line(answer["detail"]), (status, answer)
            deadline, answered = time.monotonic() + 120, [0]
            while answered[-1] != 200 or 503 not in answered:  # not ready while the new worker loads, then ready
                assert time.monotonic() < deadline, f"/ready answered {set(answered[1:])} only: no worker came back"
                answered.append(get(port, "/ready")[0])
                time.sleep(0.1)
            answers = list(pool.map(lambda t: post(port, json.dumps({"text": t}).encode()), TEXTS[:2]))
        assert [(status, without_scores(answer["entities"])) for status, answer in answers] == [
            (200, without_scores(entities)) for entities in predictor(TEXTS[:2])]  # fmt: skip
        after = group_processes(process.pid)
        assert len(after) == len(before) and workers[0] not in after
    finally:
        stop(process)
