//! The committed browser student (`assets/relsim-lite-student`, made by `relsim distill` from the
//! committed relsim-lite): small, marked with its teacher, and close to the teacher on test-split
//! scenes no run saw — a student query searched among the teacher's vectors (what the browser
//! does) finds at least 70% of the teacher's top 10, and relational P@1 stays within 0.1.

use std::path::PathBuf;

use relsim_companion::distill::compare;
use relsim_shared::protocol::TeacherInfo;
use relsim_companion::encoders::{by_name, model_id, EncoderOptions, ImageEncoder, LiteEncoder};
use relsim_companion::scenes::generate::{sample_split, Families, SceneSet, Split};
use relsim_companion::scenes::Relation;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_student_is_small_marked_with_its_teacher_and_close_to_it() {
    let student_dir = workspace().join("assets/relsim-lite-student");
    let size = std::fs::metadata(student_dir.join("model.safetensors")).unwrap().len();
    assert!(size < 5_000_000, "the browser downloads it: {size} bytes");
    let teacher_options = EncoderOptions::lite(workspace().join("assets/relsim-lite"));
    let info: TeacherInfo = serde_json::from_slice(&std::fs::read(student_dir.join("teacher.json")).unwrap()).unwrap();
    assert_eq!(info.model_id, model_id("lite", &teacher_options).unwrap(), "distilled from the committed relsim-lite");

    // Every family, most drawn with real objects, as the teacher was trained.
    let set = SceneSet { families: Families::All, objects: 0.6, ..SceneSet::classic(4242) };
    let (images, records) = sample_split(&set, 10, Split::Test);
    assert!(images.len() >= 300, "{} scenes", images.len());
    let relations: Vec<usize> = records.iter().map(|r| Relation::ALL.iter().position(|x| x.name() == r.relation).unwrap()).collect();
    let teacher = by_name("lite", &teacher_options).unwrap().embed_batch(&images).unwrap();
    let student = LiteEncoder::<burn::backend::NdArray<f32>>::load(&student_dir, &Default::default()).unwrap();
    assert!(!student.colour_views, "the student makes one pass per image");
    let queries = student.embed_batch(&images).unwrap();
    let (overlap, teacher_p1, student_p1, cosine) = compare(&queries, &teacher, &relations);
    eprintln!("{} scenes: top-10 overlap {overlap:.3}, P@1 student {student_p1:.3} teacher {teacher_p1:.3}, mean cosine {cosine:.3}", images.len());
    assert!(overlap >= 0.7, "top-10 overlap with the teacher {overlap:.3}");
    assert!(student_p1 >= teacher_p1 - 0.1, "P@1 student {student_p1:.3}, teacher {teacher_p1:.3}");
}

#[test]
fn distill_writes_a_student_its_teacher_and_a_report() {
    use relsim_companion::distill::{distill, DistillOptions};
    use relsim_shared::image::lite::LiteConfig;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("scenes");
    relsim_companion::scenes::generate::generate(&data, 280, &relsim_companion::scenes::generate::SceneSet { size: 64, ..relsim_companion::scenes::generate::SceneSet::classic(5) }, &|| ()).unwrap();
    let tiny = LiteConfig::new().with_image_size(16).with_patch_size(4).with_hidden(16).with_layers(1).with_heads(2);
    let options = DistillOptions {
        data: data.clone(),
        teacher: "lite".into(),
        encoder: EncoderOptions::lite(workspace().join("assets/relsim-lite")),
        student: Some(tiny.clone()),
        steps: 3,
        batch_size: 8,
        learning_rate: 1e-3,
        contrastive: 0.5,
        temperature: 0.05,
        seed: 0,
    };
    let out = dir.path().join("student");
    let report = distill(&options, &out, &mut ()).unwrap();
    assert_eq!(report.steps, 3);
    assert!(report.test_images > 0 && (0.0..=1.0).contains(&report.overlap_at_10));
    let saved: relsim_companion::distill::DistillReport = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!((saved.steps, saved.test_images), (report.steps, report.test_images));
    assert!((saved.overlap_at_10 - report.overlap_at_10).abs() < 1e-12 && (saved.student_p_at_1 - report.student_p_at_1).abs() < 1e-12);
    let info: TeacherInfo = serde_json::from_slice(&std::fs::read(out.join("model/teacher.json")).unwrap()).unwrap();
    assert_eq!(info.model_id, model_id("lite", &options.encoder).unwrap());
    let loaded = LiteEncoder::<burn::backend::NdArray<f32>>::load(&out.join("model"), &Default::default()).unwrap();
    assert_eq!(loaded.size, 16);
    // The teacher's vectors are cached for the next run.
    assert!(std::fs::read_dir(&out).unwrap().filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("teacher-lite-")));
    // A fresh student's vectors take the teacher's size, whatever its shape said.
    let narrow = DistillOptions { student: Some(tiny.clone().with_out_dim(32)), steps: 1, ..options.clone() };
    distill(&narrow, &dir.path().join("narrow"), &mut ()).unwrap();
    let narrow = LiteEncoder::<burn::backend::NdArray<f32>>::load(&dir.path().join("narrow/model"), &Default::default()).unwrap();
    assert_eq!(narrow.embed_batch(&[image::RgbImage::new(20, 20)]).unwrap()[0].len(), 384);

    // The Qwen relsim encoder as the teacher (the tiny test checkpoint).
    let q = workspace().join("tests/fixtures/qwen");
    let mut qwen = EncoderOptions::lite(workspace().join("assets/relsim-lite"));
    qwen.base = Some(q.join("tiny_b"));
    qwen.adapter = Some(q.join("tiny_b/adapter"));
    qwen.tokenizer = Some(q.join("tokenizer/tokenizer.json.gz"));
    let from_qwen = DistillOptions { teacher: "qwen".into(), encoder: qwen.clone(), steps: 2, ..options };
    let out = dir.path().join("qwen-student");
    let report = distill(&from_qwen, &out, &mut ()).unwrap();
    assert_eq!(report.steps, 2);
    let info: TeacherInfo = serde_json::from_slice(&std::fs::read(out.join("model/teacher.json")).unwrap()).unwrap();
    assert_eq!((info.model.as_str(), info.model_id), ("qwen", model_id("qwen", &qwen).unwrap()));
    let teacher_dim = by_name("qwen", &qwen).unwrap().embed_batch(&[image::RgbImage::new(28, 28)]).unwrap()[0].len();
    let student = LiteEncoder::<burn::backend::NdArray<f32>>::load(&out.join("model"), &Default::default()).unwrap();
    assert_eq!(student.embed_batch(&[image::RgbImage::new(20, 20)]).unwrap()[0].len(), teacher_dim);
    // Without a shape there is nothing to start a Qwen student from.
    let shapeless = DistillOptions { student: None, ..from_qwen };
    assert!(distill(&shapeless, &dir.path().join("none"), &mut ()).unwrap_err().to_string().contains("needs its shape"));
}
