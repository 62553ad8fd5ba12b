// The real page in Debian's headless Chromium: MiniLM embeddings on the WebGPU and CPU paths
// match sentence-transformers within 1e-4, the CPU fallback without WebGPU, the weights cache,
// and no console errors.
//
// usage: node minilm.mjs URL ARTIFACT_DIR [--bench]
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, artifacts, mode] = process.argv.slice(2);
if (!url || !artifacts) {
  console.error("usage: node minilm.mjs URL ARTIFACT_DIR [--bench]");
  process.exit(2);
}
const bench = mode === "--bench";
const here = path.dirname(new URL(import.meta.url).pathname);
const reference = JSON.parse(fs.readFileSync(path.join(here, "../fixtures/minilm/reference.json"), "utf8"));
const TOLERANCE = 1e-4;
// Short sentences keep the software WebGPU adapter (SwiftShader, ~0.3 GFLOP/s) fast enough.
// `cargo xtask bench text` times transformers.js on the same file.
const SENTENCES = JSON.parse(fs.readFileSync(path.join(here, "query-sentences.json"), "utf8"));
const expected = new Map(reference.cases.map((c) => [c.text, c.embedding]));
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const baseFlags = [
  "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic",
];
fs.mkdirSync(artifacts, { recursive: true });

let failures = 0;
function check(ok, message) {
  console.log(`${ok ? "ok  " : "FAIL"} ${message}`);
  if (!ok) failures += 1;
}

async function openPage(webgpu) {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: webgpu ? [...baseFlags, "--enable-unsafe-webgpu"] : baseFlags,
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
  page.on("pageerror", (err) => errors.push(String(err)));
  await page.goto(url);
  // The text encoder panel is the Models view.
  await page.goto(`${new URL(url).origin}/?view=models`);
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 120_000 });
  return { browser, page, errors };
}

async function embed(page, sentence, engine) {
  await page.fill("#sentence", sentence);
  const selector = `#result[data-engine="${engine}"]`;
  await page.waitForFunction(
    ([sel, text]) => { const r = document.querySelector(sel); return r && r.dataset.text === text; },
    [selector, sentence],
    { timeout: 180_000 },
  );
  const vector = JSON.parse(await page.textContent("#embedding-json"));
  const millis = Number(await page.textContent("#result-ms"));
  return { vector, millis };
}

function maxAbsDiff(a, b) {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

async function runEngine(page, engine, sentences) {
  await page.check(engine === "WebGPU" ? "#engine-webgpu" : "#engine-cpu");
  const times = [];
  for (const sentence of sentences) {
    const { vector, millis } = await embed(page, sentence, engine);
    times.push(millis);
    const diff = maxAbsDiff(vector, expected.get(sentence));
    check(vector.length === 384 && diff <= TOLERANCE, `${engine}: ${JSON.stringify(sentence)} max diff ${diff.toExponential(2)} (${millis} ms)`);
  }
  return times;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// 1. WebGPU offered: it is the default, and both paths match the reference.
{
  const { browser, page, errors } = await openPage(true);
  check(await page.isEnabled("#engine-webgpu"), "WebGPU adapter found with --enable-unsafe-webgpu");
  check(await page.isChecked("#engine-webgpu"), "WebGPU is the default when an adapter exists");
  const gpuTimes = await runEngine(page, "WebGPU", SENTENCES);
  const cpuTimes = await runEngine(page, "CPU", SENTENCES);
  // The bench times the steady state, as transformers.js is timed after a warm-up pass: each
  // sentence again with trailing spaces (the same tokens, a new query), the first pass left out.
  const steady = { WebGPU: [], CPU: [] };
  for (let pass = 1; bench && pass <= 5; pass++) {
    for (const engine of ["WebGPU", "CPU"]) {
      await page.check(engine === "WebGPU" ? "#engine-webgpu" : "#engine-cpu");
      for (const sentence of SENTENCES) steady[engine].push((await embed(page, sentence + " ".repeat(pass), engine)).millis);
    }
  }
  await page.screenshot({ path: path.join(artifacts, "minilm.png"), fullPage: true });
  // The weights come from the browser cache after the first load.
  await page.reload();
  await page.waitForSelector('#status[data-ready="true"]', { timeout: 120_000 });
  const status = await page.textContent("#status");
  check(status.includes("from the browser cache"), `reload uses the cache: "${status}"`);
  check(errors.length === 0, `no console errors on the WebGPU run ${errors.length ? JSON.stringify(errors) : ""}`);
  await browser.close();
  if (bench) {
    // The first query on each path pays for shader compilation or warm-up: reported apart.
    const webgpu = median(steady.WebGPU.slice(SENTENCES.length));
    const cpu = median(steady.CPU.slice(SENTENCES.length));
    for (const [engine, first, ms] of [["WebGPU", gpuTimes, webgpu], ["CPU", cpuTimes, cpu]]) {
      console.log(`bench: ${engine.padEnd(6)} per-query latency median ${ms.toFixed(1)} ms over passes 2-5 (first query ${first[0].toFixed(1)} ms, the first pass's median ${median(first.slice(1)).toFixed(1)} ms)`);
    }
    fs.writeFileSync(path.join(artifacts, "minilm-bench.json"), JSON.stringify({ webgpu_query_ms: webgpu, cpu_query_ms: cpu }));
  }
}

// 2. No WebGPU: the page falls back to the CPU by itself.
if (!bench) {
  const { browser, page, errors } = await openPage(false);
  check(!(await page.isEnabled("#engine-webgpu")), "without the flag WebGPU is offered as unavailable");
  check(await page.isChecked("#engine-cpu"), "CPU is chosen when there is no adapter");
  const { vector } = await embed(page, SENTENCES[1], "CPU");
  const diff = maxAbsDiff(vector, expected.get(SENTENCES[1]));
  check(diff <= TOLERANCE, `CPU fallback matches the reference (max diff ${diff.toExponential(2)})`);
  check(errors.length === 0, `no console errors on the CPU-only run ${errors.length ? JSON.stringify(errors) : ""}`);
  await page.screenshot({ path: path.join(artifacts, "minilm-cpu-only.png"), fullPage: true });
  await browser.close();
}

if (failures > 0) {
  console.error(`${failures} browser check(s) failed`);
  process.exit(1);
}
console.log("browser tests passed");
