/* AFMTS dashboard: live updates over /ws/events/ (the Django session authenticates staff), regions
 * redrawn from the server's own HTML (`?part=<name>`), ages and countdowns, charts (uPlot), presets,
 * the live request stream and the routing playground. No build step; no inline script (CSP).
 *
 * Event storms: each region is redrawn at most once every 250 ms (leading edge, then one trailing
 * redraw with whatever arrived meanwhile), so a discovery of 500 models costs a few redraws. */
(function () {
  "use strict";

  var REDRAW_MS = 250;
  var staff = document.body.dataset.staff === "1";
  var afmts = (window.afmts = { latencies: [], events: 0, redraws: {}, mode: "connecting" });

  // ------------------------------------------------------------------ time: ages and countdowns

  function parseTs(value) {
    if (typeof value === "number") return value > 1e12 ? value : value * 1000;
    var t = Date.parse(value);
    return isNaN(t) ? null : t;
  }

  function span(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  function tickTimes(root) {
    var now = Date.now();
    (root || document).querySelectorAll("[data-age]").forEach(function (el) {
      var t = parseTs(el.dataset.age);
      if (t !== null) el.textContent = span((now - t) / 1000) + " ago";
    });
    (root || document).querySelectorAll("[data-countdown]").forEach(function (el) {
      var t = parseTs(el.dataset.countdown);
      if (t === null) return;
      el.textContent = t <= now ? "now" : "in " + span((t - now) / 1000);
    });
  }

  // ------------------------------------------------------------------ throttled redraws

  function throttled(draw) {
    // One element's redraw: at most once per REDRAW_MS; calls in between fold into one trailing draw.
    var last = 0, timer = null, busy = false, dirty = false;
    function run() {
      timer = null;
      if (busy) { dirty = true; return; }
      busy = true; dirty = false; last = Date.now();
      Promise.resolve(draw()).catch(function () {}).then(function () {
        busy = false;
        if (dirty) schedule();
      });
    }
    function schedule() {
      if (timer) return;
      var wait = REDRAW_MS - (Date.now() - last);
      if (wait <= 0 && !busy) run();
      else timer = setTimeout(run, Math.max(wait, 0));
    }
    return schedule;
  }

  function partUrl(part, extra) {
    var q = new URLSearchParams(location.search);
    q.set("part", part);
    Object.keys(extra || {}).forEach(function (k) { q.set(k, extra[k]); });
    return location.pathname + "?" + q.toString();
  }

  function fetchHtml(url) {
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" }).then(function (r) {
      if (r.status === 401 || r.status === 403 || r.redirected) { location.reload(); throw new Error("session"); }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    });
  }

  function busyInside(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }

  var regions = [];
  document.querySelectorAll("[data-part][data-on]").forEach(function (el) {
    var region = { el: el, on: el.dataset.on.split(/\s+/), pk: el.dataset.modelPk ? Number(el.dataset.modelPk) : null };
    region.redraw = throttled(function () {
      if (busyInside(el)) { setTimeout(region.redraw, 1000); return; }
      (afmts.redraws[el.dataset.part] = afmts.redraws[el.dataset.part] || []).push(Date.now());
      return fetchHtml(partUrl(el.dataset.part)).then(function (html) {
        el.innerHTML = html;
        if (window.htmx) window.htmx.process(el);
        tickTimes(el);
      });
    });
    regions.push(region);
  });

  function concerns(region, message) {
    var name = message.event || "";
    var hit = region.on.some(function (prefix) { return name.indexOf(prefix) === 0; });
    if (!hit) return false;
    if (region.pk !== null && name.indexOf("model_") === 0) {
      var data = message.data || {};
      return data.id === region.pk;
    }
    return true;
  }

  // ------------------------------------------------------------------ the live feed (overview)

  var feed = document.getElementById("feed");
  var pending = [];
  var drawFeed = throttled(function () {
    var batch = pending.splice(0, pending.length);
    if (!batch.length) return;
    var empty = feed.querySelector(".empty");
    if (empty) empty.remove();
    var frag = document.createDocumentFragment();
    batch.slice(-30).reverse().forEach(function (m) {
      var li = document.createElement("li");
      var time = document.createElement("time");
      var ts = parseTs(m.ts);
      time.textContent = ts ? new Date(ts).toISOString().slice(11, 19) : "";
      var name = document.createElement("strong");
      name.textContent = m.event;
      var what = document.createElement("span");
      what.textContent = describe(m.data || {});
      li.append(time, " ", name, " ", what);
      li.dataset.event = m.event;
      frag.appendChild(li);
    });
    feed.prepend(frag);
    while (feed.children.length > 60) feed.lastElementChild.remove();
    var now = Date.now();
    batch.forEach(function (m) {
      var ts = parseTs(m.ts);
      if (ts) afmts.latencies.push(now - ts);
    });
  });

  function describe(d) {
    var bits = [];
    ["publicId", "model", "provider", "name", "status", "key"].forEach(function (k) {
      if (typeof d[k] === "string" && bits.indexOf(d[k]) < 0) bits.push(d[k]);
    });
    if (typeof d.batch === "number") bits.push(d.batch + " request(s)");
    return bits.slice(0, 3).join(" · ");
  }

  // ------------------------------------------------------------------ the event socket

  var live = document.getElementById("live");
  function setMode(mode, text) {
    afmts.mode = mode;
    if (live) { live.textContent = text; live.dataset.mode = mode; }
  }

  var handlers = [];
  function onEvent(fn) { handlers.push(fn); }

  function dispatch(message) {
    if (!message || !message.event || message.event === "pong") return;
    afmts.events += 1;
    if (feed) { pending.push(message); drawFeed(); }
    regions.forEach(function (r) { if (concerns(r, message)) r.redraw(); });
    handlers.forEach(function (fn) { fn(message); });
  }

  var retry = 500, pollTimer = null;
  function pollRegions() {
    // Without the socket (a user who is not staff, or the socket is down): redraw every 5 s.
    if (pollTimer) return;
    pollTimer = setInterval(function () {
      if (document.visibilityState !== "visible") return;
      regions.forEach(function (r) { r.redraw(); });
      handlers.forEach(function (fn) { fn({ event: "poll", data: {} }); });
    }, 5000);
  }

  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/events/");
    ws.onopen = function () {
      retry = 500;
      setMode("live", "● live");
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    };
    ws.onmessage = function (e) {
      try { dispatch(JSON.parse(e.data)); } catch (err) { /* not an envelope */ }
    };
    ws.onclose = function (e) {
      if (e.code === 4401) { setMode("polling", "○ refreshing every 5 s"); pollRegions(); return; }
      setMode("offline", "○ reconnecting…");
      pollRegions();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  // ------------------------------------------------------------------ overview: figures and charts

  var charts = {};
  function chart(id, label, color, data, opts) {
    var el = document.getElementById(id);
    if (!el || !window.uPlot) return;
    if (charts[id]) { charts[id].setData(data); return; }
    var width = Math.max(240, el.clientWidth || 300);
    charts[id] = new window.uPlot({
      width: width, height: 160, legend: { show: false }, cursor: { points: { show: !!(opts && opts.points) } },
      scales: { x: { time: true } },
      axes: [{ stroke: "#444" }, { stroke: "#444", size: 50 }],
      series: [{}, Object.assign({ label: label, stroke: color, width: 2, fill: color + "22", spanGaps: true }, opts || {})],
    }, data, el);
  }

  var figures = document.getElementById("traffic");
  if (figures) {
    var windowName = "1h";
    var FORMAT = {
      rps: function (v) { return String(v); },
      p95Ms: function (v) { return v === null ? "–" : Math.round(v) + " ms"; },
      errorRate: function (v) { return (100 * v).toFixed(1) + " %"; },
      requestsToday: function (v) { return String(v); },
      spendToday: usd, savingsToday: usd,
    };
    var refreshFigures = throttled(function () {
      return fetch("/dashboard/figures?window=" + windowName, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (f) {
          figures.querySelectorAll("[data-figure]").forEach(function (el) {
            var k = el.dataset.figure;
            if (k in f.traffic) el.textContent = FORMAT[k](f.traffic[k]);
          });
          var c = f.charts;
          chart("chart-requests", "requests", "#1f5fbf", [c.x, c.requests]);
          chart("chart-latency", "p95 ms", "#8a4b00", [c.x, c.p95]);
          chart("chart-errors", "errors", "#b3261e", [c.x, c.errors]);
        });
    });
    refreshFigures();
    setInterval(function () { if (document.visibilityState === "visible") refreshFigures(); }, 5000);
    onEvent(function (m) { if (m.event === "request_routed" || m.event === "poll") refreshFigures(); });
    document.querySelectorAll("[data-window]").forEach(function (b) {
      b.addEventListener("click", function () {
        windowName = b.dataset.window;
        document.querySelectorAll("[data-window]").forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
        document.getElementById("window-name").textContent = windowName === "1h" ? "hour" : "24 hours";
        refreshFigures();
      });
    });
  }

  function usd(v) {
    var n = Number(v);
    if (!n) return "$0";
    return n < 1 ? "$" + n.toFixed(4) : "$" + n.toFixed(2);
  }

  // model page: latency chart
  var latencyData = document.getElementById("latency-data");
  if (latencyData) {
    var d = JSON.parse(latencyData.textContent);
    var xs = d.samples.x.concat(d.p95.x).sort(function (a, b) { return a - b; });
    var uniq = xs.filter(function (x, i) { return i === 0 || x !== xs[i - 1]; });
    var sampleAt = {}, p95At = {};
    d.samples.x.forEach(function (x, i) { sampleAt[x] = d.samples.y[i]; });
    d.p95.x.forEach(function (x, i) { p95At[x] = d.p95.y[i]; });
    var el = document.getElementById("chart-model-latency");
    if (uniq.length && window.uPlot && el) {
      var end = Date.now() / 1000;
      new window.uPlot({
        width: Math.max(300, el.clientWidth), height: 200, legend: { show: true },
        scales: { x: { time: true, range: function () { return [Math.min(uniq[0], end - 86400), end]; } } },
        axes: [{ stroke: "#444" }, { stroke: "#444", size: 50 }],
        series: [{}, { label: "sample ms", stroke: "#1f5fbf", width: 0, points: { show: true, size: 6 }, spanGaps: false },
                 { label: "p95 ms (hourly)", stroke: "#8a4b00", width: 2, spanGaps: true }],
      }, [uniq, uniq.map(function (x) { return x in sampleAt ? sampleAt[x] : null; }),
          uniq.map(function (x) { return x in p95At ? p95At[x] : null; })], el);
    } else if (el) {
      el.textContent = "No latency measured yet.";
      el.classList.add("muted");
    }
  }

  // ------------------------------------------------------------------ live requests

  var rows = document.getElementById("request-rows");
  if (rows) {
    var pause = document.getElementById("pause");
    var lastId = function () {
      var first = rows.querySelector("tr[data-id]");
      return first ? Number(first.dataset.id) : 0;
    };
    var pollRows = throttled(function () {
      if (pause && pause.checked) return;
      return fetchHtml(partUrl("rows", { after: lastId() })).then(function (html) {
        if (!html.trim()) return;
        var t = document.createElement("tbody");
        t.innerHTML = html;
        var fresh = Array.prototype.slice.call(t.children).filter(function (tr) {
          return !rows.querySelector('tr[data-id="' + tr.dataset.id + '"]');
        });
        fresh.reverse().forEach(function (tr) { tr.classList.add("new"); rows.prepend(tr); });
        while (rows.children.length > 200) rows.lastElementChild.remove();
      });
    });
    setInterval(function () { if (document.visibilityState === "visible") pollRows(); }, 1000);
    onEvent(function (m) { if (m.event === "request_routed") pollRows(); });
  }

  // ------------------------------------------------------------------ presets (add provider, add a model)

  var presetData = document.getElementById("presets-data");
  if (presetData) {
    var presets = JSON.parse(presetData.textContent);
    document.querySelectorAll("[data-preset]").forEach(function (b) {
      b.addEventListener("click", function () {
        var p = presets[b.dataset.preset];
        var form = document.getElementById(b.dataset.target);
        if (!p || !form) return;
        function set(name, value) {
          var input = form.elements[name];
          if (input) { input.value = value; input.dispatchEvent(new Event("change", { bubbles: true })); }
        }
        if (form.id === "provider-form") {
          set("kind", p.kind); set("slug", p.slug); set("baseUrl", p.baseUrl);
        } else {
          set("name", p.model); set("provider", p.slug); set("providerKind", p.kind);
          set("endpoint", p.baseUrl); set("capabilities", p.capabilities); set("type", "llm");
        }
        var key = form.elements.apiKey;
        if (key) {
          key.placeholder = p.key ? "required for " + b.textContent : "not needed for a local server";
          (p.key ? key : form.querySelector("button[type=submit]")).focus();
        }
      });
    });
  }

  // ------------------------------------------------------------------ models: keep the filter form in step with sorting

  document.body.addEventListener("htmx:afterSwap", function (e) {
    var count = document.getElementById("models-count");
    var form = document.querySelector("form.filters");
    if (!count || !form || !e.detail || e.detail.target.id !== "models-table") return;
    form.elements.sort.value = count.dataset.sort;
    form.elements.dir.value = count.dataset.dir;
    tickTimes(e.detail.target);
  });

  // ------------------------------------------------------------------ routing playground

  var playground = document.getElementById("playground");
  if (playground) {
    var answer = document.getElementById("pg-answer"), meta = document.getElementById("pg-meta");
    var explainBox = document.getElementById("pg-explain");
    playground.addEventListener("submit", function (e) {
      e.preventDefault();
      var run = e.submitter && e.submitter.value === "run";
      var body = new FormData(playground);
      explainBox.setAttribute("aria-busy", "true");
      fetch(playground.action, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { explainBox.innerHTML = html; explainBox.removeAttribute("aria-busy"); tickTimes(explainBox); });
      if (!run) return;
      answer.textContent = ""; meta.textContent = "sending…";
      fetch(playground.dataset.run, { method: "POST", body: new FormData(playground), credentials: "same-origin" })
        .then(function (r) { return readLines(r, function (line) {
          if (line.type === "meta") meta.textContent = line.status === 200
            ? "served by " + line.model + " (" + line.provider + "), attempts: " + line.attempts + ", request " + line.requestId
            : "HTTP " + line.status;
          else if (line.type === "text") answer.textContent += line.text;
          else if (line.type === "usage") meta.textContent += " · tokens " + line.usage.prompt_tokens + "/" + line.usage.completion_tokens;
          else if (line.type === "error") { var p = document.createElement("p"); p.className = "error"; p.textContent = line.message; answer.appendChild(p); }
          else if (line.type === "done") meta.textContent += " · done";
        }); })
        .catch(function () { meta.textContent = "the request failed"; });
    });
  }

  function readLines(response, each) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) { if (buffer.trim()) each(JSON.parse(buffer)); return; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var lines = buffer.split("\n");
        buffer = lines.pop();
        lines.forEach(function (l) { if (l.trim()) each(JSON.parse(l)); });
        return pump();
      });
    }
    return pump();
  }

  // ------------------------------------------------------------------ start

  tickTimes();
  setInterval(tickTimes, 1000);
  if (regions.length || feed || figures || rows) connect();
  else setMode("idle", "");
  afmts.staff = staff;
})();
