/* gridsync field app service worker, served at /sw.js.
 * Network first for the app's own assets (a newer binary's assets win whenever the node answers),
 * cache only as the offline fallback. /api/ is never cached or even touched. */
'use strict';
var CACHE = 'gridsync-field-v1';
var ASSETS = ['/', '/app.js', '/app.css', '/i18n/zh.json', '/i18n/en.json', '/manifest.webmanifest', '/icon.svg'];

self.addEventListener('install', function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) {
    return Promise.all(ASSETS.map(function (u) {
      return fetch(u, { cache: 'no-store' }).then(function (r) { if (r.ok) return c.put(u, r); }).catch(function () {});
    }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (e) {
  e.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener('fetch', function (e) {
  var req = e.request;
  if (req.method !== 'GET') return;
  var url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.indexOf('/api/') === 0) return;
  var key = req.mode === 'navigate' || url.pathname === '/index.html' ? '/' : url.pathname;
  if (ASSETS.indexOf(key) < 0) return;
  e.respondWith(fetch(req, { cache: 'no-store' }).then(function (res) {
    if (res.ok && res.type === 'basic') {
      var copy = res.clone();
      caches.open(CACHE).then(function (c) { return c.put(key, copy); });
    }
    return res;
  }).catch(function () {
    return caches.match(key).then(function (hit) { return hit || Response.error(); });
  }));
});
