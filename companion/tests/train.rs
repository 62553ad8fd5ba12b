//! `relsim train` on a toy model: a resumed run is the same run, Ctrl-C saves a checkpoint,
//! options are checked on resume, and `relsim eval` reads what training wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn relsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relsim"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relsim-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A small scene set shared by the tests (140 scenes: 112 train, 14 val, 14 test).
fn scenes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("scenes");
        let status = relsim().args(["scenes", "generate", "--families", "classic", "--objects", "0", "--count", "140", "--size", "64", "--seed", "4", "--out"]).arg(&dir).status().unwrap();
        assert!(status.success());
        dir
    })
}

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    let out = relsim().args(["train", "--preset", "tiny", "--data"]).arg(scenes()).arg("--out").arg(out).args(extra).output().unwrap();
    assert!(out.status.success(), "relsim train failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// metrics.jsonl without the wall-clock field.
fn losses(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("images_per_second");
            v
        })
        .collect()
}

#[test]
fn a_resumed_run_gives_the_same_losses_and_weights_as_an_uninterrupted_one() {
    let (whole, split) = (temp_dir("whole"), temp_dir("split"));
    train(&whole, &[]);
    let stopped = train(&split, &["--stop-at", "3"]);
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("stopped at step 3"));
    assert_eq!(losses(&split).len(), 3);
    // Stopping at a step with --export exports that checkpoint's model (the run stays resumable).
    let exported = temp_dir("exported");
    let out = train(&split, &["--stop-at", "3", "--export", exported.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped at step 3 as asked"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(losses(&split).len(), 3, "nothing more was trained");
    let metrics_of = |path: &Path| -> serde_json::Value {
        let out = relsim().args(["eval", "--checkpoint"]).arg(path).arg("--data").arg(scenes()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<serde_json::Value>(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()["metrics"].clone()
    };
    assert_eq!(metrics_of(&exported), metrics_of(&split.join("checkpoints/step-0000003")), "the export is checkpoint 3");
    std::fs::remove_dir_all(&exported).unwrap();
    train(&split, &[]);
    let (a, b) = (losses(&whole), losses(&split));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "the resumed run diverged");
    // Validation ran at steps 4 and 8.
    assert!(a[3]["val_p_at_1"].is_number() && a[7]["val_p_at_1"].is_number());
    assert!((a[0]["temperature"].as_f64().unwrap() - 0.07).abs() < 0.01, "temperature starts at 0.07");
    let model = |run: &Path| std::fs::read(run.join("model/model.safetensors")).unwrap();
    assert!(model(&whole) == model(&split), "final weights differ");

    // Other options in the same folder are refused, not mixed into the run.
    let out = relsim().args(["train", "--preset", "tiny", "--learning-rate", "0.5", "--data"]).arg(scenes()).arg("--out").arg(&whole).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("other options"), "{}", String::from_utf8_lossy(&out.stderr));

    // eval reads the exported model: image→image metrics and caption→image P@10.
    let out = relsim().args(["eval", "--checkpoint"]).arg(&whole).arg("--data").arg(scenes()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["images"], 14);
    for key in ["training", "held_out"] {
        let p = report["caption_to_image_p_at_10"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{key}: {p}");
    }
    assert!(report["metrics"]["p_at_1"].as_f64().is_some());
    // Any checkpoint evaluates too; the last one holds the exported weights.
    let eval = |path: &Path| -> serde_json::Value {
        let out = relsim().args(["eval", "--checkpoint"]).arg(path).arg("--data").arg(scenes()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
    };
    let last = eval(&whole.join("checkpoints/step-0000008"));
    assert_eq!(last["metrics"], report["metrics"], "checkpoint 8 and the exported model differ");
    assert_eq!(eval(&whole.join("checkpoints/step-0000006"))["images"], 14);
    for d in [whole, split] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn the_pull_toward_each_ideas_caption_centroid_adds_to_the_loss() {
    // Same seed, same first batch: the first step's loss differs only by the centroid term, which
    // is 1 - cosine >= 0 per image (and > 0 for a fresh model).
    let (with, without) = (temp_dir("centroid"), temp_dir("no-centroid"));
    train(&with, &["--steps", "1", "--validate-every", "0"]);
    train(&without, &["--steps", "1", "--validate-every", "0", "--centroid-weight", "0"]);
    let first = |run: &Path| losses(run)[0]["loss"].as_f64().unwrap();
    let (a, b) = (first(&with), first(&without));
    assert!(a > b + 0.1, "loss with the centroid term {a}, without {b}");
    let out = relsim().args(["train", "--preset", "tiny", "--centroid-weight=-1", "--data"]).arg(scenes()).arg("--out").arg(temp_dir("bad-weight")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--centroid-weight"), "{}", String::from_utf8_lossy(&out.stderr));
    for d in [with, without] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn ctrl_c_saves_a_checkpoint_to_resume_from() {
    let run = temp_dir("interrupt");
    let child = relsim()
        .args(["train", "--preset", "tiny", "--steps", "100000", "--checkpoint-every", "100000", "--validate-every", "0", "--data"])
        .arg(scenes())
        .arg("--out")
        .arg(&run)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count()) < 2 {
        assert!(started.elapsed() < Duration::from_secs(300), "training never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped at step"), "{stderr}");
    let checkpoints: Vec<String> = std::fs::read_dir(run.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    let step: usize = checkpoints[0].strip_prefix("step-").unwrap().parse().unwrap();
    assert!(step >= 2, "checkpoint at step {step}");
    assert_eq!(losses(&run).len(), step, "metrics end where the checkpoint is");
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn init_starts_from_an_exported_model_and_refuses_another_shape() {
    let (first, second, exported, copied) = (temp_dir("init-first"), temp_dir("init-second"), temp_dir("init-exported"), temp_dir("init-copied"));
    train(&first, &["--export", exported.to_str().unwrap()]);
    // A run that starts from those weights and moves nothing (learning rate 0) exports them again.
    train(&second, &["--init", exported.to_str().unwrap(), "--steps", "1", "--learning-rate", "0", "--export", copied.to_str().unwrap()]);
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(weights(&exported) == weights(&copied), "the run did not start from the --init weights");
    let options: serde_json::Value = serde_json::from_slice(&std::fs::read(second.join("train.json")).unwrap()).unwrap();
    assert_eq!(options["init"].as_str(), exported.to_str(), "the run records where it started");
    // The committed relsim-lite is not the tiny preset's shape: one clear error naming the folder.
    let lite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/relsim-lite");
    let out = relsim().args(["train", "--preset", "tiny", "--data"]).arg(scenes()).arg("--out").arg(temp_dir("init-wrong")).arg("--init").arg(&lite).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--init") && stderr.contains("is not the preset's"), "{stderr}");
    for dir in [first, second, exported, copied] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Captions from `relsim caption` (a jsonl of file, caption, group) imported as a training set:
/// the trainer reads it (its caption groups are ideas it has no fixed id for) and validates on
/// the held-out ideas.
#[test]
fn imported_captions_train_like_a_scene_set() {
    let dir = temp_dir("import");
    std::fs::create_dir_all(&dir).unwrap();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(scenes().join("data.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Scenes stand in for a user's images: each relation's first 6 scenes one caption group.
    let mut groups: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut lines = String::new();
    for r in &records {
        let relation = r["relation"].as_str().unwrap().to_string();
        let next = groups.len();
        let group = *groups.entry(relation.clone()).or_insert(next);
        let file = scenes().join("images").join(format!("{}.png", r["image_hash"].as_str().unwrap()));
        lines.push_str(&serde_json::json!({ "file": file, "caption": r["caption"], "group": group, "image_hash": r["image_hash"] }).to_string());
        lines.push('\n');
    }
    std::fs::write(dir.join("captions.jsonl"), lines).unwrap();
    let data = dir.join("data");
    let out = relsim().args(["scenes", "import", "--captions"]).arg(dir.join("captions.jsonl")).arg("--out").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{} images, {} ideas", records.len(), groups.len())), "{said}");
    let run = dir.join("run");
    let trained = relsim().args(["train", "--preset", "tiny", "--steps", "3", "--validate-every", "3", "--data"]).arg(&data).arg("--out").arg(&run).output().unwrap();
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let metrics = losses(&run);
    assert_eq!(metrics.len(), 3);
    assert!(metrics[2]["val_p_at_1"].as_f64().is_some(), "validated on the held-out ideas: {:?}", metrics[2]);
    let eval = relsim().args(["eval", "--checkpoint"]).arg(&run).arg("--data").arg(&data).output().unwrap();
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
}
