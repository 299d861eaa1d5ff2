// wonderland console: the Service and InferenceService pages' island. It draws the
// page's charts with the vendored uPlot from the JSON in <script id="chart-data">, follows
// a Pod's log over /logs/<namespace>/<pod> (a plain-text fetch stream) with a level filter
// and a JSON field view, sends a function's invoke box and the "try it" request, and saves,
// loads and deletes a model's example requests. console.js swaps <main> when the page refreshes (live), then fires
// "console:swapped": the charts are drawn again from the new data, and the log lines,
// the try-it fields and the last answer are put back, so a refresh loses nothing.
"use strict";
(function () {
  const main = document.getElementById("main");
  if (!main) return;
  const COLORS = ["#0b5cad", "#c0392b", "#146c2e", "#9a6700", "#6f42c1", "#b35900", "#00838f", "#5a5a5a"];
  const MAX_LOG_LINES = 1000;
  const plots = [];
  const state = { fields: {}, checked: {}, result: null, invoked: null, log: null, lines: [],
                  logLevel: "", logJson: false, exampleStatus: "" };
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
  // Each line keeps its level: a JSON line's "level" (or severity, lvl, levelname), a
  // logfmt "level=", or a level word in capitals near the start; a line without one (a
  // traceback's) has the level of the line before it. The level filter shows the lines
  // at or above a level; "JSON fields" writes a JSON line as time, level and message
  // with each other field on a line of its own.
  const RANK = { trace: 0, debug: 1, info: 2, notice: 2, warn: 3, warning: 3, error: 4, err: 4,
                 critical: 5, fatal: 5, panic: 5 };
  const LEVEL_KEYS = ["level", "severity", "lvl", "levelname", "log.level", "severity_text"];
  const TIME_KEYS = ["time", "timestamp", "ts", "@timestamp", "asctime"];
  const MESSAGE_KEYS = ["msg", "message", "event"];
  const WORD = /(?:^|[\s[|:])(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)(?=[\s\]|:]|$)/;
  const LOGFMT = /(?:^|\s)level=["']?(\w+)/i;

  function levelOf(doc, text) {
    if (doc) {
      for (const k of LEVEL_KEYS) {
        const v = doc[k];
        if (typeof v === "string" && RANK[v.toLowerCase()] !== undefined) return v.toLowerCase();
      }
      return null;
    }
    const head = text.slice(0, 120);
    const m = LOGFMT.exec(head) || WORD.exec(head);
    return m && RANK[m[1].toLowerCase()] !== undefined ? m[1].toLowerCase() : null;
  }

  function parseLine(text, previous) {
    let doc = null;
    const t = text.trim();
    if (t.charAt(0) === "{" && t.charAt(t.length - 1) === "}") {
      try {
        const d = JSON.parse(t);
        if (d && typeof d === "object" && !Array.isArray(d)) doc = d;
      } catch (e) { /* not JSON after all */ }
    }
    const own = levelOf(doc, text);
    return { text: text, doc: doc, level: own || previous, own: own !== null };
  }

  function shown(v) { return typeof v === "string" ? v : JSON.stringify(v); }

  function asFields(line) {
    const doc = line.doc;
    const pick = function (keys) {
      for (const k of keys) if (doc[k] !== undefined) return k;
      return null;
    };
    const used = {};
    const head = [];
    const levelKey = pick(LEVEL_KEYS);
    [pick(TIME_KEYS), levelKey, pick(MESSAGE_KEYS)].forEach(function (k) {
      if (!k) return;
      used[k] = true;
      head.push(k === levelKey ? shown(doc[k]).toUpperCase() : shown(doc[k]));
    });
    const out = [head.join("  ") || "{}"];
    Object.keys(doc).forEach(function (k) { if (!used[k]) out.push("    " + k + ": " + shown(doc[k])); });
    return out.join("\n");
  }

  function visible() {
    const min = state.logLevel ? RANK[state.logLevel] : -1;
    const out = [];
    state.lines.forEach(function (line) {
      if (min >= 0 && (line.level === null || RANK[line.level] < min)) return;
      out.push(state.logJson && line.doc ? asFields(line) : line.text);
    });
    return out;
  }

  function renderLog(keepEnd) {
    const pre = document.getElementById("log-lines");
    if (!pre) return;
    const atEnd = keepEnd || pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const lines = visible();
    pre.textContent = lines.join("\n");
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    const count = document.getElementById("log-count");
    if (count) {
      count.textContent = state.logLevel
        ? lines.length + " of " + state.lines.length + " lines at " + state.logLevel + " or above"
        : state.lines.length + " lines";
    }
  }

  function showLog() {
    const panel = document.getElementById("log-panel");
    if (!panel || !state.log) return;
    panel.hidden = false;
    document.getElementById("log-title").textContent = state.log.title;
    const level = document.getElementById("log-level");
    if (level) level.value = state.logLevel;
    const json = document.getElementById("log-json");
    if (json) json.checked = state.logJson;
    renderLog(true);
  }

  function addLine(text) {
    const previous = state.lines.length ? state.lines[state.lines.length - 1].level : null;
    state.lines.push(parseLine(text, previous));
    if (state.lines.length > MAX_LOG_LINES) state.lines.splice(0, state.lines.length - MAX_LOG_LINES);
    renderLog(false);
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
    Object.keys(state.checked).forEach(function (id) {
      const el = document.getElementById(id);
      if (el) el.checked = state.checked[id];
    });
  }

  // -- a function's invoke box -------------------------------------------------------------
  function showInvoked() {
    const box = document.getElementById("invoke-result");
    const r = state.invoked;
    if (!box || !r) return;
    box.hidden = false;
    document.getElementById("invoke-summary").textContent = r.summary;
    document.getElementById("invoke-answer").textContent = r.body;
    document.getElementById("invoke-curl").textContent = r.curl || "";
    document.getElementById("invoke-func").textContent = r.func || "";
  }

  async function invoke() {
    const section = document.getElementById("invoke");
    const form = document.getElementById("invoke-form");
    if (!section || !form) return;
    const value = function (id) { const el = document.getElementById(id); return el ? el.value : ""; };
    const cloud = document.getElementById("invoke-cloudevent");
    const doc = {
      format: cloud && cloud.checked ? "cloudevent" : "http",
      path: value("invoke-path"), contentType: value("invoke-type"), data: value("invoke-data"),
      type: value("invoke-ce-type"), source: value("invoke-ce-source"),
    };
    const button = document.getElementById("invoke-send");
    if (button) button.disabled = true;
    state.invoked = { summary: "Sending…", body: "", curl: "", func: "" };
    showInvoked();
    try {
      const response = await fetch(section.dataset.invoke, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(doc),
      });
      const r = await response.json();
      if (!response.ok) {
        state.invoked = { summary: "Not sent: " + r.error, body: "", curl: "", func: "" };
      } else if (r.error) {
        state.invoked = { summary: "No answer: " + r.error, body: "", curl: r.curl, func: r.func };
      } else {
        let body = r.body;
        try { body = JSON.stringify(JSON.parse(r.body), null, 2); } catch (e) { /* not JSON */ }
        const attrs = Object.keys(r.headers || {}).filter(function (k) { return k.toLowerCase().indexOf("ce-") === 0; });
        if (attrs.length) body = attrs.map(function (k) { return k.slice(3) + ": " + r.headers[k]; }).join("\n") + "\n\n" + body;
        state.invoked = { summary: "HTTP " + r.status + " in " + r.milliseconds + " ms" + (r.eventId ? " (CloudEvent id " + r.eventId + ")" : ""),
                          body: body, curl: r.curl, func: r.func };
      }
    } catch (e) {
      state.invoked = { summary: "The console did not answer: " + e, body: "", curl: "", func: "" };
    } finally {
      const b = document.getElementById("invoke-send");
      if (b) b.disabled = false;
    }
    showInvoked();
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

  main.addEventListener("change", function (e) {
    const el = e.target;
    if (!el) return;
    if (el.id === "log-level") { state.logLevel = el.value; renderLog(true); }
    else if (el.id === "log-json") { state.logJson = el.checked; renderLog(true); }
  });
  // -- a model's saved examples ------------------------------------------------------------
  function button(cls, name, text, hidden) {
    const b = document.createElement("button");
    b.type = "button"; b.className = cls; b.dataset.name = name; b.textContent = text;
    const span = document.createElement("span");
    span.className = "visually-hidden"; span.textContent = hidden;
    b.appendChild(span);
    return b;
  }

  function renderExamples(examples) {
    const list = document.getElementById("examples-list");
    if (!list) return;
    list.textContent = "";
    examples.forEach(function (e) {
      const li = document.createElement("li");
      li.dataset.name = e.name;
      const name = document.createElement("span");
      name.className = "example-name"; name.textContent = e.name;
      const saved = document.createElement("span");
      saved.className = "ns"; saved.textContent = "saved " + e.saved;
      const body = document.createElement("pre");
      body.className = "example-body"; body.hidden = true; body.textContent = e.body;
      li.append(name, " ", saved, " ", button("example-load", e.name, "Put into the editor", ": " + e.name),
                " ", button("example-delete", e.name, "Delete", " " + e.name), body);
      list.appendChild(li);
    });
    const empty = document.getElementById("examples-empty");
    if (empty) empty.hidden = examples.length > 0;
  }

  function exampleStatus(text) {
    state.exampleStatus = text;
    const el = document.getElementById("example-status");
    if (el) el.textContent = text;
  }

  async function examplesCall(method, url, body, done) {
    try {
      const response = await fetch(url, {
        method: method, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: body,
      });
      const doc = await response.json();
      if (!response.ok) { exampleStatus("Refused: " + doc.error); return; }
      renderExamples(doc.examples);
      exampleStatus(done);
    } catch (e) {
      exampleStatus("The console did not answer: " + e);
    }
  }

  function loadExample(name) {
    const li = Array.prototype.find.call(main.querySelectorAll("#examples-list li"), function (l) { return l.dataset.name === name; });
    const area = document.getElementById("try-json");
    if (!li || !area) return;
    area.value = li.querySelector(".example-body").textContent;
    state.fields["try-json"] = area.value;
    exampleStatus("Example " + name + " is in the editor.");
  }

  function saveExample() {
    const box = document.getElementById("examples");
    const name = document.getElementById("example-name");
    const area = document.getElementById("try-json");
    if (!box || !name || !area) return;
    const title = name.value.trim();
    examplesCall("POST", box.dataset.examples, JSON.stringify({ name: title, body: area.value }), "Saved " + title + ".");
  }

  function deleteExample(name) {
    const box = document.getElementById("examples");
    if (!box) return;
    examplesCall("DELETE", box.dataset.examples + "/" + encodeURIComponent(name), null, "Deleted " + name + ".");
  }

  function kept(el) { return el && el.id && el.closest && (el.closest("#try-it") || el.closest("#invoke")); }  // #examples is inside #try-it
  main.addEventListener("input", function (e) {
    const el = e.target;
    if (!kept(el)) return;
    if (el.type === "radio" || el.type === "checkbox") {
      main.querySelectorAll('input[name="' + el.name + '"]').forEach(function (r) { if (r.id) state.checked[r.id] = r.checked; });
    } else {
      state.fields[el.id] = el.value;
    }
  });
  main.addEventListener("submit", function (e) {
    if (e.target && e.target.id === "try-raw") { e.preventDefault(); send(); }
    else if (e.target && e.target.id === "invoke-form") { e.preventDefault(); invoke(); }
    else if (e.target && e.target.id === "example-save") { e.preventDefault(); saveExample(); }
  });
  main.addEventListener("click", function (e) {
    const el = e.target && e.target.closest ? e.target.closest("button") : null;
    if (!el) return;
    if (el.classList.contains("log-follow")) follow(el.dataset.namespace, el.dataset.pod, el.dataset.container);
    else if (el.id === "log-stop") stopLog("stopped");
    else if (el.id === "try-build") buildJson();
    else if (el.classList.contains("example-load")) loadExample(el.dataset.name);
    else if (el.classList.contains("example-delete")) deleteExample(el.dataset.name);
  });
  main.addEventListener("console:swapped", function () {
    draw(); showLog(); restoreFields(); showResult(); showInvoked();
    if (state.exampleStatus) exampleStatus(state.exampleStatus);
  });
  window.addEventListener("pagehide", function () { stopLog(); });
  draw();
})();
