// The office login page's script (served at /assets/login.js after /i18n.js: the page has no
// inline script, for a strict CSP). Texts come from /i18n/{zh,en}.json, English from the markup.
"use strict";
const EN = {};
for (const root of [document, document.getElementById("en-texts").content]) {
  for (const el of root.querySelectorAll("[data-i18n]")) EN[el.dataset.i18n] = el.textContent;
  for (const el of root.querySelectorAll("[data-i18n-title]")) EN[el.dataset.i18nTitle] = el.title;
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) EN[el.dataset.i18nPlaceholder] = el.placeholder;
}
const L = { lang: "en", dict: {}, seq: 0 };
function t(key) {
  return Object.prototype.hasOwnProperty.call(L.dict, key) ? L.dict[key] : EN[key] ?? key;
}
function apply() {
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll("[data-i18n-title]")) {
    el.title = t(el.dataset.i18nTitle);
    if (el.hasAttribute("aria-label")) el.setAttribute("aria-label", el.title);
  }
  for (const b of document.querySelectorAll(".langs [data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === L.lang));
}
async function setLang(lang, remember) {
  if (remember) { try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* storage off */ } }
  const seq = ++L.seq;
  let dict = {}, shown = "en";
  try { dict = await loadTable(lang); shown = lang; } catch (e) { /* English from this page */ }
  if (seq !== L.seq) return;
  L.dict = dict; L.lang = shown;
  document.documentElement.lang = shown === "zh" ? "zh-CN" : "en";
  apply();
}

// A refused token comes back as this page, status 401, at /login (the form's POST); the
// server may also mark it on <body data-login-error>.
function wrongToken() {
  if (document.body.hasAttribute("data-login-error")) return true;
  const nav = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
  return !!nav && nav.responseStatus === 401 && location.pathname === "/login";
}
document.getElementById("login-error").hidden = !wrongToken();
document.getElementById("login-throttled").hidden = !document.body.hasAttribute("data-login-throttled");

const token = document.getElementById("login-token");
token.addEventListener("invalid", () => { if (!token.value) token.setCustomValidity(t("login.empty")); });
token.addEventListener("input", () => token.setCustomValidity(""));
document.addEventListener("click", (e) => {
  const b = e.target.closest('.langs [data-lang]');
  if (b) setLang(b.dataset.lang, true);
});
setLang(pickLang(), false);
