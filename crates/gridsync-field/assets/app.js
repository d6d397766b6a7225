/* gridsync field app: vanilla JS, no build step. Served at /app.js.
 * Translation keys: every string literal passed to t() below, plus vocabulary keys built as prefix.value by tv() (see VOCAB). */
'use strict';
(function () {
  var VOCAB = {
    outcome: ['contacted', 'not-home', 'refused', 'moved-out', 'vacant'],
    flag: ['elderly-living-alone', 'child', 'pregnant', 'disability', 'chronic-illness'],
    need: ['medicine', 'medical-trip', 'food', 'water', 'baby-supplies', 'hygiene', 'counselling', 'other'],
    item: ['food-pack', 'medicine', 'water', 'baby-supplies', 'hygiene-kit', 'test-kit', 'other'],
    status: ['requested', 'out-for-delivery', 'delivered', 'failed', 'cancelled'],
    zone: ['lockdown', 'control', 'prevention'],
    role: ['volunteer', 'captain', 'relay', 'office'],
    sync: ['device', 'captain', 'office'],
    kind: ['visit', 'delivery', 'sweep', 'correction'],
    conflict: ['visit-outcomes', 'delivery-failed-and-delivered']
  };
  var DELIVERY_BUTTONS = ['requested', 'out-for-delivery', 'delivered', 'failed'];
  var SYNC_ICON = { device: '◯', captain: '◑', office: '●' };
  var A = '/api/v1';

  var S = {
    lang: 'zh', dict: {}, me: null, skew: 0, token: 0, acts: {}, onInput: null,
    drafts: {}, recs: {}, hh: {}, open: {}, det: {}, q: '', lastHash: '', hash: '', sig: '', refreshing: false
  };
  var main, top, tabs, errBox, toastBox, toastTimer, searchTimer;

  /* ---------- helpers ---------- */
  function $(s, r) { return (r || document).querySelector(s); }
  function $$(s, r) { return Array.prototype.slice.call((r || document).querySelectorAll(s)); }
  function esc(v) {
    return String(v == null ? '' : v).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function t(key, vars) {
    var s = Object.prototype.hasOwnProperty.call(S.dict, key) ? S.dict[key] : key;
    if (vars) s = s.replace(/\{(\w+)\}/g, function (m, k) { return vars[k] != null ? vars[k] : m; });
    return s;
  }
  /* vocabulary value -> text; unknown values are shown as sent */
  function tv(prefix, v) {
    var k = prefix + '.' + v;
    return Object.prototype.hasOwnProperty.call(S.dict, k) ? S.dict[k] : String(v);
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function dparts(ms) {
    var off = S.me && typeof S.me.utc_offset_minutes === 'number' ? S.me.utc_offset_minutes : 480;
    var d = new Date(ms + off * 60000);
    return [d.getUTCFullYear(), pad(d.getUTCMonth() + 1), pad(d.getUTCDate()), pad(d.getUTCHours()), pad(d.getUTCMinutes())];
  }
  function fmtShort(ms) { var p = dparts(ms); return p[1] + '-' + p[2] + ' ' + p[3] + ':' + p[4]; }
  function fmtFull(ms) { var p = dparts(ms); return p[0] + '-' + p[1] + '-' + p[2] + ' ' + p[3] + ':' + p[4]; }
  function now() { return Date.now() + S.skew; }
  function ago(ms) {
    var s = Math.max(0, (now() - ms) / 1000);
    if (s < 60) return t('time.just-now');
    if (s < 3600) return t('time.min-ago', { n: Math.floor(s / 60) });
    if (s < 172800) return t('time.h-ago', { n: Math.floor(s / 3600) });
    return t('time.d-ago', { n: Math.floor(s / 86400) });
  }
  function when(ms) {
    if (ms == null) return '';
    return '<time title="' + fmtFull(ms) + '">' + fmtShort(ms) + ' · ' + esc(ago(ms)) + '</time>';
  }
  function shortId(id) { id = String(id || ''); return id.length > 8 ? '…' + id.slice(-6) : id; }
  function enc(s) { return encodeURIComponent(s); }
  function keepRecs(list) { (list || []).forEach(function (r) { if (r && r.id) S.recs[r.id] = r; }); }
  function keepHH(list) { (list || []).forEach(function (h) { if (h && h.household) S.hh[h.household] = h; }); }
  function doorOf(hid) { var h = S.hh[hid]; return h ? h.door : hid; }
  function mine(r) { return S.me && r.by === S.me.node_id; }
  function natCmp(a, b) { return String(a).localeCompare(String(b), undefined, { numeric: true }); }

  /* ---------- API ---------- */
  function ApiError(status, msg, silent) { this.status = status; this.message = msg; this.silent = !!silent; }
  function api(method, path, body) {
    var opt = { method: method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
    if (body !== undefined) { opt.headers['Content-Type'] = 'application/json'; opt.body = JSON.stringify(body); }
    return fetch(path, opt).then(function (res) {
      if (res.status === 401 && path !== A + '/login') {
        needLogin();
        throw new ApiError(401, t('pin.again'), true);
      }
      if (res.status === 204) return null;
      return res.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
        if (!res.ok) throw new ApiError(res.status, (data && data.error) || t('error.http', { status: res.status }));
        return data;
      });
    }, function () { throw new ApiError(0, t('error.network')); });
  }
  function fail(e) {
    if (e && e.silent) return;
    showError(e && e.message ? e.message : String(e));
  }

  /* ---------- chrome: header, tabs, banners ---------- */
  function showError(msg) {
    errBox.innerHTML = '<span class="msg">⚠ ' + esc(msg) + '</span><button type="button" class="x" aria-label="' + esc(t('common.close')) + '" title="' + esc(t('common.close')) + '"></button>';
    errBox.hidden = false;
    $('.x', errBox).onclick = clearError;
  }
  function clearError() { errBox.hidden = true; errBox.innerHTML = ''; }
  function toast(msg) {
    toastBox.textContent = msg;
    toastBox.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastBox.hidden = true; }, 4000);
  }
  function renderChrome(screen) {
    var me = S.me, html;
    html =
      '<div class="who">' + (me ? '<b>' + esc(me.node_id) + '</b><small>' + esc(tv('role', me.role)) + (me.street ? ' · ' + esc(me.street) : '') + '</small>'
        : '<b>gridsync</b>') + '</div>' +
      '<div class="langs" role="group" aria-label="Language">' +
      '<button type="button" data-testid="lang-zh" lang="zh-CN" aria-pressed="' + (S.lang === 'zh') + '">中文</button>' +
      '<button type="button" data-testid="lang-en" lang="en" aria-pressed="' + (S.lang === 'en') + '">English</button></div>' +
      (me ? '<button type="button" class="out" data-testid="logout">' + esc(t('nav.logout')) + '</button>' : '');
    if (html !== S.topHtml) {
      /* only when it changed, so elements a test already found stay attached */
      S.topHtml = html;
      top.innerHTML = html;
      $('[data-testid=lang-zh]', top).onclick = function () { setLang('zh'); };
      $('[data-testid=lang-en]', top).onclick = function () { setLang('en'); };
      if (me) $('[data-testid=logout]', top).onclick = logout;
    }
    if (!me || screen === 'pin') { tabs.hidden = true; tabs.innerHTML = ''; S.tabsHtml = ''; return; }
    var cur = { assignments: 'assignments', household: 'assignments', visit: 'assignments', deliveries: 'assignments', sweep: 'assignments',
      records: 'records', correct: 'records', sync: 'sync', review: 'review', 'review-building': 'review' }[screen];
    var list = [['assignments', '#/', '▦'], ['records', '#/records', '☰'], ['sync', '#/sync', '⇅']];
    if (me.role === 'captain' || me.role === 'office') list.push(['review', '#/review', '✔']);
    html = list.map(function (x) {
      return '<a href="' + x[1] + '" data-testid="tab-' + x[0] + '"' + (cur === x[0] ? ' aria-current="page"' : '') +
        '><span class="ico" aria-hidden="true">' + x[2] + '</span><span>' + esc(tv('nav', x[0])) + '</span></a>';
    }).join('');
    if (html !== S.tabsHtml) { S.tabsHtml = html; tabs.innerHTML = html; }
    tabs.hidden = false;
  }

  function loadLang(l) {
    return fetch('/i18n/' + l + '.json', { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('i18n ' + r.status);
      return r.json();
    }).then(function (d) {
      S.dict = d; S.lang = l;
      document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
      document.title = t('app.title');
    });
  }
  function setLang(l) {
    S.token++;
    main.removeAttribute('data-screen');
    try { localStorage.setItem('gridsync.lang', l); } catch (e) { /* private mode */ }
    loadLang(l).then(function () { route(true); }, function () { showError('i18n ' + l); });
  }
  function pickLang() {
    var saved = null;
    try { saved = localStorage.getItem('gridsync.lang'); } catch (e) { /* ignore */ }
    if (saved === 'zh' || saved === 'en') return saved;
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
    return /^zh/i.test(langs[0] || '') ? 'zh' : 'en';
  }

  /* ---------- small renderers ---------- */
  function zoneBadge(z) {
    if (!z) return '';
    var ico = { lockdown: '■', control: '▲', prevention: '●' }[z] || '◆';
    return '<span class="zone z-' + esc(z) + '"><span aria-hidden="true">' + ico + '</span> ' + esc(tv('zone', z)) + '</span>';
  }
  function flagBadges(flags) {
    return (flags || []).map(function (f) { return '<span class="badge b-flag"><span aria-hidden="true">★</span> ' + esc(tv('flag', f)) + '</span>'; }).join('');
  }
  function needBadges(needs, withDetail) {
    return (needs || []).map(function (n) {
      return '<span class="badge b-need"><span aria-hidden="true">✚</span> ' + esc(tv('need', n.need)) +
        (withDetail && n.detail ? esc(t('fmt.colon')) + esc(n.detail) : '') + '</span>';
    }).join('');
  }
  function syncMarker(sy) {
    return '<span class="sync s-' + esc(sy) + '" data-testid="sync-marker" data-sync="' + esc(sy) + '"><span aria-hidden="true">' +
      (SYNC_ICON[sy] || '?') + '</span> ' + esc(tv('sync', sy)) + '</span>';
  }
  function statusBadge(st) {
    if (!st) return '<span class="st st-none">' + esc(t('delivery.none')) + '</span>';
    var ico = { requested: '○', 'out-for-delivery': '➜', delivered: '✓', failed: '✕', cancelled: '—' }[st] || '';
    return '<span class="st st-' + esc(st) + '"><span aria-hidden="true">' + ico + '</span> ' + esc(tv('status', st)) + '</span>';
  }
  function visitState(h) {
    if (h.visited_this_round) {
      return '<span class="vs done"><span aria-hidden="true">✓</span> ' + esc(t('hh.visited')) +
        (h.latest_outcome ? ' · ' + esc(tv('outcome', h.latest_outcome)) : '') + (h.latest_visit_ms ? ' · ' + esc(ago(h.latest_visit_ms)) : '') + '</span>';
    }
    return '<span class="vs todo"><span aria-hidden="true">○</span> ' + esc(t('hh.todo')) +
      (h.latest_outcome ? ' · ' + esc(t('hh.last', { outcome: tv('outcome', h.latest_outcome) })) : '') + '</span>';
  }
  function hhRowB(h) { return hhRow(h, true); }
  function hhRow(h, showBuilding) {
    var special = (h.flags && h.flags.length) || (h.open_needs && h.open_needs.length);
    return '<a class="hrow' + (h.visited_this_round ? ' done' : ' todo') + (special ? ' special' : '') + '" href="#/household/' + enc(h.household) +
      '" data-testid="household-' + esc(h.household) + '">' +
      '<span class="hline"><span class="door">' + esc(h.door) + '</span><span class="muted">' + (showBuilding === true ? esc(h.building) + ' · ' : '') + esc(h.unit) + ' · ' +
      esc(t('hh.residents', { n: h.residents })) + '</span>' + zoneBadge(h.zone) + '</span>' +
      '<span class="hline">' + visitState(h) + '</span>' +
      (special ? '<span class="badges">' + flagBadges(h.flags) + needBadges(h.open_needs) + '</span>' : '') +
      '</a>';
  }
  function recBody(r) {
    var k = r.kind, out = '<span class="kind k-' + esc(k) + '">' + esc(tv('kind', k)) + '</span> ';
    if (k === 'visit') {
      out += '<b>' + esc(r.household ? doorOf(r.household) : r.building) + '</b> · <b>' + esc(tv('outcome', r.outcome)) + '</b>' +
        (r.people_seen != null ? ' · ' + esc(t('visit.people-seen', { n: r.people_seen })) : '');
      if ((r.flags && r.flags.length) || (r.needs && r.needs.length)) out += '<span class="badges">' + flagBadges(r.flags) + needBadges(r.needs, true) + '</span>';
      if (r.note) out += '<span class="note">“' + esc(r.note) + '”</span>';
    } else if (k === 'delivery') {
      out += '<b>' + esc(r.household ? doorOf(r.household) : r.building) + '</b> · ' + esc(tv('item', r.item)) + ' → ' + statusBadge(r.status) +
        (r.attempt ? ' · ' + esc(t('delivery.attempt', { n: r.attempt })) : '');
      if (r.detail) out += '<span class="note">“' + esc(r.detail) + '”</span>';
    } else if (k === 'sweep') {
      out += '<b>' + esc(r.building) + '</b> · ' + esc(t('sweep.round-n', { n: r.round })) +
        ((r.units && r.units.length) ? ' · ' + esc(r.units.join(', ')) : '') +
        '<span class="note">' + esc(t('sweep.summary', { reached: r.reached || 0, not_home: r.not_home || 0, refused: r.refused || 0 })) + '</span>';
      if (r.issues && r.issues.length) out += '<ul class="issues">' + r.issues.map(function (i) { return '<li>' + esc(i) + '</li>'; }).join('') + '</ul>';
    } else if (k === 'correction') {
      var tr = S.recs[r.target];
      out += (r.action === 'replace' && r.outcome ? esc(t('correct.replaced-with', { outcome: tv('outcome', r.outcome) }))
        : esc(t('correct.retracted-short'))) + ' · <span class="muted">' +
        esc(tr ? tv('kind', tr.kind) + ' ' + (tr.household ? doorOf(tr.household) : tr.building) : shortId(r.target)) + '</span>';
      if (r.reason) out += '<span class="note">' + esc(t('correct.reason')) + esc(t('fmt.colon')) + esc(r.reason) + '</span>';
    }
    return out;
  }
  /* opts: {link: bool (tap opens household), correct: bool, testid: bool, by: bool} */
  function recRow(r, opts) {
    opts = opts || {};
    var struck = r.retracted || r.corrected;
    var canFix = opts.correct && mine(r) && !struck && r.kind !== 'correction';
    var body = '<span class="rbody' + (struck ? ' struck' : '') + '">' + recBody(r) + '</span>';
    if (opts.link && r.household) body = '<a class="rlink" href="#/household/' + enc(r.household) + '">' + body + '</a>';
    return '<li class="rec' + (struck ? ' is-struck' : '') + '"' + (opts.testid === false ? '' : ' data-testid="record-' + esc(r.id) + '"') + '>' +
      body +
      (struck ? '<span class="strnote">' + esc(r.retracted ? t('rec.retracted') : t('rec.corrected')) + '</span>' : '') +
      '<span class="rfoot"><span class="rmeta">' + when(r.at_ms) + (opts.by !== false ? ' · ' + esc(r.by) : '') + ' ' + syncMarker(r.sync) + '</span>' +
      (canFix ? '<a class="btn small" href="#/correct/' + enc(r.building) + '/' + enc(r.id) + '" data-testid="correct-' + esc(r.id) + '">✎ ' + esc(t('rec.correct')) + '</a>' : '') +
      '</span></li>';
  }
  function recList(list, opts) {
    if (!list || !list.length) return '<p class="empty">' + esc(t('common.none')) + '</p>';
    return '<ul class="recs">' + list.map(function (r) { return recRow(r, opts); }).join('') + '</ul>';
  }
  function back(href, label) {
    return '<a class="back" href="' + href + '">‹ ' + esc(label) + '</a>';
  }
  function stepper(name, label, val, min) {
    return '<div class="steprow"><span class="slabel" id="lbl-' + name + '">' + esc(label) + '</span><div class="stepper">' +
      '<button type="button" class="sbtn" data-act="step" data-name="' + name + '" data-d="-1" data-testid="' + name + '-minus" aria-label="−">−</button>' +
      '<input type="number" inputmode="numeric" min="' + (min || 0) + '" data-field="' + name + '" data-testid="' + name + '-value" value="' + esc(val) + '" aria-labelledby="lbl-' + name + '">' +
      '<button type="button" class="sbtn" data-act="step" data-name="' + name + '" data-d="1" data-testid="' + name + '-plus" aria-label="+">＋</button></div></div>';
  }
  function chip(testid, label, on, extra) {
    return '<button type="button" class="chip" data-testid="' + esc(testid) + '" aria-pressed="' + !!on + '"' + (extra || '') + '>' +
      '<span class="tick" aria-hidden="true">' + (on ? '✓' : '+') + '</span> ' + esc(label) + '</button>';
  }
  function setPressed(el, on) {
    el.setAttribute('aria-pressed', on ? 'true' : 'false');
    var tk = $('.tick', el);
    if (tk) tk.textContent = on ? '✓' : '+';
  }
  function saveBtn(label) {
    return '<button type="button" class="btn primary big block save" data-act="save" data-testid="save">' + esc(label || t('common.save')) + '</button>';
  }
  function draftNote(d) {
    return d._restored ? '<p class="restored">' + esc(t('form.restored')) + ' <button type="button" class="btn small" data-act="discard">' + esc(t('form.discard')) + '</button></p>' : '';
  }
  function getDraft(init) {
    var d = S.drafts[S.hash];
    if (d) { d._restored = d._touched; return d; }
    d = init(); d._touched = false; d._restored = false;
    S.drafts[S.hash] = d;
    return d;
  }
  function touch(d) { d._touched = true; }
  function sending(btn, on) { if (btn) { btn.disabled = on; btn.classList.toggle('busy', on); } }
  function savedToast(res) { toast(tv('toast.saved', (res && res.sync) || 'device')); }

  /* ---------- screens ---------- */
  var SCREENS = {};

  SCREENS.pin = function () {
    main.innerHTML =
      '<form class="pin" autocomplete="off">' +
      '<div class="logo" aria-hidden="true"><img src="/icon.svg" alt="" width="72" height="72"></div>' +
      '<h1>' + esc(t('app.title')) + '</h1><p class="muted">' + esc(t('pin.hint')) + '</p>' +
      '<label for="pin">' + esc(t('pin.label')) + '</label>' +
      '<input id="pin" type="password" inputmode="numeric" pattern="[0-9]*" maxlength="12" autocomplete="current-password" data-testid="pin-input" required>' +
      '<button type="submit" class="btn primary big block" data-testid="pin-submit">' + esc(t('pin.submit')) + '</button>' +
      '</form>';
    var f = $('form', main), inp = $('#pin', main);
    f.onsubmit = function (e) {
      e.preventDefault();
      var pin = inp.value.trim();
      if (!pin) { showError(t('pin.empty')); inp.focus(); return; }
      var b = $('[data-testid=pin-submit]', f);
      sending(b, true);
      api('POST', A + '/login', { pin: pin }).then(function () {
        clearError();
        return loadMe();
      }).then(function () { route(true); }, function (e) {
        sending(b, false);
        inp.value = '';
        inp.focus();
        fail(e);
      });
    };
    setTimeout(function () { try { inp.focus(); } catch (e) { /* ignore */ } }, 50);
    return 'pin';
  };

  SCREENS.assignments = function (p, tk) {
    return Promise.all([api('GET', A + '/assignments'), api('GET', A + '/sync').catch(function (e) { if (e && e.silent) throw e; return null; })]).then(function (r) {
      if (tk !== S.token) return;
      var a = r[0] || { buildings: [] }, sy = r[1];
      S.assign = a;
      (a.buildings || []).forEach(function (b) { keepHH(b.households); });
      var html = '';
      if (sy && sy.not_at_office > 0) html += officeBanner(sy);
      html += '<div class="search"><label class="sr" for="q">' + esc(t('search.label')) + '</label>' +
        '<input id="q" type="search" enterkeyhint="search" autocomplete="off" data-testid="search-input" placeholder="' + esc(t('search.placeholder')) + '" value="' + esc(S.q) + '"></div>' +
        '<div id="sres"></div><div id="blist">';
      if (a.round_start_ms) html += '<p class="muted small">' + esc(t('assign.round-start', { time: fmtFull(a.round_start_ms) })) + '</p>';
      if (!a.buildings || !a.buildings.length) html += '<p class="empty">' + esc(t('assign.none')) + '</p>';
      (a.buildings || []).forEach(function (b) { html += buildingCard(b); });
      html += '</div>';
      main.innerHTML = html;
      S.acts = {
        expand: function (el) { setOpen(el.getAttribute('data-id'), true); },
        collapse: function (el) { setOpen(el.getAttribute('data-id'), false); }
      };
      function setOpen(id, open) {
        if (!!S.open[id] === open) return;
        S.open[id] = open;
        var b = (S.assign.buildings || []).filter(function (x) { return x.building === id; })[0];
        var wrap = $('[data-bwrap="' + id + '"]', main);
        if (b && wrap) wrap.outerHTML = buildingCard(b);
        var sum = $('[data-testid="building-' + id + '"]', main);
        if (sum && !open) sum.focus();
      }
      var q = $('#q', main);
      q.oninput = function () { clearTimeout(searchTimer); searchTimer = setTimeout(function () { runSearch(q.value); }, 250); };
      q.onchange = q.onsearch = function () { if (q.value.trim() !== S.q) { clearTimeout(searchTimer); runSearch(q.value); } };
      q.onkeydown = function (e) { if (e.key === 'Enter') { clearTimeout(searchTimer); runSearch(q.value); q.blur(); } };
      if (S.q) runSearch(S.q);
      return 'assignments';
    });
  };
  function officeBanner(sy) {
    return '<a class="banner warn" href="#/sync" data-testid="not-at-office-banner"><span aria-hidden="true">▲</span> ' +
      esc(t('banner.not-at-office', { n: sy.not_at_office })) +
      (sy.only_on_device > 0 ? ' <small>' + esc(t('banner.only-on-device', { n: sy.only_on_device })) + '</small>' : '') + '</a>';
  }
  /* The summary (data-testid building-{id}) only ever expands, so tapping it twice, or after
   * coming back, never hides the list; the separate chevron button collapses it. */
  function buildingCard(b) {
    var open = !!S.open[b.building], id = esc(b.building);
    var html = '<section class="card bcard' + (open ? ' open' : '') + '" data-bwrap="' + id + '">' +
      '<div class="bsum" data-act="expand" data-id="' + id + '" data-testid="building-' + id + '" role="button" tabindex="0" aria-expanded="' + open + '">' +
      '<div class="bhead"><h2>' + id + '</h2><span class="muted">' + esc(b.grid || '') + (b.community ? ' · ' + esc(b.community) : '') + '</span>' +
      (open ? '' : '<span class="chev" aria-hidden="true">▾</span>') + '</div>' +
      '<progress max="' + (b.households_total || 0) + '" value="' + (b.visited_this_round || 0) + '"></progress>' +
      '<div class="stats"><span class="stat">' + esc(t('assign.visited')) + ' <b>' + (b.visited_this_round || 0) + '/' + (b.households_total || 0) + '</b></span>' +
      '<span class="stat s-flag' + (b.special_needs ? ' on' : '') + '"><span aria-hidden="true">★</span> ' + esc(t('assign.special')) + ' <b>' + (b.special_needs || 0) + '</b></span>' +
      '<span class="stat s-need' + (b.open_needs ? ' on' : '') + '"><span aria-hidden="true">✚</span> ' + esc(t('assign.open-needs')) + ' <b>' + (b.open_needs || 0) + '</b></span></div></div>';
    if (open) {
      var hs = (b.households || []).slice().sort(function (x, y) {
        return (x.visited_this_round - y.visited_this_round) || natCmp(x.unit, y.unit) || natCmp(x.door, y.door);
      });
      var todo = hs.filter(function (h) { return !h.visited_this_round; }), done = hs.filter(function (h) { return h.visited_this_round; });
      html += '<button type="button" class="collapse" data-act="collapse" data-id="' + id + '" data-testid="collapse-' + id + '" aria-label="' + esc(t('assign.collapse')) + '">▴</button>' +
        '<div class="hlist">';
      if (todo.length) html += '<h3>' + esc(t('assign.todo-group', { n: todo.length })) + '</h3>' + todo.map(hhRow).join('');
      if (done.length) html += '<h3>' + esc(t('assign.done-group', { n: done.length })) + '</h3>' + done.map(hhRow).join('');
      html += '<a class="btn block" href="#/building/' + enc(b.building) + '/sweep" data-testid="sweep-' + id + '">⌂ ' + esc(t('sweep.open')) + '</a></div>';
    }
    return html + '</section>';
  }
  function runSearch(v) {
    var q = String(v || '').trim(), box = $('#sres'), list = $('#blist');
    S.q = q;
    if (!box) return;
    if (!q) { box.innerHTML = ''; list.hidden = false; return; }
    var tk = S.token;
    box.innerHTML = '<p class="muted">' + esc(t('common.loading')) + '</p>';
    list.hidden = true;
    api('GET', A + '/search?q=' + enc(q)).then(function (r) {
      if (tk !== S.token || S.q !== q) return;
      var hs = (r && r.households) || [];
      keepHH(hs);
      box.innerHTML = '<h2 class="sub">' + esc(t('search.results', { n: hs.length })) + '</h2>' +
        (hs.length ? '<div class="hlist flat">' + hs.map(hhRowB).join('') + '</div>' : '<p class="empty">' + esc(t('search.none')) + '</p>');
    }, function (e) { if (tk === S.token) box.innerHTML = ''; fail(e); });
  }

  function hhHeader(h) {
    return '<section class="card hhead">' +
      '<div class="hline"><h1>' + esc(h.door) + '</h1>' + zoneBadge(h.zone) + '</div>' +
      '<p class="muted">' + esc(h.building) + ' · ' + esc(h.unit) + ' · ' + esc(t('hh.residents', { n: h.residents })) + ' · ' + esc(h.household) + '</p>' +
      '<p>' + visitState(h) + (h.latest_visit_ms ? ' <span class="muted small">(' + fmtShort(h.latest_visit_ms) + ')</span>' : '') + '</p>' +
      ((h.flags && h.flags.length) ? '<div class="badges">' + flagBadges(h.flags) + '</div>' : '') +
      ((h.open_needs && h.open_needs.length) ? '<div class="needs"><b>' + esc(t('hh.open-needs')) + '</b><div class="badges">' + needBadges(h.open_needs, true) + '</div></div>' : '') +
      '</section>';
  }
  function loadHH(id) {
    return api('GET', A + '/households/' + enc(id)).then(function (h) {
      keepHH([h]); keepRecs(h.visits); keepRecs(h.delivery_events);
      return h;
    });
  }

  SCREENS.household = function (p, tk) {
    return loadHH(p.id).then(function (h) {
      if (tk !== S.token) return;
      var dl = (h.deliveries || []).map(function (d) {
        return '<li><span>' + esc(tv('item', d.item)) + '</span> ' + statusBadge(d.status) +
          (d.failed_attempts ? ' <span class="fails">' + esc(t('delivery.failed-n', { n: d.failed_attempts })) + '</span>' : '') + '</li>';
      }).join('');
      main.innerHTML = back('#/', t('nav.assignments')) + hhHeader(h) +
        (h.may_write ? '<a class="btn primary big block" href="#/household/' + enc(h.household) + '/visit" data-testid="record-visit">＋ ' + esc(t('hh.record-visit')) + '</a>'
          : '<p class="banner info">' + esc(t('hh.read-only')) + '</p>') +
        '<a class="btn big block" href="#/household/' + enc(h.household) + '/deliveries" data-testid="open-deliveries">☐ ' + esc(t('hh.deliveries')) + '</a>' +
        (dl ? '<ul class="dsum">' + dl + '</ul>' : '') +
        '<h2 class="sub">' + esc(t('hh.history')) + '</h2>' + recList(h.visits, { correct: true });
      return 'household';
    });
  };

  SCREENS.visit = function (p, tk) {
    return loadHH(p.id).then(function (h) {
      if (tk !== S.token) return;
      var d = getDraft(function () { return { outcome: null, people: 0, flags: [], needs: {}, note: '' }; });
      var html = back('#/household/' + enc(h.household), h.door) +
        '<h1>' + esc(t('visit.title')) + ' · ' + esc(h.door) + '</h1>' + draftNote(d) +
        '<fieldset><legend>' + esc(t('visit.outcome')) + ' <span class="req">*</span></legend><div class="seg seg-out">' +
        VOCAB.outcome.map(function (o) {
          return '<button type="button" class="segb o-' + o + '" data-act="outcome" data-v="' + o + '" data-testid="outcome-' + o + '" aria-pressed="' + (d.outcome === o) + '">' + esc(tv('outcome', o)) + '</button>';
        }).join('') + '</div></fieldset>' +
        '<fieldset><legend>' + esc(t('visit.people')) + '</legend>' + stepper('people', t('visit.people-label', { n: h.residents }), d.people) + '</fieldset>' +
        '<fieldset><legend>' + esc(t('visit.flags')) + '</legend>' +
        ((h.flags && h.flags.length) ? '<p class="muted small">' + esc(t('visit.known-flags')) + esc(t('fmt.colon')) + h.flags.map(function (f) { return esc(tv('flag', f)); }).join(esc(t('fmt.list-sep'))) + '</p>' : '') +
        '<div class="chips">' + VOCAB.flag.map(function (f) { return chip('flag-' + f, tv('flag', f), d.flags.indexOf(f) >= 0, ' data-act="flag" data-v="' + f + '"'); }).join('') + '</div></fieldset>' +
        '<fieldset><legend>' + esc(t('visit.needs')) + '</legend>' +
        ((h.open_needs && h.open_needs.length) ? '<p class="muted small">' + esc(t('hh.open-needs')) + esc(t('fmt.colon')) + h.open_needs.map(function (n) { return esc(tv('need', n.need) + (n.detail ? t('fmt.colon') + n.detail : '')); }).join(esc(t('fmt.list-sep'))) + '</p>' : '') +
        '<div class="chips">' + VOCAB.need.map(function (n) { return chip('need-' + n, tv('need', n), Object.prototype.hasOwnProperty.call(d.needs, n), ' data-act="need" data-v="' + n + '"'); }).join('') + '</div>' +
        VOCAB.need.map(function (n) {
          var on = Object.prototype.hasOwnProperty.call(d.needs, n);
          return '<label class="detail" data-for="' + n + '"' + (on ? '' : ' hidden') + '><span>' + esc(t('visit.need-detail', { need: tv('need', n) })) + '</span>' +
            '<input type="text" data-field="need:' + n + '" data-testid="need-detail-' + n + '" value="' + esc(on ? d.needs[n] : '') + '" placeholder="' + esc(t('visit.need-detail-ph')) + '"></label>';
        }).join('') + '</fieldset>' +
        '<label class="field"><span>' + esc(t('visit.note')) + '</span><textarea rows="3" data-field="note" data-testid="visit-note">' + esc(d.note) + '</textarea></label>' +
        (h.may_write ? saveBtn() : '<p class="banner info">' + esc(t('hh.read-only')) + '</p>');
      main.innerHTML = html;
      S.acts = {
        outcome: function (el) {
          d.outcome = el.getAttribute('data-v'); touch(d);
          $$('[data-act=outcome]', main).forEach(function (b) { b.setAttribute('aria-pressed', b === el ? 'true' : 'false'); });
        },
        step: function (el) { stepField(d, 'people', +el.getAttribute('data-d'), 0); },
        flag: function (el) {
          var v = el.getAttribute('data-v'), i = d.flags.indexOf(v);
          if (i >= 0) d.flags.splice(i, 1); else d.flags.push(v);
          touch(d); setPressed(el, i < 0);
        },
        need: function (el) {
          var v = el.getAttribute('data-v'), on = Object.prototype.hasOwnProperty.call(d.needs, v);
          if (on) delete d.needs[v]; else d.needs[v] = '';
          touch(d); setPressed(el, !on);
          var lab = $('label.detail[data-for="' + v + '"]', main);
          lab.hidden = on;
          var inp = $('input', lab);
          if (on) inp.value = ''; else inp.focus();
        },
        discard: function () { delete S.drafts[S.hash]; route(true); },
        save: function (el) {
          if (!d.outcome) { showError(t('visit.need-outcome')); $('.seg-out', main).scrollIntoView({ block: 'center' }); return; }
          var body = {
            household: h.household, outcome: d.outcome, people: Math.max(0, d.people | 0), flags: d.flags.slice(),
            needs: VOCAB.need.filter(function (n) { return Object.prototype.hasOwnProperty.call(d.needs, n); }).map(function (n) { return { need: n, detail: String(d.needs[n] || '').trim() }; }),
            note: d.note.trim()
          };
          sending(el, true);
          api('POST', A + '/visits', body).then(function (res) {
            delete S.drafts[S.hash]; clearError(); savedToast(res);
            location.replace('#/household/' + enc(h.household));
          }, function (e) { sending(el, false); fail(e); });
        }
      };
      S.onInput = function (el) {
        var f = el.getAttribute('data-field');
        if (f === 'note') d.note = el.value;
        else if (f === 'people') d.people = Math.max(0, parseInt(el.value, 10) || 0);
        else if (f && f.indexOf('need:') === 0) d.needs[f.slice(5)] = el.value;
        touch(d);
      };
      return 'visit';
    });
  };
  function stepField(d, name, delta, min) {
    var v = Math.max(min || 0, (d[name.replace('-', '_')] | 0) + delta);
    d[name.replace('-', '_')] = v; touch(d);
    var inp = $('[data-field="' + name + '"]', main);
    if (inp) inp.value = v;
  }

  SCREENS.deliveries = function (p, tk) {
    return loadHH(p.id).then(function (h) {
      if (tk !== S.token) return;
      var cur = {};
      (h.deliveries || []).forEach(function (x) { cur[x.item] = x; });
      var d = getDraft(function () { return { failItem: null, note: '' }; });
      function render() {
        var html = back('#/household/' + enc(h.household), h.door) +
          '<h1>' + esc(t('delivery.title')) + ' · ' + esc(h.door) + '</h1>' +
          '<p class="rule" data-testid="delivery-rule"><span aria-hidden="true">ⓘ</span> ' + esc(t('delivery.rule')) + '</p>';
        VOCAB.item.forEach(function (it) {
          var c = cur[it] || {};
          html += '<section class="card ditem" data-testid="delivery-' + it + '"><div class="dhead"><b>' + esc(tv('item', it)) + '</b>' + statusBadge(c.status) +
            (c.failed_attempts ? '<span class="fails">' + esc(t('delivery.failed-n', { n: c.failed_attempts })) + '</span>' : '') + '</div>' +
            '<div class="seg seg-4">' + DELIVERY_BUTTONS.map(function (st) {
              return '<button type="button" class="segb d-' + st + '" data-act="deliver" data-item="' + it + '" data-st="' + st + '" data-testid="deliver-' + it + '-' + st +
                '" aria-pressed="' + (c.status === st || d.failItem === it && st === 'failed') + '"' + (h.may_write ? '' : ' disabled') + '>' + esc(tv('status', st)) + '</button>';
            }).join('') + '</div>' +
            (d.failItem === it ? failPanel(d) : '') + '</section>';
        });
        html += '<h2 class="sub">' + esc(t('delivery.history')) + '</h2>' + recList(h.delivery_events, { correct: true });
        main.innerHTML = html;
        var ta = $('[data-testid=delivery-note]', main);
        if (ta) { ta.scrollIntoView({ block: 'center' }); ta.focus(); }
      }
      function post(item, status, note, btn) {
        sending(btn, true);
        return api('POST', A + '/deliveries', { household: h.household, item: item, status: status, note: note || '' }).then(function (res) {
          delete S.drafts[S.hash]; clearError(); savedToast(res); route(true);
        }, function (e) { sending(btn, false); fail(e); });
      }
      S.acts = {
        deliver: function (el) {
          var it = el.getAttribute('data-item'), st = el.getAttribute('data-st');
          if (st === 'failed') {
            if (d.failItem !== it) { d.failItem = it; d.note = ''; touch(d); render(); }
            return;
          }
          post(it, st, '', el);
        },
        cancelfail: function () { d.failItem = null; d.note = ''; render(); },
        save: function (el) { post(d.failItem, 'failed', d.note.trim(), el); }
      };
      S.onInput = function (el) { if (el.getAttribute('data-field') === 'dnote') { d.note = el.value; touch(d); } };
      render();
      return 'deliveries';
    });
  };
  function failPanel(d) {
    return '<div class="failpanel"><label class="field"><span>' + esc(t('delivery.fail-note', { item: tv('item', d.failItem) })) + '</span>' +
      '<textarea rows="2" data-field="dnote" data-testid="delivery-note">' + esc(d.note) + '</textarea></label>' +
      saveBtn(t('delivery.save-failed')) +
      '<button type="button" class="btn block" data-act="cancelfail">' + esc(t('common.cancel')) + '</button></div>';
  }

  SCREENS.sweep = function (p, tk) {
    return api('GET', A + '/buildings/' + enc(p.id)).then(function (b) {
      if (tk !== S.token) return;
      keepHH(b.households); keepRecs(b.sweeps);
      var maxRound = 0;
      (b.sweeps || []).forEach(function (s) { if ((s.round | 0) > maxRound) maxRound = s.round | 0; });
      var suggested = maxRound + 1;
      var d = getDraft(function () { return { round: 0, units: [], reached: 0, not_home: 0, refused: 0, issues: '' }; });
      main.innerHTML = back('#/', t('nav.assignments')) +
        '<h1>' + esc(t('sweep.title')) + ' · ' + esc(b.building) + '</h1>' + draftNote(d) +
        '<label class="field inline"><span>' + esc(t('sweep.round')) + '</span><input type="number" inputmode="numeric" min="1" data-field="round" data-testid="sweep-round" placeholder="' + suggested + '" value="' + (d.round ? esc(d.round) : '') + '"></label>' +
        '<p class="muted small">' + esc(t('sweep.round-hint', { n: suggested })) + '</p>' +
        '<fieldset><legend>' + esc(t('sweep.units')) + '</legend><div class="chips">' +
        (b.units || []).map(function (u) { return chip('unit-' + u, u, d.units.indexOf(u) >= 0, ' data-act="unit" data-v="' + esc(u) + '"'); }).join('') +
        '</div><button type="button" class="btn small" data-act="allunits">' + esc(t('sweep.all-units')) + '</button></fieldset>' +
        '<fieldset><legend>' + esc(t('sweep.counts')) + '</legend>' +
        stepper('reached', t('sweep.reached'), d.reached) + stepper('not-home', t('sweep.not-home'), d.not_home) + stepper('refused', t('sweep.refused'), d.refused) + '</fieldset>' +
        '<label class="field"><span>' + esc(t('sweep.issues')) + '</span><textarea rows="4" data-field="issues" data-testid="sweep-issues" placeholder="' + esc(t('sweep.issues-ph')) + '">' + esc(d.issues) + '</textarea></label>' +
        (b.may_write ? saveBtn() : '<p class="banner info">' + esc(t('hh.read-only')) + '</p>') +
        '<h2 class="sub">' + esc(t('sweep.earlier')) + '</h2>' + recList(b.sweeps, { correct: true });
      S.acts = {
        unit: function (el) {
          var v = el.getAttribute('data-v'), i = d.units.indexOf(v);
          if (i >= 0) d.units.splice(i, 1); else d.units.push(v);
          touch(d); setPressed(el, i < 0);
        },
        allunits: function () {
          var all = (b.units || []).length && d.units.length === b.units.length;
          d.units = all ? [] : (b.units || []).slice(); touch(d);
          $$('[data-act=unit]', main).forEach(function (c) { setPressed(c, !all); });
        },
        step: function (el) { stepField(d, el.getAttribute('data-name'), +el.getAttribute('data-d'), 0); },
        discard: function () { delete S.drafts[S.hash]; route(true); },
        save: function (el) {
          var round = d.round || suggested;
          if (!(round >= 1)) { showError(t('sweep.need-round')); return; }
          var body = {
            building: b.building, round: round | 0,
            units: (b.units || []).filter(function (u) { return d.units.indexOf(u) >= 0; }),
            reached: d.reached | 0, not_home: d.not_home | 0, refused: d.refused | 0,
            issues: d.issues.split("\n").map(function (s) { return s.trim(); }).filter(Boolean)
          };
          sending(el, true);
          api('POST', A + '/sweeps', body).then(function (res) {
            delete S.drafts[S.hash]; clearError(); savedToast(res); route(true);
          }, function (e) { sending(el, false); fail(e); });
        }
      };
      S.onInput = function (el) {
        var f = el.getAttribute('data-field');
        if (f === 'issues') d.issues = el.value;
        else if (f === 'round') d.round = parseInt(el.value, 10) || 0;
        else if (f) d[f.replace('-', '_')] = Math.max(0, parseInt(el.value, 10) || 0);
        touch(d);
      };
      return 'sweep';
    });
  };

  function findRecord(building, id) {
    if (S.recs[id]) return Promise.resolve(S.recs[id]);
    var tries = [
      function () { return api('GET', A + '/records?limit=500').then(function (r) { keepRecs(r.records); }); },
      function () { return api('GET', A + '/buildings/' + enc(building)).then(function (b) { keepHH(b.households); keepRecs(b.sweeps); }); }
    ];
    if (S.me && S.me.role === 'captain') {
      tries.push(function () {
        return api('GET', A + '/review/' + enc(building)).then(function (r) {
          (r.volunteers || []).forEach(function (v) { keepRecs(v.records); });
          (r.conflicts || []).forEach(function (c) { keepRecs(c.records); });
        });
      });
    }
    var i = 0;
    function next() {
      if (S.recs[id] || i >= tries.length) return Promise.resolve(S.recs[id] || null);
      return tries[i++]().catch(function (e) { if (e && e.silent) throw e; }).then(next);
    }
    return next();
  }

  SCREENS.correct = function (p, tk) {
    return findRecord(p.building, p.record).then(function (r) {
      if (tk !== S.token) return;
      var d = getDraft(function () {
        return { reason: p.reason || '', outcome: null, ret: S.lastHash && S.lastHash.indexOf('#/correct/') !== 0 ? S.lastHash : '' };
      });
      var isVisit = !r || r.kind === 'visit';
      var fallback = r && r.household ? '#/household/' + enc(r.household) : '#/records';
      main.innerHTML = back(d.ret || fallback, t('common.back')) +
        '<h1>' + esc(t('correct.title')) + '</h1>' + draftNote(d) +
        '<h2 class="sub">' + esc(t('correct.original')) + '</h2>' +
        (r ? '<ul class="recs orig">' + recRow(r, { testid: false }) + '</ul>' : '<p class="banner info">' + esc(t('correct.not-found', { id: p.record })) + '</p>') +
        '<fieldset><legend>' + esc(t('correct.action')) + '</legend>' +
        '<button type="button" class="segb block retract" data-act="retract" data-testid="correction-retract" aria-pressed="' + (d.outcome === null) + '">↺ ' + esc(t('correct.retract')) + '</button>' +
        (isVisit ? '<p class="muted small">' + esc(t('correct.or-replace')) + '</p><div class="seg seg-out">' + VOCAB.outcome.map(function (o) {
          return '<button type="button" class="segb o-' + o + '" data-act="replace" data-v="' + o + '" data-testid="replace-' + o + '" aria-pressed="' + (d.outcome === o) + '">' + esc(tv('outcome', o)) + '</button>';
        }).join('') + '</div>' : '') + '</fieldset>' +
        '<label class="field"><span>' + esc(t('correct.reason')) + ' <span class="req">*</span></span><textarea rows="3" data-field="reason" data-testid="correction-reason" required>' + esc(d.reason) + '</textarea></label>' +
        '<p class="muted small">' + esc(t('correct.kept')) + '</p>' + saveBtn(t('correct.save'));
      function mark() {
        $$('[data-act=replace],[data-act=retract]', main).forEach(function (b) {
          var v = b.getAttribute('data-act') === 'retract' ? null : b.getAttribute('data-v');
          b.setAttribute('aria-pressed', v === d.outcome ? 'true' : 'false');
        });
      }
      S.acts = {
        retract: function () { d.outcome = null; touch(d); mark(); },
        replace: function (el) { d.outcome = el.getAttribute('data-v'); touch(d); mark(); },
        discard: function () { delete S.drafts[S.hash]; route(true); },
        save: function (el) {
          if (!d.reason.trim()) { showError(t('correct.need-reason')); $('[data-testid=correction-reason]', main).focus(); return; }
          sending(el, true);
          api('POST', A + '/corrections', { building: p.building, record: p.record, reason: d.reason.trim(), outcome: isVisit ? d.outcome : null }).then(function (res) {
            var ret = d.ret || fallback;
            delete S.drafts[S.hash]; clearError(); savedToast(res);
            if (ret === location.hash) route(true); else location.replace(ret);
          }, function (e) { sending(el, false); fail(e); });
        }
      };
      S.onInput = function (el) { if (el.getAttribute('data-field') === 'reason') { d.reason = el.value; touch(d); } };
      return 'correct';
    });
  };

  function ensureDoors() {
    if (S.assign) return Promise.resolve();
    return api('GET', A + '/assignments').then(function (a) {
      S.assign = a; (a.buildings || []).forEach(function (b) { keepHH(b.households); });
    }, function (e) { if (e && e.silent) throw e; });
  }

  SCREENS.records = function (p, tk) {
    return Promise.all([api('GET', A + '/records?limit=100'), ensureDoors()]).then(function (r) {
      if (tk !== S.token) return;
      var x = r[0] || {};
      keepRecs(x.records);
      if (unchanged(x)) return 'records';
      main.innerHTML = (x.not_at_office > 0 ? officeBanner(x) : '') + '<h1>' + esc(t('records.title')) + '</h1>' + figures(x) +
        recList(x.records, { link: true, correct: true, by: false });
      return 'records';
    });
  };
  function figures(x) {
    return '<div class="figs"><div class="fig' + (x.not_at_office ? ' warn' : ' ok') + '"><b>' + (x.not_at_office || 0) + '</b><span>' + esc(t('sync.not-at-office')) + '</span></div>' +
      '<div class="fig' + (x.only_on_device ? ' warn' : ' ok') + '"><b>' + (x.only_on_device || 0) + '</b><span>' + esc(t('sync.only-on-device')) + '</span></div></div>';
  }

  SCREENS.sync = function (p, tk) {
    return api('GET', A + '/sync').then(function (x) {
      if (tk !== S.token) return;
      x = x || {};
      if (unchanged(x)) return 'sync';
      var peers = (x.peers || []).map(function (pr) {
        return '<li class="card peer"><div class="hline"><b>' + esc(pr.node_id) + '</b><span class="muted">' + esc(tv('role', pr.role)) + '</span>' +
          (pr.connected ? '<span class="conn on"><span aria-hidden="true">●</span> ' + esc(t('sync.connected')) + '</span>'
            : '<span class="conn off"><span aria-hidden="true">○</span> ' + esc(t('sync.disconnected')) + '</span>') + '</div>' +
          '<div>' + (pr.last_sync_ms ? esc(t('sync.last', { ago: ago(pr.last_sync_ms) })) + ' <span class="muted small">(' + fmtFull(pr.last_sync_ms) + ')</span>' : esc(t('sync.never'))) + '</div>' +
          (pr.address ? '<div class="muted small">' + esc(pr.address) + '</div>' : '') + '</li>';
      }).join('');
      main.innerHTML = '<h1>' + esc(t('sync.title')) + '</h1>' + figures(x) +
        '<button type="button" class="btn block" data-act="refresh">⟳ ' + esc(t('common.refresh')) + '</button>' +
        '<h2 class="sub">' + esc(t('sync.peers')) + '</h2>' + (peers ? '<ul class="peers">' + peers + '</ul>' : '<p class="empty">' + esc(t('sync.no-peers')) + '</p>') +
        '<h2 class="sub">' + esc(t('sync.legend')) + '</h2><ul class="legend">' +
        VOCAB.sync.map(function (s) { return '<li>' + syncMarker(s) + ' <span>' + esc(tv('sync.explain', s)) + '</span></li>'; }).join('') + '</ul>';
      S.acts = { refresh: function () { route(true); } };
      return 'sync';
    });
  };

  SCREENS.review = function (p, tk) {
    return api('GET', A + '/review').then(function (x) {
      if (tk !== S.token) return;
      x = x || {};
      if (unchanged(x)) return 'review';
      var html = '<h1>' + esc(t('review.title')) + '</h1>';
      html += (x.buildings || []).map(function (b) {
        return '<a class="card rcard" href="#/review/' + enc(b.building) + '" data-testid="review-' + esc(b.building) + '">' +
          '<div class="bhead"><h2>' + esc(b.building) + '</h2><span class="chev" aria-hidden="true">›</span></div><div class="stats">' +
          '<span class="stat' + (b.not_reached ? ' s-warn on' : '') + '">' + esc(t('review.not-reached')) + ' <b>' + (b.not_reached || 0) + '/' + (b.households_total || 0) + '</b></span>' +
          '<span class="stat' + (b.conflicts ? ' s-bad on' : '') + '"><span aria-hidden="true">⚠</span> ' + esc(t('review.conflicts')) + ' <b>' + (b.conflicts || 0) + '</b></span>' +
          '<span class="stat">' + esc(t('review.volunteers')) + ' <b>' + (b.volunteers || 0) + '</b></span></div></a>';
      }).join('') || '<p class="empty">' + esc(t('common.none')) + '</p>';
      html += '<h2 class="sub">' + esc(t('review.quiet', { hours: x.quiet_after_hours != null ? x.quiet_after_hours : '?' })) + '</h2>';
      html += (x.quiet_volunteers && x.quiet_volunteers.length) ? '<ul class="quiet">' + x.quiet_volunteers.map(function (q) {
        return '<li class="card" data-testid="quiet-' + esc(q.volunteer) + '"><b>' + esc(q.volunteer) + '</b>' +
          (q.hours != null ? ' <span class="badge b-warn">' + esc(t('review.hours', { n: Math.round(q.hours * 10) / 10 })) + '</span>' : '') + '<div class="muted small">' +
          (q.last_seen_ms ? esc(t('review.last-seen', { time: fmtFull(q.last_seen_ms), ago: ago(q.last_seen_ms) })) : esc(t('review.never-seen'))) + '</div></li>';
      }).join('') + '</ul>' : '<p class="empty">' + esc(t('common.none')) + '</p>';
      main.innerHTML = html;
      return 'review';
    });
  };

  SCREENS['review-building'] = function (p, tk) {
    return api('GET', A + '/review/' + enc(p.id)).then(function (x) {
      if (tk !== S.token) return;
      x = x || {};
      if (unchanged(x)) return 'review-building';
      var bid = x.building || p.id, wide = window.innerWidth >= 900;
      keepHH(x.not_reached);
      (x.volunteers || []).forEach(function (v) { keepRecs(v.records); });
      (x.conflicts || []).forEach(function (c) { keepRecs(c.records); });
      var d = getDraft(function () { return { reasons: {} }; });
      var html = back('#/review', t('nav.review')) + '<h1>' + esc(t('review.building-title', { building: bid })) + '</h1>' +
        (x.round_start_ms ? '<p class="muted small">' + esc(t('assign.round-start', { time: fmtFull(x.round_start_ms) })) + '</p>' : '');
      var cs = x.conflicts || [];
      html += '<h2 class="sub">⚠ ' + esc(t('review.conflicts')) + ' (' + cs.length + ')</h2>';
      html += cs.length ? cs.map(function (c, ci) {
        var key = c.household + '|' + (c.item || '') + '|' + ci;
        if (d.reasons[key] == null) d.reasons[key] = t('review.default-reason');
        return '<section class="card conflict" data-testid="conflict-' + esc(c.household) + '">' +
          '<div class="hline"><b class="door">' + esc(doorOf(c.household)) + '</b><span>' + esc(tv('conflict', c.kind)) + (c.item ? ' · ' + esc(tv('item', c.item)) : '') + '</span></div>' +
          '<p class="rule"><span aria-hidden="true">⚖</span> ' + esc(t(c.rule_key)) + '</p>' +
          '<label class="field creason"><span>' + esc(t('correct.reason')) + '</span><input type="text" data-field="reason:' + esc(key) + '" data-testid="conflict-reason-' + esc(c.household) + '" value="' + esc(d.reasons[key]) + '"></label>' +
          '<ul class="recs">' + (c.records || []).map(function (r) {
            var win = r.id === c.winner;
            return '<li class="rec' + (win ? ' winner' : ' loser') + '"><span class="wtag">' + (win ? '✓ ' + esc(t('review.winner')) : '✕ ' + esc(t('review.loser'))) + '</span>' +
              '<span class="rbody' + (r.retracted ? ' struck' : '') + '">' + recBody(r) + '</span><span class="rmeta">' + when(r.at_ms) + ' · ' + esc(r.by) + ' ' + syncMarker(r.sync) + '</span>' +
              (r.retracted ? '<span class="strnote">' + esc(t('rec.retracted')) + '</span>' :
                '<div class="fixrow"><button type="button" class="btn small' + (win ? '' : ' danger') + '" data-act="fix" data-rec="' + esc(r.id) + '" data-key="' + esc(key) + '" data-testid="fix-' + esc(r.id) + '">↺ ' + esc(t('review.fix')) + '</button>' +
                '<a class="btn small" href="#/correct/' + enc(bid) + '/' + enc(r.id) + '">' + esc(t('review.more')) + '</a></div>') + '</li>';
          }).join('') + '</ul>' +
          '</section>';
      }).join('') : '<p class="empty">' + esc(t('review.no-conflicts')) + '</p>';
      var nr = x.not_reached || [];
      html += '<h2 class="sub">○ ' + esc(t('review.not-reached')) + ' (' + nr.length + ')</h2>' +
        (nr.length ? '<div class="hlist flat">' + nr.map(hhRow).join('') + '</div>' : '<p class="empty">' + esc(t('common.none')) + '</p>');
      var vs = x.volunteers || [];
      html += '<h2 class="sub">' + esc(t('review.by-volunteer')) + ' (' + vs.length + ')</h2><div class="vcols">' + vs.map(function (v) {
        var recs = (v.records || []).slice().sort(function (a, b) { return b.at_ms - a.at_ms; });
        return '<details class="card vcol" data-testid="volunteer-' + esc(v.volunteer) + '"' + ((S.det['volunteer-' + v.volunteer] != null ? S.det['volunteer-' + v.volunteer] : wide) ? ' open' : '') + '><summary><b>' + esc(v.volunteer) + '</b> <span class="muted">' +
          esc(t('review.n-records', { n: recs.length })) + (recs.length ? ' · ' + fmtShort(recs[0].at_ms) : '') + '</span></summary>' +
          recList(recs, { by: false }) + '</details>';
      }).join('') + '</div>';
      main.innerHTML = html;
      S.acts = {
        fix: function (el) {
          var key = el.getAttribute('data-key'), reason = String(d.reasons[key] || '').trim();
          if (!reason) { showError(t('correct.need-reason')); return; }
          sending(el, true);
          api('POST', A + '/corrections', { building: bid, record: el.getAttribute('data-rec'), reason: reason, outcome: null }).then(function (res) {
            delete S.drafts[S.hash]; clearError(); savedToast(res); route(true);
          }, function (e) { sending(el, false); fail(e); });
        }
      };
      S.onInput = function (el) {
        var f = el.getAttribute('data-field') || '';
        if (f.indexOf('reason:') === 0) { d.reasons[f.slice(7)] = el.value; touch(d); }
      };
      return 'review-building';
    });
  };

  /* ---------- router ---------- */
  function parse(hash) {
    var h = (hash || '').replace(/^#\/?/, ''), qs = '', i = h.indexOf('?');
    if (i >= 0) { qs = h.slice(i + 1); h = h.slice(0, i); }
    var parts = h.split("/").filter(Boolean).map(function (s) { try { return decodeURIComponent(s); } catch (e) { return s; } });
    var q = {};
    qs.split("&").forEach(function (kv) { if (kv) { var j = kv.indexOf('='); q[decodeURIComponent(kv.slice(0, j < 0 ? kv.length : j))] = j < 0 ? '' : decodeURIComponent(kv.slice(j + 1)); } });
    var a = parts[0] || '';
    if (!a) return ['assignments', {}];
    if (a === 'household' && parts[1]) {
      if (parts[2] === 'visit') return ['visit', { id: parts[1] }];
      if (parts[2] === 'deliveries') return ['deliveries', { id: parts[1] }];
      return ['household', { id: parts[1] }];
    }
    if (a === 'building' && parts[1]) return ['sweep', { id: parts[1] }];
    if (a === 'correct' && parts[2]) return ['correct', { building: parts[1], record: parts[2], reason: q.reason }];
    if (a === 'records') return ['records', {}];
    if (a === 'sync') return ['sync', {}];
    if (a === 'review') return parts[1] ? ['review-building', { id: parts[1] }] : ['review', {}];
    return ['assignments', {}];
  }
  /* A live screen refreshed by the timer is repainted only when its data changed, so nothing
   * moves under a finger (or a test) while it reads. */
  function unchanged(data) {
    var sig = S.hash + '|' + S.lang + '|' + JSON.stringify(data);
    if (S.refreshing && sig === S.sig) return true;
    S.sig = sig;
    return false;
  }
  function route(same, refresh) {
    var tk = ++S.token;
    S.refreshing = !!refresh;
    if (!same) clearError();
    S.hash = location.hash || '#/';
    if (!refresh) {
      S.acts = {}; S.onInput = null; S.sig = '';
      main.removeAttribute('data-screen');
      main.setAttribute('aria-busy', 'true');
    }
    if (!S.me) { finish(SCREENS.pin(), tk); return; }
    var r = parse(S.hash);
    renderChrome(r[0]);
    if (!same) { main.innerHTML = '<p class="loading">' + esc(t('common.loading')) + '</p>'; main.scrollTop = 0; }
    var out;
    try { out = SCREENS[r[0]](r[1], tk); } catch (e) { fail(e); return; }
    Promise.resolve(out).then(function (name) { if (name) finish(name, tk); }, function (e) {
      if (tk !== S.token) return;
      S.refreshing = false;
      if (e && e.silent) return;
      main.setAttribute('aria-busy', 'false');
      if (!same) main.innerHTML = '<p class="empty">' + esc(t('common.failed')) + ' <button type="button" class="btn small" data-act="retry">' + esc(t('common.retry')) + '</button></p>';
      S.acts = { retry: function () { route(true); } };
      fail(e);
    });
  }
  function finish(name, tk) {
    if (tk !== S.token) return;
    S.refreshing = false;
    if (name === 'pin') renderChrome('pin');
    main.setAttribute('aria-busy', 'false');
    main.setAttribute('data-screen', name);
    // When the first screen with data became usable (the benchmark reads it).
    if (name !== 'pin' && window.performance && performance.mark &&
        !performance.getEntriesByName('gridsync-first-screen').length) {
      performance.mark('gridsync-first-screen');
    }
  }
  function needLogin() {
    if (!S.me && main.getAttribute('data-screen') === 'pin') return;
    var had = !!S.me;
    S.me = null;
    S.token++;
    main.removeAttribute('data-screen');
    finish(SCREENS.pin(), S.token);
    if (had) showError(t('pin.again'));
  }
  function loadMe() {
    return api('GET', A + '/me').then(function (me) {
      S.me = me;
      if (me && typeof me.now_ms === 'number') S.skew = me.now_ms - Date.now();
    });
  }
  function logout() {
    api('POST', A + '/logout').catch(function () { /* offline: still drop local state */ }).then(function () {
      S.me = null; S.drafts = {}; S.recs = {}; S.hh = {}; S.assign = null; S.q = ''; S.open = {};
      clearError();
      if (location.hash && location.hash !== '#/') location.hash = '#/'; else route();
    });
  }

  function init() {
    main = $('#main'); top = $('#top'); tabs = $('#tabs'); errBox = $('#error'); toastBox = $('#toast');
    main.addEventListener('click', function (e) {
      var el = e.target.closest("a,[data-act]");
      if (!el || !main.contains(el) || el.tagName === 'A' || el.disabled) return;
      var f = S.acts[el.getAttribute('data-act')];
      if (f) { e.preventDefault(); f(el, e); }
    });
    main.addEventListener('keydown', function (e) {
      if ((e.key === 'Enter' || e.key === ' ') && e.target.getAttribute && e.target.getAttribute('role') === 'button') { e.preventDefault(); e.target.click(); }
    });
    main.addEventListener('input', function (e) { if (S.onInput && e.target.hasAttribute('data-field')) S.onInput(e.target); });
    main.addEventListener('toggle', function (e) {
      var id = e.target.getAttribute && e.target.getAttribute('data-testid');
      if (id) S.det[id] = e.target.open;
    }, true);
    /* Screens that show sync progress follow it while they are on screen. */
    var LIVE = { records: 1, sync: 1, review: 1, 'review-building': 1 };
    setInterval(function () {
      if (document.hidden || !S.me || S.refreshing || !LIVE[main.getAttribute('data-screen')]) return;
      var a = document.activeElement;
      if (a && main.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) return;
      route(true, true);
    }, 4000);
    window.addEventListener('hashchange', function (e) {
      var old = e.oldURL || '', i = old.indexOf('#');
      S.lastHash = i >= 0 ? old.slice(i) : '#/';
      route();
    });
    loadLang(pickLang()).catch(function () { return loadLang('en'); }).catch(function () { /* keys shown raw */ }).then(function () {
      renderChrome('pin');
      return loadMe().catch(function (e) { if (!(e && e.silent)) fail(e); });
    }).then(function () { if (S.me) route(); else if (main.getAttribute('data-screen') !== 'pin') route(true); });
    if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(function () { /* http on non-loopback */ });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
