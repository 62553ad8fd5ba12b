//! `relsim judge`: the LLM-judge evaluation against an OpenAI-compatible endpoint.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::args::EncoderArgs;
use super::{cancel_on_ctrl_c, progress_bar};
use crate::encoders::EncoderOptions;
use crate::judge::{run, table, Endpoint, JudgeOptions, REPORT_FILE};
use crate::study::HitOptions;

/// The arguments of `relsim judge`.
#[derive(Debug, clap::Args)]
pub struct JudgeArgs {
    /// The OpenAI-compatible server (`https://api.openai.com`, or `http://127.0.0.1:8737` for
    /// `relsim serve --chat-base DIR`), its `/v1`, or its full `/v1/chat/completions` URL.
    #[arg(long)]
    pub endpoint: String,
    /// The judge model the endpoint should use (the paper's: gpt-4o).
    #[arg(long)]
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer token; never printed).
    /// For the companion: its token, the part after `?token=` of the URL it printed.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// A folder of images (recursively): the queries and the pool each method searches. Only
    /// regular files inside it are sent (links are not followed).
    #[arg(long)]
    pub data: PathBuf,
    /// Methods to compare, comma-separated: encoder names (lite, colour-histogram, qwen, ...).
    #[arg(long, value_delimiter = ',', required = true)]
    pub methods: Vec<String>,
    /// Query images to draw (the paper: 1000).
    #[arg(long, default_value_t = 100)]
    pub queries: usize,
    /// Seed of the queries' draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The run's folder: the plan, the judgements (a rerun resumes them) and judge.json.
    #[arg(long, default_value = "judge-run")]
    pub out: PathBuf,
    /// The judge's sampling temperature (the paper's: 0.7).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Longest answer in tokens (a score is one or two).
    #[arg(long, default_value_t = 16)]
    pub max_tokens: usize,
    /// Tries per pair: failed requests and answers without a score are asked again.
    #[arg(long, default_value_t = 5)]
    pub attempts: usize,
    /// The backoff unit in milliseconds: after failed try a, a pause of unit × (2^a + U(0,1)).
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Print the report's JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub encoders: EncoderArgs,
}

/// Runs `relsim judge`.
pub fn run_judge(args: JudgeArgs) -> anyhow::Result<()> {
    let api_key = match &args.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| anyhow::anyhow!("--api-key-env {var}: the environment variable {var} is not set"))?),
        None => None,
    };
    let mut endpoint = Endpoint::new(&args.endpoint, &args.model, api_key, args.temperature, args.max_tokens, Duration::from_secs(args.timeout))?;
    let encoders: EncoderOptions = args.encoders.into();
    let cancel = cancel_on_ctrl_c();
    let bar = progress_bar(0, "judging");
    let on_method = |method: &str, images: usize| eprintln!("embedding {images} images with {method}…");
    let mut on_progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        !cancel.load(Ordering::SeqCst)
    };
    let outcome = run(
        &mut JudgeOptions {
            hits: HitOptions { data: &args.data, methods: &args.methods, queries: args.queries, seed: args.seed, encoders: &encoders, on_method: &on_method },
            out: &args.out,
            attempts: args.attempts,
            backoff: Duration::from_millis(args.backoff_ms),
            on_progress: &mut on_progress,
        },
        &mut endpoint,
    )?;
    bar.finish_and_clear();
    let report = args.out.join(REPORT_FILE);
    if args.json {
        println!("{}", std::fs::read_to_string(&report)?);
    } else {
        println!(
            "judged {} of {} pairs with {} at {} ({} asked now, {} from earlier runs){}",
            outcome.asked + outcome.resumed,
            outcome.total,
            args.model,
            endpoint.url(),
            outcome.asked,
            outcome.resumed,
            if outcome.stopped { "; stopped early: run the same command again to resume" } else { "" }
        );
        print!("{}", table(&outcome.summary));
        println!("report: {}", report.display());
    }
    Ok(())
}
