//! The house's floors, read from the code's own imports: the companion's modules import only
//! from their own floor or below and form no loop; clap and progress bars stay in the CLI; the
//! web app's views import the shared state, never the app that holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The companion's top-level modules by floor, bottom first (see ARCHITECTURE.md).
const FLOORS: &[(&str, &[&str])] = &[
    ("helpers", &["files", "paths", "stats", "openai"]),
    ("models", &["backend", "weights", "qwen", "lite"]),
    ("encoders", &["encoders", "calibration"]),
    ("data", &["scenes", "library", "explain", "captions", "interest"]),
    ("jobs", &["train", "distill", "bench", "study", "judge"]),
    ("surfaces", &["cli", "server"]),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its path relative to `dir`, in path order.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let out: Vec<(String, String)> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| (path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"), std::fs::read_to_string(&path).unwrap()))
        .collect();
    assert!(!out.is_empty(), "no sources in {}", dir.display());
    out
}

/// The source without comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
}

/// The top-level module a file belongs to (`library/store.rs` -> `library`); `None` for the crate root.
fn top_module(rel: &str) -> Option<String> {
    let first = rel.split('/').next().unwrap().trim_end_matches(".rs");
    (!matches!(first, "lib" | "main")).then(|| first.to_string())
}

/// The top-level modules a piece of code names through `crate::`, `crate::{a, b::c}` included.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at depth 1 of the brace group: `a`, `b::{..}`, `c as d`.
            let (mut depth, mut item_start) = (1, true);
            for (j, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && !c.is_whitespace() => {
                        out.insert(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// Module -> the other top-level modules it imports.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources(src) {
        let Some(module) = top_module(&rel) else { continue };
        let refs = crate_references(&code(&text));
        graph.entry(module.clone()).or_default().extend(refs.into_iter().filter(|r| *r != module));
    }
    graph
}

/// A loop in the graph, if there is one (as the modules along it).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            return Some(path[i..].iter().cloned().chain([node.to_string()]).collect());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|(_, modules)| modules.contains(&module))
}

#[test]
fn the_reference_reader_sees_groups_and_paths() {
    let refs = crate_references("use crate::{files::write_atomically, library::{self, Indexer}, paths};\nlet x = crate::stats::percentile(v);");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["files", "library", "paths", "stats"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&graph), Some(vec!["a".to_string(), "b".to_string(), "a".to_string()]));
}

#[test]
fn companion_modules_import_only_from_their_floor_or_below() {
    let graph = module_graph(&workspace().join("companion/src"));
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        let floor = floor_of(module).unwrap_or_else(|| panic!("module `{module}` is on no floor: add it to FLOORS and ARCHITECTURE.md"));
        for import in imports {
            let below = floor_of(import).unwrap_or_else(|| panic!("`{module}` imports `{import}`, which is on no floor"));
            if below > floor {
                wrong.push(format!("{module} ({}) imports {import} ({})", FLOORS[floor].0, FLOORS[below].0));
            }
        }
    }
    assert!(wrong.is_empty(), "imports from a floor above:\n{}", wrong.join("\n"));
    assert_eq!(find_cycle(&graph), None, "an import loop among the companion's modules");
}

#[test]
fn command_line_types_stay_in_the_cli() {
    let src = workspace().join("companion/src");
    let mut wrong = Vec::new();
    for (rel, text) in sources(&src) {
        if rel.starts_with("cli/") || rel == "main.rs" {
            continue;
        }
        let code = code(&text);
        for needle in ["clap", "#[arg(", "#[command(", "indicatif"] {
            if code.contains(needle) {
                wrong.push(format!("{rel}: {needle}"));
            }
        }
    }
    assert!(wrong.is_empty(), "command-line types or progress bars below the CLI:\n{}", wrong.join("\n"));
}

#[test]
fn web_views_import_the_state_not_the_app() {
    let src = workspace().join("web/src");
    let graph = module_graph(&src);
    let importers: Vec<&String> = graph.iter().filter(|(_, imports)| imports.contains("app")).map(|(m, _)| m).collect();
    assert!(importers.is_empty(), "web modules importing the app (its views should import `state`): {importers:?}");
    assert!(graph.get("state").is_some_and(|imports| !imports.iter().any(|m| ["explorer", "classroom", "quiz", "study", "stage", "map", "encoder_panel"].contains(&m.as_str()))), "state imports a view");
    assert_eq!(find_cycle(&graph), None, "an import loop among the web app's modules");
}
