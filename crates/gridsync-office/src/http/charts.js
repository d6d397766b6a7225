// The dashboard's charts, drawn with uPlot (/assets/uplot.js, MIT: vendor/LICENSE-uPlot):
// coverage of this round per hour, needs reported and items delivered per hour, and the
// devices by when the office last heard from them. What a chart plots is worked out from the
// API's answer first (coverage, needs, freshness below), then drawn into a Slot; each chart's
// element gets data-drawn="N", the sum of its main series, so a test can compare it with the
// API. Texts come through the page's t() (passed in as ctx.t); times are in the street's zone
// (the answer's utc_offset_minutes), never the browser's: a time is shifted by the offset and
// read with the UTC getters.
"use strict";
const Charts = (() => {
  const HOUR_MS = 3600000;
  const FONT = '11px system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif';
  const COLOR = { street: "#1f5fa8", streetFill: "rgba(31, 95, 168, 0.12)", grid: "#b26a00", needs: "#b3261e", delivered: "#2e7d32", axis: "#5f6368", grid_line: "#e8eaed" };
  // Freshness buckets: heard from within 1 h, 1-3 h, 3-6 h, 6-12 h, more than 12 h, never.
  const BUCKET_HOURS = [1, 3, 6, 12];
  const BUCKET_COLORS = ["#2e7d32", "#7cb342", "#f9a825", "#ef6c00", "#b3261e", "#9aa0a6"];
  const pad2 = (n) => String(n).padStart(2, "0");
  const round1 = (v) => Math.round(v * 10) / 10;

  // ---- what each chart plots, from the API's answers ----

  /** Hours of a timeline answer, in order; a missing or malformed list is no hours. */
  function hoursOf(tl) {
    const hours = tl && Array.isArray(tl.hours) ? tl.hours.slice() : [];
    return hours.sort((a, b) => a.hour - b.hour);
  }

  /** Where a timeline's clock is: round start, hour length, the street's offset in ms. */
  function clockOf(tl) {
    return {
      start: tl.round_start_ms,
      hourMs: tl.hour_ms || HOUR_MS,
      offMs: (typeof tl.utc_offset_minutes === "number" ? tl.utc_offset_minutes : 480) * 60000,
    };
  }

  /**
   * Coverage: the cumulative share of households visited, at the end of every hour of the
   * round (x in round hours: 0, 1, ... ; the last point is now). `grid`, when given, is a
   * second timeline (one micro-grid) put on the same hours.
   */
  function coverage(tl, grid) {
    const hours = hoursOf(tl);
    const c = clockOf(tl);
    const xs = [0], cum = [0];
    let sum = 0;
    for (const h of hours) { sum += h.visited || 0; xs.push(h.hour + 1); cum.push(sum); }
    const n = hours.length;
    if (n) {
      const now = ((tl.generated_ms || Date.now()) - c.start) / c.hourMs;
      xs[n] = Math.min(xs[n], Math.max(xs[n] - 1 + 0.02, now));
    }
    const households = tl.households || 0;
    const pctOf = (v, of) => (of ? Math.min(100, round1((100 * v) / of)) : 0);
    const model = { clock: c, tl, hours, xs, cum, pct: cum.map((v) => pctOf(v, households)), sum, households, span: n ? hours[n - 1].hour + 1 : 0, grid: null };
    if (grid && grid.tl) {
      const byHour = new Map(hoursOf(grid.tl).map((h) => [h.hour, h.visited || 0]));
      let g = 0;
      const gcum = [0];
      for (let i = 1; i < xs.length; i++) { g += byHour.get(hours[i - 1].hour) || 0; gcum.push(g); }
      const gh = grid.tl.households || 0;
      model.grid = { id: grid.id, cum: gcum, pct: gcum.map((v) => pctOf(v, gh)), sum: g, households: gh };
    }
    return model;
  }

  /** Needs reported and items delivered in every hour of the round (x: the hour's middle). */
  function needs(tl) {
    const hours = hoursOf(tl);
    const xs = hours.map((h) => h.hour + 0.5);
    const reported = hours.map((h) => h.needs_reported || 0);
    const delivered = hours.map((h) => h.delivered || 0);
    const add = (a, b) => a + b;
    const sumReported = reported.reduce(add, 0), sumDelivered = delivered.reduce(add, 0);
    return { clock: clockOf(tl), tl, hours, xs, reported, delivered, sumReported, sumDelivered, sum: sumReported + sumDelivered, span: hours.length ? hours[hours.length - 1].hour + 1 : 0 };
  }

  /**
   * Devices by when the office last heard from them (the newer of the device's newest record
   * and its last contact), against the answer's generated_ms.
   */
  function freshness(answer) {
    const devices = answer && Array.isArray(answer.devices) ? answer.devices : [];
    const now = answer && answer.generated_ms ? answer.generated_ms : Date.now();
    const counts = [0, 0, 0, 0, 0, 0];
    for (const d of devices) {
      const heard = [d.last_record_ms, d.last_contact_ms].filter((v) => typeof v === "number");
      if (!heard.length) { counts[5]++; continue; }
      const age = Math.max(0, now - Math.max(...heard));
      let i = BUCKET_HOURS.findIndex((h) => age < h * HOUR_MS);
      if (i < 0) i = 4;
      counts[i]++;
    }
    return { counts, total: devices.length, recent: counts[0] };
  }

  // ---- times on the street's clock ----

  function clockText(ms, offMs, minutes) {
    const d = new Date(ms + offMs);
    return pad2(d.getUTCHours()) + ":" + (minutes ? pad2(d.getUTCMinutes()) : "00");
  }
  // A category label too wide for its slot goes on two lines: at its middle space, else where
  // digits meet letters of another script ("6–12小时" -> "6–12" / "小时"), else at its middle.
  let measurer = null;
  function textWidth(text) {
    if (!measurer) { measurer = document.createElement('canvas').getContext('2d'); measurer.font = FONT; }
    return measurer.measureText(text).width;
  }
  function fitLabel(label, maxPx) {
    if (textWidth(label) <= maxPx) return label;
    const spaces = [...label.matchAll(/ /g)].map((m) => m.index);
    let at = spaces.length ? spaces.reduce((a, b) => (Math.abs(b - label.length / 2) < Math.abs(a - label.length / 2) ? b : a)) : -1;
    if (at >= 0) return label.slice(0, at) + "\n" + label.slice(at + 1);
    const m = label.match(/^[\x00-\x7f–]+(?=[^\x00-\x7f–])/);
    at = m ? m[0].length : Math.ceil(label.length / 2);
    return label.slice(0, at) + "\n" + label.slice(at);
  }
  function dayKey(ms, offMs) { return Math.floor((ms + offMs) / 86400000); }
  function dayText(ctx, ms, offMs) {
    const d = new Date(ms + offMs);
    return ctx.t("chart.day", { m: d.getUTCMonth() + 1, d: d.getUTCDate() });
  }

  /**
   * An x axis in round hours whose ticks fall on whole hours of the street's clock, as many
   * as fit (one per ~56 px), labelled HH:00; the date is added where a label starts a new day
   * when the round spans more than one.
   */
  function hourAxis(ctx, c) {
    const msOf = (x) => c.start + x * c.hourMs;
    return {
      scale: "x",
      font: FONT,
      stroke: COLOR.axis,
      grid: { stroke: COLOR.grid_line, width: 1 },
      ticks: { show: true, stroke: COLOR.grid_line, width: 1, size: 4 },
      gap: 3,
      size: (u, values) => (values && values.some((v) => String(v).includes("\n")) ? 40 : 26),
      splits: (u, axisIdx, min, max) => {
        const fit = Math.max(2, Math.floor((u.width - 50) / 56));
        const spanH = ((max - min) * c.hourMs) / HOUR_MS;
        const step = [1, 2, 3, 4, 6, 12, 24, 48, 72, 168].find((s) => spanH / s <= fit) || 168;
        const stepMs = step * HOUR_MS;
        const out = [];
        for (let ms = Math.ceil((msOf(min) + c.offMs) / stepMs) * stepMs - c.offMs; ms <= msOf(max) + 1; ms += stepMs) {
          out.push((ms - c.start) / c.hourMs);
        }
        return out;
      },
      values: (u, splits) => {
        if (!splits.length) return [];
        const days = splits.map((x) => dayKey(msOf(x), c.offMs));
        const many = days[0] !== days[days.length - 1];
        return splits.map((x, i) => {
          const ms = msOf(x);
          const label = clockText(ms, c.offMs, false);
          return many && (i === 0 || days[i] !== days[i - 1]) ? label + "\n" + dayText(ctx, ms, c.offMs) : label;
        });
      },
    };
  }

  /** A y axis of whole counts, from 0. */
  function countAxis(ctx, label) {
    return {
      scale: "y",
      font: FONT,
      stroke: COLOR.axis,
      grid: { stroke: COLOR.grid_line, width: 1 },
      ticks: { show: false },
      incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000],
      space: 28,
      size: (u, values) => 14 + 7 * Math.max(1, ...(values || ["0"]).map((v) => String(v).length)),
      values: (u, splits) => splits.map((v) => ctx.num(v)),
      label,
      labelFont: FONT,
      labelSize: 14,
      labelGap: 0,
    };
  }
  const countRange = (u, min, max) => [0, Math.max(2, Math.ceil(max * 1.15))];
  const noZoom = { drag: { x: false, y: false, setScale: false } };

  // ---- a chart's place on the page ----

  /**
   * One chart element: draws a uPlot in it at its width (again when the width changes) or a
   * text when there is nothing to plot, and marks it with data-drawn. New figures for a chart
   * of the same make (same series, language and clock: the same `key`) go into the plot as it
   * is, so a cursor on it stays where it is; anything else builds the plot anew. The options'
   * functions read the figures from `slot.model`, the newest.
   */
  class Slot {
    constructor(el) {
      this.el = el;
      this.plot = null;
      this.spec = null;
      this.key = null;
      this.model = null;
      if (typeof ResizeObserver === "function") new ResizeObserver(() => this.fit()).observe(el);
      else window.addEventListener("resize", () => this.fit());
    }
    size() {
      const width = Math.floor(this.el.clientWidth);
      return { width, height: width < 520 ? 190 : 220 };
    }
    clear() {
      if (this.plot) { this.plot.destroy(); this.plot = null; }
      this.key = null;
      this.el.replaceChildren();
    }
    /**
     * Plots `data` (uPlot's columns) for `model`, the main series summing to `drawn`; the
     * options come from `makeOpts()` when the plot is built anew.
     */
    show(key, model, makeOpts, data, drawn) {
      this.model = model;
      this.el.dataset.drawn = String(drawn);
      if (this.plot && key === this.key) {
        this.spec.data = data;
        this.plot.setData(data);
        return;
      }
      this.clear();
      this.key = key;
      this.spec = { opts: makeOpts(), data };
      this.el.classList.remove("is-empty");
      this.fit();
    }
    /** Nothing to plot: a text instead, and data-drawn="0". */
    empty(text) {
      this.spec = null;
      this.clear();
      const p = document.createElement('p');
      p.className = "chart-empty";
      p.textContent = text;
      this.el.append(p);
      this.el.classList.add("is-empty");
      this.el.dataset.drawn = "0";
    }
    /** A failure with nothing drawn yet: says so (a chart already drawn stays as it was). */
    failed(text) {
      if (this.el.hasAttribute("data-drawn")) return;
      this.spec = null;
      this.clear();
      const p = document.createElement('p');
      p.className = "chart-empty chart-error";
      p.textContent = text;
      this.el.append(p);
    }
    fit() {
      if (!this.spec) return;
      const { width, height } = this.size();
      if (width < 120) return; // hidden or not laid out yet: drawn when it gets a width
      if (!this.plot) {
        this.plot = new uPlot({ ...this.spec.opts, width, height }, this.spec.data, this.el);
      } else if (this.plot.width !== width || this.plot.height !== height) {
        this.plot.setSize({ width, height });
      }
    }
  }
  const clockKey = (c) => [c.start, c.hourMs, c.offMs].join(",");

  // ---- the three charts ----

  /** Coverage this round: the street's line, and the chosen micro-grid's. */
  function drawCoverage(slot, m, ctx) {
    if (!m.households || !m.sum) {
      slot.empty(m.households ? ctx.t("chart.coverage.empty") : ctx.t("chart.coverage.no-households"));
      return;
    }
    const labels = [ctx.t("chart.time"), ctx.t("chart.coverage.street")];
    if (m.grid) labels.push(ctx.t("chart.coverage.grid", { grid: m.grid.id }));
    const key = ["coverage", clockKey(m.clock), ...labels, ctx.t("chart.pct", { n: 0 })].join("|");
    const data = m.grid ? [m.xs, m.pct, m.grid.pct] : [m.xs, m.pct];
    slot.show(key, m, () => {
      const M = () => slot.model;
      const c = m.clock;
      // Without a cursor on the chart the legend shows the latest point: now.
      const xText = (i) => {
        const xs = M().xs, last = xs.length - 1, at = i == null ? last : i;
        // The last point is now (minutes matter); the others are the ends of whole hours.
        return clockText(c.start + xs[at] * c.hourMs, c.offMs, at === last);
      };
      const valueText = (line) => (u, v, si, i) => {
        const l = line(), at = i == null ? l.cum.length - 1 : i;
        return ctx.t("chart.coverage.value", { pct: l.pct[at], visited: l.cum[at], households: l.households });
      };
      const series = [
        { label: labels[0], value: (u, v, si, i) => xText(i) },
        { label: labels[1], stroke: COLOR.street, width: 2, fill: COLOR.streetFill, points: { size: 5 }, value: valueText(M) },
      ];
      if (m.grid) {
        series.push({ label: labels[2], stroke: COLOR.grid, width: 2, dash: [6, 3], points: { size: 5 }, value: valueText(() => M().grid) });
      }
      return {
        class: "chart-plot",
        legend: { live: true },
        cursor: noZoom,
        scales: { x: { time: false, range: () => [0, Math.max(1, M().span)] }, y: { range: () => [0, 100] } },
        axes: [
          hourAxis(ctx, c),
          {
            scale: "y",
            font: FONT,
            stroke: COLOR.axis,
            grid: { stroke: COLOR.grid_line, width: 1 },
            ticks: { show: false },
            size: 42,
            splits: () => [0, 25, 50, 75, 100],
            values: (u, splits) => splits.map((v) => ctx.t("chart.pct", { n: v })),
          },
        ],
        series,
      };
    }, data, m.sum);
  }

  /** Needs reported and items delivered per hour, as bars side by side. */
  function drawNeeds(slot, m, ctx) {
    if (!m.sum) { slot.empty(ctx.t("chart.needs.empty")); return; }
    const labels = [ctx.t("chart.time"), ctx.t("chart.needs.reported"), ctx.t("chart.needs.delivered"), ctx.t("chart.needs.axis")];
    const key = ["needs", clockKey(m.clock), ...labels].join("|");
    slot.show(key, m, () => {
      const M = () => slot.model;
      const c = m.clock;
      // Without a cursor on the chart the legend shows the round's totals.
      const hourText = (i) => {
        if (i == null) return ctx.t("chart.needs.round");
        const h = M().hours[i];
        if (!h) return "–";
        const from = c.start + h.hour * c.hourMs;
        return clockText(from, c.offMs, true) + "–" + clockText(from + c.hourMs, c.offMs, true);
      };
      const count = (total) => (u, v, si, i) => ctx.num(i == null ? total() : v);
      const bars = (align) => uPlot.paths.bars({ size: [0.42, 22, 1], align, gap: 0 });
      return {
        class: "chart-plot",
        legend: { live: true },
        cursor: { ...noZoom, points: { show: false } },
        scales: { x: { time: false, range: () => [0, Math.max(1, M().span)] }, y: { range: countRange } },
        axes: [hourAxis(ctx, c), countAxis(ctx, labels[3])],
        series: [
          { label: labels[0], value: (u, v, si, i) => hourText(i) },
          { label: labels[1], stroke: COLOR.needs, fill: COLOR.needs, width: 0, paths: bars(-1), points: { show: false }, value: count(() => M().sumReported) },
          { label: labels[2], stroke: COLOR.delivered, fill: COLOR.delivered, width: 0, paths: bars(1), points: { show: false }, value: count(() => M().sumDelivered) },
        ],
      };
    }, [m.xs, m.reported, m.delivered], m.sum);
  }

  /** Devices by when they were last heard from: one bar per bucket. */
  function drawFreshness(slot, m, ctx) {
    if (!m.total) { slot.empty(ctx.t("chart.freshness.empty")); return; }
    const buckets = [
      ctx.t("chart.freshness.lt1h"),
      ctx.t("chart.freshness.1-3h"),
      ctx.t("chart.freshness.3-6h"),
      ctx.t("chart.freshness.6-12h"),
      ctx.t("chart.freshness.gt12h"),
      ctx.t("chart.freshness.never"),
    ];
    const labels = [ctx.t("chart.freshness.bucket"), ctx.t("chart.freshness.devices"), ctx.t("chart.freshness.axis"), ctx.t("chart.freshness.all")];
    const xs = buckets.map((_, i) => i);
    const key = ["freshness", ...buckets, ...labels].join("|");
    slot.show(key, m, () => ({
      class: "chart-plot",
      legend: { live: true },
      cursor: { ...noZoom, points: { show: false } },
      scales: { x: { time: false, range: () => [-0.5, buckets.length - 0.5] }, y: { range: countRange } },
      axes: [
        {
          scale: "x",
          font: FONT,
          stroke: COLOR.axis,
          grid: { show: false },
          ticks: { show: false },
          size: (u, values) => (values && values.some((v) => String(v).includes("\n")) ? 40 : 22),
          gap: 3,
          splits: () => xs,
          // Each label fits its bar's slot (two lines when needed).
          values: (u) => {
            const plotPx = u.bbox && u.bbox.width ? u.bbox.width / (window.devicePixelRatio || 1) : u.width - 40;
            return buckets.map((l) => fitLabel(l, plotPx / buckets.length - 6));
          },
          label: labels[2],
          labelFont: FONT,
          labelSize: 14,
          labelGap: 0,
        },
        countAxis(ctx, labels[1]),
      ],
      series: [
        // Without a cursor on the chart the legend shows every device.
        { label: labels[0], value: (u, v, si, i) => (i == null ? labels[3] : buckets[i]) },
        {
          label: labels[1],
          stroke: COLOR.street,
          fill: COLOR.street,
          width: 0,
          points: { show: false },
          paths: uPlot.paths.bars({ size: [0.7, 48, 1], disp: { fill: { unit: 3, values: () => BUCKET_COLORS } } }),
          value: (u, v, si, i) => ctx.num(i == null ? slot.model.total : v),
        },
      ],
    }), [xs, m.counts], m.total);
  }

  return { coverage, needs, freshness, Slot, drawCoverage, drawNeeds, drawFreshness };
})();
