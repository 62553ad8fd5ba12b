// relsim's service worker: lets a page that was open once start again while the companion is
// stopped, so image queries can still be answered in the browser (the student and the library's
// vectors). Network first, always: with the companion running nothing is served stale.
const CACHE = "relsim-shell-v1";

// What the page needs to start and to answer image queries by itself. Everything else (searches,
// the event stream, the text model's large files kept by the page itself) goes straight through.
function kept(url) {
  const p = url.pathname;
  return p === "/" || p === "/index.html" || p === "/styles.css" || p === "/favicon.svg" ||
    p.startsWith("/pkg/") || p === "/api/models/student" || p.startsWith("/models/student/") ||
    /^\/api\/images\/[0-9a-f]+\/thumbnail$/.test(p);
}

// The page itself, kept at install: it was fetched before this worker could see it.
const SHELL = ["/", "/styles.css", "/favicon.svg", "/pkg/relsim_web.js", "/pkg/relsim_web_bg.wasm"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).catch(() => {}).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  // The printed link carries the token and is answered with a redirect: leave it to the browser.
  if (request.method !== "GET" || url.origin !== self.location.origin || !kept(url) || url.searchParams.has("token")) return;
  const navigation = request.mode === "navigate";
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Pages are stored under "/" whatever their query: the state in the query is the app's.
    const key = navigation ? "/" : request;
    try {
      const response = await fetch(request);
      if (response.ok && !response.redirected) await cache.put(key, response.clone());
      return response;
    } catch (offline) {
      const copy = await cache.match(key);
      if (copy) return copy;
      throw offline;
    }
  })());
});
