"""The rater's page (HTML, CSS, JavaScript), served as three static responses; Python strings, so they ship with the
package without package-data settings. It names no method: it gets each trial from ``/r/<token>/next`` and its
picture by the trial's random id, and the server keeps all state (a reload resumes at the next unrated trial).

Pictures are shown at 1:1 device pixels, also on HiDPI screens: the image keeps its natural size in CSS px and is
scaled by ``zoom / devicePixelRatio`` with a CSS transform, inside a frame of the scaled size whose top left corner is
moved onto a device pixel; each image pixel then covers exactly zoom x zoom device pixels. A transform, because CSS
lengths round to 1/64 px: a fractional ratio (125 %, 150 %, browser zoom) or 3 would leave the image a fraction of a
device pixel short, and the browser would resample it. Fractional ratios are handled exactly like integer ones (the
Chromium test compares screen pixels with the PNG at ratios 2 and 1.5); it is recomputed on every resize, which
browser zoom also fires. ``image-rendering: pixelated`` is always on: with an exact mapping it changes nothing, and
zoomed pixels stay sharp squares.
"""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Picture quality rating</title>
<link rel="stylesheet" href="/static/mos.css">
</head>
<body data-ready="0">
<header>
  <span id="progress">loading</span>
  <span id="zoom">zoom <button type="button" data-zoom="1">&times;1</button><button type="button"
    data-zoom="2">&times;2</button><button type="button" data-zoom="3">&times;3</button> (keys + and &minus;)</span>
</header>
<p id="instructions">Rate the quality of each picture from 1 (bad) to 5 (excellent): click a button or press a key
from 1 to 5. The first few pictures are calibration examples of the two ends of the scale.</p>
<p id="label"></p>
<div id="stage"><div id="frame"><img id="picture" alt="picture to rate" draggable="false"></div></div>
<div id="scores">
  <button type="button" data-score="1">1 bad</button>
  <button type="button" data-score="2">2 poor</button>
  <button type="button" data-score="3">3 fair</button>
  <button type="button" data-score="4">4 good</button>
  <button type="button" data-score="5">5 excellent</button>
</div>
<p id="message" role="alert"></p>
<script src="/static/mos.js"></script>
</body>
</html>
"""

CSS = """body { font: 16px system-ui, sans-serif; margin: 1em; background: #808080; color: #000; }
header { display: flex; gap: 2em; align-items: baseline; font-weight: bold; }
#label { min-height: 1.3em; font-weight: bold; }
#frame { position: relative; }
#picture { display: block; image-rendering: pixelated; visibility: hidden; transform-origin: 0 0; }
#scores { margin-top: 1em; display: flex; gap: 0.5em; }
#scores button { font-size: 1.1em; padding: 0.5em 1em; }
#message { color: #600; min-height: 1.3em; }
button[aria-pressed="true"] { font-weight: bold; }
"""

JS = r""""use strict";
const token = location.pathname.split("/")[2];
const picture = document.getElementById("picture");
const frame = document.getElementById("frame");
const progress = document.getElementById("progress");
const label = document.getElementById("label");
const message = document.getElementById("message");
let state = null;
let zoom = 1;
let ready = false;

function setReady(value) {
  ready = value;
  document.body.dataset.ready = value ? "1" : "0";
  for (const button of document.querySelectorAll("[data-score]")) button.disabled = !value;
}

function fit() {
  // One image pixel per zoom x zoom device pixels: the image keeps its natural size in CSS px and is scaled by
  // zoom / devicePixelRatio (a transform, computed in floating point; CSS lengths would round to 1/64 px), inside a
  // frame of the scaled size whose top left corner is nudged onto a device pixel.
  if (!picture.naturalWidth) return;
  const ratio = window.devicePixelRatio || 1;
  // A hair more than zoom / ratio: the compositor's float32 rounding must never leave the last row or column a
  // fraction of a device pixel short (it is then blended with the background); 2^-20 moves no sampled pixel.
  const scale = zoom / ratio * (1 + Math.pow(2, -20));
  picture.style.width = picture.naturalWidth + "px";
  picture.style.height = picture.naturalHeight + "px";
  picture.style.transform = "scale(" + scale + ")";
  const layout = (pixels) => Math.ceil(pixels * scale * 64) / 64;  // Never narrower than the scaled image.
  frame.style.width = layout(picture.naturalWidth) + "px";
  frame.style.height = layout(picture.naturalHeight) + "px";
  frame.style.left = frame.style.top = "0px";
  const box = frame.getBoundingClientRect();
  const offset = (value) => ((1 - ((value * ratio) % 1 + 1) % 1) % 1) / ratio;  // To the next device pixel.
  frame.style.left = offset(box.left) + "px";  // Relative offsets: unlike margins, they never collapse.
  frame.style.top = offset(box.top) + "px";
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.zoom) === zoom));
  }
}

function setZoom(value) {
  zoom = Math.max(1, Math.min(4, Math.round(value)));
  document.body.dataset.zoom = String(zoom);
  fit();
}

function show(next) {
  state = next;
  setReady(false);
  message.textContent = "";
  if (next.done) {
    progress.textContent = "all " + next.total + " trials rated: thank you, you may close this page";
    label.textContent = "";
    picture.removeAttribute("src");
    picture.style.visibility = "hidden";
    document.getElementById("scores").hidden = true;
    document.body.dataset.done = "1";
    return;
  }
  const what = next.phase === "calibration" ? "calibration " : "trial ";
  progress.textContent = what + next.number + " of " + next.total;
  document.body.dataset.phase = next.phase;
  document.body.dataset.number = String(next.number);
  label.textContent = next.label || "";
  picture.style.visibility = "hidden";
  picture.onload = () => { fit(); picture.style.visibility = "visible"; setReady(true); };
  picture.onerror = () => { message.textContent = "the picture did not load: please reload the page"; };
  picture.src = next.image;
}

async function load() {
  try {
    const response = await fetch("/r/" + token + "/next", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) { message.textContent = body.error || "error"; return; }
    show(body);
  } catch (error) {
    message.textContent = "the server cannot be reached: please reload the page later";
  }
}

async function rate(score) {
  if (!ready || !state || state.done) return;
  setReady(false);
  try {
    const response = await fetch("/r/" + token + "/rate", {
      method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ trial: state.trial, score: score }),
    });
    const body = await response.json();
    if (response.ok) { show(body); return; }
    if (response.status === 409) { await load(); return; }  // Already stored (e.g. a retry): resynchronise.
    message.textContent = body.error || "error";
    setReady(true);
  } catch (error) {
    message.textContent = "the rating may not have been saved (network): press the key again";
    setReady(true);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;  // Leave the browser's own keys.
  if (event.key >= "1" && event.key <= "5") { event.preventDefault(); rate(Number(event.key)); }
  else if (event.key === "+" || event.key === "=") { event.preventDefault(); setZoom(zoom + 1); }
  else if (event.key === "-" || event.key === "_") { event.preventDefault(); setZoom(zoom - 1); }
});
for (const button of document.querySelectorAll("[data-score]")) {
  button.addEventListener("click", () => { button.blur(); rate(Number(button.dataset.score)); });
}
for (const button of document.querySelectorAll("[data-zoom]")) {
  button.addEventListener("click", () => { button.blur(); setZoom(Number(button.dataset.zoom)); });
}
window.addEventListener("resize", fit);
setReady(false);
setZoom(1);
load();
"""
