// The analogy explorer in Debian's headless Chromium against the real companion serving the demo
// library from a fresh index: indexing progress, search by image (click, file picker, drop,
// paste), search by idea (MiniLM in the browser, WebGPU and CPU), the similarity map (hover,
// click, keyboard, 10,000 points), the blend slider, classroom mode, URL state, phone width, no
// console errors. Screenshots go to ARTIFACT_DIR.
//
// usage: node explorer.mjs URL ARTIFACT_DIR DEMO_DATA_JSONL [--bench]
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, artifacts, dataFile, mode] = process.argv.slice(2);
if (!url || !artifacts || !dataFile) {
  console.error("usage: node explorer.mjs URL ARTIFACT_DIR DEMO_DATA_JSONL [--bench]");
  process.exit(2);
}
const bench = mode === "--bench";
const origin = new URL(url).origin;
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const baseFlags = [
  "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic",
];
fs.mkdirSync(artifacts, { recursive: true });
// The demo scenes: file name = first 32 hex of the image id; each has a relation and a caption.
const scenes = fs.readFileSync(dataFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const total = scenes.length;
const relationOf = new Map(scenes.map((s) => [s.image_hash, s.relation]));
const relation = (id) => relationOf.get(id.slice(0, 32));
const relationCaption = (rel) => scenes.find((s) => s.relation === rel).caption;
const imagesDir = path.join(path.dirname(dataFile), "images");

let failures = 0;
function check(ok, message) {
  console.log(`${ok ? "ok  " : "FAIL"} ${message}`);
  if (!ok) failures += 1;
}

async function open(webgpu, viewport = { width: 1280, height: 900 }) {
  const browser = await chromium.launch({ executablePath, headless: true, args: webgpu ? [...baseFlags, "--enable-unsafe-webgpu"] : baseFlags });
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
  page.on("pageerror", (err) => errors.push(String(err)));
  await page.goto(url);
  return { browser, context, page, errors };
}

const hitIds = (page, column) => page.$$eval(`#${column} .hit`, (hits) => hits.map((h) => h.dataset.id));
const params = (page) => new URL(page.url()).searchParams;

async function waitResults(page, expectQuery) {
  await page.waitForFunction((q) => {
    const busy = document.querySelector("#current-query")?.dataset.busy;
    return busy === "false" && document.querySelectorAll("#same-idea .hit").length > 0 && (!q || location.search.includes(q));
  }, expectQuery, { timeout: 120_000 });
  // The debounce may still hold a newer request: let it land.
  await page.waitForTimeout(300);
  await page.waitForFunction(() => document.querySelector("#current-query")?.dataset.busy === "false", null, { timeout: 120_000 });
}

// A File built in the page from a library image, for drop and paste.
async function dispatchFile(page, id, eventType, selector) {
  await page.evaluate(async ([id, eventType, selector]) => {
    const bytes = await (await fetch(`/api/images/${id}/file`)).blob();
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
    const target = selector ? document.querySelector(selector) : window;
    const event = eventType === "paste"
      ? new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true })
      : new DragEvent(eventType, { dataTransfer: dt, bubbles: true, cancelable: true });
    (target === window ? document.body : target).dispatchEvent(event);
  }, [id, eventType, selector]);
}

// An image answered in the page by the student: its top ids, milliseconds and engine.
async function pickLocal(page, id) {
  await page.setInputFiles("#file-input", path.join(imagesDir, `${id.slice(0, 32)}.png`));
  await page.waitForFunction(() => document.querySelector("#local-answer") && document.querySelector("#current-query").dataset.busy === "false", null, { timeout: 120_000 });
  const ids = await hitIds(page, "same-idea");
  const ms = Number(await page.getAttribute("#local-answer", "data-ms"));
  const engine = await page.getAttribute("#local-answer", "data-engine");
  await page.click("#clear-query");
  return { ids, ms, engine };
}

// The engine is chosen on the Models view (shared by every model in the page); then local answers on.
async function useEngine(page, which) {
  await page.click("#nav-models");
  await page.check(which === "WebGPU" ? "#engine-webgpu" : "#engine-cpu");
  await page.click("#nav-explore");
  await page.waitForSelector("#local-mode");
  if (!(await page.isChecked("#local-mode"))) await page.check("#local-mode");
  await page.waitForSelector('#local-status[data-ready="true"]', { timeout: 120_000 });
}

if (bench) {
  // Time to interactive: navigation start to the first library thumbnails drawn, fresh browser
  // each time (the wasm is fetched and compiled anew), the model download not counted.
  const times = [];
  for (let i = 0; i < 6; i++) {
    const { browser, page } = await open(false);
    await page.waitForSelector("#library[data-interactive-ms]:not([data-interactive-ms=''])", { timeout: 600_000 });
    const ms = Number(await page.getAttribute("#library", "data-interactive-ms"));
    if (i > 0) times.push(ms); // the first run also waits for the index to be made
    await browser.close();
  }
  times.sort((a, b) => a - b);
  console.log(`bench: time to interactive median ${times[Math.floor(times.length / 2)].toFixed(0)} ms (runs ${times.map((t) => t.toFixed(0)).join(", ")} ms)`);
  // Image queries answered in the page by the student, on the CPU path (no WebGPU flag) and on
  // WebGPU (the software adapter here), the first (model build) left out.
  for (const [webgpu, engine] of [[false, "CPU"], [true, "WebGPU"]]) {
    const { browser, page } = await open(webgpu);
    await page.waitForSelector('#library[data-indexed="true"]', { timeout: 120_000 });
    const ids = await page.$$eval("#library .grid .thumb", (b) => b.map((x) => x.dataset.id));
    await useEngine(page, engine);
    const local = [];
    for (const id of ids.slice(0, 11)) local.push((await pickLocal(page, id)).ms);
    const rest = local.slice(1).sort((a, b) => a - b);
    console.log(`bench: image query in the page (student, ${engine} path) median ${rest[5].toFixed(1)} ms, max ${rest[9].toFixed(1)} ms (first ${local[0].toFixed(1)} ms)`);
    await browser.close();
  }
  process.exit(0);
}

// ---- 1. Desktop, WebGPU offered.
const { browser, page, errors } = await open(true);
// Indexing the demo library from scratch: progress, then every scene and the first page.
await page.waitForSelector('#library[data-indexed="true"]', { timeout: 600_000 });
await page.waitForFunction(() => Number(document.querySelector("#library").dataset.count) === 120, null, { timeout: 60_000 });
const status = await page.textContent("#index-status");
check(new RegExp(`Indexed: ${total} files \\(\\d+ new`).test(status), `indexing finished: "${status}"`);
check((await page.textContent("#library-title")).includes(`${total} images`), `the library lists ${total} images`);
await page.click("#more");
await page.waitForFunction(() => Number(document.querySelector("#library").dataset.count) === 240);
check(true, "“Show more” loads the next page");
// Index again: everything unchanged.
await page.click("#reindex");
await page.waitForFunction((n) => document.querySelector("#index-status").textContent.includes(`0 new, ${n} unchanged`), total, { timeout: 120_000 });
check(true, `indexing again finds ${total} unchanged files`);
await page.screenshot({ path: path.join(artifacts, "explorer-library.png"), fullPage: true });

// Folder and date filters: in the address, on the grid and on searches; Back undoes them.
{
  const folderOptions = await page.$$eval("#filter-folder option", (o) => o.map((x) => [x.value, x.textContent]));
  const root = folderOptions[1]?.[0] ?? "";
  check(folderOptions.length === 2 && folderOptions[0][0] === "" && folderOptions[1][1] === `images (${total})`, `the folder choice lists the library folder with its count: ${JSON.stringify(folderOptions)}`);
  await page.selectOption("#filter-folder", root);
  await page.waitForFunction((r) => new URL(location.href).searchParams.get("folder") === r, root);
  await page.waitForFunction((n) => document.querySelector("#library-title").textContent.includes(`${n} of ${n} images`), total);
  check(true, "choosing a folder puts it in the address and counts the images in it");
  // The scenes' dates are their files' times: a filter from the day after the newest keeps none.
  const days = (await page.$$eval("#library .grid .thumb", (b) => b.map((x) => x.dataset.date.slice(0, 10)))).sort();
  const day = days[days.length - 1];
  const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  check(/^\d{4}-\d{2}-\d{2}$/.test(day) && days.every((d) => d.length === 10), `every thumbnail carries its date (${days[0]} … ${day})`);
  await page.fill("#filter-from", next);
  await page.waitForSelector("#filter-empty");
  check(await page.$eval("#library", (l) => l.dataset.count === "0"), `from ${next}: no image passes, and the grid says so`);
  check(params(page).get("from") === next, "the first day is in the address");
  await page.fill("#filter-from", days[0]);
  await page.fill("#filter-to", day);
  await page.waitForFunction((n) => document.querySelector("#library").dataset.count === "120" && document.querySelector("#library-title").textContent.includes(`${n} of ${n}`), total);
  check(params(page).get("to") === day, `${days[0]} to ${day}: every scene passes, both days in the address`);
  await page.goBack();
  await page.waitForFunction(() => !new URL(location.href).searchParams.has("to"));
  check(params(page).get("from") === days[0], "Back undoes the last filter change");
  await page.click("#clear-filters");
  await page.waitForFunction((n) => !location.search.includes("folder=") && document.querySelector("#library-title").textContent.includes(`(${n} images)`), total);
  check(!(await page.$("#clear-filters")), "“All images” clears the filters");
  // A shared link with a filter: searches rank only what it keeps.
  const someId = (await page.$$eval("#library .grid .thumb", (b) => b.map((x) => x.dataset.id)))[0];
  await page.goto(`${url.split("?")[0]}?image=${someId}&from=${next}`);
  await page.waitForFunction(() => document.querySelector("#same-idea")?.textContent.includes("No image of the library passes the folder and date filter"), null, { timeout: 60_000 });
  check(await page.$eval("#filter-from", (i) => i.value) === next, "a link's filter fills the date box");
  check(true, "an image search with a filter that keeps nothing says so instead of showing hits");
  await page.goto(`${url.split("?")[0]}?image=${someId}&from=${days[0]}&to=${day}`);
  await waitResults(page);
  check((await hitIds(page, "same-idea")).length > 0, "the same search with a span holding the library finds hits");
  await page.goto(url);
  await page.waitForSelector('#library[data-indexed="true"]');
}

// Search by clicking a library image: both columns, scores, captions; the idea column shares
// the query's relation far more often than chance (1 in 30).
let shared = 0;
let asked = 0;
const gridIds = await page.$$eval("#library .grid .thumb", (b) => b.map((x) => x.dataset.id));
for (const id of gridIds.slice(0, 6)) {
  await page.click(`#library .grid .thumb[data-id="${id}"]`);
  await waitResults(page, id);
  check(params(page).get("image") === id, `the URL holds the query image ${id.slice(0, 8)}`);
  const idea = await hitIds(page, "same-idea");
  const look = await hitIds(page, "looks-alike");
  check(idea.length === 12 && look.length === 12, `two columns of 12 results (${idea.length}, ${look.length})`);
  shared += idea.slice(0, 5).filter((h) => relation(h) === relation(id)).length;
  asked += 5;
}
check(shared / asked >= 0.4, `"same idea" top-5 hits sharing the query's relation: ${shared} of ${asked}`);
const firstHit = await page.$eval("#same-idea .hit", (h) => ({ why: h.querySelector(".why").textContent, idea: h.querySelector(".idea-score").textContent, look: h.querySelector(".look-score").textContent }));
check(firstHit.why.length > 5 && /idea \d\.\d\d/.test(firstHit.idea) && /look -?\d\.\d\d/.test(firstHit.look), `a hit shows scores and a "why" caption: ${JSON.stringify(firstHit)}`);
// "Looks alike" is ranked by look.
const looks = await page.$$eval("#looks-alike .look-score", (s) => s.map((x) => Number(x.textContent.replace("look ", ""))));
check(looks.every((v, i) => i === 0 || v <= looks[i - 1] + 1e-6), `"looks alike" is sorted by look: ${looks.slice(0, 5).join(", ")}…`);

// The map: every other image a point; hover shows a thumbnail, a click makes it the query.
await page.waitForFunction((n) => document.querySelector("#map")?.dataset.points === String(n - 1), total);
check(true, `the map shows the other ${total - 1} images`);
// Scans the map for a point; leaves the mouse on it and returns its id.
async function hoverAPoint() {
  const box = await page.locator(".map-overlay").boundingBox();
  for (let y = 10; y < box.height; y += 6) {
    for (let x = 10; x < box.width; x += 6) {
      await page.mouse.move(box.x + x, box.y + y);
      const id = await page.$eval("#map-tip", (t) => t.dataset.id).catch(() => null);
      if (id) return id;
    }
  }
  return null;
}
let tipId = await hoverAPoint();
check(tipId !== null, `hovering a point shows its thumbnail (${tipId?.slice(0, 8)})`);
await page.screenshot({ path: path.join(artifacts, "explorer-map-hover.png"), fullPage: true });
const beforeClick = params(page).get("image");
// The map may have been redrawn meanwhile (thumbnails, late index updates): hover again right
// before clicking, so the click lands on the point whose id we wait for.
tipId = await hoverAPoint();
await page.mouse.down();
await page.mouse.up();
await waitResults(page, tipId);
check(params(page).get("image") === tipId && tipId !== beforeClick, "clicking the point makes it the query");
// Back returns to the previous query.
await page.goBack();
await waitResults(page, beforeClick);
check(params(page).get("image") === beforeClick, "Back returns to the previous query");

// Composite queries: add an image from the results and an idea, take an idea away; the address
// keeps them, and a new query starts without them.
{
  const base = params(page).get("image");
  // The page's own search requests, to see the composite query it sends.
  const sent = [];
  const onRequest = (r) => { if (r.url().endsWith("/api/search") && r.method() === "POST") sent.push(JSON.parse(r.postData())); };
  page.on("request", onRequest);
  await page.click("#same-idea .hit .add-also");
  await waitResults(page, "also=");
  const also = params(page).get("also");
  check(also?.length === 64 && also !== base, `"+ add to query" puts the image in the address (${also?.slice(0, 8)})`);
  const other = scenes.find((s) => s.relation !== relation(base) && s.relation !== relation(also));
  await page.fill("#refine-idea", other.caption);
  await page.click("#add-idea");
  await waitResults(page, "plus=");
  check(params(page).get("plus") === other.caption, `the added idea is in the address: ${params(page).get("plus")}`);
  check((await page.$$("#extras .extra")).length === 2, "two chips: the added image and the added idea");
  const last = sent.filter((b) => b.query.kind === "compose").pop();
  const parts = last?.query.parts.map((p) => `${p.query.kind}:${p.weight}`).join(" ");
  check(parts === "id:1 id:1 vector:1" || parts === "id:1 id:1 text:1", `the page asks the companion for image + image + idea: ${parts}`);
  check(last.query.parts[0].query.id === base && last.query.parts[1].query.id === also, "the query image first, then the added one");
  const hits = await hitIds(page, "same-idea");
  check(!hits.includes(base) && !hits.includes(also), "neither asking image is among the results");
  await page.screenshot({ path: path.join(artifacts, "explorer-compose.png"), fullPage: true });
  await page.reload();
  await waitResults(page, "plus=");
  check((await page.$$("#extras .extra")).length === 2, "reloading keeps the composite query");
  await page.fill("#refine-idea", relationCaption(relation(base)));
  await page.click("#subtract-idea");
  await waitResults(page, "minus=");
  check(await page.$eval('#extras .extra[data-kind="minus"]', (c) => c.textContent.startsWith("−")), "a taken-away idea shows as − idea");
  const minus = sent.filter((b) => b.query.kind === "compose").pop();
  check(minus?.query.parts.at(-1).weight === -1, `a taken-away idea is sent with weight -1 (${minus?.query.parts.map((p) => p.weight).join(", ")})`);
  await page.click('#extras .extra[data-kind="plus"] .remove-extra');
  await page.waitForFunction(() => !location.search.includes("plus="));
  await waitResults(page, "minus=");
  check((await page.$$("#extras .extra")).length === 2, "× removes one addition");
  await page.click(`#library .grid .thumb[data-id="${base}"]`).catch(() => page.goto(page.url().split("?")[0] + `?image=${base}`));
  await page.waitForFunction(() => !location.search.includes("also=") && !location.search.includes("minus="));
  await waitResults(page, base);
  check((await page.$$("#extras .extra")).length === 0, "a new query starts without additions");
  page.off("request", onRequest);
}

// The keyboard: step through the map (most related first) and search with Enter.
await page.focus(".map-overlay");
await page.keyboard.press("ArrowRight");
const keyTip = await page.$eval("#map-tip", (t) => t.dataset.id);
const topIdea = (await hitIds(page, "same-idea"))[0];
await page.keyboard.press("Enter");
await waitResults(page, keyTip);
check(params(page).get("image") === keyTip, `map keyboard: ArrowRight picks the most related image, Enter searches with it (${keyTip === topIdea ? "the top idea hit" : "another"})`);

// The blend slider: all look → the idea column ranks like the look column; the URL keeps w.
await page.focus("#weight");
await page.keyboard.press("Home");
await waitResults(page, "w=0.00");
check(JSON.stringify(await hitIds(page, "same-idea")) === JSON.stringify(await hitIds(page, "looks-alike")), "weight 0: the blended column equals the look column");
await page.keyboard.press("End");
await waitResults(page, "w=1.00");
const ideaScores = await page.$$eval("#same-idea .idea-score", (s) => s.map((x) => Number(x.textContent.replace("idea ", ""))));
check(ideaScores.every((v, i) => i === 0 || v <= ideaScores[i - 1] + 1e-6), "weight 1: ranked by idea alone");

// Search by image file: picker, drop and paste all find the image itself first.
const someId = gridIds[10];
const file = path.join(imagesDir, `${someId.slice(0, 32)}.png`);
await page.setInputFiles("#file-input", file);
await waitResults(page, `upload=${someId}`);
check((await hitIds(page, "same-idea"))[0] === someId, "file picker: the picked image is found first");
check(await page.$eval(".query-thumb", (i) => i.src.startsWith("blob:")), "the picked image is shown as the query");
await page.reload();
await waitResults(page, `upload=${someId}`);
check((await hitIds(page, "same-idea"))[0] === someId, "reload: an uploaded query comes back from the URL");
const dropId = gridIds[11];
await dispatchFile(page, dropId, "drop", "#drop-zone");
await waitResults(page, `upload=${dropId}`);
check((await hitIds(page, "same-idea"))[0] === dropId, "drag and drop: the dropped image is found first");
const pasteId = gridIds[12];
await dispatchFile(page, pasteId, "paste", null);
await waitResults(page, `upload=${pasteId}`);
check((await hitIds(page, "same-idea"))[0] === pasteId, "paste: the pasted image is found first");

// Search by idea: suggestions while typing, MiniLM in the browser (WebGPU here).
await page.waitForSelector('#idea-engine[data-ready="true"]', { timeout: 180_000 });
const scene = scenes.find((s) => s.relation === relation(gridIds[0]));
await page.evaluate(() => document.activeElement?.blur());
await page.keyboard.press("/");
check(await page.evaluate(() => document.activeElement?.id === "idea"), "“/” jumps to the idea box");
await page.keyboard.type(scene.caption.split(" ").slice(0, 3).join(" "));
await page.waitForSelector("#suggestions li", { timeout: 30_000 });
const suggestions = await page.$$eval("#suggestions li", (l) => l.map((x) => x.textContent));
check(suggestions.length > 0, `suggestions from the caption bank while typing: ${JSON.stringify(suggestions.slice(0, 3))}`);
await page.fill("#idea", scene.caption);
await page.keyboard.press("Enter");
await page.waitForFunction(() => document.querySelector("#query-source")?.dataset.source?.startsWith("browser"), null, { timeout: 180_000 });
await waitResults(page, "idea=");
const source = await page.getAttribute("#query-source", "data-source");
check(source === "browser-webgpu", `the idea was embedded in the browser on WebGPU (${source})`);
const ideaHits = await hitIds(page, "same-idea");
const fitting = ideaHits.slice(0, 10).filter((h) => relation(h) === scene.relation).length;
check(fitting >= 5, `idea "${scene.caption}": ${fitting} of the top 10 show ${scene.relation}`);
check((await page.textContent("#looks-alike")).includes("An idea has no look"), "an idea query has no look column");
check(await page.$eval("#map", (m, n) => m.dataset.points === String(n), total), `the map shows all ${total} images for an idea`);
await page.screenshot({ path: path.join(artifacts, "explorer-idea.png"), fullPage: true });
check(!(await page.$("#no-match")), `a caption of an idea the library shows gets no "nothing shares this idea" notice`);

// "No good match": an idea no scene shows is answered with the nearest images, every one marked
// weak (below the model's calibrated cut-off, sent with the answer), and the page says so.
const unrelated = "a bowl of hot soup served on a wooden kitchen table";
const [answer] = await Promise.all([
  page.waitForResponse((r) => r.url().endsWith("/api/search") && r.request().method() === "POST" && JSON.stringify(r.request().postDataJSON()).includes("vector")),
  (async () => { await page.fill("#idea", unrelated); await page.keyboard.press("Enter"); })(),
]);
const weakBody = await answer.json();
await waitResults(page, "idea=a+bowl");
check(typeof weakBody.threshold === "number", `the answer carries the model's cut-off (${weakBody.threshold})`);
const weakHits = weakBody.results.filter((h) => h.weak).length;
check(weakHits === weakBody.results.length, `every hit for "${unrelated}" is below it (${weakHits} of ${weakBody.results.length}, best ${weakBody.results[0]?.relational.toFixed(3)})`);
await page.waitForSelector("#no-match", { timeout: 10_000 });
check((await page.textContent("#no-match")).includes("Nothing in your library clearly shares this idea"), "the page says plainly that nothing shares the idea");
check((await page.$$("#same-idea .hit.weak .weak-label")).length === weakHits, "each weak hit is marked “weak match”");
await page.screenshot({ path: path.join(artifacts, "explorer-no-match.png"), fullPage: true });

// Classroom: a lesson from the map's analogies, reveal, arrows, URL state, sharing.
await page.click(`#library .grid .thumb[data-id="${gridIds[3]}"]`);
await waitResults(page, gridIds[3]);
await page.click("#lesson-from-map");
await page.waitForSelector("#stage");
const pairs = params(page).get("lesson").split(",");
check(pairs.length >= 1 && pairs.every((p) => p.startsWith(gridIds[3])), `a lesson of ${pairs.length} pairs with the query`);
check((await page.textContent("#pair-counter")) === `Pair 1 of ${pairs.length}`, "pair 1 shown");
check(!(await page.$("#shared-caption")), "the idea is hidden at first");
await page.keyboard.press("Space");
const caption = await page.textContent("#shared-caption");
check(caption.length > 5, `Space reveals the shared idea: "${caption}"`);
await page.keyboard.press("ArrowRight");
await page.waitForFunction(() => document.querySelector("#stage")?.dataset.slide === "1" || document.querySelectorAll("#next-pair[disabled]").length > 0);
const slide = pairs.length > 1 ? "1" : null;
check(params(page).get("slide") === slide, `ArrowRight moves on and the URL follows (slide=${params(page).get("slide")})`);
check(!(await page.$("#shared-caption")), "the next pair starts hidden");
await page.screenshot({ path: path.join(artifacts, "classroom.png"), fullPage: true });
const shareUrl = await page.inputValue("#share-url");
check(shareUrl === page.url(), "the share box holds the page's URL");
// A shared link opens the same pair in a fresh tab of the same session.
const other = await page.context().newPage();
other.on("pageerror", (err) => errors.push(String(err)));
await other.goto(shareUrl);
await other.waitForSelector("#stage");
check((await other.textContent("#pair-counter")) === (await page.textContent("#pair-counter")), "the shared link opens the same pair");
check((await other.getAttribute("#pair-b", "src")) === (await page.getAttribute("#pair-b", "src")), "the shared link shows the same images");
await other.close();
await page.keyboard.press("ArrowLeft");
await page.click("#remove-pair");
check(params(page).get("lesson")?.split(",").length === pairs.length - 1 || (pairs.length === 1 && !params(page).get("lesson")), "a pair can be removed");

// Quiz from the lesson: each pair's second image is the answer, beside a look-alike decoy.
const lessonLeft = params(page).get("lesson")?.split(",").map((p) => p.split(".")) ?? [];
if (lessonLeft.length > 0) {
  await page.click("#quiz-lesson");
  await page.waitForSelector("#quiz-stage", { timeout: 60_000 });
  const fromLesson = params(page).get("quiz").split(",").map((q) => q.split("."));
  check(params(page).get("view") === "quiz" && fromLesson.length >= 1 && fromLesson.every(([q, a, d]) => lessonLeft.some(([x, y]) => x === q && y === a) && d !== a),
    `“Quiz this lesson” asks ${fromLesson.length} of its ${lessonLeft.length} pairs, the pair's image as the answer`);
}

// Quiz from the map's corners: answers by key and click, the reveal, tallies, the address.
await page.goto(`${url.split("?")[0]}?image=${gridIds[3]}`);
await waitResults(page, gridIds[3]);
await page.click("#quiz-from-map");
await page.waitForSelector("#quiz-stage");
const questions = params(page).get("quiz").split(",").map((q) => q.split("."));
check(questions.length >= 2 && questions.every(([q]) => q === gridIds[3]), `a quiz of ${questions.length} questions about the query`);
const fair = questions.filter(([q, a, d]) => relation(a) === relation(q) && relation(d) !== relation(q)).length;
check(fair >= questions.length / 2, `${fair} of ${questions.length} questions: the answer shows the query's relation and the decoy another`);
check((await page.textContent("#question-counter")) === `Question 1 of ${questions.length}`, "question 1 shown");
const [, answer0, decoy0, side0] = questions[0];
const leftSrc = await page.getAttribute("#choose-left img", "src");
check(leftSrc.includes(side0 === "l" ? answer0 : decoy0) && (await page.getAttribute("#choose-right img", "src")).includes(side0 === "l" ? decoy0 : answer0), "answer and decoy on the sides the question says");
check(!(await page.$("#quiz-caption")), "the answer is hidden at first");
await page.keyboard.press(side0 === "l" ? "2" : "1");
await page.waitForFunction(() => document.querySelector("#quiz-feedback").dataset.right === "false");
check(true, "a wrong answer by key is told apart");
await page.click(side0 === "l" ? "#choose-left" : "#choose-right");
await page.waitForFunction(() => document.querySelector("#quiz-feedback").dataset.right === "true");
check(await page.$eval("#quiz-tally", (t) => t.dataset.question === "1.1" && t.dataset.session === "1.1"), `the right answer by click; tally: "${await page.textContent("#quiz-tally")}"`);
await page.keyboard.press("Space");
await page.waitForSelector("#quiz-caption");
check((await page.textContent("#quiz-caption")).length > 5 && (await page.$eval(side0 === "l" ? "#choose-left" : "#choose-right", (b) => b.classList.contains("answer"))),
  `Space reveals the answer and the idea it shares: "${await page.textContent("#quiz-caption")}"`);
await page.screenshot({ path: path.join(artifacts, "quiz.png"), fullPage: true });
await page.keyboard.press("n");
await page.waitForFunction(() => document.querySelector("#quiz-stage").dataset.question === "1");
check(params(page).get("question") === "1" && !(await page.$("#quiz-caption")), "N moves on, hidden again, and the address follows");
check(await page.$eval("#quiz-tally", (t) => t.dataset.question === "0.0" && t.dataset.session === "1.1"), "a new question starts its own tally; the session's goes on");
await page.keyboard.press(questions[1][3] === "l" ? "ArrowLeft" : "ArrowRight");
await page.waitForFunction(() => document.querySelector("#quiz-tally").dataset.session === "2.1");
check(true, "the arrow keys answer too");
await page.reload();
await page.waitForSelector("#quiz-stage");
check(await page.$eval("#quiz-tally", (t) => t.dataset.session === "2.1"), "a reload keeps the question and the tallies");
await page.click("#new-session");
check(await page.$eval("#quiz-tally", (t) => t.dataset.session === "0.0"), "“New session” starts the tallies afresh");

// The A/B study on the quiz's screen: blind pairs, answers by click and key (ties too), stored
// by the companion as they come, the place kept through a reload.
if (process.env.RELSIM_STUDY_DIR) {
  check(await page.isVisible("#nav-study"), "the Study tab shows while the companion runs a study");
  await page.click("#nav-study");
  await page.waitForSelector("#study-stage");
  const study = await page.evaluate(async () => (await fetch("/api/study")).json());
  const n = study.trials.length;
  check(n >= 2 && study.answers === 0, `a study of ${n} pairs, none answered yet`);
  check((await page.textContent("#study-counter")) === `Pair 1 of ${n}`, "pair 1 shown");
  const shown = await page.$$eval("#study-stage img", (imgs) => imgs.map((i) => i.getAttribute("src")));
  check(shown.length === 3 && shown.every((s) => s.startsWith("/api/study/images/")) && !(await page.content()).includes("colour-histogram"), "query and two hits, methods hidden");
  const moves = ["click", "2", "t", "ArrowLeft"];
  for (let i = 0; i < n; i++) {
    const move = moves[i % moves.length];
    if (move === "click") await page.click("#choose-left");
    else await page.keyboard.press(move);
    await page.waitForFunction((i) => document.querySelector("#study-done") || document.querySelector("#study-stage")?.dataset.position === String(i + 1), i);
    if (i === 0) {
      await page.reload();
      await page.waitForSelector("#study-stage");
      check((await page.getAttribute("#study-stage", "data-position")) === "1", "a reload goes on from the next pair");
    }
  }
  await page.waitForSelector("#study-done");
  const after = await page.evaluate(async () => (await fetch("/api/study")).json());
  check(after.answers === n, `every answer stored by the companion (${after.answers} of ${n}), ties included`);
}

// ---- 2. The map stays smooth with 10,000 points: the companion's map answer is widened to
// 10,000 points (jittered copies of the real ones) on its way to the page.
await page.click("#nav-explore");
await page.route("**/api/search", async (route) => {
  const response = await route.fetch();
  const body = await response.json();
  if (body.map) {
    const real = body.map;
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.05;
    body.map = Array.from({ length: 10_000 }, (_, i) => {
      const p = real[i % real.length];
      return { id: p.id, relational: p.relational + rand(), attribute: p.attribute === null ? null : p.attribute + rand() };
    });
  }
  await route.fulfill({ response, json: body });
});
await page.click(`#library .grid .thumb[data-id="${gridIds[5]}"]`);
await waitResults(page, gridIds[5]);
await page.waitForFunction(() => document.querySelector("#map")?.dataset.points === "10000");
const renderMs = Number(await page.getAttribute("#map", "data-render-ms"));
const frames = await page.evaluate(async () => {
  const canvas = document.querySelector(".map-overlay");
  const r = canvas.getBoundingClientRect();
  const times = [];
  let last = performance.now();
  for (let i = 0; i < 120; i++) {
    await new Promise((done) => requestAnimationFrame(done));
    const now = performance.now();
    times.push(now - last);
    last = now;
    const t = i / 120;
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: r.left + r.width * t, clientY: r.top + r.height * (0.5 + 0.4 * Math.sin(t * 12)), bubbles: true }));
  }
  return times.slice(1);
});
frames.sort((a, b) => a - b);
const p95 = frames[Math.floor(frames.length * 0.95)];
check(renderMs < 150, `10,000 points drawn in ${renderMs} ms`);
check(p95 < 50, `hovering over 10,000 points: frame p95 ${p95.toFixed(1)} ms, median ${frames[frames.length >> 1].toFixed(1)} ms`);
await page.screenshot({ path: path.join(artifacts, "explorer-map-10k.png"), fullPage: true });
await page.unroute("**/api/search");
check(errors.length === 0, `no console errors on the desktop run ${errors.length ? JSON.stringify(errors) : ""}`);
await browser.close();

// ---- 3. Phone width, no WebGPU: a shared query link, layout in one column, ideas on the CPU.
{
  const { browser, page, errors } = await open(false, { width: 390, height: 844 });
  await page.goto(`${origin}/?image=${gridIds[2]}`);
  await waitResults(page, gridIds[2]);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `phone width: no sideways scrolling (overflow ${overflow}px)`);
  const [a, b] = await Promise.all(["#same-idea", "#looks-alike"].map((s) => page.locator(s).boundingBox()));
  check(b.y > a.y + a.height - 1, "phone width: the columns stack");
  await page.screenshot({ path: path.join(artifacts, "explorer-phone.png"), fullPage: true });
  await page.waitForSelector('#idea-engine[data-ready="true"]', { timeout: 180_000 });
  await page.fill("#idea", scenes[0].caption);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#query-source")?.dataset.source?.startsWith("browser"), null, { timeout: 180_000 });
  await waitResults(page, "idea=");
  check((await page.getAttribute("#query-source", "data-source")) === "browser-cpu", "without WebGPU the idea is embedded on the CPU");
  check(errors.length === 0, `no console errors on the phone run ${errors.length ? JSON.stringify(errors) : ""}`);
  await browser.close();
}

// ---- 4. Image queries answered in the browser by the distilled student, then with the
// companion stopped.
{
  const { browser, page, errors } = await open(true);
  await page.waitForSelector('#library[data-indexed="true"]', { timeout: 120_000 });
  await page.check("#local-mode");
  await page.waitForSelector('#local-status[data-ready="true"]', { timeout: 120_000 });
  check((await page.textContent("#local-status")).includes(`${total} images`), `student ready: "${await page.textContent("#local-status")}"`);
  // Ask with five library images: the student's top 10 (in the browser) against the
  // teacher's (the companion), on the WebGPU path and on the CPU path.
  const pick = (id) => pickLocal(page, id);
  const engineRadio = (which) => useEngine(page, which);
  const queries = gridIds.slice(20, 25);
  let overlap = 0;
  const cpuTimes = [];
  let sameAcrossEngines = 0;
  for (const id of queries) {
    await engineRadio("WebGPU");
    const gpu = await pick(id);
    await engineRadio("CPU");
    const cpu = await pick(id);
    cpuTimes.push(cpu.ms);
    const teacher = await page.evaluate(async (id) => {
      const r = await fetch("/api/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: { kind: "id", id }, k: 9, weight: 1 }) });
      return (await r.json()).results.map((h) => h.image.id);
    }, id);
    // The teacher leaves the query out; the student finds it (it is in the library) first.
    const teacherTop10 = [id, ...teacher];
    overlap += cpu.ids.slice(0, 10).filter((x) => teacherTop10.includes(x)).length / 10;
    const same = gpu.ids.slice(0, 10).every((x) => cpu.ids.slice(0, 10).includes(x));
    sameAcrossEngines += same ? 1 : 0;
    check(gpu.engine === "WebGPU" && cpu.engine === "CPU", `query ${id.slice(0, 8)}: WebGPU ${gpu.ms} ms, CPU ${cpu.ms} ms`);
  }
  check(sameAcrossEngines === queries.length, `WebGPU and CPU give the same top 10 for ${sameAcrossEngines} of ${queries.length} images`);
  check(overlap / queries.length >= 0.6, `top-10 overlap of the browser's answers with the companion's: ${(overlap / queries.length).toFixed(2)}`);
  cpuTimes.sort((a, b) => a - b);
  console.log(`bench: local image query on the CPU path median ${cpuTimes[2].toFixed(1)} ms (${cpuTimes.join(", ")} ms)`);

  // Stop the companion: queries are still answered here.
  const pid = Number(process.env.RELSIM_COMPANION_PID);
  if (pid) {
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100; i++) {
      const up = await fetch(`${origin}/api/health`).then(() => true, () => false);
      if (!up) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const up = await fetch(`${origin}/api/health`).then(() => true, () => false);
    check(!up, "the companion is stopped");
    const errorsBefore = errors.length;
    const stopped = await pick(gridIds[30]);
    check(stopped.ids[0] === gridIds[30] && stopped.ids.length === 12, `with the companion stopped the page still answers: the image itself first of ${stopped.ids.length}`);
    // Reload with the companion stopped: the service worker serves the page, which remembers to
    // answer here and finds the student and the library's vectors in the browser cache.
    await page.reload();
    await page.waitForSelector('#local-status[data-ready="true"]', { timeout: 60_000 });
    const offlineStatus = await page.textContent("#local-status");
    check(offlineStatus.includes("from the browser cache"), `reloaded with the companion stopped: "${offlineStatus}"`);
    const reloaded = await pick(gridIds[31]);
    check(reloaded.ids[0] === gridIds[31], "after the reload the page still answers image queries");
    await page.screenshot({ path: path.join(artifacts, "explorer-offline.png"), fullPage: true });
    // Only the failed reconnections and thumbnail loads of a stopped server may complain now.
    const after = errors.slice(errorsBefore).filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|ERR_FAILED|FetchEvent|Failed to fetch/.test(e));
    errors.length = errorsBefore;
    errors.push(...after);
  } else {
    check(false, "RELSIM_COMPANION_PID is not set: the companion-stopped check cannot run");
  }
  check(errors.length === 0, `no console errors on the local-answer run ${errors.length ? JSON.stringify(errors) : ""}`);
  await browser.close();
}

if (failures > 0) {
  console.error(`${failures} explorer check(s) failed`);
  process.exit(1);
}
console.log("explorer tests passed");
