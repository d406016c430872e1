"""Shared set-up of the MOS tests: small study folders, databases, an in-process server and a raw HTTP client.

Method folder names are chosen so that no accidental substring of a response can match them (the blindness test
searches every byte the browser receives for them).
"""

import contextlib
import http.client
import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from sr_lib.mos import stimuli, store
from sr_lib.mos.server import StudyServer

METHODS = ("srganzz", "mseonly")
SECRET_NAMES = METHODS + ("nearest", "bicubic")  # The reference is "HR": two letters, searched in text only.


def make_folder(root, n_images=3, size=32, methods=METHODS, seed=0, photo=False) -> Path:
    """A study folder: HR/ and one folder per method, ``n_images`` pictures of ``size`` px: distinct random noise, or
    with ``photo`` crops of scikit-image's rocket (not a calibration photograph), blurred by each method."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    if photo:
        from skimage import data

        rocket = data.rocket()
    for number, method in enumerate(("HR",) + tuple(methods)):
        (root / method).mkdir(parents=True, exist_ok=True)
        for index in range(n_images):
            if photo:
                top, left = ((110, 240), (250, 100), (250, 290))[index % 3]  # The rocket, a tower, the pad.
                picture = Image.fromarray(rocket[top:top + size, left:left + size])
                picture = picture.filter(ImageFilter.GaussianBlur(0.7 * number)) if number else picture
            else:
                picture = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            picture.save(root / method / f"img{index}.png")
    return root


def make_db(tmp_path, raters=2, n_images=3, size=32, seed=7, calibration_size=32, repeat_fraction=0.1, photo=False):
    """(database path, tokens) of a new study over a :func:`make_folder` folder, with small calibration pictures."""
    folder = make_folder(tmp_path / "study", n_images=n_images, size=size, photo=photo)
    db = tmp_path / "study.sqlite"
    store.create_study(db, stimuli.load_folder(folder, 4), stimuli.calibration_stimuli(4, calibration_size),
                       {"scale": 4, "seed": seed, "repeat_fraction": repeat_fraction, "source": "test"})
    connection = store.connect(db)
    tokens = store.ensure_raters(connection, raters)
    connection.close()
    return db, tokens


@contextlib.contextmanager
def running(db):
    """A StudyServer on a free port, serving in a thread."""
    server = StudyServer(db, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Client:
    """Raw HTTP on one keep-alive connection: paths are sent exactly as given (no normalisation)."""

    def __init__(self, port, host_header=None):
        self.port = port
        self.host_header = host_header or f"127.0.0.1:{port}"
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.responses = []  # (status, header text, body) of every response, for the blindness check.

    def request(self, method, path, body=None, headers=None):
        headers = {"Host": self.host_header, **(headers or {})}
        if isinstance(body, (dict, list)) or (body is not None and not isinstance(body, (bytes, str))):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        self.connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers.items():
            self.connection.putheader(key, value)
        data = body.encode() if isinstance(body, str) else body
        if data is not None and "Content-Length" not in headers:
            self.connection.putheader("Content-Length", str(len(data)))
        self.connection.endheaders(data)
        response = self.connection.getresponse()
        payload = response.read()
        self.responses.append((response.status, str(response.headers), payload))
        if response.getheader("Connection", "").lower() == "close":
            self.reconnect()
        return response.status, response.headers, payload

    def json(self, method, path, body=None, headers=None):
        status, _, payload = self.request(method, path, body, headers)
        return status, json.loads(payload)

    def rate(self, token, trial, score):
        return self.json("POST", f"/r/{token}/rate", {"trial": trial, "score": score})

    def reconnect(self):
        self.connection.close()
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def close(self):
        self.connection.close()


def stored(db) -> dict:
    """{(rater id, position): score} of every stored rating."""
    connection = store.connect(db)
    rows = connection.execute("SELECT t.rater_id, t.position, r.score FROM ratings r JOIN trials t ON "
                              "t.id = r.trial_id").fetchall()
    connection.close()
    return {(rater, position): score for rater, position, score in rows}
