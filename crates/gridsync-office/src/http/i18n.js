// What the dashboard and the login page share of their translations: which language to show
// (the user's choice, else the browser's: any zh* -> Chinese) and loading its table from
// /i18n/{zh,en}.json. Each page keeps its English text in its markup as the fallback.
"use strict";
const LANG_KEY = "gridsync.office.lang";
function pickLang() {
  let saved = null;
  try { saved = localStorage.getItem(LANG_KEY); } catch (e) { /* storage off */ }
  if (saved === "zh" || saved === "en") return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  return langs.some((l) => /^zh/i.test(l)) ? "zh" : "en";
}
async function loadTable(lang) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 4000);
  try {
    const r = await fetch("/i18n/" + lang + ".json", { credentials: "same-origin", signal: ctl.signal });
    if (!r.ok) throw new Error("HTTP " + r.status);
    return await r.json();
  } finally { clearTimeout(timer); }
}
