// wonderland console: the Service and InferenceService pages' island. It draws the
// page's charts with the vendored uPlot from the JSON in <script id="chart-data">, follows
// a Pod's log over /logs/<namespace>/<pod> (a plain-text fetch stream), and sends the "try it"
// request. console.js swaps <main> when the page refreshes (live), then fires
// "console:swapped": the charts are drawn again from the new data, and the log lines,
// the try-it fields and the last answer are put back, so a refresh loses nothing.
"use strict";
(function () {
  const main = document.getElementById("main");
  if (!main) return;
  const COLORS = ["#0b5cad", "#c0392b", "#146c2e", "#9a6700", "#6f42c1", "#b35900", "#00838f", "#5a5a5a"];
  const MAX_LOG_LINES = 1000;
  const plots = [];
  const state = { fields: {}, result: null, log: null, lines: [] };
  let source = null;

  function fmt(v, unit) {
    if (v === null || v === undefined) return "–";
    if (unit === "s") return (v * 1000).toFixed(1) + " ms";
    if (unit === "req/s") return v.toFixed(2) + "/s";
    return Number.isInteger(v) ? String(v) : v.toFixed(2);
  }

  function draw() {
    while (plots.length) plots.pop().destroy();
    const el = document.getElementById("chart-data");
    if (!el || !window.uPlot) return;
    let data;
    try { data = JSON.parse(el.textContent); } catch (e) { return; }
    const fg = getComputedStyle(document.body).color;
    data.charts.forEach(function (c) {
      const box = document.getElementById(c.id);
      if (!box) return;
      const has = c.series.some(function (s) { return s.values.some(function (v) { return v !== null; }); });
      if (!has) return;
      const axis = { stroke: fg, grid: { stroke: "rgba(128,128,128,0.25)" }, ticks: { stroke: "rgba(128,128,128,0.4)" } };
      const opts = {
        width: Math.max(280, box.clientWidth || 520),
        height: 200,
        scales: { x: { time: true, range: data.end > data.start ? [data.start, data.end] : undefined } },
        series: [{}].concat(c.series.map(function (s, i) {
          return { label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
                   points: { show: s.values.filter(function (v) { return v !== null; }).length < 60 }, value: function (u, v) { return fmt(v, c.unit); } };
        })),
        axes: [axis, Object.assign({ size: 70, values: function (u, vals) { return vals.map(function (v) { return fmt(v, c.unit); }); } }, axis)],
      };
      plots.push(new window.uPlot(opts, [c.x].concat(c.series.map(function (s) { return s.values; })), box));
      box.dataset.drawn = String(c.x.length);
    });
  }

  // -- logs ------------------------------------------------------------------------------
  function showLog() {
    const panel = document.getElementById("log-panel");
    if (!panel || !state.log) return;
    panel.hidden = false;
    document.getElementById("log-title").textContent = state.log.title;
    const pre = document.getElementById("log-lines");
    pre.textContent = state.lines.join("\n");
    pre.scrollTop = pre.scrollHeight;
  }

  function addLine(text) {
    state.lines.push(text);
    if (state.lines.length > MAX_LOG_LINES) state.lines.splice(0, state.lines.length - MAX_LOG_LINES);
    const pre = document.getElementById("log-lines");
    if (pre) {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = state.lines.join("\n");
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
  }

  function stopLog(why) {
    if (source) { source.abort(); source = null; }
    if (state.log && why) { state.log.title = state.log.base + " (" + why + ")"; showLog(); }
  }

  // The log is one plain-text fetch stream: the last lines, then what the container
  // writes, until it ends; a refusal (unknown pod, container not started) is a 4xx text.
  async function follow(ns, pod, container) {
    stopLog();
    const base = "Log of " + pod + ", container " + container;
    state.log = { base: base, title: base + " (following)" };
    state.lines = [];
    showLog();
    const mine = new AbortController();
    source = mine;
    const url = "/logs/" + encodeURIComponent(ns) + "/" + encodeURIComponent(pod) + "?container=" + encodeURIComponent(container);
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: mine.signal });
      if (!response.ok) { addLine("! " + (await response.text()).trim()); stopLog("stopped"); return; }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let rest = "";
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        rest += decoder.decode(chunk.value, { stream: true });
        const lines = rest.split("\n");
        rest = lines.pop();
        lines.forEach(addLine);
      }
      if (rest) addLine(rest);
      if (source === mine) stopLog("ended");
    } catch (e) {
      if (source === mine) stopLog("stopped");
    }
  }

  // -- try it ----------------------------------------------------------------------------
  function showResult() {
    const box = document.getElementById("try-result");
    const r = state.result;
    if (!box || !r) return;
    box.hidden = false;
    document.getElementById("try-summary").textContent = r.summary;
    document.getElementById("try-answer").textContent = r.body;
    document.getElementById("try-curl").textContent = r.curl || "";
  }

  function restoreFields() {
    Object.keys(state.fields).forEach(function (id) {
      const el = document.getElementById(id);
      if (el && el.value !== state.fields[id]) el.value = state.fields[id];
    });
  }

  function buildJson() {
    const inputs = [];
    main.querySelectorAll(".try-input").forEach(function (div) {
      const text = div.querySelector("textarea").value.trim();
      const datatype = div.dataset.datatype;
      const width = Number(div.dataset.width || 1);
      const rows = text ? text.split(/\n+/) : [];
      const data = [];
      rows.forEach(function (row) {
        row.split(",").forEach(function (cell) {
          const v = cell.trim();
          if (v === "") return;
          if (datatype === "BYTES") data.push(v);
          else if (datatype === "BOOL") data.push(v === "true" || v === "1");
          else data.push(Number(v));
        });
      });
      const dims = (div.dataset.shape || "").split(",").filter(function (d) { return d !== ""; }).map(Number);
      const shape = dims.length > 1 ? [Math.max(1, Math.round(data.length / width))].concat(dims.slice(1).map(function (d) { return d > 0 ? d : width; })) : [data.length];
      inputs.push({ name: div.dataset.name, shape: shape, datatype: datatype, data: data });
    });
    const area = document.getElementById("try-json");
    area.value = JSON.stringify({ inputs: inputs }, null, 2);
    state.fields["try-json"] = area.value;
  }

  async function send() {
    const section = document.getElementById("try-it");
    const area = document.getElementById("try-json");
    if (!section || !area) return;
    const button = document.getElementById("try-send");
    if (button) button.disabled = true;
    state.result = { summary: "Sending…", body: "", curl: "" };
    showResult();
    try {
      const response = await fetch(section.dataset.infer, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: area.value,
      });
      const doc = await response.json();
      if (!response.ok) {
        state.result = { summary: "Not sent: " + doc.error, body: "", curl: "" };
      } else if (doc.error) {
        state.result = { summary: "No answer: " + doc.error, body: "", curl: doc.curl };
      } else {
        let body = doc.body;
        try { body = JSON.stringify(JSON.parse(doc.body), null, 2); } catch (e) { /* not JSON */ }
        state.result = { summary: "HTTP " + doc.status + " in " + doc.milliseconds + " ms", body: body, curl: doc.curl };
      }
    } catch (e) {
      state.result = { summary: "The console did not answer: " + e, body: "", curl: "" };
    } finally {
      const b = document.getElementById("try-send");
      if (b) b.disabled = false;
    }
    showResult();
  }

  main.addEventListener("input", function (e) {
    const el = e.target;
    if (el && el.id && el.closest && el.closest("#try-it")) state.fields[el.id] = el.value;
  });
  main.addEventListener("submit", function (e) {
    if (e.target && e.target.id === "try-raw") { e.preventDefault(); send(); }
  });
  main.addEventListener("click", function (e) {
    const el = e.target && e.target.closest ? e.target.closest("button") : null;
    if (!el) return;
    if (el.classList.contains("log-follow")) follow(el.dataset.namespace, el.dataset.pod, el.dataset.container);
    else if (el.id === "log-stop") stopLog("stopped");
    else if (el.id === "try-build") buildJson();
  });
  main.addEventListener("console:swapped", function () {
    draw(); showLog(); restoreFields(); showResult();
  });
  window.addEventListener("pagehide", function () { stopLog(); });
  draw();
})();
