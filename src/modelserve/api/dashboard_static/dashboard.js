// The modelserve dashboard: polls /dashboard/series and draws it with uPlot.
// A key for a plane that requires one is read from the address's fragment (#key=...), which
// browsers never send to the server, and sent as "Authorization: Bearer <key>".
"use strict";

(() => {
  const POLL_MS = { minutes: 1000, hours: 15000, days: 60000 };
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  const CHART_HEIGHT = 190;
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  const state = { range: "minutes", timer: null, charts: new Map(), sections: new Map() };
  // For the console and the browser test: every chart (id, title, its uPlot) and the last JSON.
  window.dashboard = { charts: state.charts, series: null };

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function format(value, unit = "") {
    if (value == null || Number.isNaN(value)) return "–";
    if (Number.isInteger(value)) return value + unit;
    const size = Math.abs(value);
    const digits = size >= 100 ? 0 : size >= 10 ? 1 : 2;
    return value.toFixed(digits) + unit;
  }

  function last(values) {
    return values && values.length ? values[values.length - 1] : null;
  }

  function latest(values) {
    for (let index = (values || []).length - 1; index >= 0; index--) {
      if (values[index] != null) return values[index];
    }
    return null;
  }

  // Tick labels by range: seconds, minutes, or days and hours.
  const TIME_FORMATS = { minutes: "{H}:{mm}:{ss}", hours: "{H}:{mm}", days: "{MMM} {D} {H}:00" };

  const fromZero = (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1];

  // spec: {id, title, lines: [{label, values, unit, color, dash, scale}], right: a second
  // scale's name (a percent axis on the right), log: a logarithmic y axis}
  function drawChart(container, spec, times, touched) {
    touched.add(spec.id);
    const signature = [state.range, ...spec.lines.map((line) => line.label)].join("\n");
    // A series the server has no values for yet is drawn as a gap, not an error.
    const data = [times, ...spec.lines.map((line) => line.values || times.map(() => null))];
    let entry = state.charts.get(spec.id);
    if (entry && entry.signature === signature && entry.box.parentNode === container) {
      entry.uplot.setData(data);
      return;
    }
    if (entry) {
      entry.uplot.destroy();
      entry.box.remove();
    }
    const box = element("div", { class: "chart", "data-chart": spec.id });
    container.append(box);
    // A log axis keeps p50 readable beside a max a thousand times larger.
    const scales = { x: { time: true }, y: spec.log ? { distr: 3, log: 10 } : { range: fromZero } };
    const timeFormat = uPlot.fmtDate(TIME_FORMATS[state.range]);
    const axes = [
      { space: 70, values: (_u, ticks) => ticks.map((t) => timeFormat(new Date(t * 1000))) },
      { scale: "y", size: 60, values: (_u, ticks) => ticks.map((t) => format(t)) },
    ];
    if (spec.log) {
      // Grid lines at decades only (uPlot labels only those already): the eight lines
      // between two decades would gray the plot out.
      const decades = (_u, splits) =>
        splits.map((t) => (Math.abs(Math.log10(t) % 1) < 1e-9 ? t : null));
      axes[1].grid = { filter: decades };
      axes[1].ticks = { filter: decades };
    }
    if (spec.right) {
      scales[spec.right] = { range: fromZero };
      axes.push({ scale: spec.right, side: 1, size: 50, grid: { show: false },
        values: (_u, ticks) => ticks.map((t) => format(t, "%")) });
    }
    const uplot = new uPlot({
      title: spec.title,
      width: Math.max(box.clientWidth - 12, 300),
      height: CHART_HEIGHT,
      scales,
      axes,
      series: [{
        label: "time",
        value: (u, value, _index, at) => {
          const time = at == null ? latest(u.data[0]) : value;
          return time == null ? "–" : timeFormat(new Date(time * 1000));
        },
      }, ...spec.lines.map((line, index) => ({
        label: line.label,
        stroke: line.color || COLORS[index % COLORS.length],
        width: 1.6,
        dash: line.dash,
        scale: line.scale || "y",
        // Away from the cursor, the legend shows each line's latest value.
        value: (u, value, index, at) =>
          format(at == null ? latest(u.data[index]) : value, line.unit || ""),
      }))],
    }, data, box);
    state.charts.set(spec.id, { id: spec.id, title: spec.title, signature, box, uplot });
  }

  function drawPlaceholder(container, id, title, text, touched) {
    touched.add(id);
    let entry = state.charts.get(id);
    if (entry && !entry.uplot) {
      entry.box.lastChild.textContent = text;
      return;
    }
    if (entry) {
      entry.uplot.destroy();
      entry.box.remove();
    }
    const box = element("div", { class: "chart empty", "data-chart": id },
      element("strong", {}, title), element("span", {}, text));
    container.append(box);
    state.charts.set(id, { id, title, box, uplot: null });
  }

  function parts(series, order) {
    return Object.entries(series || {}).sort(([a], [b]) => order(a) - order(b) || (a < b ? -1 : 1));
  }
  const numeric = (name) => parseInt(name, 10);

  function serverCharts(body, touched) {
    const container = document.getElementById("server-charts");
    const server = body.server;
    const line = (label, values, unit) => ({ label, values, unit });
    drawChart(container, {
      id: "server:cpu", title: "CPU (% of one core)",
      lines: [line("frontend", server.cpu_percent?.frontend, "%"),
        line("workers", server.cpu_percent?.workers, "%")],
    }, body.time, touched);
    drawChart(container, {
      id: "server:memory", title: "Memory (resident MB)",
      lines: [line("frontend", server.memory_mb?.frontend, " MB"),
        line("workers", server.memory_mb?.workers, " MB")],
    }, body.time, touched);
    if (!body.gpus.count) {
      drawPlaceholder(container, "server:gpu", "GPU",
        `no GPU seen: ${body.gpus.unavailable || "NVML reports none"}`, touched);
      return;
    }
    drawChart(container, {
      id: "server:gpu-utilization", title: "GPU utilisation (%)",
      lines: parts(server.gpu_utilization_percent, numeric)
        .map(([device, values]) => line(`GPU ${device}`, values, "%")),
    }, body.time, touched);
    drawChart(container, {
      id: "server:gpu-memory", title: "GPU memory used (MB)",
      lines: parts(server.gpu_memory_mb, numeric)
        .map(([device, values]) => line(`GPU ${device}`, values, " MB")),
    }, body.time, touched);
  }

  function versionSection(model, version, row, touched) {
    const id = `${model}\n${version}`;
    touched.add(id);
    let section = state.sections.get(id);
    if (!section) {
      const heading = element("h2");
      const charts = element("div", { class: "charts" });
      const node = element("section", { class: "version" }, heading, charts);
      document.getElementById("versions").append(node);
      section = { node, heading, charts };
      state.sections.set(id, section);
    }
    const tags = row ? [row.default ? "default" : "", row.status].filter(Boolean).join(" · ")
      : "unregistered";
    section.heading.replaceChildren(`${model} ${version}`, element("span", { class: "tag" }, tags));
    return section.charts;
  }

  function versionCharts(body, touched) {
    const rows = new Map(body.models.map((row) => [`${row.model}\n${row.version}`, row]));
    for (const { model, version, series } of body.versions) {
      const container = versionSection(model, version, rows.get(`${model}\n${version}`), touched);
      const id = (name) => `version:${model}/${version}:${name}`;
      const latency = series.latency_ms || {};
      const workers = series.workers || {};
      drawChart(container, {
        id: id("traffic"), title: "Requests/s, and failed %", right: "%",
        lines: [{ label: "requests/s", values: series.requests_per_s },
          { label: "failed", values: series.failed_percent, unit: "%", scale: "%",
            color: "#c62828" }],
      }, body.time, touched);
      drawChart(container, {
        id: id("latency"), title: "Latency (ms, log scale)", log: true,
        lines: [["p50", "#2ca02c"], ["p90", "#ff7f0e"], ["p99", "#d62728"],
          ["mean", "#1f77b4", [4, 3]], ["max", "#9a9a9a"]]
          .map(([name, color, dash]) => ({ label: name, values: latency[name], unit: " ms",
            color, dash })),
      }, body.time, touched);
      drawChart(container, {
        id: id("queue"), title: "Queue depth (requests waiting for a worker)",
        lines: [{ label: "queued", values: series.queue_depth }],
      }, body.time, touched);
      drawChart(container, {
        id: id("batches"), title: "Batch sizes (batches/s by size)",
        lines: parts(series.batches_per_s, numeric)
          .map(([size, values]) => ({ label: `size ${size}`, values })),
      }, body.time, touched);
      drawChart(container, {
        id: id("workers"), title: "Workers: busy (share of the time), idle, starting, failed",
        lines: [["busy", "#1f77b4"], ["idle", "#2ca02c"], ["starting", "#ff7f0e"],
          ["failed", "#c62828"]]
          .map(([name, color]) => ({ label: name, values: workers[name], color })),
      }, body.time, touched);
    }
  }

  function modelTable(rows) {
    const body = document.querySelector("#models tbody");
    body.replaceChildren(...rows.map((row) => element("tr", {},
      element("td", {}, row.model),
      element("td", {}, row.version),
      element("td", {}, row.default ? "✓" : ""),
      element("td", { class: `status-${row.status}` }, row.status),
      element("td", {}, `${row.workers} / ${row.target_workers}` +
        (row.starting ? ` (+${row.starting} starting)` : "")),
      element("td", {}, String(row.queued)),
      element("td", {}, String(row.worker_failures)),
      element("td", {}, String(row.batch_size)),
      element("td", { class: "error" }, row.load_error || ""),
    )));
    if (!rows.length) {
      body.append(element("tr", {}, element("td", { colspan: "9" }, "no model is registered")));
    }
  }

  function summary(body) {
    const versions = body.versions.map((v) => v.series);
    const sum = (pick) => versions.reduce((total, s) => total + (last(pick(s)) || 0), 0);
    const requests = sum((s) => s.requests_per_s);
    const failed = sum((s) => (s.requests_per_s || []).map((r, i) =>
      r * ((s.failed_percent || [])[i] || 0) / 100));
    const p99 = Math.max(-1, ...versions.map((s) => last((s.latency_ms || {}).p99) ?? -1));
    const rows = body.models;
    const ready = rows.reduce((total, row) => total + row.workers, 0);
    const wanted = rows.reduce((total, row) => total + row.target_workers, 0);
    const server = body.server;
    const both = (series) => (last(series?.frontend) || 0) + (last(series?.workers) || 0);
    const cpu = both(server.cpu_percent);
    const memory = both(server.memory_mb);
    const failedShare = requests ? (100 * failed) / requests : null;
    const tiles = [
      ["requests/s", format(requests)],
      ["failed", format(failedShare, "%"), failedShare > 0],
      ["worst p99 latency", p99 < 0 ? "–" : format(p99, " ms")],
      ["queued", format(sum((s) => s.queue_depth))],
      ["workers ready", `${ready} / ${wanted}`, ready < wanted],
      ["models", String(new Set(rows.map((row) => row.model)).size)],
      ["CPU (all processes)", format(cpu, "%")],
      ["memory (all processes)", format(memory, " MB")],
      ["GPUs", body.gpus.count ? String(body.gpus.count) : "none seen"],
    ];
    const label = { minutes: "now", hours: "this minute", days: "this hour" }[body.range];
    document.getElementById("summary").replaceChildren(...tiles.map(([name, value, bad]) =>
      element("div", { class: bad ? "tile bad" : "tile" },
        element("div", { class: "label" }, `${name} · ${label}`),
        element("div", { class: "value" }, value))));
  }

  function render(body) {
    window.dashboard.series = body;
    document.getElementById("instance").textContent = `instance ${body.instance}`;
    document.title = `modelserve ${body.instance} · dashboard`;
    const touched = new Set();
    summary(body);
    modelTable(body.models);
    serverCharts(body, touched);
    versionCharts(body, touched);
    for (const [id, entry] of state.charts) {
      if (!touched.has(id)) {
        entry.uplot?.destroy();
        entry.box.remove();
        state.charts.delete(id);
      }
    }
    for (const [id, section] of state.sections) {
      if (!touched.has(id)) {
        section.node.remove();
        state.sections.delete(id);
      }
    }
  }

  function problem(text) {
    const banner = document.getElementById("problem");
    banner.hidden = !text;
    banner.textContent = text || "";
    document.getElementById("updated").classList.toggle("stale", Boolean(text));
  }

  async function refresh() {
    clearTimeout(state.timer);
    const range = state.range;
    try {
      const response = await fetch(`/dashboard/series?range=${range}`, {
        cache: "no-store",
        headers: key ? { Authorization: `Bearer ${key}` } : {},
      });
      const body = await response.json();
      if (!response.ok) {
        throw new Error(`${response.status}: ${body.message || response.statusText}`);
      }
      if (range === state.range) {
        render(body);
        problem(null);
        document.getElementById("updated").textContent =
          `updated ${new Date().toLocaleTimeString()} · ${body.description}`;
      }
    } catch (error) {
      problem(`Cannot read the series from the server (${error.message}); retrying.`);
    }
    state.timer = setTimeout(refresh, POLL_MS[state.range]);
  }

  for (const button of document.querySelectorAll("#ranges button")) {
    button.addEventListener("click", () => {
      state.range = button.dataset.range;
      for (const other of document.querySelectorAll("#ranges button")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      refresh();
    });
  }

  window.addEventListener("resize", () => {
    for (const entry of state.charts.values()) {
      const width = Math.max(entry.box.clientWidth - 12, 300);
      entry.uplot?.setSize({ width, height: CHART_HEIGHT });
    }
  });

  refresh();
})();
