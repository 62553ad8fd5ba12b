//! Relational scenes: determinism, splits, caption rules, rendering every combination, the
//! contact sheet and the relational benchmark, through the library and the `relsim` binary.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use relsim_companion::scenes::appearance::{BackgroundStyle, Shape, Style, PALETTES};
use relsim_companion::scenes::generate::{read_records, render, Families, Record, SceneSet, SceneSpec, Split};
use relsim_companion::scenes::relations::{Look, Relation};

fn relsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relsim"))
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relsim-scenes-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn generate(out: &Path, count: usize, seed: u64, threads: usize) {
    generate_with_objects(out, count, seed, threads, 0.0)
}

fn generate_with_objects(out: &Path, count: usize, seed: u64, threads: usize, objects: f64) {
    generate_families(out, count, seed, threads, objects, "classic")
}

fn generate_families(out: &Path, count: usize, seed: u64, threads: usize, objects: f64, families: &str) {
    let status = relsim()
        .args(["scenes", "generate", "--count", &count.to_string(), "--seed", &seed.to_string(), "--objects", &objects.to_string(), "--families", families, "--out"])
        .arg(out)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "relsim scenes generate failed");
}

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_same_seed_gives_byte_identical_files_on_any_number_of_threads() {
    let (a, b, c) = (temp_dir("det-a"), temp_dir("det-b"), temp_dir("det-c"));
    // Half the scenes draw real objects: glyph decoding and tinting must not depend on threads.
    generate_families(&a, 42, 7, 1, 0.5, "all");
    generate_families(&b, 42, 7, 2, 0.5, "all");
    generate_families(&c, 42, 8, 2, 0.5, "all");
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    // 42 images (content-addressed, so distinct scenes give distinct names), data.jsonl, captions.json.
    assert_eq!(fa.len(), 44, "{:?}", fa.keys().collect::<Vec<_>>());
    assert!(fa == fb, "seed 7 on 1 and 2 threads wrote different files");
    assert_ne!(fa[Path::new("data.jsonl")], fc[Path::new("data.jsonl")], "seed 8 wrote the same data as seed 7");
    let records = read_records(&a, None).unwrap();
    assert_eq!(records.len(), 42);
    for r in &records {
        let png = &fa[&PathBuf::from("images").join(format!("{}.png", r.image_hash))];
        let image = image::load_from_memory(png).unwrap();
        assert_eq!((image.width(), image.height()), (256, 256), "default size");
        assert_eq!(relsim_companion::scenes::generate::image_hash(png), r.image_hash, "the name is the content hash");
    }
    // The relsim dataset format: image_hash and caption, plus the ground truth.
    let first: serde_json::Value = serde_json::from_str(std::str::from_utf8(&fa[Path::new("data.jsonl")]).unwrap().lines().next().unwrap()).unwrap();
    for key in ["image_hash", "caption", "relation", "attributes", "split"] {
        assert!(first.get(key).is_some(), "data.jsonl lacks `{key}`: {first}");
    }
    assert!(records.iter().any(|r| r.attributes.object_category != "shape") && records.iter().any(|r| r.attributes.object_category == "shape"));
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn splits_are_disjoint_in_appearance_and_balanced_in_relations() {
    // Sampling decides everything but the pixels, so thousands of specs are cheap to check.
    let specs: Vec<SceneSpec> = (0..14 * 300).map(|i| SceneSpec::sample(3, i).0).collect();
    let combos = |split: Split| -> HashSet<(Shape, &str)> { specs.iter().filter(|s| s.split == split).map(|s| (s.look.shape, s.look.palette.name)).collect() };
    let (train, val, test) = (combos(Split::Train), combos(Split::Val), combos(Split::Test));
    assert!(train.is_disjoint(&test), "a shape x palette combination is in train and test");
    assert!(train.is_disjoint(&val) && val.is_disjoint(&test));
    // Held-out combinations, not held-out shapes or palettes: train shows every shape and palette.
    let train_shapes: HashSet<Shape> = train.iter().map(|c| c.0).collect();
    let train_palettes: HashSet<&str> = train.iter().map(|c| c.1).collect();
    assert_eq!(train_shapes.len(), Shape::ALL.len());
    assert_eq!(train_palettes.len(), PALETTES.len());
    for split in [Split::Train, Split::Val] {
        assert!(specs.iter().filter(|s| s.split == split).all(|s| s.background != BackgroundStyle::TEST_ONLY), "{split:?} shows the test-only background");
    }
    for &relation in Relation::CLASSIC {
        let in_test = specs.iter().filter(|s| s.split == Split::Test && s.relation == relation);
        assert!(in_test.clone().any(|s| s.background == BackgroundStyle::TEST_ONLY), "{relation:?} never shows the test-only background");
        let per_split: Vec<usize> = [Split::Train, Split::Val, Split::Test].iter().map(|&sp| specs.iter().filter(|s| s.split == sp && s.relation == relation).count()).collect();
        assert_eq!(per_split, vec![240, 30, 30], "{relation:?} per split");
    }
    // With every family the cycle is longer, and each family is balanced the same way.
    let all = SceneSet { families: Families::All, ..SceneSet::classic(3) };
    let specs: Vec<SceneSpec> = (0..Relation::ALL.len() * 100).map(|i| all.spec(i).0).collect();
    for relation in Relation::ALL {
        let per_split: Vec<usize> = [Split::Train, Split::Val, Split::Test].iter().map(|&sp| specs.iter().filter(|s| s.split == sp && s.relation == relation).count()).collect();
        assert_eq!(per_split, vec![80, 10, 10], "{relation:?} per split");
    }
    // The classic families are the fourteen of the first sets (their pixels are checked by
    // the_classic_scenes_stay_pixel_for_pixel_those_of_the_first_sets).
    assert_eq!(Relation::CLASSIC.len(), 14);
    // The written files agree: no image is in two splits.
    let dir = temp_dir("splits");
    generate(&dir, 14 * 10, 3, 2);
    let records = read_records(&dir, None).unwrap();
    let mut seen: BTreeMap<&str, Split> = BTreeMap::new();
    for r in &records {
        assert_eq!(*seen.entry(&r.image_hash).or_insert(r.split), r.split, "{} is in two splits", r.image_hash);
    }
    let test = read_records(&dir, Some(Split::Test)).unwrap();
    assert_eq!(test.len(), 14);
    assert_eq!(test.iter().map(|r| r.relation.as_str()).collect::<BTreeSet<_>>().len(), 14);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Words that would name what is drawn: shapes (and synonyms), colours, palettes.
fn forbidden_words() -> Vec<String> {
    let mut words: Vec<String> = Shape::ALL.iter().map(|s| s.name().to_string()).collect();
    words.extend(PALETTES.iter().map(|p| p.name.to_string()));
    for w in [
        "round", "oval", "star", "moon", "teardrop", "petal", "plus", "rectangle", "red", "orange", "yellow", "green", "blue",
        "purple", "violet", "pink", "brown", "black", "white", "gray", "grey", "teal", "cyan", "magenta", "gold", "golden",
        "beige", "navy", "crimson",
    ] {
        words.push(w.to_string());
    }
    words
}

#[test]
fn captions_are_anonymous_and_the_evaluation_paraphrase_stays_out_of_training() {
    assert!(Relation::ALL.len() >= 14);
    let forbidden = forbidden_words();
    let mut all = HashSet::new();
    for relation in Relation::ALL {
        let training = relation.training_captions();
        let eval = relation.evaluation_caption();
        assert!(training.len() + 1 >= 4, "{relation:?} has {} paraphrases", training.len() + 1);
        assert!(!training.contains(&eval), "{relation:?}: the evaluation caption is also a training caption");
        for caption in training.iter().chain([&eval]) {
            assert!(caption.contains('{') && caption.contains('}'), "{relation:?}: `{caption}` has no {{placeholder}}");
            // Placeholders may say {shape}; the words around them may not.
            let mut text = caption.to_lowercase();
            while let (Some(a), Some(b)) = (text.find('{'), text.find('}')) {
                text.replace_range(a..=b, " ");
            }
            for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                let singular = word.strip_suffix('s').unwrap_or(word);
                assert!(!forbidden.iter().any(|f| f == word || f == singular), "{relation:?}: `{caption}` names `{word}`");
            }
            assert!(all.insert(caption.to_string()), "`{caption}` is used by two relations");
        }
    }
    assert!(Relation::ALL.len() >= 30, "{} families", Relation::ALL.len());
    // In a written set, no training row carries an evaluation caption.
    let dir = temp_dir("captions");
    generate_families(&dir, Relation::ALL.len() * 4, 1, 2, 0.0, "all");
    let records: Vec<Record> = read_records(&dir, Some(Split::Train)).unwrap();
    assert!(!records.is_empty());
    let evaluation: HashSet<&str> = Relation::ALL.iter().map(|r| r.evaluation_caption()).collect();
    for r in &records {
        assert!(!evaluation.contains(r.caption.as_str()), "training row with the evaluation caption `{}`", r.caption);
        let relation = Relation::from_name(&r.relation).unwrap();
        assert!(relation.training_captions().contains(&r.caption.as_str()), "`{}` is not a caption of {}", r.caption, r.relation);
    }
    let bank: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("captions.json")).unwrap()).unwrap();
    assert_eq!(bank.as_array().unwrap().len(), Relation::ALL.len());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_classic_scenes_stay_pixel_for_pixel_those_of_the_first_sets() {
    // The 14-family benchmark (seed 0) must stay the set earlier weights were measured on, so
    // new families, objects and captions must not shift its random streams: FNV-1a of the
    // pixels of its first scene of each family, as the first sets drew them.
    const FIRST_SETS: [u64; 14] = [
        0xb98a40080cff1856,
        0xecf92ebeb4aa1464,
        0xd10b75425ceca65e,
        0xc722706b73c4ae7a,
        0x8ebfdffa19a34551,
        0xfd7a55e5e7da4d6e,
        0xdd4520f29d747648,
        0xd5bceab56493f554,
        0xf71e9199056f5924,
        0x6edda85b74fc68c9,
        0x5de40e477c605aea,
        0x198462b97d02c8e3,
        0xa6a279b2bd7747e8,
        0x824b689cf0d9e254,
    ];
    let fnv = |bytes: &[u8]| bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let got: Vec<u64> = (0..14)
        .map(|i| {
            let (spec, mut rng) = SceneSet::classic(0).spec(i);
            fnv(render(&spec, &mut rng, 256).as_raw())
        })
        .collect();
    assert_eq!(got, FIRST_SETS);
}

#[test]
fn every_evaluation_caption_is_nearest_to_its_own_familys_training_captions() {
    // A held-out paraphrase can find its images only if the text model puts it nearer its own
    // idea than any other (a shared placeholder word must not outweigh the meaning): checked
    // against the mean of each family's training captions in MiniLM's space.
    use relsim_shared::text::minilm::MiniLm;
    let dir = std::env::var_os("RELSIM_MINILM_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("models/all-MiniLM-L6-v2"));
    let minilm = MiniLm::<burn::backend::NdArray<f32>>::from_dir(&dir, &Default::default()).unwrap();
    let centroids: Vec<Vec<f32>> = Relation::ALL
        .iter()
        .map(|r| {
            let vectors = minilm.embed_vecs(r.training_captions()).unwrap();
            let mut mean = vec![0.0f32; vectors[0].len()];
            for v in &vectors {
                mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
            }
            let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
            mean.into_iter().map(|x| x / norm).collect()
        })
        .collect();
    let evaluation = minilm.embed_vecs(&Relation::ALL.iter().map(|r| r.evaluation_caption()).collect::<Vec<_>>()).unwrap();
    let mut strays = Vec::new();
    for (i, relation) in Relation::ALL.iter().enumerate() {
        let score = |j: usize| evaluation[i].iter().zip(&centroids[j]).map(|(a, b)| a * b).sum::<f32>();
        let nearest = (0..centroids.len()).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap();
        if nearest != i {
            strays.push(format!("{} ({:.3}) is nearer {} ({:.3})", relation.name(), score(i), Relation::ALL[nearest].name(), score(nearest)));
        }
    }
    assert!(strays.is_empty(), "evaluation captions nearer another family:\n{}", strays.join("\n"));
}

#[test]
fn every_relation_renders_with_every_shape_palette_and_background() {
    let size = 48;
    for (ri, relation) in Relation::ALL.into_iter().enumerate() {
        for (si, shape) in Shape::ALL.into_iter().enumerate() {
            for (pi, palette) in PALETTES.iter().enumerate() {
                let (mut spec, mut rng) = SceneSpec::sample(ri as u64, si * 100 + pi);
                spec.relation = relation;
                spec.look = Look {
                    shape,
                    other_shape: Shape::ALL[(si + pi + 1) % Shape::ALL.len()],
                    palette,
                    style: if (si + pi) % 3 == 0 { Style::Outline(3.0) } else { Style::Fill },
                    ..spec.look
                };
                spec.background = BackgroundStyle::Plain;
                let image = render(&spec, &mut rng, size);
                // Something besides the background was drawn.
                let bg = image::Rgb(palette.background[0]);
                let drawn = image.pixels().filter(|p| **p != bg).count();
                assert!(drawn * 200 > (size * size) as usize, "{relation:?} {shape:?} {}: only {drawn} pixels drawn", palette.name);
            }
        }
        for background in BackgroundStyle::ALL {
            let (mut spec, mut rng) = SceneSpec::sample(9, ri);
            spec.background = background;
            let image = render(&spec, &mut rng, 96);
            assert_eq!((image.width(), image.height()), (96, 96));
        }
    }
}

#[test]
fn the_contact_sheet_is_a_labelled_grid() {
    let dir = temp_dir("sheet");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("sheet.png");
    let status = relsim().args(["scenes", "sheet", "--per-relation", "3", "--cell", "64", "--out"]).arg(&out).status().unwrap();
    assert!(status.success());
    let sheet = image::open(&out).unwrap().to_rgb8();
    // A label column of 320 px, then 3 cells of 64 px with 4 px gaps; a row per family.
    let rows = Relation::ALL.len() as u32;
    assert_eq!((sheet.width(), sheet.height()), (320 + 3 * 68 + 4, rows * 68 + 4));
    // The label column has dark text pixels in every row.
    for row in 0..rows {
        let y0 = 4 + row * 68;
        let dark = (y0..y0 + 64).flat_map(|y| (0..320).map(move |x| (x, y))).filter(|&(x, y)| sheet.get_pixel(x, y).0[0] < 100).count();
        assert!(dark > 50, "row {row} has no label");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_relational_benchmark_reports_every_baseline_and_plugs_in_the_qwen_encoder() {
    let dir = temp_dir("bench");
    generate(&dir, 14 * 20, 5, 2);
    let json = dir.join("report.json");
    let out = relsim().args(["bench", "relational", "--split", "test", "--data"]).arg(&dir).arg("--json").arg(&json).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in ["pixels", "colour-histogram", "hog"] {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "no `{name}` row in:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["images"], 28);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let m = &r["metrics"];
        for key in ["p_at_1", "p_at_5", "map", "attribute_trap_rate"] {
            let v = m[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} = {v}");
        }
        assert_eq!(m["p_at_1_by_relation"].as_object().unwrap().len(), 14);
    }

    // The relsim encoder plugs in by name (a tiny random checkpoint: the numbers mean nothing).
    let fixtures = workspace().join("tests/fixtures/qwen");
    let out = relsim()
        .args(["bench", "relational", "--split", "test", "--encoder", "qwen", "--data"])
        .arg(&dir)
        .arg("--base")
        .arg(fixtures.join("tiny_b"))
        .arg("--adapter")
        .arg(fixtures.join("tiny_b/adapter"))
        .arg("--tokenizer")
        .arg(fixtures.join("tokenizer/tokenizer.json.gz"))
        .arg("--preprocess")
        .arg("train")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["results"][0]["encoder"], "qwen");
    assert_eq!(report["results"][0]["metrics"]["queries"], 28);

    let out = relsim().args(["bench", "relational", "--encoder", "nonsense", "--data"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown encoder `nonsense`") && err.contains("colour-histogram"), "{err}");
    let out = relsim().args(["bench", "relational", "--data"]).arg(dir.join("missing")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("data.jsonl"), "a missing set names data.jsonl");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn object_scenes_record_their_things_and_hold_categories_out_of_training() {
    use relsim_companion::scenes::objects::{self, Category};
    let all = SceneSet { families: Families::All, objects: 1.0, ..SceneSet::classic(3) };
    let specs: Vec<SceneSpec> = (0..Relation::ALL.len() * 150).map(|i| all.spec(i).0).collect();
    for spec in &specs {
        let a = spec.attributes();
        if spec.relation.draws_objects() {
            let object = objects::all().iter().find(|o| o.name == a.object).unwrap_or_else(|| panic!("{:?} names no object", a.object));
            assert_eq!(a.object_category, object.category.name());
        } else {
            assert_eq!((a.object.as_str(), a.object_category.as_str()), ("", "shape"), "{:?} cannot draw objects", spec.relation);
        }
    }
    let categories = |split: Split| -> BTreeSet<String> {
        specs.iter().filter(|s| s.split == split).map(|s| s.attributes().object_category).filter(|c| c != "shape").collect()
    };
    let held_out: BTreeSet<String> = Category::TEST_ONLY.iter().map(|c| c.name().to_string()).collect();
    assert!(held_out.len() >= 2);
    assert!(categories(Split::Train).is_disjoint(&held_out) && categories(Split::Val).is_disjoint(&held_out), "training sees a held-out category");
    assert!(categories(Split::Test).is_superset(&held_out), "the test split draws every held-out category");
    assert!(categories(Split::Train).len() >= 12, "training draws {} categories", categories(Split::Train).len());
    // Objects come from a stream of their own: without them a scene is exactly the shape scene.
    let shapes = SceneSet { objects: 0.0, ..all };
    for i in 0..Relation::ALL.len() * 2 {
        let ((plain, mut a), (none, mut b)) = (shapes.spec(i), SceneSet { objects: 1.0, ..shapes }.spec(i));
        if plain.relation.draws_objects() {
            let (shapes, things) = (render(&plain, &mut a, 64), render(&none, &mut b, 64));
            assert_ne!(shapes, things, "{:?}: real objects change the picture", plain.relation);
        }
    }
    for i in 0..28 {
        let ((plain, mut a), (none, mut b)) = (SceneSpec::sample(5, i), SceneSpec::sample_with_objects(5, i, 0.0));
        assert_eq!(render(&plain, &mut a, 64), render(&none, &mut b, 64));
        let (with, mut c) = SceneSpec::sample_with_objects(5, i, 1.0);
        let (plain, mut a) = SceneSpec::sample(5, i);
        let (shapes, things) = (render(&plain, &mut a, 64), render(&with, &mut c, 64));
        assert_eq!(shapes == things, !with.relation.draws_objects(), "{:?}: objects change the picture exactly when drawn", with.relation);
    }
}

#[test]
fn multi_scenes_carry_two_ideas_recorded_in_the_row() {
    use relsim_companion::scenes::multi::PAIRS;
    let out = temp_dir("multi");
    let status = relsim().args(["scenes", "generate", "--multi", "--count", "26", "--seed", "5", "--objects", "0.5", "--out"]).arg(&out).status().unwrap();
    assert!(status.success());
    let records = read_records(&out, None).unwrap();
    assert_eq!(records.len(), 26);
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &records {
        let second = r.second_relation.clone().expect("every --multi row names its second idea");
        let (first, change) = (Relation::from_name(&r.relation).unwrap(), Relation::from_name(&second).unwrap());
        assert!(PAIRS.contains(&(first, change)), "{} + {second} is not a pair", r.relation);
        assert!(r.shows(&r.relation) && r.shows(&second) && !r.shows("odd_one_out"));
        // The caption names both ideas, each with one of its family's training paraphrases.
        let (a, b) = r.caption.split_once("; ").expect("two captions");
        assert!(first.training_captions().contains(&a) && change.training_captions().contains(&b), "{}", r.caption);
        assert_eq!(r.idea_id(), Some(Relation::ALL.len() + PAIRS.iter().position(|p| *p == (first, change)).unwrap()));
        *seen.entry((r.relation.clone(), second)).or_default() += 1;
    }
    assert_eq!(seen.len(), PAIRS.len());
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
    // The file says so: one-idea rows stay as they were, without the field.
    let text = std::fs::read_to_string(out.join("data.jsonl")).unwrap();
    assert_eq!(text.matches("\"second_relation\"").count(), 26);
    let one = temp_dir("multi-one");
    generate_families(&one, 4, 5, 1, 0.0, "all");
    assert!(!std::fs::read_to_string(one.join("data.jsonl")).unwrap().contains("second_relation"));
    // --multi means --families pairs; asking for both is refused.
    let both = relsim().args(["scenes", "generate", "--multi", "--families", "all", "--count", "1", "--out"]).arg(&one).output().unwrap();
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&one);
}

#[test]
fn the_change_of_a_pair_is_drawn() {
    // The same ring, look and stream with each of the four changes: the arrangement's draws and
    // the change's come in a fixed order, so any difference is the change itself.
    use relsim_companion::scenes::multi::PAIRS;
    let set = SceneSet { families: Families::Pairs, ..SceneSet::classic(9) };
    for block in 0..4 {
        let radial: Vec<image::RgbImage> = (0..4)
            .map(|k| {
                let (mut spec, _) = set.spec(block * PAIRS.len());
                let (_, change) = PAIRS[k];
                spec.second = Some(change);
                let (_, mut rng) = set.spec(block * PAIRS.len());
                render(&spec, &mut rng, 128)
            })
            .collect();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(radial[i], radial[j], "block {block}: {} and {} draw the same", PAIRS[i].1.name(), PAIRS[j].1.name());
            }
        }
    }
}

#[test]
fn a_mixed_set_holds_every_family_and_every_pair_once_per_block() {
    use relsim_companion::scenes::multi::PAIRS;
    let set = SceneSet { families: Families::AllAndPairs, ..SceneSet::classic(11) };
    let kinds = Families::AllAndPairs.kinds();
    assert_eq!(kinds, Relation::ALL.len() + PAIRS.len());
    let ids: BTreeSet<usize> = (0..kinds)
        .map(|k| {
            let (spec, _) = set.spec(kinds + k);
            let record = Record {
                image_hash: String::new(),
                caption: spec.caption.clone(),
                relation: spec.relation.name().into(),
                second_relation: spec.second.map(|r| r.name().into()),
                split: spec.split,
                attributes: spec.attributes(),
            };
            assert_eq!(spec.second.is_some(), k >= Relation::ALL.len());
            record.idea_id().unwrap()
        })
        .collect();
    assert_eq!(ids, (0..kinds).collect::<BTreeSet<_>>());
}
