//! `relsim serve` over a real library, through raw HTTP: the localhost defences, the search API,
//! progress events, OpenAPI, and bad input answered with JSON errors while the server goes on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server {
    child: Child,
    addr: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {} {}", self.head, String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
    }
}

/// One HTTP/1.1 request with full control of the headers (Host included).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body; the reply still comes.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no reply to {method} {path}: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply { status, head, body: raw[split + 4..].to_vec() }
}

impl Server {
    fn start(library: &Path, data: &Path) -> Server {
        Server::start_with(library, data, &[])
    }

    fn start_with(library: &Path, data: &Path, extra: &[&std::ffi::OsStr]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relsim"))
            .args(["serve", "--port", "0", "--library"])
            .arg(library)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("relsim is serving on http://").unwrap_or_else(|| panic!("{line}")).to_string();
        let (addr, token) = url.split_once("/?token=").unwrap();
        Server { child, addr: addr.to_string(), token: token.to_string() }
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut all = vec![("X-Relsim-Token", self.token.as_str())];
        all.extend_from_slice(headers);
        request(&self.addr, method, path, &all, body)
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], b"")
    }

    fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    fn wait_indexed(&self, images: usize) -> Value {
        let started = Instant::now();
        loop {
            let page = self.get("/api/library?limit=500").json();
            if page["progress"]["phase"] == "done" && page["total"] == images {
                return page;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "indexing did not finish: {page}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn scenes(dir: &Path, count: usize) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_relsim"))
        .args(["scenes", "generate", "--families", "classic", "--objects", "0", "--count", &count.to_string(), "--size", "96", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("images")
}

fn relation_of(data: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(data.join("data.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["image_hash"].as_str().unwrap().to_string(), r["relation"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_server_defends_localhost_searches_and_survives_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let scene_dir = dir.path().join("scenes");
    let library = scenes(&scene_dir, 56);
    let relations = relation_of(&scene_dir);
    let mut server = Server::start(&library, &dir.path().join("data"));
    let page = server.wait_indexed(56);

    // --- The localhost defences.
    let no_token = request(&server.addr, "GET", "/api/library", &[], b"");
    assert_eq!(no_token.status, 401);
    assert_eq!(no_token.json()["status"], 401);
    let health = request(&server.addr, "GET", "/api/health", &[], b"");
    assert_eq!(health.status, 200, "health needs no token");
    assert_eq!(health.json()["study"], false);
    let wrong = request(&server.addr, "GET", "/api/library", &[("X-Relsim-Token", "0123")], b"");
    assert_eq!(wrong.status, 401);
    let rebound = server.call("GET", "/api/library", &[("Host", &format!("evil.example:{}", server.addr.rsplit(':').next().unwrap()))], b"");
    assert_eq!(rebound.status, 403, "DNS rebinding: a foreign Host name is refused even with the token");
    let foreign = server.call("GET", "/api/library", &[("Origin", "http://evil.example")], b"");
    assert_eq!(foreign.status, 403);
    assert!(foreign.header("access-control-allow-origin").is_none());
    let own_origin = format!("http://{}", server.addr);
    assert_eq!(server.call("GET", "/api/library", &[("Origin", &own_origin)], b"").status, 200);
    let preflight = request(&server.addr, "OPTIONS", "/api/search", &[("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")], b"");
    assert_eq!(preflight.status, 403);
    // The printed URL sets the cookie and drops the token from the address bar.
    let first = request(&server.addr, "GET", &format!("/?token={}", server.token), &[], b"");
    assert_eq!(first.status, 303, "{}", first.head);
    let cookie = first.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    assert_eq!(request(&server.addr, "GET", "/api/library", &[("Cookie", &cookie)], b"").status, 200);
    assert_eq!(request(&server.addr, "GET", "/", &[("Cookie", &cookie)], b"").status, 200);
    assert_eq!(request(&server.addr, "GET", "/", &[], b"").status, 401);
    // A shared link (a lesson, a query) keeps everything but the token through the redirect.
    let shared = request(&server.addr, "GET", &format!("/?view=classroom&token={}&lesson=a.b", server.token), &[], b"");
    assert_eq!(shared.status, 303);
    assert_eq!(shared.header("location").unwrap(), "/?view=classroom&lesson=a.b");

    // --- The library and its thumbnails.
    let images = page["images"].as_array().unwrap();
    assert_eq!(images.len(), 56);
    let thumb = server.get(images[0]["thumbnail"].as_str().unwrap());
    assert_eq!(thumb.status, 200);
    assert_eq!(&thumb.body[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    let original = server.get(&format!("/api/images/{}/file", images[0]["id"].as_str().unwrap()));
    assert_eq!(&original.body[..4], b"\x89PNG");

    // --- Search by library image: itself excluded, scores consistent, the top hit shares its idea
    // more often than chance (1 in 14).
    let mut same = 0;
    for image in images.iter().take(28) {
        let id = image["id"].as_str().unwrap();
        let reply = server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "k": 5, "weight": 0.6 }));
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        let r = reply.json();
        assert_eq!(r["total"], 55);
        let results = r["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        let mut last = f64::INFINITY;
        for hit in results {
            assert_ne!(hit["image"]["id"], id);
            let (rel, att, comb) = (hit["relational"].as_f64().unwrap(), hit["attribute"].as_f64().unwrap(), hit["combined"].as_f64().unwrap());
            assert!((comb - (0.6 * rel + 0.4 * att)).abs() < 1e-5, "{hit}");
            assert!(comb <= last + 1e-6);
            last = comb;
            assert_eq!(hit["why"].as_array().unwrap().len(), 3);
        }
        let top = results[0]["image"]["id"].as_str().unwrap();
        // Scene files are named by the first 32 hex digits of their SHA-256.
        same += usize::from(relations[&id[..32]] == relations[&top[..32]]);
    }
    assert!(same >= 8, "relational top hits sharing the relation: {same} of 28");
    // Pagination: page 2 continues page 1.
    let id = images[0]["id"].as_str().unwrap();
    let all = server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "k": 10 })).json();
    let second = server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "k": 5, "offset": 5 })).json();
    assert_eq!(all["results"][5]["image"]["id"], second["results"][0]["image"]["id"]);
    assert_eq!(all["weight"], 0.7);

    // --- Search by text on the server equals search by the same caption's vector.
    let caption = "one {object} stands out among many";
    let by_text = server.post_json("/api/search", &json!({ "query": { "kind": "text", "text": caption }, "k": 10 })).json();
    assert!(by_text["results"][0]["attribute"].is_null());
    let vector = embed_text(caption);
    let by_vector = server.post_json("/api/search", &json!({ "query": { "kind": "vector", "vector": vector }, "k": 10 })).json();
    let ids = |r: &Value| r["results"].as_array().unwrap().iter().map(|h| h["image"]["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&by_text), ids(&by_vector));

    // --- "No good match": the default model's cut-offs (assets/relsim-lite/calibration.json,
    // written by `relsim eval`) come with each answer, the image one for image queries, the
    // caption one for captions and caption vectors; every hit below it is marked weak.
    let calibration: Value = serde_json::from_slice(&std::fs::read(workspace().join("assets/relsim-lite/calibration.json")).unwrap()).unwrap();
    let close = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6;
    let mut marked = [0usize; 2];
    for (reply, cut) in [(&all, &calibration["image"]), (&by_text, &calibration["text"]), (&by_vector, &calibration["text"])] {
        assert!(close(&reply["threshold"], cut), "{} vs {cut}", reply["threshold"]);
        for hit in reply["results"].as_array().unwrap() {
            let weak = hit["relational"].as_f64().unwrap() < cut.as_f64().unwrap();
            assert_eq!(hit["weak"].as_bool().unwrap_or(false), weak, "{hit}");
            marked[usize::from(weak)] += 1;
        }
    }
    assert!(marked[0] > 0, "no hit above the cut-offs: {marked:?}");

    // --- Search by upload: a library image's own bytes find it first.
    let file = PathBuf::from(images[3]["path"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    let up = server.call("POST", "/api/search/image?k=3", &[("Content-Type", "image/png")], &bytes);
    assert_eq!(up.status, 200, "{}", String::from_utf8_lossy(&up.body));
    let up = up.json();
    assert_eq!(up["results"][0]["image"]["id"], images[3]["id"]);
    assert!((up["results"][0]["relational"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    // The upload is remembered by its content hash: searching again needs no upload.
    assert_eq!(up["upload"], images[3]["id"], "the upload id is the content's SHA-256");
    let again = server.post_json("/api/search", &json!({ "query": { "kind": "upload", "id": up["upload"] }, "k": 3 })).json();
    assert_eq!(ids(&again), ids(&up));
    assert_eq!(server.post_json("/api/search", &json!({ "query": { "kind": "upload", "id": "feed" } })).status, 404);

    // --- The similarity map: every image (but the query) with the same scores as the results.
    let mapped = server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "k": 10, "weight": 1.0, "map": true })).json();
    let points = mapped["map"].as_array().unwrap();
    assert_eq!(points.len(), 55);
    assert!(points.iter().all(|p| p["id"] != id && p["attribute"].is_number()));
    for hit in mapped["results"].as_array().unwrap() {
        let point = points.iter().find(|p| p["id"] == hit["image"]["id"]).unwrap();
        assert_eq!(point["relational"], hit["relational"]);
        assert_eq!(point["attribute"], hit["attribute"]);
    }
    let best = points.iter().map(|p| p["relational"].as_f64().unwrap()).fold(f64::MIN, f64::max);
    assert_eq!(mapped["results"][0]["relational"].as_f64().unwrap(), best, "weight 1 ranks by the relational score");
    assert!(all.get("map").is_none(), "no map unless asked");
    let text_map = server.post_json("/api/search", &json!({ "query": { "kind": "text", "text": caption }, "k": 1, "map": true })).json();
    assert_eq!(text_map["map"].as_array().unwrap().len(), 56);
    assert!(text_map["map"][0]["attribute"].is_null());
    let up_map = server.call("POST", "/api/search/image?k=1&map=true", &[("Content-Type", "image/png")], &bytes).json();
    assert_eq!(up_map["map"].as_array().unwrap().len(), 56, "an upload excludes nothing");

    // --- What a pair shares (classroom mode): symmetric, 3 captions, the pair's cosine.
    let (a, b) = (images[0]["id"].as_str().unwrap(), images[1]["id"].as_str().unwrap());
    let ab = server.post_json("/api/explain", &json!({ "a": a, "b": b })).json();
    let ba = server.post_json("/api/explain", &json!({ "a": b, "b": a })).json();
    assert_eq!(ab["why"].as_array().unwrap().len(), 3);
    assert_eq!(ab["why"][0]["caption"], ba["why"][0]["caption"]);
    let pair = server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": a }, "k": 55, "weight": 1.0 })).json();
    let hit = pair["results"].as_array().unwrap().iter().find(|h| h["image"]["id"] == b).unwrap();
    assert!((ab["relational"].as_f64().unwrap() - hit["relational"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(server.post_json("/api/explain", &json!({ "a": a, "b": up["upload"] })).status, 200, "uploads can be paired");
    assert_eq!(server.post_json("/api/explain", &json!({ "a": a, "b": "nope" })).status, 404);

    // --- What the browser needs to answer image queries itself: the student distilled from
    // this library's model, and every image's vector (the same numbers the search uses).
    let student = server.get("/api/models/student");
    assert_eq!(student.status, 200, "{}", String::from_utf8_lossy(&student.body));
    let student = student.json();
    assert_eq!(student["base_url"], "/models/student/");
    let names: Vec<&str> = student["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["config.json", "model.safetensors", "teacher.json"]);
    let teacher = server.get("/models/student/teacher.json").json();
    let vectors = server.get("/api/library/vectors");
    assert_eq!(vectors.header("content-type").as_deref(), Some("application/octet-stream"));
    let (header, rows) = relsim_shared::protocol::decode_vectors(&vectors.body).unwrap();
    assert_eq!(teacher["model_id"].as_str(), Some(header.model_id.as_str()), "the student fits the library's vectors");
    assert_eq!((header.ids.len(), header.dim), (56, 384));
    let row = |id: &str| {
        let i = header.ids.iter().position(|x| x == id).unwrap();
        &rows[i * 384..(i + 1) * 384]
    };
    let cos: f32 = row(a).iter().zip(row(b)).map(|(x, y)| x * y).sum();
    assert!((cos as f64 - ab["relational"].as_f64().unwrap()).abs() < 1e-5);

    // --- Composite queries: the parts' idea vectors summed by weight and renormalised, the look
    // of the positive image parts, every asking library image left out.
    let c = images[2]["id"].as_str().unwrap();
    let part = |query: Value, weight: f32| json!({ "query": query, "weight": weight });
    let compose = |parts: Vec<Value>| server.post_json("/api/search", &json!({ "query": { "kind": "compose", "parts": parts }, "k": 56, "weight": 1.0, "map": true }));
    let alone = compose(vec![part(json!({ "kind": "id", "id": a }), 2.0)]).json();
    let plain = server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": a }, "k": 56, "weight": 1.0, "map": true })).json();
    let scores = |r: &Value| r["results"].as_array().unwrap().iter().map(|h| (h["image"]["id"].as_str().unwrap().to_string(), h["relational"].as_f64().unwrap(), h["attribute"].as_f64().unwrap())).collect::<Vec<_>>();
    for (x, y) in scores(&alone).iter().zip(scores(&plain)) {
        assert!(x.0 == y.0 && (x.1 - y.1).abs() < 1e-5 && (x.2 - y.2).abs() < 1e-5, "one part is the query itself: {x:?} vs {y:?}");
    }
    assert_eq!(alone["total"], 55);
    let mixed = compose(vec![part(json!({ "kind": "id", "id": a }), 1.0), part(json!({ "kind": "id", "id": b }), 0.5), part(json!({ "kind": "text", "text": caption }), -0.25)]);
    assert_eq!(mixed.status, 200, "{}", String::from_utf8_lossy(&mixed.body));
    let mixed = mixed.json();
    assert_eq!(mixed["total"], 54, "both asking images are left out");
    let caption_vector = embed_text(caption);
    // Each weight per unit of the spread of that part's scores over the library's 56 images.
    let library: Vec<&[f32]> = rows.chunks(384).collect();
    let spread = |v: &[f32]| -> f32 {
        let scores: Vec<f32> = library.iter().map(|r| r.iter().zip(v).map(|(x, y)| x * y).sum()).collect();
        let mean = scores.iter().sum::<f32>() / scores.len() as f32;
        (scores.iter().map(|s| (s - mean).powi(2)).sum::<f32>() / scores.len() as f32).sqrt()
    };
    let (wa, wb, wc) = (1.0 / spread(row(a)), 0.5 / spread(row(b)), -0.25 / spread(&caption_vector));
    assert!(spread(row(a)) > 1.5 * spread(&caption_vector), "an image's scores spread wider than a caption's");
    let mut expected: Vec<f32> = (0..384).map(|i| wa * row(a)[i] + wb * row(b)[i] + wc * caption_vector[i]).collect();
    relsim_shared::vectors::l2_normalize(&mut expected);
    for hit in mixed["results"].as_array().unwrap() {
        let id = hit["image"]["id"].as_str().unwrap();
        assert!(id != a && id != b);
        let want: f32 = expected.iter().zip(row(id)).map(|(x, y)| x * y).sum();
        assert!((hit["relational"].as_f64().unwrap() - want as f64).abs() < 1e-4, "{id}: {} vs {want}", hit["relational"]);
        assert!(hit["attribute"].is_number(), "image parts give a look to compare");
    }
    let ideas_only = compose(vec![part(json!({ "kind": "text", "text": caption }), 1.0), part(json!({ "kind": "id", "id": c }), -0.5)]).json();
    assert!(ideas_only["results"][0]["attribute"].is_null(), "an image only subtracted gives no look");
    assert_eq!(ideas_only["total"], 55);

    // --- Bad input: a JSON error with the right status each time, and the server goes on.
    let error = |reply: Reply, status: u16| {
        assert_eq!(reply.status, status, "{} {}", reply.head, String::from_utf8_lossy(&reply.body));
        let body = reply.json();
        assert_eq!(body["status"], status);
        assert!(!body["error"].as_str().unwrap().is_empty());
    };
    error(server.call("POST", "/api/search/image", &[("Content-Type", "image/png")], b"not an image at all"), 422);
    error(server.call("POST", "/api/search/image", &[("Content-Type", "image/png")], &bytes[..bytes.len() / 2]), 422);
    error(server.call("POST", "/api/search/image", &[("Content-Type", "image/png")], &bomb_png()), 422);
    error(server.call("POST", "/api/search/image", &[("Content-Type", "image/png")], &vec![0u8; 33 << 20]), 413);
    error(server.call("POST", "/api/search/image", &[("Content-Type", "text/plain")], &bytes), 415);
    error(server.call("POST", "/api/search/image", &[("Content-Type", "image/png")], b""), 400);
    error(server.call("POST", "/api/search", &[("Content-Type", "application/json")], b"{\"query\": "), 400);
    error(server.call("POST", "/api/search", &[("Content-Type", "text/plain")], b"{}"), 415);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "colour" } })), 422);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": "nope" } })), 404);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "k": 501 })), 400);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "k": 0 })), 400);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "id", "id": id }, "weight": 2.0 })), 400);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "vector", "vector": [1.0, 2.0] } })), 400);
    error(server.post_json("/api/search", &json!({ "query": { "kind": "text", "text": "  " } })), 400);
    let message = |reply: Reply, status: u16, words: &str| {
        assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(&reply.body));
        let text = reply.json()["error"].as_str().unwrap().to_string();
        assert!(text.contains(words), "`{text}` should say `{words}`");
    };
    message(compose(vec![]), 400, "at least one part");
    message(compose((0..17).map(|_| part(json!({ "kind": "id", "id": a }), 1.0)).collect()), 400, "at most 16 parts");
    message(compose(vec![part(json!({ "kind": "id", "id": a }), 1.0), part(json!({ "kind": "id", "id": a }), -1.0)]), 400, "cancel");
    message(compose(vec![part(json!({ "kind": "id", "id": a }), 1.0), part(json!({ "kind": "id", "id": "nope" }), 1.0)]), 404, "part 2: no library image has id `nope`");
    message(compose(vec![part(json!({ "kind": "compose", "parts": [] }), 1.0)]), 400, "part 1: a part cannot itself be a compose query");
    message(compose(vec![part(json!({ "kind": "vector", "vector": [1.0, 0.0] }), 1.0)]), 400, "values");
    error(server.post_json("/api/search", &json!({ "query": { "kind": "compose", "parts": [{ "query": { "kind": "id", "id": a } }] } })), 422);
    error(server.get("/api/images/nope/thumbnail"), 404);
    error(server.get("/api/nothing/here"), 404);
    error(server.call("DELETE", "/api/search", &[], b""), 405);
    error(server.get("/api/library?limit=lots"), 400);
    assert_eq!(server.get("/api/health").status, 200, "the server is still up");

    // --- Captions: the bank grows, and "why" can cite the new caption.
    let added = server.post_json("/api/captions", &json!({ "caption": "a {thing} seen twice, once mirrored" }));
    assert_eq!(added.status, 201);
    assert!(server.get("/api/captions").json()["user"].as_array().unwrap().iter().any(|c| c == "a {thing} seen twice, once mirrored"));
    let hints = server.get("/api/captions/suggest?q=stands%20out").json();
    assert!(hints.as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("stands out")), "{hints}");

    // --- Progress events: a second index run streams as server-sent events.
    let started = server.call("POST", "/api/library/index", &[], b"");
    assert!(started.status == 202 || started.status == 409, "{}", started.head);
    let (events, _open_stream) = sse_first_event(&server);
    assert!(events.contains("event: progress") && events.contains("\"phase\""), "{events}");

    // --- OpenAPI lists every endpoint, and each answers (not 404) on its documented method.
    let spec = server.get("/api/openapi.json").json();
    let paths = spec["paths"].as_object().unwrap();
    for expected in ["/api/search", "/api/search/image", "/api/library", "/api/library/events", "/api/captions", "/api/images/{id}/thumbnail", "/api/openapi.json", "/api/explain", "/api/models/student", "/api/library/vectors"] {
        assert!(paths.contains_key(expected), "{expected} missing from OpenAPI");
    }
    let schemas = &spec["components"]["schemas"];
    assert!(schemas["SearchResponse"]["properties"]["threshold"].is_object() && schemas["SearchHit"]["properties"]["weak"].is_object(), "the cut-off and the weak mark are documented");
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if path.ends_with("/events") {
                continue;
            }
            let concrete = path.replace("{id}", id);
            let reply = server.call(&method.to_uppercase(), &concrete, &[("Content-Type", "application/json")], b"{}");
            if path.starts_with("/api/study") {
                // Routed, and without --study it says so.
                assert!(reply.status == 404 && reply.json()["error"].as_str().unwrap().contains("no study is being run"), "{method} {path}: {}", reply.json());
                continue;
            }
            assert_ne!(reply.status, 404, "{method} {path}");
            assert_ne!(reply.status, 405, "{method} {path}");
        }
    }

    // --- Ctrl-C: a clean exit, soon, even with an event stream still open.
    // SAFETY: sends a signal to our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// The ids and dates of a library listing's images, by file name.
fn listed(page: &Value) -> std::collections::BTreeMap<String, (String, String, String)> {
    page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let name = Path::new(i["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (name, (i["id"].as_str().unwrap().to_string(), i["date"].as_str().unwrap_or("").to_string(), i["date_source"].as_str().unwrap_or("").to_string()))
        })
        .collect()
}

#[test]
fn folder_and_date_filters_narrow_the_listing_and_every_search() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("library");
    // Three photos with EXIF dates (2019 and 2021), a photo without one whose file time is
    // 2020-06-15 noon, and 14 scenes with today's file time.
    let photos = workspace().join("tests/fixtures/photos");
    for (from, to) in [("dated/2019/astronaut.jpg", "dated/2019/astronaut.jpg"), ("dated/2021/chelsea.webp", "dated/2021/chelsea.webp"), ("dated/2021/camera.png", "dated/2021/camera.png"), ("coffee.bmp", "old/coffee.bmp")] {
        std::fs::create_dir_all(lib.join(to).parent().unwrap()).unwrap();
        std::fs::copy(photos.join(from), lib.join(to)).unwrap();
    }
    let noon = std::time::UNIX_EPOCH + Duration::from_secs(1_592_222_400);
    std::fs::File::options().write(true).open(lib.join("old/coffee.bmp")).unwrap().set_modified(noon).unwrap();
    let scene_images = scenes(&dir.path().join("scenes"), 14);
    std::fs::rename(&scene_images, lib.join("scenes")).unwrap();
    let server = Server::start(&lib, &dir.path().join("data"));
    let all = server.wait_indexed(18);
    let root = all["folders"][0].as_str().unwrap().to_string();
    assert_eq!(all["unfiltered"], 18);

    // Every folder holding images, with its count, and each image's date and its source.
    let folders: Vec<(String, u64)> = all["subfolders"].as_array().unwrap().iter().map(|f| (f["path"].as_str().unwrap().to_string(), f["images"].as_u64().unwrap())).collect();
    let expected: Vec<(String, u64)> = [("", 18), ("/dated", 3), ("/dated/2019", 1), ("/dated/2021", 2), ("/old", 1), ("/scenes", 14)].iter().map(|(p, n)| (format!("{root}{p}"), *n)).collect();
    assert_eq!(folders, expected);
    let images = listed(&all);
    assert_eq!(images["astronaut.jpg"].1, "2019-07-20T20:17:40");
    assert_eq!(images["astronaut.jpg"].2, "exif");
    let noon_here = chrono::DateTime::<chrono::Utc>::from(noon).with_timezone(&chrono::Local).naive_local().format("%Y-%m-%dT%H:%M:%S").to_string();
    assert_eq!((images["coffee.bmp"].1.as_str(), images["coffee.bmp"].2.as_str()), (noon_here.as_str(), "file"), "no EXIF date: the file time, in local time");
    let today = chrono::Local::now().date_naive().to_string();
    let is_scene = |name: &str| !["astronaut.jpg", "chelsea.webp", "camera.png", "coffee.bmp"].contains(&name);
    assert_eq!(images.keys().filter(|n| is_scene(n)).count(), 14);
    assert!(images.iter().filter(|(n, _)| is_scene(n)).all(|(_, (_, date, source))| date.starts_with(&today) && source == "file"), "{images:?}");

    let names = |query: &str| {
        let reply = server.get(&format!("/api/library?limit=500{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", String::from_utf8_lossy(&reply.body));
        let page = reply.json();
        let names: Vec<String> = listed(&page).into_keys().collect();
        assert_eq!(page["total"], names.len(), "{query}");
        assert_eq!(page["unfiltered"], 18);
        names
    };
    let enc = |s: &str| s.replace('/', "%2F");
    assert_eq!(names(&format!("&folder={}", enc(&format!("{root}/dated/2021")))), ["camera.png", "chelsea.webp"]);
    assert_eq!(names(&format!("&folder={}", enc(&format!("{root}/dated/")))), ["astronaut.jpg", "camera.png", "chelsea.webp"], "a trailing slash is the same folder");
    assert_eq!(names("&from=2021-01-01&to=2021-12-31"), ["camera.png", "chelsea.webp"], "EXIF dates, both ends inclusive");
    assert_eq!(names("&from=2021-12-31").len(), 15, "the last second of 2021 and today's scenes");
    assert_eq!(names(&format!("&from={0}&to={0}", &noon_here[..10])), ["coffee.bmp"], "a file time");
    assert_eq!(names("&to=2019-12-31"), ["astronaut.jpg"]);
    assert_eq!(names(&format!("&folder={}&from=2021-06-01", enc(&format!("{root}/dated")))), ["camera.png"], "folder and days together");
    // Pages of a filtered listing add up to it.
    let mut paged = Vec::new();
    for offset in (0..14).step_by(5) {
        let page = server.get(&format!("/api/library?folder={}&offset={offset}&limit=5", enc(&format!("{root}/scenes")))).json();
        assert_eq!(page["total"], 14);
        paged.extend(page["images"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
    }
    let scene_ids: Vec<String> = images.iter().filter(|(n, _)| is_scene(n)).map(|(_, (id, _, _))| id.clone()).collect();
    assert_eq!(paged.iter().collect::<std::collections::BTreeSet<_>>(), scene_ids.iter().collect(), "every scene once");
    assert_eq!(paged.len(), 14);

    // Searches rank, count and map only what the filter keeps; the query itself may lie outside.
    let dated = [&images["astronaut.jpg"].0, &images["chelsea.webp"].0, &images["camera.png"].0];
    let query = json!({ "kind": "id", "id": scene_ids[0] });
    let reply = server.post_json("/api/search", &json!({ "query": query, "k": 10, "map": true, "filter": { "folder": format!("{root}/dated") } }));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let r = reply.json();
    assert_eq!(r["total"], 3);
    let hits: Vec<&str> = r["results"].as_array().unwrap().iter().map(|h| h["image"]["id"].as_str().unwrap()).collect();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| dated.contains(&&h.to_string())), "{hits:?}");
    assert_eq!(r["map"].as_array().unwrap().len(), 3);
    let r = server.post_json("/api/search", &json!({ "query": query, "k": 20, "filter": { "folder": format!("{root}/scenes"), "to": "2030-01-01" } })).json();
    assert_eq!(r["total"], 13, "the scenes but the query");
    let r = server.post_json("/api/search", &json!({ "query": { "kind": "text", "text": "one {object} stands out" }, "filter": { "from": "2021-01-01", "to": "2021-12-31" } })).json();
    assert_eq!(r["total"], 2);
    let upload = std::fs::read(photos.join("astronaut.jpg")).unwrap();
    let reply = server.call("POST", &format!("/api/search/image?k=5&to=2020-12-31&folder={}", enc(&root)), &[("Content-Type", "image/jpeg")], &upload);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let hits: Vec<String> = reply.json()["results"].as_array().unwrap().iter().map(|h| h["image"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(hits, [images["astronaut.jpg"].0.clone(), images["coffee.bmp"].0.clone()], "the photos taken before 2021, the EXIF twin first");

    // Bad filters: a 400 naming the part.
    for (query, says) in [("&folder=%2Fetc", "is not a library folder"), ("&folder=relative", "is not a library folder"), ("&from=2021-02-30", "`from` must be a day"), ("&to=yesterday", "`to` must be a day"), ("&from=2021-02-02&to=2021-02-01", "after")] {
        let reply = server.get(&format!("/api/library?{}", &query[1..]));
        assert_eq!(reply.status, 400, "{query}");
        assert!(reply.json()["error"].as_str().unwrap().contains(says), "{query}: {}", reply.json());
    }
    let reply = server.post_json("/api/search", &json!({ "query": query, "filter": { "folder": format!("{root}/../x") } }));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("not a library folder"));
    let reply = server.call("POST", "/api/search/image?from=June", &[("Content-Type", "image/jpeg")], &upload);
    assert_eq!(reply.status, 400);
}

#[test]
fn a_study_is_made_run_blind_answered_crash_safely_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let images = scenes(&dir.path().join("scenes"), 42);
    let study = dir.path().join("study");
    let make = |methods: &str, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_relsim")).args(["study", "make", "--methods", methods, "--queries", "8", "--seed", "3", "--data"]).arg(&images).arg("--out").arg(out).output().unwrap()
    };
    let out = make("lite,colour-histogram,pixels", &study);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&std::fs::read(study.join("study.json")).unwrap()).unwrap();
    let queries = made["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 8);
    let mut expected_trials = 0;
    for q in queries {
        let hits: Vec<&str> = ["lite", "colour-histogram", "pixels"].iter().map(|m| q["hits"][m].as_str().unwrap()).collect();
        assert!(hits.iter().all(|h| *h != q["query"].as_str().unwrap()), "a query is never its own hit");
        expected_trials += [(0, 1), (0, 2), (1, 2)].iter().filter(|(a, b)| hits[*a] != hits[*b]).count();
    }
    let trials = made["trials"].as_array().unwrap();
    assert_eq!(trials.len(), expected_trials, "one trial per method pair whose hits differ");
    assert!(trials.iter().enumerate().all(|(i, t)| t["id"] == i));
    let lite_left = trials.iter().filter(|t| t["left"]["method"] == "lite").count();
    let lite_right = trials.iter().filter(|t| t["right"]["method"] == "lite").count();
    assert!(lite_left > 0 && lite_right > 0, "sides are drawn at random: lite left {lite_left}, right {lite_right}");
    for name in made["images"].as_object().unwrap().values() {
        assert!(study.join("images").join(name.as_str().unwrap()).is_file(), "{name} copied into the study");
    }
    let again = make("lite,pixels", &study);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already holds a study"));
    let one = make("lite", &dir.path().join("one"));
    assert!(!one.status.success() && String::from_utf8_lossy(&one.stderr).contains("at least two methods"));

    // Served blind: trials name images, never methods.
    let data = dir.path().join("data");
    let mut server = Server::start_with(&images, &data, &["--study".as_ref(), study.as_os_str(), "--no-index".as_ref()]);
    assert_eq!(server.get("/api/health").json()["study"], true, "the page asks health whether to show the Study tab");
    let page = server.get("/api/study");
    assert_eq!(page.status, 200);
    let body = String::from_utf8_lossy(&page.body).into_owned();
    assert!(!body.contains("lite") && !body.contains("colour") && !body.contains("pixels"), "the methods stay hidden: {body}");
    let page = page.json();
    assert_eq!(page["trials"].as_array().unwrap().len(), trials.len());
    let first = &page["trials"][0];
    let query_image = server.get(first["query"].as_str().unwrap());
    assert_eq!(query_image.status, 200);
    let hash = trials[0]["query"].as_str().unwrap();
    assert_eq!(query_image.body, std::fs::read(study.join("images").join(made["images"][hash].as_str().unwrap())).unwrap());
    assert_eq!(server.get("/api/study/images/0123").status, 404);
    assert_eq!(server.get("/api/study/images/..%2Fstudy.json").status, 404);

    // Answers: stored before the reply; bad ones refused with JSON errors.
    let choices = ["left", "right", "tie", "left", "left", "right", "left"];
    for (i, choice) in choices.iter().enumerate() {
        let reply = server.post_json("/api/study/answers", &json!({ "trial": i % trials.len(), "choice": choice, "session": "tab-1" }));
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["answers"], i + 1);
    }
    for (body, status) in [
        (json!({ "trial": 9999, "choice": "left", "session": "s" }), 404),
        (json!({ "trial": 0, "choice": "maybe", "session": "s" }), 422),
        (json!({ "trial": 0, "choice": "left", "session": "" }), 400),
        (json!({ "trial": 0, "choice": "left", "session": "has spaces" }), 400),
    ] {
        let reply = server.post_json("/api/study/answers", &body);
        assert_eq!(reply.status, status, "{body}");
        assert!(reply.json()["error"].is_string());
    }
    // A crash in the middle of writing an answer: only a torn last frame is lost.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let log = study.join("answers.log");
    let mut torn = std::fs::read(&log).unwrap();
    let whole = torn.len();
    torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    std::fs::write(&log, &torn).unwrap();
    let report = Command::new(env!("CARGO_BIN_EXE_relsim")).args(["study", "report", "--json"]).arg(&study).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    assert_eq!(std::fs::metadata(&log).unwrap().len() as usize, whole, "the torn tail is dropped");
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["answers"], choices.len());
    // Win/tie/loss per pair, counted here from the trials and the choices made.
    let mut expected: std::collections::BTreeMap<(String, String), (u64, u64, u64)> = Default::default();
    let order = ["lite", "colour-histogram", "pixels"];
    for (i, choice) in choices.iter().enumerate() {
        let t = &trials[i % trials.len()];
        let (l, r) = (t["left"]["method"].as_str().unwrap(), t["right"]["method"].as_str().unwrap());
        let (a, b) = if order.iter().position(|m| *m == l) < order.iter().position(|m| *m == r) { (l, r) } else { (r, l) };
        let e = expected.entry((a.to_string(), b.to_string())).or_default();
        match *choice {
            "tie" => e.1 += 1,
            c => {
                let chosen = if c == "left" { l } else { r };
                if chosen == a {
                    e.0 += 1
                } else {
                    e.2 += 1
                }
            }
        }
    }
    for pair in report["pairs"].as_array().unwrap() {
        let key = (pair["a"].as_str().unwrap().to_string(), pair["b"].as_str().unwrap().to_string());
        let (w, t, l) = expected.get(&key).copied().unwrap_or_default();
        assert_eq!((pair["a_wins"].as_u64().unwrap(), pair["ties"].as_u64().unwrap(), pair["b_wins"].as_u64().unwrap()), (w, t, l), "{pair}");
        let n = (w + t + l) as f64;
        if n > 0.0 {
            let rate = pair["a_win_rate"]["rate"].as_f64().unwrap();
            assert!((rate - w as f64 / n).abs() < 1e-12);
            assert!(pair["a_win_rate"]["low"].as_f64().unwrap() <= rate && rate <= pair["a_win_rate"]["high"].as_f64().unwrap());
        }
    }
    assert!(study.join("report.json").is_file());
    let table = Command::new(env!("CARGO_BIN_EXE_relsim")).args(["study", "report"]).arg(&study).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("lite vs colour-histogram") && table.contains("95% CI"), "{table}");
    // The restarted companion carries on from the answers on disk.
    let server = Server::start_with(&images, &data, &["--study".as_ref(), study.as_os_str(), "--no-index".as_ref()]);
    assert_eq!(server.get("/api/study").json()["answers"], choices.len());
    let reply = server.post_json("/api/study/answers", &json!({ "trial": 0, "choice": "tie", "session": "tab-2" }));
    assert_eq!(reply.json()["answers"], choices.len() + 1);
}

/// The MiniLM embedding of `text`, from the CLI.
fn embed_text(text: &str) -> Vec<f32> {
    let out = Command::new(env!("CARGO_BIN_EXE_relsim")).args(["embed-text", text]).output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(String::from_utf8(out.stdout).unwrap().lines().next().unwrap().as_bytes()).unwrap()
}

/// A valid PNG header claiming 100000 x 100000 pixels with almost no data: a decompression bomb.
fn bomb_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    png
}

/// Reads the event stream until its first event; the stream stays open.
fn sse_first_event(server: &Server) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET /api/library/events HTTP/1.1\r\nHost: {}\r\nX-Relsim-Token: {}\r\n\r\n", server.addr, server.token).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("event: progress") && seen.contains("}\n")) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    (seen, stream)
}

/// `relsim serve --chat-base` answers OpenAI-style chat completions with the tiny Qwen
/// checkpoint (images as data URLs or library ids, token-guarded, bad requests as JSON errors),
/// and `relsim judge` runs against it: plumbing, parsing, resuming, a wrong key.
#[test]
fn chat_completions_answer_locally_and_the_judge_runs_and_resumes_against_them() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let images = scenes(&dir.path().join("scenes"), 6);
    let q = workspace().join("tests/fixtures/qwen");
    let (base, tokenizer) = (q.join("tiny_b"), q.join("tokenizer/tokenizer.json.gz"));
    let server = Server::start_with(
        &images,
        &dir.path().join("data"),
        &["--chat-base".as_ref(), base.as_os_str(), "--chat-tokenizer".as_ref(), tokenizer.as_os_str(), "--chat-backend".as_ref(), "flex".as_ref()],
    );
    let page = server.wait_indexed(6);
    let id = page["images"][0]["id"].as_str().unwrap().to_string();

    let models = server.get("/v1/models").json();
    assert_eq!(models["data"][0]["id"], "relsim-qwen", "{models}");
    let png = std::fs::read(std::fs::read_dir(&images).unwrap().next().unwrap().unwrap().path()).unwrap();
    let data_url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
    let ask = |image_url: &str, extra: Value| -> Reply {
        let mut body = json!({
            "model": "anything",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": "What is shared?"}]}],
            "max_tokens": 6,
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        server.post_json("/v1/chat/completions", &body)
    };
    let answer = ask(&data_url, json!({"temperature": 0.7, "seed": 5}));
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let answer = answer.json();
    assert_eq!((answer["object"].as_str(), answer["model"].as_str()), (Some("chat.completion"), Some("relsim-qwen")));
    let choice = &answer["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()), "{answer}");
    let usage = &answer["usage"];
    let (prompt, completion) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    assert!(prompt > 20 && (1..=6).contains(&completion) && usage["total_tokens"].as_u64() == Some(prompt + completion), "{usage}");
    // The same seed gives the same answer; the library's copy of an image is the image.
    assert_eq!(ask(&data_url, json!({"temperature": 0.7, "seed": 5})).json()["choices"], answer["choices"]);
    let greedy = ask(&format!("library:{id}"), json!({"temperature": 0}));
    assert_eq!(greedy.status, 200, "{}", String::from_utf8_lossy(&greedy.body));
    assert_eq!(greedy.json()["choices"], ask(&format!("library:{id}"), json!({"temperature": 0})).json()["choices"]);
    // Bad requests: JSON errors, and the server goes on.
    for (url, extra, status, says) in [
        ("https://example.com/a.png", json!({}), 400, "data: URL"),
        ("library:nope", json!({}), 404, "nope"),
        ("data:image/png;base64,@@", json!({}), 400, "base64"),
        (data_url.as_str(), json!({"stream": true}), 400, "stream"),
        (data_url.as_str(), json!({"max_tokens": 0}), 400, "max_tokens"),
        (data_url.as_str(), json!({"temperature": 3}), 400, "temperature"),
    ] {
        let reply = ask(url, extra);
        assert_eq!(reply.status, status, "{url}: {}", String::from_utf8_lossy(&reply.body));
        assert!(reply.json()["error"].as_str().unwrap().contains(says), "{}", reply.json());
    }
    let text_only = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let unguarded = request(&server.addr, "POST", "/v1/chat/completions", &[("Content-Type", "application/json")], text_only.to_string().as_bytes());
    assert_eq!(unguarded.status, 401);
    assert!(unguarded.json()["error"].as_str().unwrap().contains("token"));
    let bearer = format!("Bearer {}", server.token);
    let with_bearer = request(&server.addr, "POST", "/v1/chat/completions", &[("Content-Type", "application/json"), ("Authorization", &bearer)], text_only.to_string().as_bytes());
    assert_eq!(with_bearer.status, 200, "{}", String::from_utf8_lossy(&with_bearer.body));
    assert_eq!(server.post_json("/v1/chat/completions", &json!({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]})).status, 400);

    // The judge, against this server.
    let out = dir.path().join("judge");
    let judge = |key: &str, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relsim"));
        cmd.args(["judge", "--endpoint", &format!("http://{}", server.addr), "--model", "relsim-qwen", "--api-key-env", "RELSIM_TEST_JUDGE_KEY"]);
        cmd.args(["--methods", "colour-histogram,pixels", "--queries", "2", "--attempts", "2", "--backoff-ms", "1", "--max-tokens", "4", "--data"]).arg(&images).arg("--out").arg(&out);
        if json {
            cmd.arg("--json");
        }
        cmd.env("RELSIM_TEST_JUDGE_KEY", key).output().unwrap()
    };
    let wrong = judge("wrong", false);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("401") && !stderr.contains("panicked"), "{stderr}");
    let first = judge(&server.token, true);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    let outcome = &report["outcome"];
    let total = outcome["total"].as_u64().unwrap();
    assert!((2..=4).contains(&total), "{outcome}");
    assert_eq!((outcome["asked"].as_u64(), outcome["resumed"].as_u64(), outcome["stopped"].as_bool()), (Some(total), Some(0), Some(false)));
    for method in outcome["summary"].as_array().unwrap() {
        assert_eq!(method["pairs"], 2, "{method}");
        assert!(method["valid"].as_u64().unwrap() <= 2);
    }
    for j in report["judgements"].as_array().unwrap() {
        let attempts = j["attempts"].as_u64().unwrap();
        assert!((1..=2).contains(&attempts), "{j}");
        // A score is kept only when the answer held one; otherwise both tries were made.
        match j["score"].as_f64() {
            Some(score) => assert!((0.0..=10.0).contains(&score) && j["answer"].as_str().unwrap().chars().any(|c| c.is_ascii_digit()), "{j}"),
            None => assert_eq!(attempts, 2, "{j}"),
        }
    }
    // Nothing left to ask; then, with all but the first judgement lost, only those are asked again.
    let again = judge(&server.token, false);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && stdout.contains("0 asked now") && stdout.contains("colour-histogram"), "{stdout}");
    let log = out.join("judgements.log");
    let bytes = std::fs::read(&log).unwrap();
    let first_frame = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    std::fs::write(&log, &bytes[..first_frame + 3]).unwrap(); // and a torn tail
    let resumed: Value = serde_json::from_slice(&judge(&server.token, true).stdout).unwrap();
    assert_eq!((resumed["outcome"]["asked"].as_u64(), resumed["outcome"]["resumed"].as_u64()), (Some(total - 1), Some(1)));
    assert_eq!(resumed["judgements"].as_array().unwrap().len() as u64, total);
}
