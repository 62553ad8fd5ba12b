// The peer of `relsim bench text` in the browser: transformers.js (onnxruntime-web, wasm, fp32)
// in Debian's headless Chromium, on an ONNX export of the same all-MiniLM-L6-v2 weights
// (tests/fixtures/minilm/export_onnx.py). Checks its embeddings against reference.json (within
// 1e-4, the inputs under 256 tokens), then times the sentences as `relsim bench text` does: batch 1 and 32 over all of them,
// one untimed pass, the median of PASSES; also the median per-query latency at batch 1.
// Served from a local server with the cross-origin isolation headers threads need.
//
// usage: node transformersjs.mjs MODEL_DIR NODE_MODULES SENTENCES_JSON [--threads N] [--passes N] [--webgpu]
// prints one JSON line.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const [modelDir, nodeModules, sentencesFile] = args;
if (!modelDir || !nodeModules || !sentencesFile) {
  console.error("usage: node transformersjs.mjs MODEL_DIR NODE_MODULES SENTENCES_JSON [--threads N] [--passes N] [--webgpu]");
  process.exit(2);
}
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const threads = Number(option("--threads", "2"));
const passes = Number(option("--passes", "5"));
const webgpu = args.includes("--webgpu");
const here = path.dirname(new URL(import.meta.url).pathname);
const reference = JSON.parse(fs.readFileSync(path.join(here, "../fixtures/minilm/reference.json"), "utf8"));
const sentences = JSON.parse(fs.readFileSync(sentencesFile, "utf8"));
const TOLERANCE = 1e-4;

const mounts = {
  "/tjs/": path.join(nodeModules, "@huggingface/transformers/dist/"),
  "/ort/": path.join(nodeModules, "onnxruntime-web/dist/"),
  "/models/minilm/": modelDir.endsWith("/") ? modelDir : `${modelDir}/`,
};
const types = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
// One onnxruntime module instance: transformers.js imports "onnxruntime-common" for its Tensor.
const page = `<!doctype html><meta charset="utf-8"><title>transformers.js</title>
<script type="importmap">{"imports": {"onnxruntime-web/webgpu": "/ort/ort.webgpu.min.mjs", "onnxruntime-common": "/shim/common.mjs"}}</script>
<body>transformers.js bench</body>`;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost").pathname;
  const headers = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp", "Cross-Origin-Resource-Policy": "same-origin" };
  if (url === "/") {
    res.writeHead(200, { ...headers, "Content-Type": "text/html" });
    return res.end(page);
  }
  if (url === "/shim/common.mjs") {
    res.writeHead(200, { ...headers, "Content-Type": "text/javascript" });
    return res.end('export * from "/ort/ort.webgpu.min.mjs";\n');
  }
  const mount = Object.keys(mounts).find((m) => url.startsWith(m));
  const file = mount && path.join(mounts[mount], decodeURIComponent(url.slice(mount.length)));
  if (!file || !file.startsWith(mounts[mount]) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404, headers);
    return res.end("not found");
  }
  res.writeHead(200, { ...headers, "Content-Type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const flags = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: webgpu ? [...flags, "--enable-unsafe-webgpu"] : [...flags, "--disable-gpu"],
});
let result;
try {
  const tab = await (await browser.newContext()).newPage();
  const errors = [];
  tab.on("pageerror", (err) => errors.push(String(err)));
  await tab.goto(origin);
  result = await tab.evaluate(async ({ threads, passes, webgpu, cases, sentences, maxTokens }) => {
    const { pipeline, env } = await import("/tjs/transformers.web.js");
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = "/models/";
    env.useBrowserCache = false;
    env.backends.onnx.wasm.wasmPaths = "/ort/";
    env.backends.onnx.wasm.numThreads = threads;
    const extractor = await pipeline("feature-extraction", "minilm", { device: webgpu ? "webgpu" : "wasm", dtype: "fp32" });
    const embed = async (texts) => (await extractor(texts, { pooling: "mean", normalize: true })).tolist();
    // Inputs cut at 256 tokens are left out: transformers.js truncates over-long inputs its own
    // way (it can drop the final [SEP]), which is the peer's behaviour, not the export's.
    let worst = 0;
    let checked = 0;
    for (const c of cases.filter((c) => c.input_ids.length < maxTokens)) {
      const [got] = await embed([c.text.trim()]);
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - c.embedding[i]));
      checked += 1;
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const latencies = [];
    const rate = async (batch) => {
      const pass = async () => {
        const start = performance.now();
        for (let i = 0; i < sentences.length; i += batch) {
          const t = performance.now();
          await embed(sentences.slice(i, i + batch));
          if (batch === 1) latencies.push(performance.now() - t);
        }
        return sentences.length / ((performance.now() - start) / 1000);
      };
      await pass();
      latencies.length = 0;
      const rates = [];
      for (let p = 0; p < passes; p++) rates.push(await pass());
      return median(rates);
    };
    const batch1 = await rate(1);
    const query = median(latencies);
    const batch32 = await rate(32);
    return {
      encoder: `transformers.js (onnxruntime-web ${webgpu ? "webgpu" : `wasm, ${threads} threads`}, fp32)`,
      cross_origin_isolated: self.crossOriginIsolated,
      sentences: sentences.length,
      batch1_sentences_per_s: batch1,
      batch32_sentences_per_s: batch32,
      median_query_ms: query,
      max_diff_against_reference: worst,
      reference_inputs_checked: checked,
    };
  }, { threads, passes, webgpu, cases: reference.cases, sentences, maxTokens: reference.max_seq_length });
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
} finally {
  await browser.close();
  server.close();
}
if (!(result.max_diff_against_reference <= TOLERANCE)) {
  console.error(`transformers.js differs from the reference by ${result.max_diff_against_reference}`);
  process.exit(1);
}
console.log(JSON.stringify(result));
