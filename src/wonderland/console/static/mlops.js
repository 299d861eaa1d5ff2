// wonderland console: the Training, Experiments and Registry pages' live parts.
// - Charts (uPlot, vendored): the page's data is a <script type="application/json"
//   id="chart-data"> block in <main>; when console.js swaps <main> after a change it
//   dispatches "console:swapped", and each chart is moved into the new content and fed
//   the new data (no flicker, no second stream).
// - Logs: the selected node's log is followed over one fetch stream (/logs/NS/POD); the
//   <pre> survives swaps the same way. A container that has not started is asked again.
// - Sortable tables (th buttons) and the promote form's "which InferenceServices roll".
"use strict";
(function () {
  const charts = new Map(); // name -> {plot, figure}
  let logView = null; // {pre, status, pod, controller}
  let sortState = null; // {column, dir}

  function readData() {
    const block = document.getElementById("chart-data");
    if (!block) return null;
    try { return JSON.parse(block.textContent); } catch (e) { return null; }
  }

  function width(box) {
    const room = box.clientWidth || (box.parentNode && box.parentNode.clientWidth) || 560;
    return Math.max(300, Math.min(room - 8, 900));
  }

  function timeChart(name, series) {
    return {
      title: "", width: 560, height: 220,
      scales: { x: { time: true } },
      series: [{}, { label: name, stroke: "#0b5cad", width: 2, points: { show: true, size: 5 } }],
      axes: [{}, { size: 60 }],
      legend: { show: true },
    };
  }

  function stepChart(name) {
    return {
      width: 560, height: 220,
      scales: { x: { time: false } },
      series: [{ label: "step" }, { label: name, stroke: "#0b5cad", width: 2, points: { show: false } }],
      axes: [{ label: "step" }, { size: 60 }],
    };
  }

  function objectiveChart(label) {
    return {
      width: 560, height: 240,
      scales: { x: { time: false } },
      series: [
        { label: "trial" },
        { label: label, stroke: "#7a4d00", width: 0, points: { show: true, size: 7, fill: "#f2cc60" } },
        { label: "best so far", stroke: "#146c2e", width: 2, points: { show: false } },
      ],
      axes: [{ label: "trial", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { size: 60 }],
    };
  }

  function mount(name, figure, opts, data) {
    const box = figure.querySelector(".chart-box");
    if (!box || !window.uPlot) return;
    const known = charts.get(name);
    if (known) {
      box.replaceChildren(known.plot.root);
      known.plot.setData(data);
      known.figure = figure;
      return;
    }
    opts.width = width(box);
    const plot = new window.uPlot(opts, data, box);
    charts.set(name, { plot: plot, figure: figure });
  }

  function drawCharts() {
    const data = readData();
    if (!data) return;
    const seen = new Set();
    if (data.metrics) {
      data.metrics.forEach(function (s) {
        const figure = document.querySelector('figure[data-chart="' + CSS.escape(s.name) + '"]');
        if (!figure) return;
        seen.add(s.name);
        mount(s.name, figure, timeChart(s.name, s), [s.t, s.v]);
      });
    }
    if (data.run) {
      data.run.forEach(function (s) {
        const key = "run:" + s.name;
        const figure = document.querySelector('figure[data-chart="' + CSS.escape(key) + '"]');
        if (!figure) return;
        seen.add(key);
        mount(key, figure, stepChart(s.name), [s.step, s.v]);
      });
    }
    if (data.history) {
      const figure = document.querySelector('figure[data-chart="objective"]');
      if (figure) {
        seen.add("objective");
        const h = data.history;
        mount("objective", figure, objectiveChart("objective"), [h.trial, h.objective, h.best]);
      }
    }
    charts.forEach(function (value, key) { if (!seen.has(key)) { value.plot.destroy(); charts.delete(key); } });
  }

  // -- logs -------------------------------------------------------------------------------
  const MAX_LOG_CHARS = 200000;

  function logSlot() { return document.getElementById("log-slot"); }

  function appendLog(pre, text) {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    let content = pre.textContent + text;
    if (content.length > MAX_LOG_CHARS) content = content.slice(content.length - MAX_LOG_CHARS);
    pre.textContent = content;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  async function follow(view, namespace, pod, container) {
    const url = "/logs/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(pod) +
      (container ? "?container=" + encodeURIComponent(container) : "");
    view.status.textContent = "connecting…";
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", signal: view.controller.signal });
    } catch (e) {
      if (!view.controller.signal.aborted) view.status.textContent = "log unavailable: " + e;
      return;
    }
    if (!response.ok) {
      const why = (await response.text()).trim();
      view.status.textContent = "waiting: " + why;
      if (response.status === 409 && !view.controller.signal.aborted) {
        window.setTimeout(function () {
          if (logView === view && !view.controller.signal.aborted) follow(view, namespace, pod, container);
        }, 2000);
      }
      return;
    }
    view.status.textContent = "following";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const part = await reader.read();
        if (part.done) break;
        appendLog(view.pre, decoder.decode(part.value, { stream: true }));
      }
      view.status.textContent = "log ended (the container finished)";
    } catch (e) {
      if (!view.controller.signal.aborted) view.status.textContent = "log stream broke: reload to follow again";
    }
  }

  function startLog(pod) {
    const box = document.querySelector(".logs");
    const select = document.getElementById("log-pod");
    const slot = logSlot();
    if (!box || !select || !slot) return;
    const option = select.querySelector('option[value="' + CSS.escape(pod) + '"]');
    if (!option) return;
    if (logView) logView.controller.abort();
    const status = document.createElement("p");
    status.className = "log-status";
    status.setAttribute("role", "status");
    const pre = document.createElement("pre");
    pre.className = "log";
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", "Log of " + option.textContent);
    logView = { pre: pre, status: status, pod: pod, controller: new AbortController() };
    slot.replaceChildren(status, pre);
    follow(logView, box.dataset.namespace, pod, option.dataset.container || "");
  }

  function mountLogs() {
    const select = document.getElementById("log-pod");
    const slot = logSlot();
    if (!select || !slot) {
      if (logView) { logView.controller.abort(); logView = null; }
      return;
    }
    if (!select.dataset.bound) {
      select.dataset.bound = "1";
      select.addEventListener("change", function () { startLog(select.value); });
    }
    if (logView && select.querySelector('option[value="' + CSS.escape(logView.pod) + '"]')) {
      select.value = logView.pod;
      slot.replaceChildren(logView.status, logView.pre);
      return;
    }
    startLog(select.value);
  }

  // -- sortable tables --------------------------------------------------------------------
  function cellValue(row, index, kind) {
    const cell = row.children[index];
    const raw = cell ? (cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim()) : "";
    if (kind === "text") return raw;
    const n = parseFloat(raw);
    return raw !== "" && !isNaN(n) ? n : (kind === "number" ? null : raw);
  }

  function sortTable(table, index, dir) {
    const button = table.querySelectorAll("thead th")[index].querySelector("button");
    const kind = button ? button.dataset.sort : "text";
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = cellValue(a, index, kind), y = cellValue(b, index, kind);
      if (x === y) return 0;
      if (x === null || x === "") return 1; // missing values last, either way
      if (y === null || y === "") return -1;
      const order = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return dir === "ascending" ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll("thead th").forEach(function (th, i) {
      if (th.hasAttribute("aria-sort")) th.setAttribute("aria-sort", i === index ? dir : "none");
    });
  }

  function mountSorting() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("thead th button[data-sort]").forEach(function (button) {
        const th = button.closest("th");
        const index = Array.from(th.parentNode.children).indexOf(th);
        button.addEventListener("click", function () {
          const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
          sortState = { column: index, dir: dir };
          sortTable(table, index, dir);
        });
      });
      if (sortState) sortTable(table, sortState.column, sortState.dir);
    });
  }

  // -- promote: which InferenceServices roll ----------------------------------------------
  function mountPromote() {
    document.querySelectorAll("form.promote-form").forEach(function (form) {
      const input = form.querySelector('input[name="alias"]');
      const para = form.querySelector(".rolls");
      if (!input || !para) return;
      let followers = {};
      try { followers = JSON.parse(para.dataset.followers || "{}"); } catch (e) { followers = {}; }
      input.addEventListener("input", function () {
        const names = followers[input.value] || [];
        para.querySelector("strong").textContent = "@" + input.value;
        para.querySelector(".rolls-list").textContent =
          names.length ? names.join(", ") : "no InferenceService (none names this model by that alias)";
      });
    });
  }

  function mountAll() {
    drawCharts();
    mountLogs();
    mountSorting();
    mountPromote();
  }

  document.addEventListener("console:swapped", mountAll);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
