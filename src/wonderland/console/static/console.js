// wonderland console: live updates. One EventSource per page (/live); on each change the
// page fetches its own <main> again (?fragment=main) and swaps it in: at once after a quiet
// spell, then at most every 300 ms.
// Pages with metrics (data-poll) also refresh once per metrics scrape.
// The browser sends Last-Event-ID when it reconnects, so no change is missed; a "resync"
// event (history too old, or a slow reader) refreshes the content whole the same way.
// While a form on the page is being edited (or shows a refused submission) the content
// is not swapped, so an edit is never lost; the refresh waits until it is saved.
// After a swap, "console:swapped" is dispatched on <main> (it bubbles to the document) for page scripts.
"use strict";
(function () {
  const main = document.getElementById("main");
  const status = document.getElementById("live-status");
  if (!main || main.dataset.live !== "on" || !window.EventSource) return;
  let timer = null;
  let busy = false;
  let again = false;

  function setStatus(text) { if (status && status.textContent !== text) status.textContent = text; }

  function layoutSplits(root) {
    root.querySelectorAll(".split-part").forEach(function (part) {
      const pct = Number(part.dataset.percent || 0);
      part.style.width = pct + "%";
      if (pct === 0) part.hidden = true;
    });
  }

  function editing() {
    return main.querySelector("form[data-editing]") !== null;
  }

  main.addEventListener("input", function (event) {
    const form = event.target && event.target.form;
    if (form && (form.classList.contains("traffic-form") || form.dataset.keepEdits || form.hasAttribute("data-pause-live"))) {
      form.dataset.editing = "1";
      setStatus("live (paused while you edit)");
    }
  });

  async function refresh() {
    if (editing()) return;
    if (busy) { again = true; return; }
    busy = true;
    main.setAttribute("aria-busy", "true");
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("fragment", "main");
      const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.status === 401 || response.redirected) { window.location.reload(); return; }
      if (response.ok) {
        const focused = document.activeElement && document.activeElement.id;
        main.innerHTML = await response.text();
        layoutSplits(main);
        // page scripts (charts, logs) put their live parts back into the new content
        main.dispatchEvent(new CustomEvent("console:swapped", { bubbles: true }));
        if (focused) { const el = document.getElementById(focused); if (el) el.focus(); }
      }
    } finally {
      busy = false;
      main.removeAttribute("aria-busy");
      if (again) { again = false; schedule(); }
    }
  }

  // the first change after a quiet spell refreshes at once; more within 300 ms wait for
  // the next refresh, so a burst of changes costs one fetch per 300 ms
  let last = 0;
  function schedule() {
    if (timer !== null) return;
    const wait = Math.max(0, last + 300 - Date.now());
    timer = window.setTimeout(function () { timer = null; last = Date.now(); refresh(); }, wait);
  }

  layoutSplits(document);
  // metrics are not objects: a page that shows them (Apps) also refreshes once per scrape
  const poll = Number(main.dataset.poll || 0);
  if (poll > 0) {
    window.setInterval(function () { if (!document.hidden) schedule(); }, poll * 1000);
  }
  // from the page's own resourceVersion: a change between the render and the connection
  // is not missed
  const rv = main.dataset.rv;
  const source = new EventSource("/live" + (rv ? "?since=" + encodeURIComponent(rv) : ""));
  source.addEventListener("open", function () { setStatus("live"); });
  source.addEventListener("hello", function () { setStatus("live"); });
  source.addEventListener("change", schedule);
  source.addEventListener("resync", schedule);
  source.addEventListener("error", function () { setStatus("reconnecting…"); });
})();
