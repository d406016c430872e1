"""The MOS server's rules: blindness, tokens, the Host check, rating validation and order, path-like ids, resume,
concurrent raters, and a ``kill -9`` during load (every acknowledged rating is in the database)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mos_fixtures import SECRET_NAMES, Client, make_db, make_folder, running, stored
from sr_lib.mos import store

ROOT = Path(__file__).resolve().parents[1]


def _session(client, token) -> list:
    """Rates every trial of ``token`` (score cycling 1..5) through next, img and rate; returns (position, score)."""
    status, state = client.json("GET", f"/r/{token}/next")
    assert status == 200
    client.request("GET", f"/r/{token}")
    client.request("GET", "/static/mos.js")
    client.request("GET", "/static/mos.css")
    pressed = []
    while not state["done"]:
        status, headers, png = client.request("GET", state["image"])
        assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(b"\x89PNG")
        score = len(pressed) % 5 + 1
        status, state_after = client.rate(token, state["trial"], score)
        assert status == 200, state_after
        pressed.append(score)
        state = state_after
    return pressed


def test_full_session_names_no_method(tmp_path):
    db, tokens = make_db(tmp_path)
    with running(db) as server:
        client = Client(server.port)
        pressed = _session(client, tokens[0])
        client.close()
    assert len(pressed) == 23  # 6 calibration + 3 images x 5 methods + 2 repeats.
    assert sorted(stored(db).values()) == sorted(pressed)
    for status, headers, body in client.responses:
        everything = (headers.encode() + body).lower()
        for name in SECRET_NAMES:
            assert name.encode() not in everything, (name, status, headers)
        if not body.startswith(b"\x89PNG"):  # "HR" (two letters): in text only, random tokens and ids removed.
            assert b"HR" not in re.sub(rb"[A-Za-z0-9_-]{12,}", b"", headers.encode() + body)
    text = [body for _, _, body in client.responses if body.startswith(b"{")]
    assert any(b'"label": "this is 1 (bad)"' in body for body in text)  # Calibration is labelled.


def test_tokens_host_and_paths(tmp_path):
    db, tokens = make_db(tmp_path)
    with running(db) as server:
        client = Client(server.port)
        status, state = client.json("GET", f"/r/{tokens[0]}/next")
        trial = state["trial"]
        wrong = "A" * 22
        for method, path in (("GET", f"/r/{wrong}"), ("GET", f"/r/{wrong}/next"), ("GET", f"/r/{wrong}/img/{trial}")):
            assert client.request(method, path)[0] == 404
        status, body = client.rate(wrong, trial, 3)
        assert status in (403, 404) and "error" in body
        status, body = client.rate(tokens[1], trial, 3)  # Another rater's trial.
        assert status == 404 and "error" in body
        for host in ("evil.example:%d" % server.port, "127.0.0.1:1", "localhost.evil.example"):
            foreign = Client(server.port, host_header=host)
            assert foreign.request("GET", f"/r/{tokens[0]}/next")[0] == 403
            assert foreign.rate(tokens[0], trial, 3)[0] == 403
        assert Client(server.port, f"localhost:{server.port}").request("GET", f"/r/{tokens[0]}/next")[0] == 200
        for path in (f"/r/{tokens[0]}/img/../next", f"/r/{tokens[0]}/img/%2e%2e%2fstudy.sqlite", "/static/../page.py",
                     "/static/%2e%2e/store.py", f"/r/{tokens[0]}/../../etc/passwd", "/img/" + trial, "/",
                     f"/r/{tokens[0]}/img/{trial}/", "/r/..%2F..%2Fstudy.sqlite", "//etc/passwd"):
            status, _, body = client.request("GET", path)
            assert status == 404 and body.startswith(b"{"), path
        later = _trial_ids(db, 1)[5]
        assert client.request("GET", f"/r/{tokens[0]}/img/{later}")[0] == 404  # Only the current trial's picture.
        client.close()
    assert stored(db) == {}


def _trial_ids(db, rater) -> list:
    connection = store.connect(db)
    ids = [row[0] for row in connection.execute(
        "SELECT public_id FROM trials WHERE rater_id = ? ORDER BY position", (rater,))]
    connection.close()
    return ids


def test_rating_validation_order_and_double_submission(tmp_path):
    db, tokens = make_db(tmp_path)
    token = tokens[0]
    ids = _trial_ids(db, 1)
    with running(db) as server:
        client = Client(server.port)
        for bad in (0, 6, "3", 3.5, 3.0, True, None, -1, [3]):
            status, body = client.rate(token, ids[0], bad)
            assert status == 400 and "score" in body["error"], bad
        for raw in (b'{"trial": "%s", "score": NaN}' % ids[0].encode(), b"not json", b"[]",
                    b'{"trial": "%s", "score": 3, "x": 1}' % ids[0].encode(), b'{"trial": 5, "score": 3}',
                    b'{"trial": "../x", "score": 3}', b"\xff\xfe"):
            status, _, body = client.request("POST", f"/r/{token}/rate", raw, {"Content-Type": "application/json"})
            assert status == 400 and b"error" in body, raw
        status, _, _ = client.request("POST", f"/r/{token}/rate", '{"trial": "%s", "score": 3}' % ids[0],
                                      {"Content-Type": "text/plain"})
        assert status == 415
        status, body = client.rate(token, ids[1], 3)  # Out of order.
        assert status == 409 and "next" in body["error"]
        assert client.rate(token, ids[0], 4)[0] == 200
        status, body = client.rate(token, ids[0], 5)  # Double submission.
        assert status == 409 and "already" in body["error"]
        assert client.rate(token, ids[1], 2)[0] == 200
        client.close()
    assert stored(db) == {(1, 0): 4, (1, 1): 2}


def test_oversized_body_refused_before_reading(tmp_path):
    db, tokens = make_db(tmp_path)
    with running(db) as server:
        client = Client(server.port)
        client.connection.putrequest("POST", f"/r/{tokens[0]}/rate", skip_host=True)
        client.connection.putheader("Host", f"127.0.0.1:{server.port}")
        client.connection.putheader("Content-Type", "application/json")
        client.connection.putheader("Content-Length", str(10 ** 9))
        client.connection.endheaders()  # No body is sent: the answer must come from the header alone.
        started = time.monotonic()
        response = client.connection.getresponse()
        assert response.status == 413 and b"error" in response.read()
        assert time.monotonic() - started < 2
        client.reconnect()
        assert client.request("GET", f"/r/{tokens[0]}/next")[0] == 200  # The server is still fine.
        client.close()


def test_reload_and_restart_resume(tmp_path):
    db, tokens = make_db(tmp_path)
    ids = _trial_ids(db, 1)
    with running(db) as server:
        client = Client(server.port)
        for position in range(3):
            assert client.rate(tokens[0], ids[position], 5)[0] == 200
        assert client.json("GET", f"/r/{tokens[0]}/next")[1]["trial"] == ids[3]  # A reload.
        client.close()
    with running(db) as server:  # A restart.
        status, state = Client(server.port).json("GET", f"/r/{tokens[0]}/next")
        assert state["trial"] == ids[3] and state["phase"] == "calibration" and state["number"] == 4
        assert Client(server.port).json("GET", f"/r/{tokens[1]}/next")[1]["trial"] == _trial_ids(db, 2)[0]


def _hammer(port, token, count, acknowledged, errors, stop=None):
    """One rater's client: rates up to ``count`` trials, recording each acknowledged (200) rating."""
    client = Client(port)
    try:
        status, state = client.json("GET", f"/r/{token}/next")
        for number in range(count):
            if state["done"] or (stop is not None and stop.is_set()):
                break
            score = number % 5 + 1
            status, answer = client.rate(token, state["trial"], score)
            if status != 200:
                errors.append((status, answer))
                break
            acknowledged.append((token, state["trial"], score))
            state = answer
    except (OSError, ValueError) as error:  # The killed server: the last request may die unanswered.
        if stop is None:
            errors.append(error)
    finally:
        client.close()


def _stored_by_public_id(db) -> list:
    connection = store.connect(db)
    rows = connection.execute("SELECT w.token, t.public_id, r.score FROM ratings r JOIN trials t ON t.id = r.trial_id "
                              "JOIN raters w ON w.id = t.rater_id").fetchall()
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    return rows


def test_sixteen_concurrent_raters(tmp_path):
    db, tokens = make_db(tmp_path, raters=16, n_images=8, size=16)  # 6 + 48 + 5 repeats = 59 trials each.
    acknowledged, errors = [], []
    with running(db) as server:
        started = time.monotonic()
        threads = [threading.Thread(target=_hammer, args=(server.port, token, 50, acknowledged, errors))
                   for token in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
    assert errors == []
    assert len(acknowledged) == 16 * 50
    rows = _stored_by_public_id(db)
    assert sorted(rows) == sorted(acknowledged)  # Same rows, no duplicates, nothing lost.
    assert elapsed < 30, f"800 ratings took {elapsed:.1f} s"


def test_kill_9_loses_no_acknowledged_rating(tmp_path):
    folder = make_folder(tmp_path / "study", n_images=8, size=16)
    db = tmp_path / "study.sqlite"
    command = [sys.executable, "-m", "sr_lib.mos", "serve", "--db", str(db), "--stimuli", str(folder), "--raters",
               "16", "--port", "0", "--seed", "3"]
    errors_file = open(tmp_path / "server.stderr", "w+")  # A file: an unread pipe could fill and block the server.
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors_file, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        urls = []
        for line in server.stdout:
            urls += re.findall(r"http://127\.0\.0\.1:(\d+)/r/([A-Za-z0-9_-]+)", line)
            if line.startswith("serving"):
                break
        assert len(urls) == 16, (tmp_path / "server.stderr").read_text()
        port = int(urls[0][0])
        acknowledged, errors, stop = [], [], threading.Event()
        threads = [threading.Thread(target=_hammer, args=(port, token, 50, acknowledged, errors, stop))
                   for _, token in urls]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)  # Mid-load: requests are in flight.
        stop.set()
        for thread in threads:
            thread.join(20)
    finally:
        server.kill()
        server.wait(10)
        errors_file.close()
    assert server.returncode == -signal.SIGKILL
    assert errors == [] and len(acknowledged) >= 200
    rows = _stored_by_public_id(db)  # Also checks PRAGMA integrity_check.
    missing = set(acknowledged) - set(rows)
    assert not missing, f"{len(missing)} acknowledged rating(s) lost"
    assert len(rows) - len(acknowledged) <= 16  # At most one committed-but-unanswered rating per rater.
    assert len(rows) == len({(token, trial) for token, trial, _ in rows})


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_wildcard_host_refused(tmp_path, host):
    db, _ = make_db(tmp_path)
    from sr_lib.mos.server import StudyServer

    with pytest.raises(ValueError, match="every address"):
        StudyServer(db, host, 0)
