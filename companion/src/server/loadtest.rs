//! `relsim bench serve`: a bounded load test on loopback. A scene library is indexed, the server
//! runs in this process, and many clients send a mix of API calls for a fixed time; every
//! non-2xx answer or transport failure counts as an error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::{app, guard, load, ServerConfig};
use crate::encoders::EncoderOptions;

/// What the load test does.
pub struct LoadTest {
    pub clients: usize,
    pub seconds: f64,
    pub images: usize,
    pub minilm_dir: PathBuf,
    pub encoder: EncoderOptions,
}

/// The kinds of request, in the mix's proportions (out of 10).
const MIX: [(&str, usize); 6] = [("search by id", 3), ("search by vector", 2), ("library page", 2), ("thumbnail", 1), ("search by upload", 1), ("search by text", 1)];

struct Outcome {
    kind: usize,
    millis: f64,
    ok: bool,
}

/// Runs the load test and prints p50/p99 per kind of request and overall.
pub fn run(test: LoadTest) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("relsim-loadtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    crate::scenes::generate::generate(&dir.join("scenes"), test.images, &crate::scenes::generate::SceneSet { size: 128, ..crate::scenes::generate::SceneSet::classic(3) }, &|| ())?;
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse()?,
        minilm_dir: test.minilm_dir.clone(),
        public_dir: crate::paths::default_public_dir(),
        pkg_dir: crate::paths::default_pkg_dir(),
        libraries: vec![dir.join("scenes").join("images")],
        data_dir: dir.join("data"),
        model: "lite".into(),
        encoder: test.encoder.clone(),
        index_on_start: true,
        student_dir: crate::paths::default_student_dir(),
        study: None,
        chat: None,
    };
    let loaded = load(&config)?;
    let library = loaded.state.library.clone();
    library.start_indexing();
    let started = Instant::now();
    while library.is_running() || library.catalog().items.len() < test.images {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "indexing {} images took over 10 minutes", test.images);
        anyhow::ensure!(library.progress().phase != "failed", "indexing failed: {:?}", library.progress().error);
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("indexed {} images in {:.1} s", test.images, started.elapsed().as_secs_f64());
    let catalog = library.catalog();
    let ids: Vec<String> = catalog.items.iter().map(|i| i.id.clone()).collect();
    let vectors: Vec<Vec<f32>> = (0..ids.len().min(50)).map(|row| catalog.relational(row).to_vec()).collect();
    let upload = std::fs::read(&catalog.items[0].paths[0]).context("reading an upload image")?;
    // Text queries cycle through the ~100 scene captions (the server remembers texts it embedded).
    let texts = crate::explain::scene_captions();

    let runtime = tokio::runtime::Runtime::new()?;
    let outcomes = runtime.block_on(async move {
        let token = guard::new_token();
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let router = app(&config, loaded.state, guard::Guard::new(token.clone(), addr.port(), None));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(test.clients).build_http();
        let deadline = Instant::now() + Duration::from_secs_f64(test.seconds);
        let schedule: Vec<usize> = MIX.iter().enumerate().flat_map(|(k, (_, n))| std::iter::repeat_n(k, *n)).collect();
        let mut tasks = Vec::new();
        for c in 0..test.clients {
            let (client, token, ids, vectors, upload, schedule, texts) =
                (client.clone(), token.clone(), ids.clone(), vectors.clone(), upload.clone(), schedule.clone(), texts.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = c * 7;
                while Instant::now() < deadline {
                    let kind = schedule[n % schedule.len()];
                    let id = &ids[n % ids.len()];
                    let (method, path, content_type, body): (&str, String, &str, Vec<u8>) = match kind {
                        0 => ("POST", "/api/search".into(), "application/json", json!({ "query": { "kind": "id", "id": id }, "k": 20 }).to_string().into_bytes()),
                        1 => ("POST", "/api/search".into(), "application/json", json!({ "query": { "kind": "vector", "vector": vectors[n % vectors.len()] }, "k": 20 }).to_string().into_bytes()),
                        2 => ("GET", format!("/api/library?offset={}&limit=100", n % 100), "", Vec::new()),
                        3 => ("GET", format!("/api/images/{id}/thumbnail"), "", Vec::new()),
                        4 => ("POST", "/api/search/image?k=20".into(), "image/png", upload.clone()),
                        _ => ("POST", "/api/search".into(), "application/json", json!({ "query": { "kind": "text", "text": texts[(n / 10) % texts.len()] }, "k": 20 }).to_string().into_bytes()),
                    };
                    let mut request = hyper::Request::builder().method(method).uri(format!("http://{addr}{path}")).header("x-relsim-token", &token);
                    if !content_type.is_empty() {
                        request = request.header("content-type", content_type);
                    }
                    let request = request.body(Full::new(Bytes::from(body))).expect("a valid request");
                    let t = Instant::now();
                    let ok = match client.request(request).await {
                        Ok(response) => {
                            let status = response.status();
                            // Read the whole body: a reply is only done when its last byte is in.
                            response.into_body().collect().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    out.push(Outcome { kind, millis: t.elapsed().as_secs_f64() * 1e3, ok });
                    n += 1;
                }
                out
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await?);
        }
        anyhow::Ok(all)
    })?;
    library.cancel();
    let _ = std::fs::remove_dir_all(&dir);

    let pct = |mut v: Vec<f64>, p: f64| crate::stats::percentile(&mut v, p);
    println!("load test: {} clients for {:.0} s on loopback, {} library images", test.clients, test.seconds, test.images);
    println!("{:<18} {:>9} {:>7} {:>9} {:>9}", "request", "count", "errors", "p50 ms", "p99 ms");
    let mut report = Vec::new();
    for (k, (name, _)) in MIX.iter().enumerate() {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.kind == k).collect();
        let times: Vec<f64> = mine.iter().map(|o| o.millis).collect();
        let errors = mine.iter().filter(|o| !o.ok).count();
        let (p50, p99) = (pct(times.clone(), 0.5), pct(times, 0.99));
        println!("{name:<18} {:>9} {errors:>7} {p50:>9.1} {p99:>9.1}", mine.len());
        report.push(json!({ "request": name, "count": mine.len(), "errors": errors, "p50_ms": p50, "p99_ms": p99 }));
    }
    let times: Vec<f64> = outcomes.iter().map(|o| o.millis).collect();
    let errors = outcomes.iter().filter(|o| !o.ok).count();
    let (p50, p99) = (pct(times.clone(), 0.5), pct(times, 0.99));
    println!("{:<18} {:>9} {errors:>7} {p50:>9.1} {p99:>9.1}   ({:.0} requests/s)", "all", outcomes.len(), outcomes.len() as f64 / test.seconds);
    println!("{}", json!({ "clients": test.clients, "seconds": test.seconds, "requests": outcomes.len(), "errors": errors, "p50_ms": p50, "p99_ms": p99, "by_request": report }));
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    Ok(())
}
