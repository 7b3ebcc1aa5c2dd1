// gdscope board: the runs under a folder, followed live (server-sent events from /api/events).
// The page holds no copy of the files: every number drawn came from /api/run, /api/events or
// /api/landscape, as the files hold it.

import { chartPng, download, withText } from "./png.js";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
  "#17becf", "#7f7f7f", "#bcbd22"];
const $ = (id) => document.getElementById(id);
const state = {
  health: null,
  runs: [],          // the listing: {name, kind, rows, snapshots, problems, ...}
  selected: null,    // the run shown
  compare: new Set(),  // runs overlaid on the selected one's loss and sharpness
  data: new Map(),   // name -> what /api/run said, rows appended as they arrive
  landscape: null,   // /api/landscape's last answer for the selected run
  shared: null,      // /api/compare's for the selected run and the ticked ones, on one plane
  spectrum: null,    // /api/spectrum's
  poll: null,
  sharedPoll: null,
  spectrumPoll: null,
};
// What the tests read: how many rows arrived by events, how many renders happened.
window.gdscopeBoard = { state, listings: 0, rowsArrived: 0, renders: 0, landscapeRenders: 0,
  pngs: [] };
// The chart each view's PNG is a picture of (/api/figure says what it carries).
const CHART_OF = { loss: "loss", sharpness: "sharpness", lr: "lr", plane: "plane", line: "line",
  shared: "shared", spectrum: "spectrum", file: "fileChart" };

function detail(body) {
  if (!body || body.detail === undefined) return "";
  if (typeof body.detail === "string") return body.detail;
  return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) throw new Error(detail(body) || `${response.status} ${response.statusText}`);
  return body;
}

function say(text) { $("status").textContent = text || ""; }

function quote(text) { return JSON.stringify(String(text)); }

function pathOf(name) {
  const root = state.health ? state.health.root : "RUNS";
  return name === "." ? root : `${root}/${name}`;
}

// The listing -----------------------------------------------------------------------------

function renderList() {
  const list = $("runs");
  list.replaceChildren();
  $("empty").hidden = state.runs.length > 0;
  for (const run of state.runs) {
    const item = document.createElement("li");
    item.classList.toggle("selected", run.name === state.selected);
    item.dataset.name = run.name;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.title = "overlay on the run shown";
    box.checked = state.compare.has(run.name);
    box.disabled = run.kind !== "recording";
    box.setAttribute("aria-label", `overlay ${run.name}`);
    box.addEventListener("change", () => toggleCompare(run.name, box.checked));
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = run.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    let text = run.kind;
    if (run.kind === "recording") {
      text += ` · ${run.rows} steps · ${run.snapshots} snapshots`;
      if (run.optimizer) text += ` · ${run.optimizer}`;
      if (run.measured) text += ` · sharpness ×${run.measured}`;
    }
    kind.textContent = text;
    button.append(kind);
    if (run.problems && run.problems.length) {
      const bad = document.createElement("span");
      bad.className = "kind bad";
      bad.textContent = `⚠ ${run.problems.length} problem${run.problems.length > 1 ? "s" : ""}`;
      bad.title = run.problems.join("\n");
      button.append(bad);
    }
    button.addEventListener("click", () => select(run.name));
    item.append(box, button);
    list.append(item);
  }
}

function onRuns(listing) {
  window.gdscopeBoard.listings += 1;
  state.runs = listing.runs;
  if (listing.truncated) say("More runs than the board lists: only the first are shown.");
  renderList();
  const names = new Set(state.runs.map((r) => r.name));
  const wanted = hashRun();  // a link's run: opened once it is there (it may not have started)
  if (state.selected === null && wanted) { if (names.has(wanted)) select(wanted); }
  else if (state.selected === null && state.runs.length) select(state.runs[0].name);
  const shown = state.runs.find((r) => r.name === state.selected);
  if (shown && state.data.has(shown.name)) {
    state.data.get(shown.name).problems = shown.problems;
    renderProblems();
  }
}

// Rows as they arrive ---------------------------------------------------------------------

// New rows of a series (`rows`: the run's own, with its `end`; its `validation_rows`): what
// /api/run sent may be thinned, so the rows read so far are counted by `end`, not by length.
function append(series, event, name) {
  if (event.restarted || event.start > series.end) { load(name, true); return; }
  const skip = series.end - event.start;  // rows already read by /api/run
  series.steps.push(...event.steps.slice(skip));
  series.losses.push(...event.losses.slice(skip));
  series.end = Math.max(series.end, event.start + event.steps.length);
  scheduleRender();
}

function onRows(event) {
  const run = state.data.get(event.name);
  window.gdscopeBoard.rowsArrived += event.steps.length;
  if (!run) return;  // not open: the listing's counts say enough
  append(run, event, event.name);
}

function onValidation(event) {
  const run = state.data.get(event.name);
  if (run && run.validation_rows) append(run.validation_rows, event, event.name);
}

function onIndex(event) {
  const run = state.data.get(event.name);
  if (!run) return;
  Object.assign(run, { optimizer: event.optimizer, parameters: event.parameters,
    sharpness: event.sharpness });
  scheduleRender();
}

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; renderRecording(); });
}

// One run ---------------------------------------------------------------------------------

function hashRun() {
  const params = new URLSearchParams(location.hash.slice(1));
  return params.get("run");
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.selected !== null) params.set("run", state.selected);
  if (state.compare.size) params.set("compare", [...state.compare].join(","));
  history.replaceState(null, "", `#${params}`);
}

async function load(name, quiet) {
  try {
    const run = await getJSON(`/api/run?name=${encodeURIComponent(name)}`);
    state.data.set(name, run);
    if (!quiet) say("");
    return run;
  } catch (error) {
    say(`${name}: ${error.message}`);
    return null;
  }
}

async function select(name) {
  state.selected = name;
  state.landscape = null;
  state.shared = null;
  state.spectrum = null;
  clearTimeout(state.poll);
  clearTimeout(state.sharedPoll);
  clearTimeout(state.spectrumPoll);
  writeHash();
  renderList();
  $("title").textContent = name;
  const run = await load(name);
  if (state.selected !== name) return;
  if (!run) { $("recording").hidden = $("file").hidden = true; return; }
  renderProblems();
  if (run.kind === "recording") {
    $("recording").hidden = false;
    $("file").hidden = true;
    for (const other of state.compare) if (!state.data.has(other)) await load(other, true);
    renderRecording();
    refreshLandscape();
    refreshLandscape(null, SHARED);
    refreshSpectrum();
  } else {
    $("recording").hidden = true;
    $("file").hidden = false;
    renderFile(run);
  }
}

async function toggleCompare(name, on) {
  if (on) state.compare.add(name); else state.compare.delete(name);
  writeHash();
  if (on && !state.data.has(name)) await load(name, true);
  renderRecording();
  refreshLandscape(null, SHARED);
}

function renderProblems() {
  const run = state.data.get(state.selected);
  const list = $("problems");
  list.replaceChildren();
  for (const problem of (run && run.problems) || []) {
    const item = document.createElement("li");
    item.textContent = problem;
    list.append(item);
  }
}

function shown() {
  // The selected run first, then the overlaid ones (each with its colour).
  const names = [state.selected, ...[...state.compare].filter((n) => n !== state.selected)];
  return names.filter((n) => state.data.has(n) && state.data.get(n).kind === "recording")
    .map((name, i) => ({ name, run: state.data.get(name), color: COLORS[i % COLORS.length] }));
}

const LAYOUT = {
  margin: { l: 60, r: 16, t: 60, b: 44 },
  // Above the plot, not on it: inside, it hid the lines it names (a threshold, a rate).
  legend: { orientation: "h", x: 0, xanchor: "left", y: 1.0, yanchor: "bottom",
    bgcolor: "rgba(255,255,255,0.75)" },
  font: { size: 12 }, uirevision: "keep",
};
const CONFIG = { responsive: true, displaylogo: false };

function renderRecording() {
  const runs = shown();
  if (!runs.length || $("recording").hidden) return;
  window.gdscopeBoard.renders += 1;
  const main = runs[0].run;
  $("counts").textContent = `${main.end} steps read · last step ${
    main.steps.length ? main.steps[main.steps.length - 1] : "–"} · last loss ${
    lastLoss(main)}`;
  const traces = [];
  for (const { name, run, color } of runs) {
    traces.push({ x: run.steps, y: run.losses, name, mode: "lines", line: { color, width: 1.3 } });
    const v = run.validation_rows;
    if (v && v.steps.length) {
      traces.push({ x: v.steps, y: v.losses, name: `${name}: validation`, mode: "lines+markers",
        marker: { size: 4 }, line: { color, width: 1.3, dash: "dash" } });
    }
  }
  const thinned = runs.filter(({ run }) => run.thinned || (run.validation_rows || {}).thinned)
    .map(({ name }) => name);
  $("lossNote").textContent = (traces.length > runs.length
    ? "Dashed: the validation loss (validation.bin). " : "") + (thinned.length
    ? `${thinned.join(", ")}: longer than the board sends whole, so the rows read when it was ` +
      "opened are thinned to the lowest and the highest loss of each run of consecutive rows " +
      "(every spike and dip kept); rows that arrived since are all drawn." : "");
  Plotly.react("loss", traces, { ...LAYOUT, title: { text: "training loss (as passed to Recorder.step)" },
    // The rows are appended to the same arrays: the revision tells Plotly they changed.
    datarevision: window.gdscopeBoard.renders,
    xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "loss" }, type: $("logLoss").checked ? "log" : "linear" } },
  CONFIG);
  renderSharpness(runs);
  $("curveCode").textContent = curveCode(runs);
}

function lastLoss(run) {
  for (let i = run.losses.length - 1; i >= 0; i -= 1) {
    if (run.losses[i] !== null) return Number(run.losses[i]).toPrecision(5);
  }
  return "–";
}

function renderSharpness(runs) {
  const traces = [];
  const rates = [];
  const rules = [];
  for (const { name, run, color } of runs) {
    const s = run.sharpness;
    if (!s || !s.steps || !s.steps.length) continue;
    const top = s.values.map((row) => (row && row.length ? row[0] : null));
    const label = s.measure === "preconditioned" ? "preconditioned sharpness" : "sharpness";
    traces.push({ x: s.steps, y: top, name: `${name}: ${label}`, mode: "lines+markers",
      marker: { size: 4 }, line: { color } });
    if (s.threshold.some((v) => v !== null)) {
      traces.push({ x: s.steps, y: s.threshold, name: `${name}: threshold`, mode: "lines",
        line: { color, dash: "dash" } });
    }
    rates.push({ x: s.steps, y: s.lr, name, mode: "lines+markers", marker: { size: 4 },
      line: { color, shape: "hv" } });
    if (s.rule) rules.push(`${name}: ${s.rule}`);
  }
  const none = "not recorded: Recorder(..., sharpness_every=N, sharpness_data=..., " +
    "sharpness_loss=...) records it";
  $("sharpNote").textContent = traces.length ? rules.join(" · ") : `Sharpness ${none}.`;
  $("lrNote").textContent = rates.length
    ? "The learning rate in force at each sharpness measurement (the recording keeps it there)."
    : `Learning rate ${none}.`;
  Plotly.react("sharpness", traces, { ...LAYOUT,
    title: { text: "sharpness against its stability threshold" },
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: "top eigenvalue" } } }, CONFIG);
  Plotly.react("lr", rates, { ...LAYOUT, title: { text: "learning rate" },
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: "lr" } } }, CONFIG);
}

function curveCode(runs) {
  const lines = [
    "# No gdscope command draws a recording's loss; these lines draw the same curves.",
    "import matplotlib.pyplot as plt",
    "from gdscope.nets.recorder import open_path",
    "runs = {",
    ...runs.map(({ name }) => `    ${quote(name)}: open_path(${quote(pathOf(name))}),`),
    "}",
    "for name, run in runs.items():",
    "    plt.plot(run.steps, run.losses, label=name)",
  ];
  const validated = runs.filter(({ run }) => run.validation_rows && run.validation_rows.end);
  if (validated.length) {
    lines.push("# The validation losses (validation.bin: rows of STEP_ROW), dashed:",
      "import numpy as np", "from gdscope.nets.recorder import STEP_ROW",
      ...validated.map(({ name }) => `v = np.fromfile(${quote(`${pathOf(name)}/validation.bin`)}, ` +
        `dtype=STEP_ROW); plt.plot(v["step"], v["loss"], "--", label=${quote(`${name}: validation`)})`));
  }
  lines.push("plt.yscale(\"log\"); plt.xlabel(\"step\"); plt.legend(); plt.savefig(\"loss-python.png\")");
  if (runs.some(({ run }) => run.sharpness && run.sharpness.steps && run.sharpness.steps.length)) {
    lines.push("# The sharpness against its threshold (runs that recorded it):",
      "from gdscope.jobs.hessian import draw_sharpness",
      "draw_sharpness([(n, r) for n, r in runs.items() if r.sharpness is not None])" +
      ".savefig(\"sharpness-python.png\")");
  }
  return lines.join("\n");
}

// The landscape ---------------------------------------------------------------------------

function points() { return Number($("points").value); }

// The selected run's own landscape, and the plane it shares with the runs ticked: the same
// code, told which API, which names and which elements.
const OWN = { key: "landscape", poll: "poll", api: "/api/landscape", view: "plane",
  ids: { compute: "compute", cancel: "cancel", progress: "progress", status: "landscapeStatus",
    off: "landscapeOff", cmd: "planeCmd", notes: "planeNotes" },
  names: () => [state.selected],
  query: (names) => `name=${encodeURIComponent(names[0])}`,
  body: (names) => ({ name: names[0] }) };
const SHARED = { key: "shared", poll: "sharedPoll", api: "/api/compare", view: "shared",
  ids: { compute: "sharedCompute", cancel: "sharedCancel", progress: "sharedProgress",
    status: "sharedStatus", off: null, cmd: "sharedCmd", notes: "sharedNotes" },
  names: () => shown().map((r) => r.name),
  query: (names) => `names=${encodeURIComponent(names.join(","))}`,
  body: (names) => ({ names }) };

async function refreshLandscape(order, kind = OWN) {
  const name = state.selected;
  const run = state.data.get(name);
  if (!run || run.kind !== "recording") return;
  const names = kind.names();
  const available = state.health && state.health.landscapes;
  if (kind.ids.off) $(kind.ids.off).hidden = available;
  $(kind.ids.compute).disabled = !available;
  clearTimeout(state[kind.poll]);
  const most = state.health.max_shared;  // jobs.board.MAX_SHARED
  if (kind === SHARED && (names.length < 2 || names.length > most)) {
    $("sharedSection").hidden = names.length < 2;
    $(kind.ids.compute).disabled = true;
    $(kind.ids.status).textContent = names.length > most
      ? `at most ${most} runs share a plane: untick ${names.length - most}` : "";
    return;
  }
  if (kind === SHARED) {
    $("sharedSection").hidden = false;
    $("sharedNames").textContent = names.join(", ");
  }
  let answer;
  try {
    answer = order
      ? await getJSON(kind.api, { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...kind.body(names), points: points(), ...order }) })
      : await getJSON(`${kind.api}?${kind.query(names)}&points=${points()}`);
  } catch (error) {
    $(kind.ids.status).textContent = error.message;
    return;
  }
  if (state.selected !== name || kind.names().join("\n") !== names.join("\n")) return;
  state[kind.key] = answer;
  renderLandscape(answer, kind);
  const job = answer.job;
  const running = job && !job.finished;
  if (running) state[kind.poll] = setTimeout(() => refreshLandscape(null, kind), 400);
}

function renderLandscape(answer, kind = OWN) {
  const job = answer.job;
  const running = job && !job.finished;
  $(kind.ids.cancel).hidden = !running;
  $(kind.ids.progress).hidden = !running;
  if (running) {
    $(kind.ids.progress).max = job.total || 1;
    $(kind.ids.progress).value = job.done;
  }
  const { coarse, line, refined } = answer.stages;
  const several = answer.names.length > 1;
  const counts = several ? `snapshots (${answer.names.map((n, i) => `${n}: ${answer.counts[i]}`)
    .join(", ")})` : `${answer.snapshots} snapshots`;
  const grown = answer.now.some((n, i) => n > answer.counts[i]);
  let text = "";
  if (running && job.stage === "starting") text = "starting (loading the model and data)…";
  // (a stage's last word is done = total = 1: the next stage has not counted yet)
  else if (running) text = `computing the ${job.stage === "line" ? "line" : `${job.stage} grid`}` +
    (job.total > 1 ? ` (${job.done} of ${job.total} points)` : "") + ` of the first ${counts}`;
  else if (job && job.error) text = job.error === "cancelled" ? "cancelled" : `failed: ${job.error}`;
  else if (coarse) text = `computed on ${several ? "the paths'" : "the path's"} first ${counts}` +
    (grown ? ` (${several ? "the runs have" : "the run has"} ${answer.now.join(", ")} now: Compute again)` : "");
  else if (answer.available) text = "not computed yet";
  $(kind.ids.status).textContent = text;
  const plane = refined || coarse;
  if (plane) drawPlane(plane, !refined && answer.points !== 11 ? " (coarse 11×11, refining)" : "", kind);
  else if (kind === SHARED) clearPlane(kind);
  if (line) drawLine(line);
}

function clearPlane(kind) {
  Plotly.purge(kind.view);
  $(kind.ids.cmd).hidden = true;
  pngButton(kind.view).hidden = true;
  $(kind.ids.notes).replaceChildren();
}

function drawPlane(plane, suffix, kind = OWN) {
  window.gdscopeBoard.landscapeRenders += 1;
  // The surface's loss has a row per y, as Plotly's z.
  const traces = [{ type: "contour", x: plane.xs, y: plane.ys, z: plane.loss, colorscale: "Viridis",
    contours: { coloring: "heatmap" }, colorbar: { title: { text: "loss" } }, name: "loss",
    showlegend: false, hovertemplate: "x %{x:.4g}<br>y %{y:.4g}<br>loss %{z:.5g}<extra></extra>" }];
  // Several runs: each path in its colour (the charts' and the listing's order), named.
  const paths = plane.runs || (plane.path_x ? [{ name: "path", path_x: plane.path_x,
    path_y: plane.path_y, path_steps: plane.path_steps }] : []);
  paths.forEach((run, i) => {
    const color = plane.runs ? COLORS[i % COLORS.length] : "white";
    if (plane.runs) {  // a white halo under each coloured path: visible on the dark valleys
      traces.push({ x: run.path_x, y: run.path_y, mode: "lines", showlegend: false,
        hoverinfo: "skip", line: { color: "white", width: 4 } });
    }
    traces.push({ x: run.path_x, y: run.path_y, mode: "lines+markers", name: run.name,
      marker: { size: 3, color }, line: { color, width: 1.5 }, customdata: run.path_steps,
      hovertemplate: `${plane.runs ? `${run.name}: ` : ""}step %{customdata}<extra></extra>` });
  });
  const what = plane.runs ? `PCA plane of ${plane.runs.length} runs` : "PCA plane";
  Plotly.react(kind.view, traces, { ...LAYOUT, showlegend: Boolean(plane.runs),
    legend: { ...LAYOUT.legend, bgcolor: "rgba(255,255,255,0.85)" },
    title: { text: `${what}, ${plane.xs.length}×${plane.ys.length}${suffix}` },
    xaxis: { title: { text: "first component" } },
    yaxis: { title: { text: "second component" } } }, CONFIG);
  $(kind.ids.cmd).hidden = false;
  $(kind.ids.cmd).textContent = plane.shell;
  pngButton(kind.view).hidden = false;
  const notes = $(kind.ids.notes);
  notes.replaceChildren();
  const whose = plane.runs ? "paths'" : "path's";
  const explained = plane.explained ? [`the two components explain ${
    (100 * plane.explained[0]).toFixed(1)}% and ${(100 * plane.explained[1]).toFixed(1)}% of the ${whose} variance`] : [];
  for (const note of [...explained, ...(plane.notes || [])]) {
    const item = document.createElement("li");
    item.textContent = note;
    notes.append(item);
  }
}

function drawLine(line) {
  const values = line.loss[0];  // a line: one row
  Plotly.react("line", [{ x: line.xs, y: values, mode: "lines", name: "loss" }], { ...LAYOUT,
    showlegend: false, title: { text: "the line from the first snapshot (0) to the last (1)" },
    xaxis: { title: { text: "position along the line" } },
    yaxis: { title: { text: "loss" } } }, CONFIG);
  $("lineCmd").hidden = false;
  $("lineCmd").textContent = line.shell;
  pngButton("line").hidden = false;
}

// The Hessian spectrum ------------------------------------------------------------------

async function refreshSpectrum(order) {
  const name = state.selected;
  const run = state.data.get(name);
  if (!run || run.kind !== "recording") return;
  $("spectrumCompute").disabled = !(state.health && state.health.landscapes);
  let answer;
  try {
    answer = order
      ? await getJSON("/api/spectrum", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, ...order }) })
      : await getJSON(`/api/spectrum?name=${encodeURIComponent(name)}`);
  } catch (error) {
    $("spectrumStatus").textContent = error.message;
    return;
  }
  if (state.selected !== name) return;
  state.spectrum = answer;
  const job = answer.job;
  const running = job && !job.finished;
  $("spectrumCancel").hidden = !running;
  let text = "";
  if (running) text = `computing (${job.done} of ${job.total || "?"} Hessian-vector products)`;
  else if (job && job.error) text = job.error === "cancelled" ? "cancelled" : `failed: ${job.error}`;
  else if (answer.spectrum) text = `at step ${answer.spectrum.step} (snapshot ${answer.snapshots - 1})` +
    (answer.current > answer.snapshots ? `; the run has ${answer.current} snapshots now: Compute again` : "");
  else if (answer.available) text = "not computed yet";
  else text = "needs --model and --data";
  $("spectrumStatus").textContent = text;
  if (answer.spectrum) drawSpectrum(answer.spectrum);
  clearTimeout(state.spectrumPoll);
  if (running) state.spectrumPoll = setTimeout(() => refreshSpectrum(), 400);
}

function drawSpectrum(spectrum) {
  const traces = [{ type: "bar", x: spectrum.eigenvalues.map((_, i) => i + 1), y: spectrum.eigenvalues,
    name: "top eigenvalues", hovertemplate: "#%{x}: %{y:.5g}<extra></extra>" }];
  Plotly.react("spectrum", traces, { ...LAYOUT, showlegend: false,
    title: { text: `top ${spectrum.eigenvalues.length} Hessian eigenvalues` },
    xaxis: { title: { text: "rank" } }, yaxis: { title: { text: "eigenvalue" } } }, CONFIG);
  $("spectrumCmd").hidden = false;
  $("spectrumCmd").textContent = spectrum.shell;
  pngButton("spectrum").hidden = false;
}

// Surface, study and spectrum files ------------------------------------------------------

function renderFile(run) {
  const text = [];
  $("studyControls").hidden = true;
  // The side (a cell's curve, the shoot-out's table) shows before the chart is drawn, so that
  // Plotly sizes the chart to the half it is given.
  $("fileSide").hidden = !((run.kind === "study" && run.metrics) || (run.kind === "shootout" && run.table));
  $("fileCmd").hidden = !run.shell;
  $("fileCmd").textContent = run.shell || "";
  if (run.kind === "surface" && run.xs) {
    drawFileSurface(run);
    text.push("A surface gdscope landscape --save (or the reference's plot_surface.py) wrote.");
  } else if (run.kind === "shootout" && run.table) {
    drawShootout(run);
    text.push(`A shoot-out (gdscope compare --save)${run.network ? ` on ${run.network}` : ""}` +
      `${run.steps ? `, ${run.steps} steps` : ""}: each optimizer tuned, scored by ${run.score || "its score"}.`);
    if (run.record) text.push(`Its record (what made it):\n${JSON.stringify(run.record, null, 1)}`);
  } else if (run.kind === "spectrum" && run.eigenvalues) {
    Plotly.react("fileChart", [{ type: "bar", x: run.eigenvalues.map((_, i) => i + 1),
      y: run.eigenvalues, name: "eigenvalue" }], { ...LAYOUT,
      title: { text: "Hessian eigenvalues (gdscope hessian --save)" },
      xaxis: { title: { text: "rank" } }, yaxis: { title: { text: "eigenvalue" } } }, CONFIG);
    if (run.record) text.push(`Its record (what made it):\n${JSON.stringify(run.record, null, 1)}`);
  } else if (run.kind === "study" && run.metrics) {
    drawStudy(run);
    text.push(`A study (--save). Its description:\n${JSON.stringify(run.description, null, 1)}`);
  } else {
    Plotly.purge("fileChart");
  }
  $("fileText").textContent = text.join("\n");
}

function nearest(values, value) {
  let best = 0;
  for (let i = 1; i < values.length; i += 1) {
    if (Math.abs(values[i] - value) < Math.abs(values[best] - value)) best = i;
  }
  return best;
}

// A shoot-out (gdscope compare --save): each optimizer's score at its tuned setting (bars,
// best first), the table of its setting, and its winner's loss curve where the file keeps it.
function show(v) {
  if (typeof v !== "number") return String(v ?? "");
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

function drawShootout(run) {
  const metric = run.score || "score";
  const rows = run.table;
  const settings = (row) => Object.entries(row).filter(([k]) => k !== "optimizer" && k !== metric)
    .map(([k, v]) => `${k} = ${show(v)}`).join("<br>");
  Plotly.react("fileChart", [{ type: "bar", x: rows.map((r) => r.optimizer), y: rows.map((r) => r[metric]),
    text: rows.map(settings), textposition: "none", hovertemplate: "%{x}<br>%{text}<extra></extra>",
    marker: { color: rows.map((_, i) => COLORS[i % COLORS.length]) } }], { ...LAYOUT, showlegend: false,
    title: { text: `${metric} at each tuned setting` },
    xaxis: { title: { text: "optimizer (best first)" } }, yaxis: { title: { text: metric } } }, CONFIG);
  const table = $("fileTable");
  const columns = ["optimizer", metric, ...new Set(rows.flatMap((r) => Object.keys(r)))]
    .filter((c, i, all) => all.indexOf(c) === i);
  const head = document.createElement("tr");
  for (const c of columns) { const th = document.createElement("th"); th.textContent = c; head.append(th); }
  const body = rows.map((r) => {
    const tr = document.createElement("tr");
    for (const c of columns) {
      const td = document.createElement("td");
      td.textContent = show(r[c]);
      tr.append(td);
    }
    return tr;
  });
  table.replaceChildren(head, ...body);
  const curves = run.curves || {};
  const names = rows.map((r) => r.optimizer).filter((n) => curves[n]);
  if (names.length) {
    Plotly.react("fileCurve", names.map((n) => ({ y: curves[n], name: n, mode: "lines",
      line: { color: COLORS[rows.findIndex((r) => r.optimizer === n) % COLORS.length], width: 1.3 } })),
    { ...LAYOUT, title: { text: "each winner's mini-batch loss" }, xaxis: { title: { text: "step" } },
      yaxis: { title: { text: "loss" }, type: "log" } }, CONFIG);
    $("fileCurveNote").textContent = "";
  } else {
    Plotly.purge("fileCurve");
    $("fileCurveNote").textContent = "This file keeps no loss curves (a shoot-out of the test " +
      "functions does not save them; a network shoot-out saves each winner's).";
  }
}

// A study cell's loss curve (network studies keep every cell's; thinned by the server).
function showCell(run, k) {
  const curves = run.curves;
  if (!curves || k === undefined || k === null) return;
  const labels = [...Object.entries(run.options), ...Object.entries(run.metrics)]
    .map(([n, v]) => `${n} = ${show(v[k])}`);
  Plotly.react("fileCurve", [{ x: curves.steps, y: curves.losses[k], mode: "lines", name: `cell ${k}` }],
    { ...LAYOUT, showlegend: false, title: { text: `cell ${k}: its mini-batch loss` },
      xaxis: { title: { text: "step" } }, yaxis: { title: { text: "loss" }, type: "log" } }, CONFIG);
  $("fileCurveNote").textContent = labels.join(" · ") +
    (curves.every > 1 ? ` (every ${curves.every}th step drawn)` : "");
  window.gdscopeBoard.cellShown = k;
}

function drawStudy(run) {
  // A phase diagram: the chosen metric over the study's last axis (x) and its first (y); a
  // sweep of one axis: the metric against it. Hover shows the cell's settings and metrics.
  const select = $("studyMetric");
  const names = Object.keys(run.metrics).sort();
  if (select.dataset.run !== run.name) {
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    const preferred = run.description.metric || "final_loss";
    if (preferred && names.includes(preferred)) select.value = preferred;
    select.dataset.run = run.name;
  }
  $("studyControls").hidden = false;
  const metric = select.value;
  const axes = run.description.axes || [];
  const cells = run.metrics[metric].length;
  const label = (k) => [...Object.entries(run.options), ...Object.entries(run.metrics)]
    .map(([n, v]) => `${n} = ${v[k]}`).join("<br>");
  const layout = { ...LAYOUT, showlegend: false, title: { text: `${metric} (${run.description.optimizer || "study"})` } };
  if (axes.length === 2) {
    const [ya, xa] = axes;
    const z = ya.values.map(() => xa.values.map(() => null));
    const hover = ya.values.map(() => xa.values.map(() => ""));
    const cell = ya.values.map(() => xa.values.map(() => null));
    for (let k = 0; k < cells; k += 1) {
      const i = nearest(xa.values, run.options[xa.name][k]);
      const j = nearest(ya.values, run.options[ya.name][k]);
      z[j][i] = run.metrics[metric][k];
      hover[j][i] = label(k);
      cell[j][i] = k;
    }
    Plotly.react("fileChart", [{ type: "heatmap", x: xa.values, y: ya.values, z, text: hover,
      customdata: cell, hovertemplate: "%{text}<extra></extra>", colorscale: "Viridis" }], { ...layout,
      xaxis: { title: { text: xa.name }, type: xa.log ? "log" : "linear" },
      yaxis: { title: { text: ya.name }, type: ya.log ? "log" : "linear" } }, CONFIG);
  } else if (axes.length === 1) {
    const [xa] = axes;
    const order = [...Array(cells).keys()];
    Plotly.react("fileChart", [{ x: order.map((k) => run.options[xa.name][k]),
      y: order.map((k) => run.metrics[metric][k]), text: order.map(label), mode: "markers",
      customdata: order,
      hovertemplate: "%{text}<extra></extra>" }], { ...layout,
      xaxis: { title: { text: xa.name }, type: xa.log ? "log" : "linear" },
      yaxis: { title: { text: metric } } }, CONFIG);
  } else {
    Plotly.purge("fileChart");
  }
  $("fileTable").replaceChildren();
  if (run.curves) {
    const chart = $("fileChart");
    if (!chart.dataset.hover && chart.on) {  // once per chart: Plotly keeps its handlers across reacts
      chart.dataset.hover = "on";
      chart.on("plotly_hover", (event) => {
        const shownRun = state.data.get(state.selected);
        if (shownRun && shownRun.kind === "study") showCell(shownRun, event.points[0].customdata);
      });
    }
    showCell(run, run.metrics[metric].findIndex((v) => v !== null));
  } else {
    Plotly.purge("fileCurve");
    $("fileCurveNote").textContent = "Hover a cell for its settings and metrics. This study " +
      "file keeps no loss curves (a study of the test functions does not save them; a " +
      "network study saves every cell's).";
  }
}

function drawFileSurface(run) {
  const line = run.ys.length === 1;
  if (line) {
    Plotly.react("fileChart", [{ x: run.xs, y: run.loss[0], mode: "lines" }],
      { ...LAYOUT, title: { text: "loss along the line" } }, CONFIG);
    return;
  }
  drawPlaneInto("fileChart", run);
}

function drawPlaneInto(id, plane) {
  const traces = [{ type: "contour", x: plane.xs, y: plane.ys, z: plane.loss, colorscale: "Viridis",
    contours: { coloring: "heatmap" } }];
  if (plane.path_x) traces.push({ x: plane.path_x, y: plane.path_y, mode: "lines+markers",
    marker: { size: 3, color: "white" }, line: { color: "white" } });
  Plotly.react(id, traces, { ...LAYOUT, showlegend: false,
    title: { text: `surface ${plane.xs.length}×${plane.ys.length}` } }, CONFIG);
}

// PNGs ------------------------------------------------------------------------------------

function pngButton(view) { return document.querySelector(`button.png[data-view="${view}"]`); }

// A view's chart as the page shows it, carrying the record /api/figure builds: the record the
// view's command writes into its own figure, so that `gdscope replay` makes that figure.
async function savePng(view) {
  const name = state.selected;
  const others = view === "shared" ? SHARED.names().slice(1) : [...state.compare];
  const params = new URLSearchParams({ name, view, points: points(),
    log: $("logLoss").checked, compare: others.join(",") });
  const answer = await getJSON(`/api/figure?${params}`);
  const bytes = await chartPng($(CHART_OF[view]));
  const png = answer.text ? withText(bytes, answer.key, answer.text) : bytes;
  window.gdscopeBoard.pngs.push({ view, file: answer.file, record: answer.record, why: answer.why });
  download(answer.file, png, "image/png");
  say(answer.why ? `${answer.file} carries no record: ${answer.why}.` : "");
}

// Start -----------------------------------------------------------------------------------

function connect() {
  const events = new EventSource("/api/events");
  let broken = false;
  events.addEventListener("open", () => {
    $("live").textContent = "live: following the folder";
    $("live").className = "hint on";
    if (broken) {  // a new stream starts after the rows there now: read the open runs again
      broken = false;
      for (const name of state.data.keys()) load(name, true).then(() => scheduleRender());
    }
  });
  events.addEventListener("error", () => {
    broken = true;
    $("live").textContent = "disconnected: reconnecting…";
    $("live").className = "hint off";
  });
  events.addEventListener("runs", (e) => onRuns(JSON.parse(e.data)));
  events.addEventListener("rows", (e) => onRows(JSON.parse(e.data)));
  events.addEventListener("index", (e) => onIndex(JSON.parse(e.data)));
  events.addEventListener("validation", (e) => onValidation(JSON.parse(e.data)));
}

async function start() {
  try {
    state.health = await getJSON("/api/health");
  } catch (error) {
    say(`the board does not answer: ${error.message}`);
    return;
  }
  $("root").textContent = state.health.root;
  const compare = new URLSearchParams(location.hash.slice(1)).get("compare");
  if (compare) for (const name of compare.split(",")) if (name) state.compare.add(name);
  $("logLoss").addEventListener("change", renderRecording);
  $("points").addEventListener("change", () => {
    refreshLandscape();
    refreshLandscape(null, SHARED);
  });
  $("studyMetric").addEventListener("change", () => {
    const run = state.data.get(state.selected);
    if (run && run.kind === "study") drawStudy(run);
  });
  $("compute").addEventListener("click", () => refreshLandscape({ cancel: false }));
  $("cancel").addEventListener("click", () => refreshLandscape({ cancel: true }));
  $("sharedCompute").addEventListener("click", () => refreshLandscape({ cancel: false }, SHARED));
  $("sharedCancel").addEventListener("click", () => refreshLandscape({ cancel: true }, SHARED));
  $("spectrumCompute").addEventListener("click", () => refreshSpectrum({ cancel: false }));
  $("spectrumCancel").addEventListener("click", () => refreshSpectrum({ cancel: true }));
  for (const button of document.querySelectorAll("button.png")) {
    button.addEventListener("click", () => savePng(button.dataset.view)
      .catch((error) => say(`PNG: ${error.message}`)));
  }
  connect();
  document.body.dataset.ready = "true";
}

start();
