// The office dashboard's script (served at /assets/dashboard.js, after /i18n.js, /assets/uplot.js
// and /assets/charts.js: the page has no inline script or style, for a strict CSP). Figures come
// from /api/v1 and refresh on the server-sent summary events; texts from /i18n/{zh,en}.json,
// with the English in the page's markup as the fallback.
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

// ---- language: tables from /i18n/{zh,en}.json; the English in this page is the fallback ----
const EN = {};
for (const root of [document, $("en-texts").content]) {
  for (const el of root.querySelectorAll("[data-i18n]")) EN[el.dataset.i18n] = el.textContent;
  for (const el of root.querySelectorAll("[data-i18n-title]")) EN[el.dataset.i18nTitle] = el.title;
}
const L = { lang: "en", dict: {}, nf: new Intl.NumberFormat('en'), seq: 0 };
const num = (n) => (typeof n === "number" && isFinite(n) ? L.nf.format(n) : "–");
// Text of a key; {name} placeholders from vars (numbers formatted for the language).
function t(key, vars) {
  let s = Object.prototype.hasOwnProperty.call(L.dict, key) ? L.dict[key] : EN[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] == null ? m : typeof vars[k] === "number" ? num(vars[k]) : String(vars[k])));
  return s;
}
// A value from a closed vocabulary (outcome, flag, need, item, status); unknown values as sent.
function tv(prefix, value) {
  const k = prefix + "." + value;
  if (Object.prototype.hasOwnProperty.call(L.dict, k)) return L.dict[k];
  return EN[k] ?? String(value);
}
async function setLang(lang, remember) {
  if (remember) { try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* storage off */ } }
  const seq = ++L.seq;
  let dict = {}, shown = "en", failed = false;
  try { dict = await loadTable(lang); shown = lang; } catch (e) { failed = true; }
  if (seq !== L.seq) return;
  L.dict = dict; L.lang = shown;
  L.nf = new Intl.NumberFormat(shown === "zh" ? "zh-CN" : "en");
  document.documentElement.lang = shown === "zh" ? "zh-CN" : "en";
  if (failed) log(() => t("error.i18n", { lang: lang === "zh" ? "中文" : "English" }));
  renderAll();
}
function applyStatic() {
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-title]")) {
    el.title = t(el.dataset.i18nTitle);
    if (el.hasAttribute("aria-label")) el.setAttribute("aria-label", el.title);
  }
  for (const b of document.querySelectorAll(".langs [data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === L.lang));
}

// ---- time: in the street's time zone (summary.utc_offset_minutes; Ningbo until told) ----
let offsetMin = 480;
const pad = (n) => String(n).padStart(2, "0");
function parts(ms) {
  const d = new Date(ms + offsetMin * 60000);
  return { y: d.getUTCFullYear(), mo: pad(d.getUTCMonth() + 1), d: pad(d.getUTCDate()), h: pad(d.getUTCHours()), mi: pad(d.getUTCMinutes()), s: pad(d.getUTCSeconds()) };
}
const fmtTime = (ms) => { if (!ms) return "–"; const p = parts(ms); return `${p.y}-${p.mo}-${p.d} ${p.h}:${p.mi}`; };
const fmtClock = (ms) => { const p = parts(ms); return `${p.h}:${p.mi}:${p.s}`; };
function fmtAgo(ageMs) {
  if (ageMs == null) return "–";
  const s = Math.max(0, ageMs / 1000);
  if (s < 60) return t("time.just-now");
  if (s < 3600) return t("time.min-ago", { n: Math.floor(s / 60) });
  if (s < 172800) return t("time.h-ago", { n: Math.floor(s / 3600) });
  return t("time.d-ago", { n: Math.floor(s / 86400) });
}
const pct = (a, b) => b ? Math.round(100 * a / b) : 0;

// ---- data: the last answers, rendered again when the language changes ----
let view = { grid: null, building: null };
const last = { summary: null, drill: null, needs: null, devices: null, devicesAt: 0 };
let conn = "connecting";
const entries = [];

function failure(path, text) { const e = new Error(path); e.text = text; return e; }
const errText = (e) => (e && e.text ? e.text() : String(e && e.message || e));
async function api(path) {
  let r;
  try {
    r = await fetch(path, { credentials: "same-origin", headers: { "Accept": "application/json" } });
  } catch (e) { throw failure(path, () => t("error.network", { path })); }
  if (r.status === 401) { location.href = "/login"; throw failure(path, () => t("error.signed-out")); }
  if (!r.ok) {
    const e = failure(path, () => t("error.http", { path, status: String(r.status) }));
    e.status = r.status;
    throw e;
  }
  return r.json();
}

function setSummary(s) {
  if (typeof s.utc_offset_minutes === "number") offsetMin = s.utc_offset_minutes;
  last.summary = s;
  renderSummary();
}
function renderSummary() {
  const s = last.summary;
  $("street-name").textContent = s ? s.street : t("hdr.street");
  if (!s) return;
  const tt = s.totals;
  $("round-start").textContent = fmtTime(s.round_start_ms);
  $("last-update").textContent = fmtClock(s.generated_ms || Date.now());
  $("households-count").textContent = num(tt.households);
  $("visited-count").textContent = num(tt.visited);
  $("unvisited-count").textContent = num(tt.unvisited);
  $("contacted-count").textContent = num(tt.contacted);
  $("not-home-count").textContent = num(tt.not_home);
  $("refused-count").textContent = num(tt.refused);
  $("never-reached-count").textContent = num(tt.never_reached);
  $("special-needs-count").textContent = num(tt.special_needs_households);
  $("open-needs-count").textContent = num(tt.open_needs_households);
  $("deliveries-pending").textContent = num(tt.deliveries.pending);
  $("deliveries-delivered").textContent = num(tt.deliveries.delivered);
  $("deliveries-failed").textContent = num(tt.deliveries.failed);
  $("sweep-coverage").textContent = num(tt.sweep.units_covered) + "/" + num(tt.sweep.units);
  $("records-count").textContent = num(tt.records.visits + tt.records.deliveries + tt.records.sweeps + tt.records.corrections);
  const openNeeds = Object.values(tt.open_needs || {}).reduce((a, b) => a + b, 0);
  $("chart-open-needs").textContent = t("chart.needs.open", { needs: openNeeds, households: tt.open_needs_households });
}

// The bar's width is set from data-pct after the markup is in the page (setBarWidths): a
// style attribute in markup is refused by the page's content security policy.
function bar(a, b) {
  return `<div class="bar" title="${esc(t("drill.bar-title", { visited: a, households: b }))}"><span data-pct="${pct(a, b)}"></span></div>`;
}
function setBarWidths(root) {
  for (const s of root.querySelectorAll(".bar > span[data-pct]")) s.style.width = Math.min(100, Number(s.dataset.pct) || 0) + "%";
}
function rowsFor(items, level) {
  if (!items.length) return `<tr><td class="empty" colspan="6">${esc(t("drill.none"))}</td></tr>`;
  return items.map((x) => {
    const tt = x.totals;
    return `<tr class="click" data-level="${level}" data-id="${esc(x.id)}">
      <td>${esc(x.id)}</td><td class="num" data-label="${esc(t("th.households"))}">${num(tt.households)}</td>
      <td data-label="${esc(t("th.visited"))}">${num(tt.visited)} ${bar(tt.visited, tt.households)}</td>
      <td class="num" data-label="${esc(t("th.never-reached"))}">${num(tt.never_reached)}</td>
      <td class="num" data-label="${esc(t("th.open-needs"))}">${num(tt.open_needs_households)}</td>
      <td class="num" data-label="${esc(t("th.pending"))}">${num(tt.deliveries.pending)}</td></tr>`;
  }).join("");
}
const flagTags = (flags) => flags.map((f) => `<span class="tag flag">${esc(tv("flag", f))}</span>`).join("");
const needTags = (needs) => Object.entries(needs).map(([n, d]) =>
  `<span class="tag">${esc(d ? t("fmt.need-detail", { need: tv("need", n), detail: d }) : tv("need", n))}</span>`).join("");

async function showDrill() {
  const want = { grid: view.grid, building: view.building };
  let data;
  if (want.building) data = await api("/api/v1/buildings/" + encodeURIComponent(want.building));
  else data = await api("/api/v1/places" + (want.grid ? "?grid=" + encodeURIComponent(want.grid) : ""));
  if (want.grid !== view.grid || want.building !== view.building) return;
  if (!want.grid && !want.building) setGridChoices(data.communities.flatMap((c) => c.grids).map((g) => g.id));
  last.drill = { view: want, data };
  renderDrill();
}
function renderDrill() {
  const table = $("grid-table"), detail = $("building-detail"), crumbs = $("drill-crumbs");
  let trail = `<a data-go="top">${esc(t("drill.top"))}</a>`;
  if (!last.drill) { crumbs.innerHTML = trail; return; }
  const { view: v, data } = last.drill;
  if (v.building) {
    const b = data;
    trail += ` › <a data-go="grid">${esc(b.grid)}</a> › ${esc(b.building)}`;
    table.hidden = true; detail.hidden = false; $("drill").classList.add("wide");
    detail.innerHTML = `<table id="household-table" class="stack"><thead><tr><th>${esc(t("th.household"))}</th><th>${esc(t("th.door"))}</th><th>${esc(t("th.this-round"))}</th><th class="num">${esc(t("th.visits"))}</th><th>${esc(t("th.latest"))}</th><th>${esc(t("th.flags"))}</th><th>${esc(t("th.open-needs"))}</th><th>${esc(t("th.deliveries"))}</th></tr></thead><tbody>${
      b.households.map((h) => `<tr data-household="${esc(h.id)}"><td>${esc(h.id)}</td><td data-label="${esc(t("th.door"))}">${esc(h.door)}</td>
        <td data-label="${esc(t("th.this-round"))}">${h.round_outcome ? esc(tv("outcome", h.round_outcome)) : "–"}</td>
        <td class="num" data-label="${esc(t("th.visits"))}">${num(h.visits)}</td>
        <td data-label="${esc(t("th.latest"))}">${h.latest_visit ? latestVisit(h.latest_visit) : "–"}</td>
        <td class="tags">${flagTags(h.flags)}</td><td class="tags">${needTags(h.open_needs)}</td>
        <td class="tags">${h.deliveries.map((d) => `<span class="tag st st-${esc(d.status)}">${esc(t("delivery.tag", { item: tv("item", d.item), status: tv("status", d.status) }))}</span>`).join("")}</td></tr>`).join("")
    }</tbody></table>`;
  } else {
    table.hidden = false; detail.hidden = true; $("drill").classList.remove("wide");
    const place = v.grid ? t("th.building") : t("th.grid");
    table.tHead.innerHTML = `<tr><th>${esc(place)}</th><th class="num">${esc(t("th.households"))}</th><th>${esc(t("th.visited"))}</th><th class="num">${esc(t("th.never-reached"))}</th><th class="num">${esc(t("th.open-needs"))}</th><th class="num">${esc(t("th.pending"))}</th></tr>`;
    const grids = data.communities.flatMap((c) => c.grids);
    if (v.grid) {
      trail += ` › ${esc(v.grid)}`;
      table.tBodies[0].innerHTML = rowsFor(grids.flatMap((g) => g.buildings), "building");
    } else {
      table.tBodies[0].innerHTML = rowsFor(grids, "grid");
    }
    setBarWidths(table.tBodies[0]);
  }
  crumbs.innerHTML = trail;
}
function latestVisit(lv) {
  let s = esc(tv("outcome", lv.outcome)) + " " + esc(fmtTime(lv.at_ms));
  if (lv.clock_ahead) {
    const tip = t("visit.clock-ahead.title", { claimed: fmtTime(lv.claimed_at_ms), seen: fmtTime(lv.at_ms) });
    s += ` <span class="tag" title="${esc(tip)}">${esc(t("visit.clock-ahead"))}</span>`;
  }
  return s;
}

async function showNeeds() {
  last.needs = await api("/api/v1/needs?limit=200");
  renderNeeds();
}
function renderNeeds() {
  const n = last.needs;
  if (!n) return;
  $("needs-total").textContent = t("needs.count", { n: n.total });
  $("needs-list").tBodies[0].innerHTML = n.households.length ? n.households.map((h) => `<tr data-household="${esc(h.id)}">
    <td>${esc(h.id)}</td><td data-label="${esc(t("th.building"))}">${esc(h.building)}</td><td data-label="${esc(t("th.door"))}">${esc(h.door)}</td>
    <td class="tags">${needTags(h.open_needs)}</td><td class="tags">${flagTags(h.flags)}</td></tr>`).join("")
    : `<tr><td class="empty" colspan="5">${esc(t("needs.none"))}</td></tr>`;
}

async function showDevices() {
  last.devices = await api("/api/v1/devices");
  last.devicesAt = Date.now();
  renderDevices();
}
function linkText(x) {
  if (x.local) return t("link.local");
  if (x.peer) return x.peer.connected ? t("link.connected") : t("link.disconnected");
  return t("link.relay");
}
function renderDevices() {
  const d = last.devices;
  if (!d) return;
  const since = Date.now() - last.devicesAt;
  $("devices-table").tBodies[0].innerHTML = d.devices.length ? d.devices.map((x) => {
    const behind = x.behind_ms == null ? null : x.behind_ms + since;
    return `<tr data-device="${esc(x.device)}">
    <td>${esc(x.device)}</td><td class="num" data-label="${esc(t("th.records"))}">${num(x.records)}</td>
    <td data-label="${esc(t("th.last-contact"))}">${esc(fmtTime(x.last_contact_ms))}</td>
    <td class="${behind > 3600000 ? "stale" : ""}" data-label="${esc(t("th.behind"))}">${esc(fmtAgo(behind))}</td>
    <td data-label="${esc(t("th.link"))}">${esc(linkText(x))}</td><td class="tags">${trustTags(x)}</td></tr>`;
  }).join("") : `<tr><td class="empty" colspan="6">${esc(t("devices.none"))}</td></tr>`;
}

// Evidence against a device: two histories signed by its key (revoke it), or a clock that
// runs ahead (its records count from when the office first saw them).
function trustTags(x) {
  const tags = [];
  if (x.equivocation) tags.push(`<span class="tag stale" data-trust="equivocation" title="${esc(t("trust.equivocation.title", { device: x.device }))}">${esc(t("trust.equivocation"))}</span>`);
  if (x.clock_ahead > 0) tags.push(`<span class="tag" data-trust="clock-ahead" title="${esc(t("trust.clock-ahead.title"))}">${esc(t("trust.clock-ahead", { n: x.clock_ahead }))}</span>`);
  return tags.join("");
}

// Log lines keep a function of the language, so a switch rewrites them too.
function log(text) {
  entries.unshift({ ms: Date.now(), text });
  if (entries.length > 50) entries.length = 50;
  renderLog();
}
function renderLog() {
  const ul = $("event-log");
  ul.replaceChildren(...entries.map((e) => {
    const li = document.createElement('li');
    li.textContent = fmtClock(e.ms) + " " + e.text();
    return li;
  }));
}
function renderConn() {
  $("connection-state").textContent = conn === "live" ? t("conn.live") : conn === "reconnecting" ? t("conn.reconnecting") : t("conn.connecting");
}

// ---- charts (charts.js draws them): this round's coverage, needs and deliveries per hour from
// /api/v1/timeline, devices by when they were last heard from (/api/v1/devices) ----
const charts = {
  coverage: new Charts.Slot(document.querySelector('[data-chart="coverage"]')),
  needs: new Charts.Slot(document.querySelector('[data-chart="needs"]')),
  freshness: new Charts.Slot(document.querySelector('[data-chart="freshness"]')),
  grid: "",          // the micro-grid drawn beside the street on the coverage chart ("" none)
  timeline: null,    // the street's /api/v1/timeline
  gridTimeline: null, // { id, tl } of the chosen micro-grid
  error: null,       // why the last timeline could not be loaded (a function of the language)
};
const chartCtx = { t, num };

function setGridChoices(ids) {
  const select = $("coverage-grid");
  const want = new Set(ids);
  if (charts.grid) want.add(charts.grid);
  const have = [...select.options].slice(1).map((o) => o.value);
  const list = [...want];
  if (have.length === list.length && have.every((v, i) => v === list[i])) return;
  select.replaceChildren(select.options[0], ...list.map((id) => {
    const o = document.createElement('option');
    o.value = id;
    o.textContent = id;
    return o;
  }));
  select.value = charts.grid;
}

// A micro-grid the timeline does not know (404) leaves the coverage chart to the street; after
// another failure the grid's last line stays until the next load.
function gridFailed(grid, e) {
  if (e.status === 404) {
    log(() => t("chart.coverage.grid-unknown", { grid }));
    charts.grid = "";
    charts.gridTimeline = null;
    $("coverage-grid").value = "";
  } else {
    log(() => t("log.refresh-failed", { error: errText(e) }));
  }
}

async function loadTimelines() {
  const grid = charts.grid;
  const [street, gridTl] = await Promise.all([
    api("/api/v1/timeline"),
    grid ? api("/api/v1/timeline?grid=" + encodeURIComponent(grid)).catch((e) => ({ failed: e })) : null,
  ]);
  charts.timeline = street;
  charts.error = null;
  if (grid !== charts.grid) return; // the choice changed meanwhile; its own load follows
  if (gridTl && gridTl.failed) gridFailed(grid, gridTl.failed);
  else charts.gridTimeline = gridTl ? { id: grid, tl: gridTl } : null;
}

function renderCharts() {
  renderFreshness();
  if (charts.timeline) {
    const g = charts.gridTimeline && charts.gridTimeline.id === charts.grid ? charts.gridTimeline : null;
    Charts.drawCoverage(charts.coverage, Charts.coverage(charts.timeline, g), chartCtx);
    Charts.drawNeeds(charts.needs, Charts.needs(charts.timeline), chartCtx);
  } else if (charts.error) {
    const text = t("chart.error", { error: charts.error() });
    charts.coverage.failed(text);
    charts.needs.failed(text);
  }
}
function renderFreshness() {
  const note = $("chart-fresh-devices");
  if (!last.devices) { note.textContent = ""; return; }
  const m = Charts.freshness(last.devices);
  note.textContent = m.total ? t("chart.freshness.note", { recent: m.recent, total: m.total }) : "";
  Charts.drawFreshness(charts.freshness, m, chartCtx);
}

// The charts follow the same signal as the tables, at most once every 5 seconds: a burst of
// changes gives one load now and one after it, not one per change.
const CHARTS_EVERY_MS = 5000;
let chartsTimer = null, chartsAt = 0;
function chartsSoon() {
  if (chartsTimer) return;
  chartsTimer = setTimeout(() => {
    chartsTimer = null;
    chartsAt = Date.now();
    loadTimelines().catch((e) => {
      charts.error = () => errText(e);
      log(() => t("log.refresh-failed", { error: errText(e) }));
    }).finally(renderCharts);
  }, Math.max(0, chartsAt + CHARTS_EVERY_MS - Date.now()));
}

$("coverage-grid").addEventListener("change", (e) => {
  charts.grid = e.target.value;
  charts.gridTimeline = null;
  if (!charts.grid) { renderCharts(); return; }
  const grid = charts.grid;
  api("/api/v1/timeline?grid=" + encodeURIComponent(grid)).then((tl) => {
    if (grid === charts.grid) { charts.gridTimeline = { id: grid, tl }; renderCharts(); }
  }).catch((err) => {
    if (grid === charts.grid) { gridFailed(grid, err); renderCharts(); }
  });
});

function renderAll() {
  applyStatic();
  renderConn();
  renderSummary();
  renderDrill();
  renderNeeds();
  renderDevices();
  renderLog();
  renderCharts();
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    Promise.all([showDrill(), showNeeds(), showDevices()])
      .catch((e) => log(() => t("log.refresh-failed", { error: errText(e) })))
      .finally(chartsSoon);
  }, 300);
}

document.addEventListener("click", (e) => {
  const lang = e.target.closest('.langs [data-lang]');
  if (lang) { setLang(lang.dataset.lang, true); return; }
  const go = e.target.closest('[data-go]');
  if (go) {
    if (go.dataset.go === "top") view = { grid: null, building: null };
    if (go.dataset.go === "grid") view.building = null;
    showDrill().catch((err) => log(() => errText(err)));
    return;
  }
  const row = e.target.closest('tr.click');
  if (!row) return;
  if (row.dataset.level === "grid") view = { grid: row.dataset.id, building: null };
  else if (row.dataset.level === "building") view.building = row.dataset.id;
  showDrill().catch((err) => log(() => errText(err)));
});

function listen() {
  const es = new EventSource("/api/v1/events");
  es.addEventListener("open", () => {
    if (conn !== "live") log(() => t("log.connected"));
    conn = "live"; renderConn();
  });
  es.addEventListener("summary", (ev) => {
    const s = JSON.parse(ev.data);
    setSummary(s);
    const v = { version: String(s.version), visited: s.totals.visited, households: s.totals.households, open: s.totals.open_needs_households };
    log(() => t("log.summary", v));
    refreshSoon();
  });
  es.addEventListener("error", () => {
    if (conn === "live") log(() => t("log.lost"));
    conn = "reconnecting"; renderConn();
  });
}

// Ages in the device list keep moving between refreshes.
setInterval(renderDevices, 30000);

// The texts first (English from this page if they cannot be loaded), then the figures.
const firstSummary = api("/api/v1/summary");
firstSummary.catch(() => {});
setLang(pickLang(), false).then(() => {
  firstSummary.then((s) => { if (!last.summary || s.version >= last.summary.version) setSummary(s); }).catch((e) => log(() => errText(e)));
  refreshSoon();
  listen();
});
