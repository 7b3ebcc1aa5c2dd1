// gdscope explorer: every knob redraws the optimizer's path on the landscape.
// State lives in one object that is mirrored into the URL (#state=...), so a reload or a
// shared link shows the same view. The server does all the maths (see /docs for the API) and
// says what there is to choose (/api/schema: optimizers, hyperparameters with defaults and
// bounds, losses, metrics, views, defaults, limits) and which command draws the same figure
// (/api/command); the page keeps no copy of those.

import { download, withText } from "./png.js";

const $ = (id) => document.getElementById(id);
// Pinned paths: dark enough to read on the white page and to stand out on the map.
const PIN_COLOURS = ["#000000", "#c2185b", "#00838f", "#e65100", "#3f51b5", "#558b2f"];
// Values a slider or a click makes are kept to this many significant digits, so the box, the
// URL, the pins and the command all show the same short number.
const SIGNIFICANT = 3;
const tidy = (v) => Number(Number(v).toPrecision(SIGNIFICANT));
// Plotly's toolbar without the buttons the page has its own controls for; it sits at the top
// right, so titles go to the left.
const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage", "sendDataToCloud"] };
const TITLE = (text) => ({ text, font: { size: 14 }, x: 0.02, xanchor: "left" });
// The loss maps' colour map, as the figures' (/api/schema's colorscale: [position, "#rrggbb"]).
let TERRAIN = null;

let schema = null;       // /api/schema: what there is to choose, with defaults and limits
let DEFAULT_STATE = null;
let state = null;
let functions = {};     // test function name -> {domain, start, lr, minima}
let landscape = null;   // last /api/landscape answer
let runs = null;        // last /api/trajectories answer
let pinnedRuns = [];    // answers for pinned configurations
let landscapeKey = "";
let runsKey = "";        // the trajectory requests (current and pinned) that `runs` answers
let figureRecord = null; // the record of the figure shown (/api/command), embedded in the PNG
let phaseAnswer = null, phaseKey = "";
let playing = null;
let drawnPaths = [];     // what each map's canvas shows, in data coordinates (for tests and tools)

// A phase-diagram axis over a hyperparameter's span (log where it spans decades), moved to
// centre on the current value: a problem with its own step size (Rosenbrock's lr 1e-3) gets an
// axis around it, not the regression's. A linear axis moves only when the value lies outside.
function phaseAxis(hyper, value = hyper.default) {
  let [lo, hi] = hyper.span;
  if (hyper.log && value > 0) {
    const half = Math.sqrt(hi / lo);
    [lo, hi] = [tidy(value / half), tidy(value * half)];
  } else if (!hyper.log && Number.isFinite(value) && (value < lo || value > hi)) {
    const half = (hi - lo) / 2;
    [lo, hi] = [value - half, value + half];
    if (hyper.low !== null && lo < hyper.low) [lo, hi] = [hyper.low, hyper.low + 2 * half];
    if (hyper.below !== null && hi >= hyper.below) hi = hyper.below - (hi - lo) / 100;
    [lo, hi] = [tidy(lo), tidy(hi)];
  }
  return { name: hyper.name, lo, hi, log: hyper.log };
}

// The current value of every hyperparameter (the optimizer's defaults where the state has none).
function currentHyper(config = state) {
  return { ...schema.optimizers[config.optimizer].defaults, ...config.hyper };
}

// Both phase axes again, around the current values (after the problem or optimizer changed).
function resetPhaseAxes() {
  const [x, y] = numeric(state.optimizer), current = currentHyper();
  const find = (name, fallback) => numeric(state.optimizer).find((h) => h.name === name) || fallback;
  const hx = find(state.phase.x.name, x), hy = find(state.phase.y.name, y || x);
  state.phase.x = phaseAxis(hx, current[hx.name]);
  state.phase.y = phaseAxis(hy, current[hy.name]);
}

// The hyperparameters of an optimizer as the server lists them; the numeric ones.
const hyperparameters = (name) => schema.optimizers[name].hyperparameters;
const numeric = (name) => hyperparameters(name).filter((h) => h.kind === "float");

function defaultState() {
  const d = schema.defaults, [x, y] = numeric(d.optimizer.name);
  const current = { ...schema.optimizers[d.optimizer.name].defaults, ...d.optimizer.hyper };
  return {
    optimizer: d.optimizer.name, hyper: { ...d.optimizer.hyper }, epochs: d.epochs, problem: "regression",
    loss: "all", delta: d.loss.delta, beta: d.loss.beta, data: { ...d.data },
    grid: { w: [...d.grid.w_range], b: [...d.grid.b_range], size: d.grid.size }, color: "linear", view: d.view,
    start: [...d.start], pins: [], phase: { x: phaseAxis(x, current[x.name]),
      y: phaseAxis(y || x, current[(y || x).name]), metric: d.metric },
  };
}

function loadState() {
  const match = location.hash.match(/state=([^&]*)/);
  if (match) {
    try { return { ...structuredClone(DEFAULT_STATE), ...JSON.parse(decodeURIComponent(match[1])) }; }
    catch (error) { console.warn("bad state in URL", error); }
  }
  return structuredClone(DEFAULT_STATE);
}

function saveState() {
  history.replaceState(null, "", "#state=" + encodeURIComponent(JSON.stringify(state)));
}

// Each stream of requests (the map, the main path, pin i, the phase diagram) has a key of this
// tab's and a rising sequence number: the server stops an older request of the same key when a
// newer one comes (answering 409), and answers 503 with Retry-After when it is too busy.
const TAB = Math.random().toString(36).slice(2);
const sequence = {};
class Superseded extends Error {}

async function api(path, body, slot = "") {
  const key = `${TAB}:${path}:${slot}`;
  for (let attempt = 0; ; attempt += 1) {
    const headers = { "content-type": "application/json" };
    if (body) {
      sequence[key] = (sequence[key] || 0) + 1;
      headers["X-Gdscope-Key"] = key;
      headers["X-Gdscope-Seq"] = String(sequence[key]);
    }
    const sent = sequence[key];
    const response = await fetch(path, {
      method: body ? "POST" : "GET", headers, body: body ? JSON.stringify(body) : undefined,
    });
    if (response.status === 409) throw new Superseded("superseded by a newer request");
    if (response.status === 503 && attempt < 3) {
      const wait = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      if (sequence[key] !== sent) throw new Superseded("superseded while waiting");
      continue;
    }
    const answer = await response.json();
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail
        : (answer.detail || []).map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
      throw new Error(detail || response.statusText);
    }
    return answer;
  }
}

function losses() {
  const names = state.loss === "all" ? schema.article_losses : [state.loss];
  return names.map((name) => ({ name, delta: state.delta, beta: state.beta }));
}

// A test function replaces the regression: the server then ignores data and losses.
function problem() {
  return state.problem in functions ? { function: { name: state.problem } } : {};
}

function trajectoryRequest(config = state) {
  return { data: state.data, losses: losses(), epochs: config.epochs, start: config.start,
    optimizer: { name: config.optimizer, hyper: config.hyper }, ...problem() };
}

// What the command line needs to draw the current view (the server writes the command).
function commandRequest() {
  return { ...trajectoryRequest(), log: state.color === "log", view: state.view,
    grid: { w_range: state.grid.w, b_range: state.grid.b, size: state.grid.size } };
}

function landscapeRequest() {
  return { data: state.data, losses: losses(), weight_decay: 0, ...problem(),
    grid: { w_range: state.grid.w, b_range: state.grid.b, size: state.grid.size } };
}

// A number box's value, or null when it holds none (emptied, or not a number): then the box
// says so and nothing is sent (an empty box would otherwise read as 0).
function readNumber(input) {
  let note = input.nextElementSibling;
  if (!note || !note.classList.contains("boxError")) {
    note = document.createElement("span");
    note.className = "boxError";
    note.setAttribute("role", "alert");
    input.after(note);
  }
  const text = input.value.trim(), value = Number(text);
  const bad = text === "" || input.validity.badInput || !Number.isFinite(value);
  note.textContent = bad ? "enter a number" : "";
  input.classList.toggle("invalid", bad);
  input.setAttribute("aria-invalid", String(bad));
  return bad ? null : value;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// --- controls --------------------------------------------------------------------------

function buildHyperControls() {
  const box = $("hyper");
  box.innerHTML = "";
  const fallback = schema.optimizers[state.optimizer].defaults;
  for (const hyper of hyperparameters(state.optimizer)) {
    const key = hyper.name;
    const value = key in state.hyper ? state.hyper[key] : fallback[key];
    const row = document.createElement("div");
    row.className = "knob";
    row.dataset.hyper = key;
    if (hyper.kind === "bool") {
      row.innerHTML = `<label><input type="checkbox" id="h-${key}"> ${key}</label>`;
      box.append(row);
      const input = $(`h-${key}`);
      input.checked = Boolean(value);
      input.addEventListener("change", () => { state.hyper[key] = input.checked; changed(); });
      continue;
    }
    const [lo, hi] = hyper.span;
    row.innerHTML = `<span>${key}</span><input type="number" id="n-${key}" step="any">
      <input type="range" id="h-${key}" min="${lo}" max="${hi}" step="any">`;
    box.append(row);
    const slider = $(`h-${key}`), number = $(`n-${key}`);
    if (hyper.low !== null) number.min = hyper.low;  // the server refuses what lies outside
    if (hyper.below !== null) number.max = hyper.below;
    slider.value = value; number.value = value;
    slider.addEventListener("input", () => {
      state.hyper[key] = tidy(slider.value); number.value = state.hyper[key]; readNumber(number); changed();
    });
    number.addEventListener("change", () => {
      const typed = readNumber(number);
      if (typed === null) return;
      slider.value = typed; state.hyper[key] = typed; changed();
    });
  }
}

function bindField(id, get, set, landscapeToo = false) {
  const input = $(id);
  input.value = get();
  input.addEventListener("change", () => {
    const value = input.type === "number" ? readNumber(input) : input.value;
    if (value === null) return;
    set(value); changed(landscapeToo);
  });
}

// Number inputs take the server's bounds for the fields they set.
function applyLimits() {
  const fields = { epochs: "epochs", n: "n", seed: "seed", noise: "noise", size: "size", delta: "delta", beta: "beta" };
  for (const [id, key] of Object.entries(fields)) {
    const bounds = schema.limits[key] || {};
    const low = bounds.ge ?? bounds.gt, high = bounds.le ?? bounds.lt;
    if (low !== undefined) $(id).min = low;
    if (high !== undefined) $(id).max = high;
  }
}

function fillSelect(id, options) {
  const select = $(id);
  for (const [value, label] of options) select.add(new Option(label, value));
}

function bindControls() {
  const select = $("optimizer");
  for (const [name, entry] of Object.entries(schema.optimizers)) select.add(new Option(`${name} (${entry.title})`, name));
  fillSelect("loss", [["all", `all ${schema.article_losses.length} (article)`],
    ...schema.losses.map((loss) => [loss.name, loss.title])]);
  fillSelect("view", schema.views.map((view) => [view, view]));
  fillSelect("metric", schema.metrics.map((metric) => [metric, metric.replace("_", " ")]));
  applyLimits();
  select.value = state.optimizer;
  select.addEventListener("change", () => {
    const lr = state.hyper.lr;
    state.optimizer = select.value;
    state.hyper = lr !== undefined ? { lr } : {};
    resetPhaseAxes(); buildHyperControls(); buildPhaseControls(); changed();
  });
  bindField("epochs", () => state.epochs, (v) => { state.epochs = Math.round(Number(v)); });
  const problemSelect = $("problem");
  for (const [name, f] of Object.entries(functions)) problemSelect.add(new Option(f.title, name));
  problemSelect.value = state.problem in functions ? state.problem : "regression";
  problemSelect.addEventListener("change", () => {
    // A new problem brings its own map, start and step size; reload the page from the new state.
    const f = functions[problemSelect.value];
    const base = structuredClone(DEFAULT_STATE);
    state.problem = problemSelect.value; state.pins = [];
    state.grid = f ? { w: [...f.domain[0]], b: [...f.domain[1]], size: state.grid.size } : base.grid;
    state.start = f ? [...f.start] : base.start;
    state.hyper = { ...state.hyper, lr: f ? f.lr : base.hyper.lr };
    resetPhaseAxes();
    saveState(); location.reload();
  });
  bindField("loss", () => state.loss, (v) => { state.loss = v; }, true);
  bindField("delta", () => state.delta, (v) => { state.delta = Number(v); }, true);
  bindField("beta", () => state.beta, (v) => { state.beta = Number(v); }, true);
  for (const key of Object.keys(schema.defaults.data)) {  // DataSpec's fields, one input each
    bindField(key, () => state.data[key], (v) => { state.data[key] = Number(v); }, true);
  }
  bindField("wlo", () => state.grid.w[0], (v) => { state.grid.w[0] = Number(v); }, true);
  bindField("whi", () => state.grid.w[1], (v) => { state.grid.w[1] = Number(v); }, true);
  bindField("blo", () => state.grid.b[0], (v) => { state.grid.b[0] = Number(v); }, true);
  bindField("bhi", () => state.grid.b[1], (v) => { state.grid.b[1] = Number(v); }, true);
  bindField("size", () => state.grid.size, (v) => { state.grid.size = Math.round(Number(v)); }, true);
  // The view and the colour scale are redrawn from the landscape the page has.
  bindField("color", () => state.color, (v) => { state.color = v; });
  bindField("view", () => state.view, (v) => { state.view = v; });
  $("step").addEventListener("input", drawMarkers);
  $("play").addEventListener("click", togglePlay);
  $("pin").addEventListener("click", pin);
  $("clearPins").addEventListener("click", () => { state.pins = []; changed(); });
  $("downloadPng").addEventListener("click", () => downloadPng().catch((e) => status(String(e), true)));
  $("downloadCsv").addEventListener("click", () => download("gdscope.csv", toCsv(), "text/csv"));
  $("downloadJson").addEventListener("click", () =>
    download("gdscope.json", JSON.stringify({ request: trajectoryRequest(), response: runs }), "application/json"));
}

function buildPhaseControls() {
  const names = numeric(state.optimizer).map((h) => h.name);
  for (const axis of ["X", "Y"]) {
    const select = $(`phase${axis}`);
    select.innerHTML = "";
    for (const name of names) select.add(new Option(name, name));
    const spec = state.phase[axis.toLowerCase()];
    if (!names.includes(spec.name)) spec.name = names[axis === "X" ? 0 : 1] || names[0];
    select.value = spec.name;
    select.onchange = () => {
      const hyper = numeric(state.optimizer).find((h) => h.name === select.value);
      Object.assign(spec, phaseAxis(hyper, currentHyper()[hyper.name]));
      buildPhaseControls(); changed();
    };
    for (const end of ["lo", "hi"]) {
      const input = $(`phase${axis}${end}`);
      input.value = spec[end];
      readNumber(input);
      input.onchange = () => {
        const value = readNumber(input);
        if (value !== null) { spec[end] = value; changed(); }
      };
    }
  }
  $("phaseXlog").checked = state.phase.x.log;
  $("phaseXlog").onchange = () => { state.phase.x.log = $("phaseXlog").checked; changed(); };
  $("metric").value = state.phase.metric;
  $("metric").onchange = () => { state.phase.metric = $("metric").value; changed(); };
}

// --- drawing ---------------------------------------------------------------------------

function status(text, isError = false) {
  $("status").innerHTML = "";
  if (text) {
    const span = document.createElement("span");
    span.textContent = text;
    if (isError) span.className = "failed";
    $("status").append(span);
  }
}

// The landscape is painted once into an image (per map, colour scale and landscape) and laid
// under the axes; the figure itself holds only light traces, so redraws stay fast.
const imageCache = new Map();

function colourAt(t) {
  for (let i = 1; i < TERRAIN.length; i++) {
    const [t1, c1] = TERRAIN[i], [t0, c0] = TERRAIN[i - 1];
    if (t <= t1) {
      const f = (t - t0) / (t1 - t0), a = parseInt(c0.slice(1), 16), b = parseInt(c1.slice(1), 16);
      return [16, 8, 0].map((s) => Math.round(((a >> s) & 255) * (1 - f) + ((b >> s) & 255) * f));
    }
  }
  return [255, 255, 255];
}

function shownValues(map) {
  const log = state.color === "log";
  return log ? map.values.map((row) => row.map(lift)) : map.values;
}

function landscapeImage(index) {
  const key = `${landscapeKey}|${state.color}|${index}`;
  if (imageCache.has(key)) return imageCache.get(key);
  const z = shownValues(landscape.maps[index]);
  const flat = z.flat().filter((v) => v !== null);
  const lo = Math.min(...flat), hi = Math.max(...flat);
  const rows = z.length, cols = z[0].length;
  const canvas = document.createElement("canvas");
  canvas.width = cols; canvas.height = rows;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(cols, rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = z[i][j], at = 4 * ((rows - 1 - i) * cols + j);  // row 0 = lowest weight, at the bottom
      const [r, g, b] = v === null ? [200, 200, 200] : colourAt(hi > lo ? (v - lo) / (hi - lo) : 0);
      pixels.data.set([r, g, b, 255], at);
    }
  }
  context.putImageData(pixels, 0, 0);
  const image = { source: canvas.toDataURL(), lo, hi };
  imageCache.set(key, image);
  if (imageCache.size > 24) imageCache.delete(imageCache.keys().next().value);
  return image;
}

// The landscape (and its minima) is drawn by Plotly and only when it changes; the paths,
// start/end/step markers go on a canvas laid over each plot area, so that moving a knob
// redraws a few hundred canvas segments instead of four Plotly figures.
function mapTraces(index) {
  const map = landscape.maps[index];
  const log = state.color === "log";
  const traces = [];
  const [v, h] = map.labels;
  if (state.view === "contour") {
    traces.push({ type: "contour", x: landscape.biases, y: landscape.weights, z: shownValues(map),
      colorscale: TERRAIN, colorbar: { title: { text: log ? "log10 loss" : "loss" }, len: 0.9 },
      hovertemplate: `${h} %{x:.3f}<br>${v} %{y:.3f}<br>loss %{z:.4g}<extra></extra>`, name: "loss" });
  } else {
    const { lo, hi } = landscapeImage(index);
    // A transparent heatmap at the samples carries the colour bar and the hover values of the
    // painted image beneath it.
    traces.push({ type: "heatmap", z: shownValues(map), x: landscape.biases, y: landscape.weights,
      opacity: 0, colorscale: TERRAIN, zmin: lo, zmax: hi, name: "loss",
      hovertemplate: `${h} %{x:.3f}<br>${v} %{y:.3f}<br>loss %{z:.4g}<extra></extra>`,
      colorbar: { title: { text: log ? "log10 loss" : "loss" }, len: 0.9 } });
  }
  traces.push({
    type: "scatter", mode: "markers", x: map.minima.map((m) => m[1]), y: map.minima.map((m) => m[0]),
    name: state.problem in functions ? "known minimum" : "grid minimum", hoverinfo: "name",
    marker: { symbol: "diamond", size: 10, color: "white", line: { color: "black", width: 1 } },
  });
  return traces;
}

function lastFinite(run) {
  let last = 0;
  run.weights.forEach((w, i) => { if (w !== null && run.biases[i] !== null) last = i; });
  return last;
}

function mapBoxes(count) {
  const box = $("maps");
  while (box.children.length > count) box.lastChild.remove();
  while (box.children.length < count) {
    const div = document.createElement("div");
    div.id = `map-${box.children.length}`;
    div.className = "map";
    box.append(div);
  }
}

function drawMaps() {
  mapBoxes(landscape.maps.length);
  const key = `${landscapeKey}|${state.view}|${state.color}|${JSON.stringify(state.grid)}`;
  landscape.maps.forEach((map, index) => {
    const div = $(`map-${index}`);
    if (state.view === "surface") { drawSurface(div, map, index); return; }
    if (div.dataset.surface) { Plotly.purge(div); delete div.dataset.surface; delete div.dataset.key; }
    if (div.dataset.key !== key) {
      drawLandscape(div, map, index);
      div.dataset.key = key;
    }
    drawPaths(index);
  });
}

function drawLandscape(div, map, index) {
  const [bl, bh] = state.grid.b, [wl, wh] = state.grid.w;
  const db = (bh - bl) / (landscape.biases.length - 1), dw = (wh - wl) / (landscape.weights.length - 1);
  const images = state.view === "contour" ? [] : [{ source: landscapeImage(index).source, xref: "x", yref: "y",
    x: bl - db / 2, y: wh + dw / 2, sizex: bh - bl + db, sizey: wh - wl + dw, sizing: "stretch",
    layer: "below" }];
  Plotly.react(div, mapTraces(index), {
    title: TITLE(map.loss), margin: { l: 50, r: 10, t: 40, b: 40 },
    xaxis: { title: { text: map.labels[1] }, range: [bl - db / 2, bh + db / 2], zeroline: false, showgrid: false,
      constrain: "domain" },
    yaxis: { title: { text: map.labels[0] }, range: [wl - dw / 2, wh + dw / 2], scaleanchor: "x",
      zeroline: false, showgrid: false, constrain: "domain" },
    images, showlegend: false, uirevision: "keep", dragmode: false,
  }, PLOT_CONFIG);
  if (!div.dataset.bound) {
    div.dataset.bound = "1";
    // Plotly re-lays the figure out on resizes: keep the canvas on the plot area.
    div.on("plotly_afterplot", () => drawPaths(index));
    // A click anywhere on the plot area (not only on a trace) sets the start point.
    div.addEventListener("click", (event) => {
      if (state.view === "surface") return;  // a 3D view has no plane to click on
      const layout = div._fullLayout, xa = layout.xaxis, ya = layout.yaxis;
      const rect = div.getBoundingClientRect();
      const px = event.clientX - rect.left - xa._offset, py = event.clientY - rect.top - ya._offset;
      if (px < 0 || py < 0 || px > xa._length || py > ya._length) return;
      state.start = [tidy(ya.p2d(py)), tidy(xa.p2d(px))];
      changed();
    });
  }
}

// The plot area in pixels: where the axes really are (an equal aspect may shrink one of them).
function plotArea(div) {
  const xa = div._fullLayout.xaxis, ya = div._fullLayout.yaxis;
  return { l: xa._offset, t: ya._offset, w: xa._length, h: ya._length };
}

function overlay(div) {
  let canvas = div.querySelector("canvas.paths");
  if (!canvas) {
    canvas = document.createElement("canvas");
    canvas.className = "paths";
    div.style.position = "relative";
    div.append(canvas);
  }
  const size = plotArea(div), ratio = window.devicePixelRatio || 1;
  Object.assign(canvas.style, { left: `${size.l}px`, top: `${size.t}px`, width: `${size.w}px`, height: `${size.h}px` });
  if (canvas.width !== Math.round(size.w * ratio) || canvas.height !== Math.round(size.h * ratio)) {
    canvas.width = Math.round(size.w * ratio); canvas.height = Math.round(size.h * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, size.w, size.h);
  return { context, width: size.w, height: size.h };
}

function drawPaths(index) {
  const div = $(`map-${index}`);
  if (!div || !div._fullLayout || !div._fullLayout.xaxis || div.dataset.surface || !runs) return;
  const { context: c, width, height } = overlay(div);
  const [x0, x1] = div._fullLayout.xaxis.range, [y0, y1] = div._fullLayout.yaxis.range;
  // Far-off points (a diverging run) are clamped so the segment still runs off the edge.
  const clamp = (v) => Math.max(-1e5, Math.min(1e5, v));
  const px = (b) => clamp(((b - x0) / (x1 - x0)) * width);
  const py = (w) => clamp(height - ((w - y0) / (y1 - y0)) * height);
  const drawn = { paths: [], marker: null };
  const all = [...pinnedRuns.map((answer, i) => ({ answer, colour: PIN_COLOURS[i % PIN_COLOURS.length] })),
    { answer: runs, colour: "red" }];
  for (const { answer, colour } of all) {
    const run = answer && answer.runs[index];
    if (!run) continue;
    const last = lastFinite(run);
    c.strokeStyle = colour; c.lineWidth = 1.5; c.beginPath();
    for (let i = 0; i <= last; i++) {
      const x = px(run.biases[i]), y = py(run.weights[i]);
      if (i === 0) c.moveTo(x, y); else c.lineTo(x, y);
    }
    c.stroke();
    c.lineWidth = 1; c.beginPath();  // a small cross at every step, as the article draws them
    for (let i = 0; i <= last; i++) {
      const x = px(run.biases[i]), y = py(run.weights[i]);
      c.moveTo(x - 3, y); c.lineTo(x + 3, y); c.moveTo(x, y - 3); c.lineTo(x, y + 3);
    }
    c.stroke();
    drawn.paths.push({ colour, weights: run.weights.slice(0, last + 1), biases: run.biases.slice(0, last + 1) });
  }
  const run = runs.runs[index];
  if (run) {
    const last = lastFinite(run);
    dot(c, px(run.biases[0]), py(run.weights[0]), 6, "#1a9641", "white");
    if (run.diverged_at === null) star(c, px(run.biases[last]), py(run.weights[last]), 8, "#d7191c");
    else cross(c, px(run.biases[last]), py(run.weights[last]), 7, "#d7191c");
    const at = Math.min(Number($("step").value), last);
    dot(c, px(run.biases[at]), py(run.weights[at]), 6, "yellow", "black");
    drawn.marker = [run.weights[at], run.biases[at]];
  }
  drawnPaths[index] = drawn;
}

function dot(c, x, y, r, fill, edge) {
  c.beginPath(); c.arc(x, y, r, 0, 2 * Math.PI); c.fillStyle = fill; c.fill();
  c.lineWidth = 1.2; c.strokeStyle = edge; c.stroke();
}

function star(c, x, y, r, fill) {
  c.beginPath();
  for (let k = 0; k < 10; k++) {
    const radius = k % 2 ? r * 0.45 : r, angle = -Math.PI / 2 + (k * Math.PI) / 5;
    c.lineTo(x + radius * Math.cos(angle), y + radius * Math.sin(angle));
  }
  c.closePath(); c.fillStyle = fill; c.fill(); c.strokeStyle = "white"; c.lineWidth = 1; c.stroke();
}

function cross(c, x, y, r, colour) {
  c.strokeStyle = colour; c.lineWidth = 3; c.beginPath();
  c.moveTo(x - r, y - r); c.lineTo(x + r, y + r); c.moveTo(x - r, y + r); c.lineTo(x + r, y - r); c.stroke();
}

// A loss as the surface's height: log10 on a log colour scale (where there is one).
function lift(v) {
  return v === null ? null : state.color === "log" ? (v > 0 ? Math.log10(v) : null) : v;
}

// Where the step marker of a run sits on the surface at the slider's step.
function stepPoint(run) {
  const at = Math.min(Number($("step").value), lastFinite(run));
  return { x: [run.biases[at]], y: [run.weights[at]], z: [lift(run.losses[at])] };
}

// About ``count`` round ticks inside [lo, hi], none within a tenth of the span of either end.
function innerTicks(lo, hi, count = 6) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let k = Math.ceil((lo + span / 10) / step); k * step <= hi - span / 10; k += 1) ticks.push(Number((k * step).toPrecision(12)));
  return ticks.length ? ticks : [Number(((lo + hi) / 2).toPrecision(3))];
}

// The landscape as a Plotly surface, each path lifted onto it at its recorded loss.
function drawSurface(div, map, index) {
  div.querySelector("canvas.paths")?.remove();
  const log = state.color === "log";
  const traces = [{ type: "surface", x: landscape.biases, y: landscape.weights, z: shownValues(map),
    colorscale: TERRAIN, opacity: 0.9, colorbar: { title: { text: log ? "log10 loss" : "loss" }, len: 0.8 },
    hovertemplate: `${map.labels[1]} %{x:.3f}<br>${map.labels[0]} %{y:.3f}<br>loss %{z:.4g}<extra></extra>` }];
  const all = [{ answer: runs, colour: "red", label: "current" },
    ...pinnedRuns.map((answer, i) => ({ answer, colour: PIN_COLOURS[i % PIN_COLOURS.length], label: `pin ${i + 1}` }))];
  for (const { answer, colour, label } of all) {
    if (!answer || !answer.runs[index]) continue;
    const run = answer.runs[index];
    traces.push({ type: "scatter3d", mode: "lines+markers", x: run.biases, y: run.weights,
      z: run.losses.map(lift), name: label, line: { color: colour, width: 5 }, marker: { size: 2, color: colour } });
  }
  traces.push({ type: "scatter3d", mode: "markers", ...stepPoint(runs.runs[index]), name: "step",
    marker: { size: 6, color: "yellow", line: { color: "black", width: 1 } } });
  // The scene keeps a margin and its camera a step back, so that tick labels and axis titles
  // stay inside the panel; each axis is ticked away from its ends, where three axes meet at a
  // corner of the box and their labels would overlap.
  const heights = shownValues(map).flat().filter((v) => v !== null && Number.isFinite(v));
  const axis = (text, lo, hi) => ({ title: { text, font: { size: 12 } }, tickfont: { size: 11 },
    tickvals: innerTicks(lo, hi) });
  Plotly.react(div, traces, {
    title: TITLE(map.loss), margin: { l: 20, r: 20, t: 40, b: 20 }, showlegend: false,
    scene: { xaxis: axis(map.labels[1], landscape.biases[0], landscape.biases[landscape.biases.length - 1]),
      yaxis: axis(map.labels[0], landscape.weights[0], landscape.weights[landscape.weights.length - 1]),
      zaxis: heights.length ? axis(log ? "log10 loss" : "loss", heights.reduce((a, b) => Math.min(a, b)),
        heights.reduce((a, b) => Math.max(a, b)))
        : { title: { text: log ? "log10 loss" : "loss" } },
      domain: { x: [0.04, 0.96], y: [0.04, 0.96] },
      camera: { eye: { x: 1.6, y: 1.6, z: 1.0 } } }, uirevision: "keep",
  }, PLOT_CONFIG);
  div.dataset.surface = "1";
}

// The slider's step as text; every redraw shows it, not only a touched slider.
function showStep() {
  $("stepLabel").textContent = `step ${Number($("step").value)} / ${runs.epochs}`;
}

function drawMarkers() {
  if (!runs || !landscape) return;
  showStep();
  runs.runs.forEach((run, index) => {
    const div = $(`map-${index}`);
    if (!div || !div.data) return;
    if (!div.dataset.surface) { drawPaths(index); return; }
    const { x, y, z } = stepPoint(run);
    Plotly.restyle(div, { x: [x], y: [y], z: [z] }, [div.data.length - 1]);
  });
}

// The PNG download: every map panel as the page shows it (Plotly's picture of each with its
// path canvas drawn over it), laid out as on the page, with the figure's record (from
// /api/command) in a tEXt chunk, so that `gdscope replay` makes the same figure. The key is the
// one gdscope's own PNGs carry their record under (files.save_figure, records.read_record);
// the browser test reads the download back with read_record.

async function downloadPng() {
  const box = $("maps"), outer = box.getBoundingClientRect();
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(outer.width); canvas.height = Math.round(outer.height);
  const context = canvas.getContext("2d");
  context.fillStyle = "white"; context.fillRect(0, 0, canvas.width, canvas.height);
  for (const div of box.children) {
    const rect = div.getBoundingClientRect(), x = rect.left - outer.left, y = rect.top - outer.top;
    const url = await Plotly.toImage(div, { format: "png", width: div.clientWidth, height: div.clientHeight });
    const image = new Image();
    await new Promise((done, fail) => { image.onload = done; image.onerror = fail; image.src = url; });
    context.drawImage(image, x, y);
    const paths = div.querySelector("canvas.paths");
    if (paths) {
      const area = plotArea(div);
      context.drawImage(paths, x + area.l, y + area.t, area.w, area.h);
    }
  }
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  download("gdscope.png", figureRecord ? withText(bytes, schema.record_key, JSON.stringify(figureRecord)) : bytes, "image/png");
}

// A symmetric log scale, sign(v)·log10(1 + |v|/t) with t the smallest non-zero |v|: like a
// log scale for values far from 0, and it keeps zero and negative values (a log axis drops them).
// Returns the scale and ticks at the powers of ten (and their negatives) that the values span.
function symlog(values) {
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  const sizes = finite.map(Math.abs).filter((v) => v > 0);
  const t = sizes.length ? Math.min(...sizes) : 1, top = sizes.length ? Math.max(...sizes) : 1;
  const scale = (v) => (v === null ? null : Math.sign(v) * Math.log10(1 + Math.abs(v) / t));
  const lo = Math.ceil(Math.log10(t)), hi = Math.floor(Math.log10(top));  // ticks within the values
  const every = Math.max(1, Math.ceil((hi - lo + 1) / 6));
  const powers = [];
  for (let k = lo; k <= hi; k += every) powers.push(10 ** k);
  const signs = finite.some((v) => v < 0) ? [-1, 1] : [1];
  // Ticks closer than a fifteenth of the scale's extent to one kept already would overlap.
  const extent = scale(top) * signs.length, ticks = [];
  const zero = finite.some((v) => v <= 0) ? [0] : [];  // a tick at 0 only where 0 is shown
  for (const v of [...zero, ...signs.flatMap((sign) => powers.map((p) => sign * p))]) {
    if (ticks.every((kept) => Math.abs(scale(kept) - scale(v)) >= extent / 15)) ticks.push(v);
  }
  ticks.sort((a, b) => a - b);
  return { scale, tickvals: ticks.map(scale), ticktext: ticks.map(tickText) };
}

// A power of ten (or its negative) as a tick: 0.01, 1, 100, 1e6.
function tickText(v) {
  return v === 0 || Math.abs(Math.log10(Math.abs(v))) <= 3 ? String(v) : v.toExponential(0).replace("+", "");
}

// Whether values span so many decades that a linear colour scale shows one colour (a loss
// that blew up to 1e36 beside ones near 1).
function spansDecades(values) {
  const sizes = values.filter((v) => v !== null && Number.isFinite(v) && v !== 0).map(Math.abs);
  return sizes.length > 0 && Math.max(...sizes) / Math.min(...sizes) > 1e3;
}

function drawLossChart() {
  // A log axis drops losses at or below 0 (a saddle's): then a symmetric log axis where they
  // span decades, a linear one where they do not, and a note saying which.
  const all = runs.runs.flatMap((run) => run.losses);
  const signed = all.some((v) => v !== null && v <= 0);
  const axis = signed && spansDecades(all) ? symlog(all) : null;
  const traces = runs.runs.map((run) => ({ type: "scatter", mode: "lines", name: run.loss,
    x: run.losses.map((_, i) => i), y: axis ? run.losses.map(axis.scale) : run.losses,
    customdata: run.losses, hovertemplate: `${run.loss}<br>epoch %{x}: loss %{customdata:.4g}<extra></extra>` }));
  const scale = !signed ? "log" : axis ? "symmetric log" : "linear";
  const yaxis = axis ? { title: { text: "loss (symmetric log)" }, tickvals: axis.tickvals, ticktext: axis.ticktext }
    : { type: signed ? "linear" : "log", title: { text: "loss" } };
  const title = signed ? `loss per epoch (${scale} scale: some losses are ≤ 0)` : "loss per epoch";
  Plotly.react($("lossChart"), traces, { title: TITLE(title), xaxis: { title: { text: "epoch" } }, yaxis,
    margin: { l: 60, r: 10, t: 40, b: 40 } }, PLOT_CONFIG);
  $("lossChart").dataset.scale = scale;
}

// The first step at which a path lies outside the map (null if it stays on it).
function leftMapAt(run) {
  const [wl, wh] = state.grid.w, [bl, bh] = state.grid.b;
  const inside = (w, b) => w !== null && b !== null && w >= wl && w <= wh && b >= bl && b <= bh;
  const at = run.weights.findIndex((w, i) => !inside(w, run.biases[i]));
  return at < 0 ? null : at;
}

// A warning for every path, current or pinned, that diverged (as the server says) or left the map.
function drawStatus() {
  const messages = [];
  const all = [{ answer: runs, label: "" }, ...pinnedRuns.map((answer, i) => ({ answer, label: `pin ${i + 1} ` }))];
  for (const { answer, label } of all) {
    for (const run of answer.runs) {
      const left = leftMapAt(run);
      if (run.diverged_at !== null) messages.push(`${label}${run.loss}: diverged at step ${run.diverged_at}`);
      else if (left === 0) messages.push(`${label}${run.loss}: starts outside the map`);
      else if (left !== null) messages.push(`${label}${run.loss}: left the map at step ${left}`);
    }
  }
  status(messages.join(" · "), messages.length > 0);
  document.body.dataset.diverged = messages.length ? "true" : "false";
}

// Whether ``value`` lies on the diagram: within its outer cells' outer edges (half a cell, or
// half a cell in log, beyond the first and last centres).
function insideCells(value, cells, log) {
  if (value === undefined || value === null || !cells.length) return false;
  const t = log ? (v) => Math.log(v) : (v) => v;
  if (log && !(value > 0)) return false;
  const first = t(cells[0]), last = t(cells[cells.length - 1]);
  const half = cells.length > 1 ? Math.abs(t(cells[1]) - first) / 2 : 0.5;
  const lo = Math.min(first, last) - half, hi = Math.max(first, last) + half;
  return t(value) >= lo && t(value) <= hi;
}

async function drawPhase() {
  const { x, y, metric } = state.phase;
  // torch refuses Nesterov without momentum: with it on, a momentum axis starts just above 0.
  const positive = (axis) => (state.hyper.nesterov && axis.name === "momentum" ? Math.max(axis.lo, 1e-3) : axis.lo);
  const request = { data: state.data, loss: losses()[0], metric, epochs: Math.min(state.epochs, schema.limits.phase_epochs.le),
    start: state.start, optimizer: { name: state.optimizer, hyper: state.hyper },
    x: { name: x.name, lo: positive(x), hi: x.hi, count: 40, log: x.log },
    y: { name: y.name, lo: positive(y), hi: y.hi, count: 32, log: y.log }, ...problem() };
  // The answer the page has is redrawn as it is; only a new request goes to the server.
  const key = JSON.stringify(request);
  if (key !== phaseKey || !phaseAnswer) { phaseAnswer = await api("/api/phase", request, "phase"); phaseKey = key; }
  const answer = phaseAnswer;
  const current = currentHyper();
  // A yes/no metric (the server says which) in two colours pinned to 0 and 1 (an all-0 grid
  // is all "no"); one whose values span decades (a loss that blew up) on a symmetric log
  // colour scale; any other on a linear one.
  const flat = answer.values.flat().filter((v) => v !== null);
  const yesNo = schema.yes_no_metrics.includes(metric);
  const logColour = !yesNo && spansDecades(flat);
  const colour = logColour ? symlog(flat) : null;
  const heat = { type: "heatmap", x: answer.x, y: answer.y, name: metric,
    z: logColour ? answer.values.map((row) => row.map(colour.scale)) : answer.values,
    text: answer.values.map((row) => row.map((v) => (v === null ? "none" : Number(v).toPrecision(4)))),
    hovertemplate: `${x.name} %{x:.4g}<br>${y.name} %{y:.4g}<br>${metric} %{text}<extra></extra>` };
  if (yesNo) {
    Object.assign(heat, { colorscale: [[0, "#2c7bb6"], [0.5, "#2c7bb6"], [0.5, "#d7191c"], [1, "#d7191c"]], zmin: 0, zmax: 1, zauto: false,
      colorbar: { tickvals: [0.25, 0.75], ticktext: ["no", "yes"] } });
  } else {
    Object.assign(heat, { colorscale: "Viridis",
      colorbar: logColour ? { tickvals: colour.tickvals, ticktext: colour.ticktext } : {} });
  }
  const traces = [heat];
  // The star marks the current configuration only inside the diagram (Plotly would stretch the
  // axes to reach one outside it); outside, a note under the diagram says where it is.
  const where = [[x, current[x.name], answer.x], [y, current[y.name], answer.y]];
  const outside = where.filter(([, value, cells]) => !insideCells(value, cells, x.log && cells === answer.x));
  if (outside.length === 0) {
    traces.push({ type: "scatter", mode: "markers", x: [current[x.name]], y: [current[y.name]], name: "current",
      marker: { symbol: "star", size: 16, color: "white", line: { color: "black", width: 1 } } });
  }
  $("phaseNote").textContent = outside.length === 0 ? "" : `★ the current configuration (${where.map(([axis, value]) =>
    `${axis.name} ${value}`).join(", ")}) lies outside this diagram`;
  if (answer.stable) {
    traces.push({ type: "contour", x: answer.x, y: answer.y, z: answer.stable, showscale: false,
      contours: { start: 0.5, end: 0.5, size: 1, coloring: "none" }, line: { color: "white", width: 2 },
      name: "analytic border", hoverinfo: "skip" });
  }
  const div = $("phase");
  const scaleNote = logColour ? ", log colour" : "";
  Plotly.react(div, traces, { title: TITLE(`${metric} (${answer.values.length}×${answer.x.length}${scaleNote})`),
    xaxis: { title: { text: x.name }, type: x.log ? "log" : "linear" }, yaxis: { title: { text: y.name } },
    margin: { l: 60, r: 10, t: 40, b: 40 }, showlegend: false }, PLOT_CONFIG);
  div.dataset.colour = yesNo ? "yes/no" : logColour ? "log" : "linear";
  div.dataset.star = outside.length === 0 ? "inside" : "outside";
  if (!div.dataset.bound) {
    div.dataset.bound = "1";
    div.on("plotly_click", (event) => {
      const point = event.points[0];
      state.hyper[state.phase.x.name] = tidy(point.x);
      state.hyper[state.phase.y.name] = tidy(point.y);
      buildHyperControls(); changed();
    });
  }
}

// --- actions ---------------------------------------------------------------------------

function togglePlay() {
  if (playing) { clearInterval(playing); playing = null; $("play").textContent = "▶ play"; return; }
  const slider = $("step");
  if (Number(slider.value) >= Number(slider.max)) slider.value = 0;
  $("play").textContent = "❚❚ pause";
  playing = setInterval(() => {
    slider.value = Number(slider.value) + 1;
    drawMarkers();
    if (Number(slider.value) >= Number(slider.max)) stopPlaying();
  }, 60);
}

function stopPlaying() { clearInterval(playing); playing = null; $("play").textContent = "▶ play"; }

function pin() {
  state.pins.push({ optimizer: state.optimizer, hyper: { ...state.hyper }, epochs: state.epochs, start: [...state.start] });
  changed();
}

function toCsv() {
  const rows = ["loss,step,weight,bias,value"];
  for (const run of runs.runs) {
    run.weights.forEach((w, i) => {
      rows.push([run.loss, i, w ?? "", run.biases[i] ?? "", run.losses[i] ?? ""].join(","));
    });
  }
  return rows.join("\n") + "\n";
}

// --- the update loop ---------------------------------------------------------------------

let generation = 0;

async function update(landscapeToo) {
  const mine = ++generation;
  const t0 = performance.now();
  saveState();
  document.body.dataset.ready = "false";
  try {
    // Only what changed is asked for again: a new view or colour scale is drawn from what the
    // page has.
    const key = JSON.stringify(landscapeRequest());
    const wantMap = landscapeToo || key !== landscapeKey || !landscape;
    const pathsKey = JSON.stringify([trajectoryRequest(), ...state.pins.map((p) => trajectoryRequest(p))]);
    const wantPaths = pathsKey !== runsKey || !runs;
    const [map, [answer, ...pins], command] = await Promise.all([
      wantMap ? api("/api/landscape", landscapeRequest()) : Promise.resolve(landscape),
      wantPaths ? Promise.all([api("/api/trajectories", trajectoryRequest(), "main"),
        ...state.pins.map((p, i) => api("/api/trajectories", trajectoryRequest(p), `pin${i}`))])
        : Promise.resolve([runs, ...pinnedRuns]),
      api("/api/command", commandRequest()).catch((e) => ({ command: `(no command: ${e.message || e})`, record: null })),
    ]);
    if (mine !== generation) return;  // a newer change superseded this one
    const t1 = performance.now();
    landscape = map; landscapeKey = key; runs = answer; pinnedRuns = pins; runsKey = pathsKey;
    figureRecord = command.record;
    $("step").max = runs.epochs;
    if (Number($("step").value) > runs.epochs || !playing) $("step").value = runs.epochs;
    drawMaps(); showStep();
    const t2 = performance.now();
    drawLossChart(); drawStatus();
    $("command").textContent = command.command;
    $("pins").replaceChildren(...state.pins.map((p, i) => {
      const item = document.createElement("li");
      item.style.color = PIN_COLOURS[i % PIN_COLOURS.length];
      item.textContent = `pin ${i + 1}: ${p.optimizer} ${JSON.stringify(p.hyper)} from (${p.start})`;
      return item;
    }));
    document.body.dataset.ready = "true";
    const timing = { fetch_ms: t1 - t0, draw_ms: performance.now() - t1, maps_ms: t2 - t1 };
    drawnPaths.length = landscape.maps.length;
    window.gdscope = { state, runs, landscape, timing, drawn: drawnPaths,
      renders: (window.gdscope?.renders || 0) + 1 };
    drawPhasePanel();
  } catch (error) {
    if (error instanceof Superseded) return;  // a newer request of the same stream is coming
    if (mine === generation) { status(String(error.message || error), true); document.body.dataset.ready = "error"; }
  }
}

const drawPhasePanel = debounce(() => drawPhase()
  .then(() => { $("phaseStatus").textContent = ""; })
  .catch((e) => { if (!(e instanceof Superseded)) $("phaseStatus").textContent = `phase diagram: ${e.message || e}`; }), 250);
// Coalesce the changes of one frame (a dragged slider fires many input events) into one update.
let pendingFrame = null, pendingLandscape = false;
function changed(landscapeToo = false) {
  pendingLandscape = pendingLandscape || landscapeToo;
  if (pendingFrame !== null) return;
  pendingFrame = requestAnimationFrame(() => {
    const withLandscape = pendingLandscape;
    pendingFrame = null; pendingLandscape = false;
    update(withLandscape);
  });
}

// A test function has no data and no regression loss: hide those controls, rename the axes.
function showProblem() {
  const isFunction = state.problem in functions;
  for (const id of ["loss", "delta", "beta"]) $(id).closest("label").hidden = isFunction;
  $("seed").closest("section").hidden = isFunction;
  $("vname").textContent = isFunction ? "y" : "weight";
  $("hname").textContent = isFunction ? "x" : "bias";
}

async function main() {
  schema = await api("/api/schema");
  functions = schema.functions;
  TERRAIN = schema.colorscale;
  DEFAULT_STATE = defaultState();
  state = loadState();
  if (!(state.optimizer in schema.optimizers)) state.optimizer = DEFAULT_STATE.optimizer;
  // A state from elsewhere (a link, gdscope.explore) may name another optimizer than its axes.
  const axisNames = numeric(state.optimizer).map((h) => h.name);
  if (![state.phase.x.name, state.phase.y.name].every((n) => axisNames.includes(n))) resetPhaseAxes();
  bindControls();
  showProblem();
  buildHyperControls();
  buildPhaseControls();
  await update(true);
}

main();
