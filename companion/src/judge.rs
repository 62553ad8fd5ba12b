//! The paper's LLM-judge evaluation: for query images drawn from a folder, each method's top hit
//! is shown beside the query to a chat model behind an OpenAI-compatible endpoint (GPT-4o in the
//! paper; the companion's own `/v1/chat/completions` here), which rates their shared relational
//! logic from 0 to 10. The report gives each method's mean score with a 95% confidence interval.
//!
//! A run is a folder: `plan.json` (the queries and hits, fixed at the first start), and
//! `judgements.log` (one checksummed frame per judged pair, on disk before the next is asked),
//! so a stopped run resumes where it stopped, asking nothing twice. Only regular files inside
//! the data folder are ever read and sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::files::{content_hash, write_atomically, FrameLog};
use crate::openai::{image_data_url, ChatRequest, ChatResponse, Content, ImageUrl, Message, Part};
use crate::stats::{mean_ci95, MeanCi};
use crate::study::{top_hits, HitOptions, QueryHits, TopHits};

/// What the judge is asked (our words for the paper's instructions: shared logic, not looks
/// and not category; one number from 0 to 10).
pub const JUDGE_PROMPT: &str = "You will see two images. Judge whether they share the same underlying relational logic: \
the same idea, structure, process or pattern, so that one could serve as an analogy for the other. \
Do not reward visual resemblance (matching colours, shapes, textures or composition) and do not reward showing the same object or category: \
images that look alike or show the same kind of thing but follow different logic must get a very low score. \
Images that look nothing alike but follow one logic deserve a high score; for example, a fruit cut in half to show skin, flesh and stone, \
beside a cutaway of a planet showing crust, mantle and core. \
Rate the shared relational logic with a single number from 0 (none) to 10 (the same logic, a clear analogy). Reply with the number only.";

/// The system turn the paper's judge was given (the stock one).
pub const JUDGE_SYSTEM: &str = "You are a helpful assistant.";

/// The plan's format name.
pub const FORMAT: &str = "relsim-judge/1";
/// The queries and hits of a run.
pub const PLAN_FILE: &str = "plan.json";
/// The judgements so far.
pub const LOG_FILE: &str = "judgements.log";
/// The report, rewritten at the end of every run.
pub const REPORT_FILE: &str = "judge.json";

/// A run's fixed queries and hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    /// The data folder, canonical.
    pub data: PathBuf,
    pub methods: Vec<String>,
    pub seed: u64,
    pub queries: Vec<QueryHits>,
    /// Content hash → the file's path relative to `data`.
    pub files: BTreeMap<String, PathBuf>,
}

impl Plan {
    /// The distinct (query, hit) pairs to judge, in the plan's order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for q in &self.queries {
            for method in &self.methods {
                let pair = (q.query.clone(), q.hits[method].clone());
                if seen.insert(pair.clone()) {
                    out.push(pair);
                }
            }
        }
        out
    }
}

/// One judged pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub query: String,
    pub hit: String,
    /// The score read from the answer; `None` when no attempt gave a number from 0 to 10.
    pub score: Option<f64>,
    /// The last answer (kept to see why a score is missing).
    pub answer: String,
    pub attempts: usize,
}

/// The first number of an answer when it lies in 0..=10 (`8`, `7.5`, `**9**`, `Score: 6/10`);
/// `None` for no number, a negative one, or one out of range.
pub fn parse_score(answer: &str) -> Option<f64> {
    let chars: Vec<char> = answer.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit() && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '.' || chars[i - 1] == '_'));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < chars.len() && chars[end].is_ascii_digit() {
            end += 1;
        }
        if end + 1 < chars.len() && chars[end] == '.' && chars[end + 1].is_ascii_digit() {
            end += 1;
            while end < chars.len() && chars[end].is_ascii_digit() {
                end += 1;
            }
        }
        if end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
            // Part of a word (`3D`, `v2`): not a score; look further.
            i = end;
            continue;
        }
        let negative = i > 0 && chars[i - 1] == '-';
        let value: f64 = chars[i..end].iter().collect::<String>().parse().ok()?;
        return (!negative && (0.0..=10.0).contains(&value)).then_some(value);
    }
    None
}

/// Why one request failed.
#[derive(Debug)]
pub enum AskError {
    /// Worth asking again after a pause: the connection, a rate limit, a server's failure.
    Transient(String),
    /// Asking again will not help: a wrong key, model or URL, a request the server refuses.
    Fatal(String),
}

/// A chat model that rates pairs.
pub trait Judge {
    /// Sends the prompt and the two images (file bytes) and returns the answer's text.
    fn ask(&mut self, prompt: &str, query: &[u8], hit: &[u8]) -> Result<String, AskError>;
}

/// An OpenAI-compatible `/v1/chat/completions` endpoint.
pub struct Endpoint {
    url: String,
    model: String,
    api_key: Option<String>,
    temperature: f32,
    max_tokens: usize,
    agent: ureq::Agent,
}

impl Endpoint {
    /// `url` is the server (`http://127.0.0.1:8737`), its `/v1`, or the full completions URL.
    pub fn new(url: &str, model: &str, api_key: Option<String>, temperature: f32, max_tokens: usize, timeout: Duration) -> anyhow::Result<Endpoint> {
        let url = url.trim_end_matches('/');
        anyhow::ensure!(url.starts_with("http://") || url.starts_with("https://"), "--endpoint `{url}` must start with http:// or https://");
        let url = if url.ends_with("/chat/completions") {
            url.to_string()
        } else if url.ends_with("/v1") {
            format!("{url}/chat/completions")
        } else {
            format!("{url}/v1/chat/completions")
        };
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Ok(Endpoint { url, model: model.to_string(), api_key, temperature, max_tokens, agent })
    }

    /// The completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The chat request for one pair: the prompt, then the query, then the hit.
pub fn judge_request(model: &str, prompt: &str, query: &[u8], hit: &[u8], temperature: f32, max_tokens: usize) -> ChatRequest {
    let image = |bytes: &[u8]| Part::ImageUrl { image_url: ImageUrl { url: image_data_url(bytes), detail: None } };
    ChatRequest {
        model: model.to_string(),
        messages: vec![
            Message { role: "system".into(), content: Content::Text(JUDGE_SYSTEM.into()) },
            Message { role: "user".into(), content: Content::Parts(vec![Part::Text { text: prompt.to_string() }, image(query), image(hit)]) },
        ],
        temperature: Some(temperature),
        top_p: None,
        max_tokens: Some(max_tokens),
        max_completion_tokens: None,
        seed: None,
        stop: None,
        n: None,
        stream: None,
    }
}

impl Judge for Endpoint {
    fn ask(&mut self, prompt: &str, query: &[u8], hit: &[u8]) -> Result<String, AskError> {
        let body = judge_request(&self.model, prompt, query, hit, self.temperature, self.max_tokens);
        let mut request = self.agent.post(&self.url).set("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        match request.send_json(&body) {
            Ok(response) => {
                let answer: ChatResponse = response.into_json().map_err(|e| AskError::Fatal(format!("{}: the answer is not a chat completion: {e}", self.url)))?;
                let text = answer.choices.into_iter().next().and_then(|c| c.message.content);
                text.ok_or_else(|| AskError::Transient(format!("{}: an answer without text", self.url)))
            }
            Err(ureq::Error::Status(code, response)) => {
                let body: String = response.into_string().unwrap_or_default().chars().take(300).collect();
                let message = format!("{} answered {code}: {body}", self.url);
                if code == 429 || code >= 500 || code == 408 {
                    Err(AskError::Transient(message))
                } else {
                    Err(AskError::Fatal(message))
                }
            }
            Err(e) => Err(AskError::Transient(format!("{}: {e}", self.url))),
        }
    }
}

/// What a judging run needs.
pub struct JudgeOptions<'a> {
    /// The queries, the pool and the methods.
    pub hits: HitOptions<'a>,
    /// The run's folder (plan, judgements, report).
    pub out: &'a Path,
    /// Tries per pair (failed requests and answers without a score).
    pub attempts: usize,
    /// After failed try `a` (from 0) the pause is `backoff` × (2^a + a uniform draw in 0..1).
    pub backoff: Duration,
    /// Told the pairs judged so far and the total; returns false to stop (the rest is kept).
    pub on_progress: &'a mut dyn FnMut(usize, usize) -> bool,
}

/// One method's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScore {
    pub method: String,
    /// Queries whose pair was judged.
    pub pairs: usize,
    /// Of those, pairs with a score.
    pub valid: usize,
    /// The mean score with its 95% interval (Student t).
    pub score: MeanCi,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What a run did and what the scores are.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Pairs asked in this run.
    pub asked: usize,
    /// Pairs judged by an earlier run of the same plan.
    pub resumed: usize,
    /// Distinct pairs of the plan.
    pub total: usize,
    /// Stopped before every pair was judged.
    pub stopped: bool,
    pub summary: Vec<MethodScore>,
}

/// The canonical data folder, and a file of it read only when it is a regular file inside it
/// with the content it had when the run was planned.
fn read_planned(data: &Path, relative: &Path, hash: &str) -> anyhow::Result<Vec<u8>> {
    let path = data.join(relative);
    let meta = std::fs::symlink_metadata(&path).with_context(|| format!("{} (planned for this run) cannot be read", path.display()))?;
    anyhow::ensure!(meta.file_type().is_file(), "{} is not a regular file: not sent", path.display());
    let real = path.canonicalize().with_context(|| format!("resolving {}", path.display()))?;
    anyhow::ensure!(real.starts_with(data), "{} lies outside the data folder {}: not sent", path.display(), data.display());
    let bytes = std::fs::read(&real).with_context(|| format!("reading {}", real.display()))?;
    anyhow::ensure!(content_hash(&bytes) == hash, "{} changed since this run was planned: start a new run (another --out)", path.display());
    Ok(bytes)
}

/// Makes the plan (or reads the one an earlier run of the same settings made).
fn plan(options: &JudgeOptions, data: &Path) -> anyhow::Result<Plan> {
    let path = options.out.join(PLAN_FILE);
    let hits = &options.hits;
    let methods: Vec<String> = hits.methods.iter().map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let plan: Plan = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a judging plan", path.display()))?;
        anyhow::ensure!(plan.format == FORMAT, "{}: format `{}`, this build reads `{FORMAT}`", path.display(), plan.format);
        let same = plan.data == data && plan.methods == methods && plan.queries.len() == hits.queries && plan.seed == hits.seed;
        anyhow::ensure!(
            same,
            "{} holds a run of other settings (data {}, methods {}, {} queries, seed {}): resume it with those, or choose another --out",
            options.out.display(),
            plan.data.display(),
            plan.methods.join(","),
            plan.queries.len(),
            plan.seed
        );
        return Ok(plan);
    }
    let TopHits { methods, queries, files, .. } =
        top_hits(&HitOptions { data, methods: &methods, ..*hits })?;
    let files = files
        .into_iter()
        .map(|(hash, file)| {
            let relative = file.strip_prefix(data).map(Path::to_path_buf).with_context(|| format!("{} is not under {}", file.display(), data.display()))?;
            Ok((hash, relative))
        })
        .collect::<anyhow::Result<_>>()?;
    let plan = Plan { format: FORMAT.into(), data: data.to_path_buf(), methods, seed: hits.seed, queries, files };
    std::fs::create_dir_all(options.out).with_context(|| format!("creating {}", options.out.display()))?;
    write_atomically(&path, &serde_json::to_vec_pretty(&plan)?)?;
    Ok(plan)
}

/// Asks `judge` about one pair, again after a pause while requests fail or answers hold no score.
fn judge_pair(judge: &mut dyn Judge, query: &[u8], hit: &[u8], attempts: usize, backoff: Duration) -> anyhow::Result<(Option<f64>, String, usize)> {
    let mut last = String::new();
    let mut rng = rand::rng();
    for attempt in 0..attempts {
        if attempt > 0 {
            let factor = 2f64.powi(attempt as i32 - 1) + rng.random::<f64>();
            std::thread::sleep(backoff.mul_f64(factor));
        }
        match judge.ask(JUDGE_PROMPT, query, hit) {
            Ok(answer) => {
                if let Some(score) = parse_score(&answer) {
                    return Ok((Some(score), answer, attempt + 1));
                }
                last = answer;
            }
            Err(AskError::Fatal(message)) => anyhow::bail!("{message}"),
            Err(AskError::Transient(message)) if attempt + 1 == attempts => anyhow::bail!("{message} (after {attempts} tries; run the same command again to resume)"),
            Err(AskError::Transient(message)) => tracing::warn!("{message}: trying again"),
        }
    }
    Ok((None, last, attempts))
}

/// Judges every pair of the plan not judged yet, then writes the report.
pub fn run(options: &mut JudgeOptions, judge: &mut dyn Judge) -> anyhow::Result<Outcome> {
    anyhow::ensure!(options.attempts >= 1, "--attempts must be at least 1");
    let data = options.hits.data.canonicalize().with_context(|| format!("{} does not exist", options.hits.data.display()))?;
    let plan = plan(options, &data)?;
    let mut log: FrameLog<Judgement> = FrameLog::open(&options.out.join(LOG_FILE))?;
    let done: BTreeSet<(String, String)> = log.records.iter().map(|j| (j.query.clone(), j.hit.clone())).collect();
    let pairs = plan.pairs();
    let resumed = pairs.iter().filter(|p| done.contains(*p)).count();
    let mut asked = 0;
    let mut stopped = false;
    for (query, hit) in pairs.iter().filter(|p| !done.contains(*p)) {
        if !(options.on_progress)(resumed + asked, pairs.len()) {
            stopped = true;
            break;
        }
        let query_bytes = read_planned(&data, &plan.files[query], query)?;
        let hit_bytes = read_planned(&data, &plan.files[hit], hit)?;
        let (score, answer, attempts) = judge_pair(judge, &query_bytes, &hit_bytes, options.attempts, options.backoff)?;
        log.append(Judgement { query: query.clone(), hit: hit.clone(), score, answer, attempts })?;
        asked += 1;
    }
    if !stopped {
        (options.on_progress)(resumed + asked, pairs.len());
    }
    let summary = summary(&plan, &log.records);
    let outcome = Outcome { asked, resumed, total: pairs.len(), stopped, summary };
    let report = serde_json::json!({ "format": FORMAT, "plan": PLAN_FILE, "outcome": outcome, "judgements": log.records });
    write_atomically(&options.out.join(REPORT_FILE), &serde_json::to_vec_pretty(&report)?)?;
    Ok(outcome)
}

/// Each method's scores over the pairs judged so far.
pub fn summary(plan: &Plan, judgements: &[Judgement]) -> Vec<MethodScore> {
    let by_pair: BTreeMap<(&str, &str), Option<f64>> = judgements.iter().map(|j| ((j.query.as_str(), j.hit.as_str()), j.score)).collect();
    plan.methods
        .iter()
        .map(|method| {
            let judged: Vec<Option<f64>> = plan.queries.iter().filter_map(|q| by_pair.get(&(q.query.as_str(), q.hits[method].as_str())).copied()).collect();
            let scores: Vec<f64> = judged.iter().flatten().copied().collect();
            MethodScore {
                method: method.clone(),
                pairs: judged.len(),
                valid: scores.len(),
                score: mean_ci95(&scores),
                min: scores.iter().copied().reduce(f64::min),
                max: scores.iter().copied().reduce(f64::max),
            }
        })
        .collect()
}

/// The summary as a table.
pub fn table(summary: &[MethodScore]) -> String {
    let mut out = format!("{:<20} {:>6} {:>6} {:>7}  {:<17}\n", "method", "pairs", "valid", "mean", "95% CI");
    for m in summary {
        let ci = if m.score.low.is_finite() { format!("[{:.2}, {:.2}]", m.score.low, m.score.high) } else { "-".into() };
        let mean = if m.score.mean.is_nan() { "-".into() } else { format!("{:.2}", m.score.mean) };
        out.push_str(&format!("{:<20} {:>6} {:>6} {:>7}  {:<17}\n", m.method, m.pairs, m.valid, mean, ci));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::EncoderOptions;

    #[test]
    fn scores_are_the_first_number_from_0_to_10() {
        for (answer, score) in [
            ("8", Some(8.0)),
            ("7.5", Some(7.5)),
            ("**9**", Some(9.0)),
            ("Score: 6/10", Some(6.0)),
            ("I would rate this a 3 out of 10.", Some(3.0)),
            ("10", Some(10.0)),
            ("0", Some(0.0)),
            (" 4.", Some(4.0)),
            ("11", None),
            ("-3", None),
            ("no number here", None),
            ("", None),
            ("A 3D render; score 5", Some(5.0)),
            ("12 of 10", None),
        ] {
            assert_eq!(parse_score(answer), score, "{answer:?}");
        }
    }

    /// Answers from a script, recording the images it was sent.
    struct Scripted {
        answers: Vec<Result<String, AskError>>,
        sent: Vec<(Vec<u8>, Vec<u8>)>,
    }

    impl Judge for Scripted {
        fn ask(&mut self, prompt: &str, query: &[u8], hit: &[u8]) -> Result<String, AskError> {
            assert_eq!(prompt, JUDGE_PROMPT);
            self.sent.push((query.to_vec(), hit.to_vec()));
            if self.answers.is_empty() {
                Ok("7".into())
            } else {
                self.answers.remove(0)
            }
        }
    }

    /// `count` small distinct PNGs in `dir`.
    fn images(dir: &Path, count: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for i in 0..count {
            let image = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(i * 40 % 256) as u8, (x * 16) as u8 ^ (i as u8 * 7), (y * 16) as u8]));
            image.save(dir.join(format!("img{i}.png"))).unwrap();
        }
    }

    fn options<'a>(data: &'a Path, out: &'a Path, methods: &'a [String], encoders: &'a EncoderOptions, on_progress: &'a mut dyn FnMut(usize, usize) -> bool) -> JudgeOptions<'a> {
        JudgeOptions { hits: HitOptions { data, methods, queries: 3, seed: 1, encoders, on_method: &|_, _| {} }, out, attempts: 3, backoff: Duration::from_millis(1), on_progress }
    }

    #[test]
    fn a_run_judges_each_pair_once_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        images(&data, 6);
        let out = dir.path().join("run");
        let methods = vec!["colour-histogram".to_string(), "pixels".to_string()];
        let encoders = EncoderOptions::lite(crate::paths::default_lite_dir());

        // Stop after the first pair.
        let mut judge = Scripted { answers: vec![Ok("8".into())], sent: vec![] };
        let mut stop_after_one = |done: usize, _: usize| done < 1;
        let first = run(&mut options(&data, &out, &methods, &encoders, &mut stop_after_one), &mut judge).unwrap();
        assert_eq!((first.asked, first.resumed, first.stopped), (1, 0, true));
        let plan: Plan = serde_json::from_slice(&std::fs::read(out.join(PLAN_FILE)).unwrap()).unwrap();
        let pairs = plan.pairs();
        assert!(pairs.len() >= 3 && pairs.len() <= 6, "{pairs:?}");
        assert_eq!(first.total, pairs.len());

        // The rest, with a failed request and an answer without a score on the way.
        let mut judge = Scripted { answers: vec![Err(AskError::Transient("busy".into())), Ok("I cannot say".into()), Ok("6".into())], sent: vec![] };
        let mut go_on = |_: usize, _: usize| true;
        let second = run(&mut options(&data, &out, &methods, &encoders, &mut go_on), &mut judge).unwrap();
        assert_eq!((second.asked, second.resumed, second.stopped), (pairs.len() - 1, 1, false));
        assert_eq!(judge.sent.len(), pairs.len() - 1 + 2, "two extra tries for the first pair of this run");
        let log: FrameLog<Judgement> = FrameLog::open(&out.join(LOG_FILE)).unwrap();
        assert_eq!(log.records.len(), pairs.len());
        assert_eq!((log.records[0].score, log.records[1].score, log.records[1].attempts), (Some(8.0), Some(6.0), 3));
        assert!(log.records[2..].iter().all(|j| j.score == Some(7.0)));
        // Every method's query was judged once; the images sent are the planned files' bytes.
        for m in &second.summary {
            assert_eq!((m.pairs, m.valid), (3, 3), "{m:?}");
        }
        for (q, h) in &judge.sent {
            assert!(plan.files.keys().any(|k| *k == content_hash(q)) && plan.files.keys().any(|k| *k == content_hash(h)));
        }

        // Nothing left: a third run asks nothing and reports the same.
        let mut judge = Scripted { answers: vec![], sent: vec![] };
        let third = run(&mut options(&data, &out, &methods, &encoders, &mut go_on), &mut judge).unwrap();
        assert_eq!((third.asked, third.resumed, judge.sent.len()), (0, pairs.len(), 0));
        assert_eq!(third.summary, second.summary);
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(REPORT_FILE)).unwrap()).unwrap();
        assert_eq!(report["judgements"].as_array().unwrap().len(), pairs.len());

        // Other settings in the same folder are refused, not mixed in.
        let other = vec!["pixels".to_string()];
        let error = run(&mut options(&data, &out, &other, &encoders, &mut go_on), &mut Scripted { answers: vec![], sent: vec![] }).unwrap_err();
        assert!(error.to_string().contains("other settings"), "{error}");
    }

    #[test]
    fn failures_stop_the_run_and_keep_what_was_judged() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        images(&data, 5);
        let out = dir.path().join("run");
        let methods = vec!["pixels".to_string()];
        let encoders = EncoderOptions::lite(crate::paths::default_lite_dir());
        let mut go_on = |_: usize, _: usize| true;
        let mut judge = Scripted { answers: vec![Ok("5".into()), Err(AskError::Fatal("401 wrong key".into()))], sent: vec![] };
        let error = run(&mut options(&data, &out, &methods, &encoders, &mut go_on), &mut judge).unwrap_err();
        assert!(error.to_string().contains("401 wrong key"), "{error}");
        assert_eq!(judge.sent.len(), 2, "a fatal answer is not retried");
        assert_eq!(FrameLog::<Judgement>::open(&out.join(LOG_FILE)).unwrap().records.len(), 1);
        // A server that stays down: every try, then a stop that says how to resume.
        let mut judge = Scripted { answers: (0..3).map(|_| Err(AskError::Transient("503".into()))).collect(), sent: vec![] };
        let error = run(&mut options(&data, &out, &methods, &encoders, &mut go_on), &mut judge).unwrap_err();
        assert!(error.to_string().contains("after 3 tries") && error.to_string().contains("resume"), "{error}");
        assert_eq!(judge.sent.len(), 3);
    }

    #[cfg(unix)]
    #[test]
    fn files_outside_the_data_folder_are_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        images(&data, 4);
        // A secret image outside, linked in (a link to a file and to a folder).
        let secret_dir = dir.path().join("private");
        std::fs::create_dir_all(&secret_dir).unwrap();
        image::RgbImage::from_pixel(16, 16, image::Rgb([250, 250, 250])).save(secret_dir.join("img0.png")).unwrap();
        std::os::unix::fs::symlink(secret_dir.join("img0.png"), data.join("link.png")).unwrap();
        std::os::unix::fs::symlink(&secret_dir, data.join("linked_folder")).unwrap();
        let secret = std::fs::read(secret_dir.join("img0.png")).unwrap();
        let out = dir.path().join("run");
        let methods = vec!["pixels".to_string(), "colour-histogram".to_string()];
        let encoders = EncoderOptions::lite(crate::paths::default_lite_dir());
        let mut go_on = |_: usize, _: usize| true;
        let mut judge = Scripted { answers: vec![], sent: vec![] };
        let mut opts = options(&data, &out, &methods, &encoders, &mut go_on);
        opts.hits.queries = 3;
        run(&mut opts, &mut judge).unwrap();
        assert!(!judge.sent.is_empty());
        assert!(judge.sent.iter().all(|(q, h)| *q != secret && *h != secret), "a linked file was sent");

        // A planned file replaced by a link to the outside is refused at send time.
        let plan: Plan = serde_json::from_slice(&std::fs::read(out.join(PLAN_FILE)).unwrap()).unwrap();
        let relative = plan.files.values().next().unwrap();
        let hash = plan.files.keys().next().unwrap();
        std::fs::remove_file(data.join(relative)).unwrap();
        std::os::unix::fs::symlink(secret_dir.join("img0.png"), data.join(relative)).unwrap();
        let canonical = data.canonicalize().unwrap();
        let error = read_planned(&canonical, relative, hash).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert!(read_planned(&canonical, Path::new("../private/img0.png"), &content_hash(&secret)).unwrap_err().to_string().contains("outside"));
    }

    #[test]
    fn the_judge_request_is_the_prompt_then_the_query_then_the_hit() {
        let request = judge_request("gpt-4o", JUDGE_PROMPT, b"\x89PNG\r\n\x1a\nquery", b"\x89PNG\r\n\x1a\nhit", 0.7, 16);
        assert_eq!(request.messages[0].content, Content::Text(JUDGE_SYSTEM.into()));
        let Content::Parts(parts) = &request.messages[1].content else { panic!("parts") };
        assert_eq!(parts[0], Part::Text { text: JUDGE_PROMPT.into() });
        let urls: Vec<&str> = parts[1..].iter().map(|p| match p { Part::ImageUrl { image_url } => image_url.url.as_str(), _ => panic!("image") }).collect();
        assert_eq!(crate::openai::data_url_bytes(urls[0]).unwrap(), b"\x89PNG\r\n\x1a\nquery");
        assert_eq!(crate::openai::data_url_bytes(urls[1]).unwrap(), b"\x89PNG\r\n\x1a\nhit");
        assert!(urls[0].starts_with("data:image/png;base64,"));
        assert_eq!((request.temperature, request.max_tokens), (Some(0.7), Some(16)));
        let endpoint = |u: &str| Endpoint::new(u, "m", None, 0.7, 16, Duration::from_secs(1)).unwrap().url().to_string();
        assert_eq!(endpoint("http://127.0.0.1:8737"), "http://127.0.0.1:8737/v1/chat/completions");
        assert_eq!(endpoint("https://api.example.com/v1/"), "https://api.example.com/v1/chat/completions");
        assert_eq!(endpoint("http://h/x/v1/chat/completions"), "http://h/x/v1/chat/completions");
        assert!(Endpoint::new("ftp://h", "m", None, 0.7, 16, Duration::from_secs(1)).is_err());
    }
}
