// wonderland console: parallel coordinates of an Experiment's trials, as plain SVG.
// Data: the "parallel" part of <script type="application/json" id="chart-data">: axes
// (one per parameter: numeric, or categories in order) and one line per trial with a
// value of the objective, which is always the last axis. Lines are coloured by the
// objective (dark = better, by the experiment's direction). Each axis can be hidden with
// its checkbox and moved left or right with its buttons (keyboard: Tab to a button, Enter
// or Space) or by dragging its name in the chart; both survive the page's live refreshes.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const hidden = new Set();
  let order = []; // axis names, in the order chosen; new axes go at the end

  function ordered(all) {
    const names = all.map(function (a) { return a.name; });
    order = order.filter(function (n) { return names.indexOf(n) >= 0; });
    names.forEach(function (n) { if (order.indexOf(n) < 0) order.push(n); });
    return order.map(function (n) { return names.indexOf(n); });
  }

  function move(name, by) {
    const i = order.indexOf(name), j = i + by;
    if (i < 0 || j < 0 || j >= order.length) return false;
    order[i] = order[j]; order[j] = name;
    return true;
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scaleFor(axis, values) {
    if (axis.kind === "category") {
      const cats = axis.categories || [];
      return function (v) { const i = cats.indexOf(v); return cats.length < 2 ? 0.5 : i / (cats.length - 1); };
    }
    const nums = values.map(Number).filter(function (n) { return !isNaN(n); });
    const lo = Math.min.apply(null, nums), hi = Math.max.apply(null, nums);
    return function (v) { const n = Number(v); return hi === lo ? 0.5 : (n - lo) / (hi - lo); };
  }

  function ticks(axis, values) {
    if (axis.kind === "category") return axis.categories || [];
    const nums = values.map(Number).filter(function (n) { return !isNaN(n); });
    if (!nums.length) return [];
    const lo = Math.min.apply(null, nums), hi = Math.max.apply(null, nums);
    return lo === hi ? [lo] : [lo, hi];
  }

  function colour(t) { // t in [0, 1], 1 = best: light yellow to dark blue
    const a = [242, 204, 96], b = [11, 60, 140];
    const c = a.map(function (x, i) { return Math.round(x + (b[i] - x) * t); });
    return "rgb(" + c.join(",") + ")";
  }

  function fmt(v) { const n = Number(v); return typeof v === "number" || (!isNaN(n) && v !== "") ? String(Number(n.toPrecision(4))) : String(v); }

  function draw(root, data) {
    const p = data.parallel;
    const objective = { name: "objective", kind: "number" };
    const all = p.axes.concat([objective]);
    const columns = all.map(function (axis, i) {
      return p.lines.map(function (l) { return i < p.axes.length ? l.values[i] : l.objective; });
    });
    const sequence = ordered(all);
    const shown = sequence.filter(function (i) { return !hidden.has(all[i].name); });
    const controls = document.createElement("fieldset");
    controls.className = "parcoords-axes";
    const legend = document.createElement("legend");
    legend.textContent = "Axes";
    controls.appendChild(legend);
    sequence.forEach(function (index, place) {
      const axis = all[index];
      const id = "pc-axis-" + axis.name.replace(/[^A-Za-z0-9_-]/g, "_");
      const box = document.createElement("input");
      box.type = "checkbox"; box.id = id; box.checked = !hidden.has(axis.name);
      box.addEventListener("change", function () {
        if (box.checked) hidden.delete(axis.name); else hidden.add(axis.name);
        draw(root, data);
        const again = document.getElementById(id); if (again) again.focus();
      });
      const label = document.createElement("label");
      label.htmlFor = id; label.textContent = axis.name;
      const group = document.createElement("span");
      group.className = "pc-axis-control";
      group.dataset.axis = axis.name;
      group.append(box, label);
      [[-1, "◀", "left"], [1, "▶", "right"]].forEach(function (spec) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "pc-move";
        button.textContent = spec[1];
        button.setAttribute("aria-label", "Move " + axis.name + " " + spec[2]);
        const edge = spec[0] < 0 ? place === 0 : place === sequence.length - 1;
        if (edge) button.disabled = true;
        button.addEventListener("click", function () {
          if (!move(axis.name, spec[0])) return;
          draw(root, data);
          const again = root.querySelector('.pc-axis-control[data-axis="' + CSS.escape(axis.name) + '"] button[aria-label="' + button.getAttribute("aria-label") + '"]');
          if (again && !again.disabled) again.focus();
          else if (again) { const other = again.parentNode.querySelector("button.pc-move:not([disabled])"); if (other) other.focus(); }
        });
        group.appendChild(button);
      });
      controls.appendChild(group);
    });
    const W = 760, H = 300, top = 30, bottom = 30, left = 50, right = 50;
    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", class: "parcoords-svg",
      "aria-label": "Parallel coordinates of " + p.lines.length + " trials over " + shown.length + " axes" });
    const step = shown.length > 1 ? (W - left - right) / (shown.length - 1) : 0;
    const x = function (k) { return shown.length > 1 ? left + k * step : W / 2; };
    const scales = all.map(function (axis, i) { return scaleFor(axis, columns[i]); });
    const y = function (i, v) { return top + (1 - scales[i](v)) * (H - top - bottom); };
    const objs = p.lines.map(function (l) { return l.objective; });
    const lo = Math.min.apply(null, objs), hi = Math.max.apply(null, objs);
    const lines = el("g", { class: "pc-lines" });
    p.lines.forEach(function (line, n) {
      let t = hi === lo ? 1 : (line.objective - lo) / (hi - lo);
      if (data.direction === "minimize") t = 1 - t;
      const pts = shown.map(function (i, k) { return x(k).toFixed(1) + "," + y(i, columns[i][n]).toFixed(1); });
      const poly = el("polyline", { points: pts.join(" "), fill: "none", stroke: colour(t), "stroke-width": "2", "data-trial": line.trial });
      poly.appendChild(el("title", {}, line.trial + ": " + p.axes.map(function (a, i) { return a.name + "=" + line.values[i]; }).join(", ") + " → " + fmt(line.objective)));
      lines.appendChild(poly);
    });
    svg.appendChild(lines);
    shown.forEach(function (i, k) {
      const g = el("g", { class: "pc-axis", "data-axis": all[i].name });
      g.appendChild(el("line", { x1: x(k), x2: x(k), y1: top, y2: H - bottom, stroke: "currentColor" }));
      const title = el("text", { x: x(k), y: top - 10, "text-anchor": "middle", fill: "currentColor", class: "pc-name" }, all[i].name);
      title.addEventListener("pointerdown", function (ev) { dragStart(ev, all[i].name, svg, x, shown.length, step, root, data); });
      g.appendChild(title);
      ticks(all[i], columns[i]).forEach(function (v) {
        g.appendChild(el("text", { x: x(k) + 5, y: y(i, v) + 4, fill: "currentColor", class: "pc-tick" }, fmt(v)));
      });
      svg.appendChild(g);
    });
    root.replaceChildren(controls, svg);
  }

  // dragging an axis name along the chart moves the axis to where it is dropped
  function dragStart(ev, name, svg, x, count, step, root, data) {
    if (count < 2) return;
    ev.preventDefault();
    const box = svg.getBoundingClientRect();
    const scale = 760 / box.width;
    function up(e) {
      window.removeEventListener("pointerup", up);
      const at = (e.clientX - box.left) * scale;
      const target = Math.max(0, Math.min(count - 1, Math.round((at - x(0)) / step)));
      const visible = order.filter(function (n) { return !hidden.has(n); });
      const from = visible.indexOf(name);
      if (from < 0 || target === from) return;
      const over = visible[target];
      order.splice(order.indexOf(name), 1);
      const place = order.indexOf(over);
      order.splice(target > from ? place + 1 : place, 0, name);
      draw(root, data);
    }
    window.addEventListener("pointerup", up);
  }

  function mount() {
    const root = document.getElementById("parcoords");
    const block = document.getElementById("chart-data");
    if (!root || !block) return;
    let data;
    try { data = JSON.parse(block.textContent); } catch (e) { return; }
    if (!data.parallel || !data.parallel.lines.length) {
      root.textContent = "No trial has a value of the objective yet.";
      return;
    }
    draw(root, data);
  }

  document.addEventListener("console:swapped", mount);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
