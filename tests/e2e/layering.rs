//! The house's floors, checked on the source: gridsync-node's modules import one way (no
//! module imports a module that imports it back, directly or through others), no crate
//! outside gridsync-node names its private shared state, and only its `clock` module reads
//! the wall clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    // The `gridsync` crate is crates/gridsync.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The top-level modules of the crate that `source` names: `crate::a::...` and each item of
/// `crate::{a, b::C}`.
fn modules_named(source: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in source.match_indices("crate::") {
        let rest = &source[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inside = &group[..group.find('}').unwrap_or(group.len())];
            named.extend(inside.split(',').map(|item| ident(item.trim())));
        } else {
            named.insert(ident(rest));
        }
    }
    named.retain(|m| !m.is_empty());
    named
}

/// A cycle through `start` in `graph`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if graph.contains_key(next) && seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn node_modules() -> BTreeMap<String, String> {
    let src = workspace_root().join("crates/gridsync-node/src");
    let modules: BTreeMap<String, String> = rust_files(&src)
        .into_iter()
        .filter(|p| p.parent() == Some(src.as_path()))
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("read a source file");
            (name, text)
        })
        .collect();
    assert!(
        modules.len() > 20,
        "gridsync-node's modules were not found under {}",
        src.display()
    );
    modules
}

#[test]
fn gridsync_node_modules_import_one_way() {
    let modules = node_modules();
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, text)| {
            let mut named = modules_named(text);
            named.remove(name);
            named.retain(|m| modules.contains_key(m) && m != "lib");
            (name.clone(), named)
        })
        .collect();
    // The check can find a cycle: the graph is not empty of edges.
    assert!(graph.values().map(BTreeSet::len).sum::<usize>() > 20);
    let cycles: Vec<Vec<String>> = graph.keys().filter_map(|m| cycle_from(&graph, m)).collect();
    assert!(
        cycles.is_empty(),
        "import cycles in gridsync-node: {cycles:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("node", vec!["connection"]),
        ("connection", vec!["shared"]),
        ("shared", vec!["node"]),
    ]
    .into_iter()
    .map(|(m, deps)| (m.to_owned(), deps.into_iter().map(str::to_owned).collect()))
    .collect();
    assert!(cycle_from(&graph, "node").is_some());
    assert_eq!(
        modules_named("use crate::{shared::NodeShared, dialer};\nlet x = crate::clock::unix_ms();"),
        ["clock", "dialer", "shared"].map(str::to_owned).into()
    );
}

#[test]
fn no_crate_outside_gridsync_node_names_its_shared_state() {
    let root = workspace_root();
    let mut offenders = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with("gridsync-node"))
        .collect();
    dirs.push(root.join("examples"));
    dirs.push(root.join("tests"));
    for dir in dirs {
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            // This file names it to look for it.
            if text.contains("NodeShared") && !file.ends_with("tests/e2e/layering.rs") {
                offenders.push(file);
            }
        }
    }
    assert!(offenders.is_empty(), "NodeShared named in {offenders:?}");
}

#[test]
fn only_the_clock_module_of_gridsync_node_reads_the_wall_clock() {
    let readers: Vec<String> = node_modules()
        .into_iter()
        .filter(|(name, text)| name != "clock" && text.contains("SystemTime::now"))
        .map(|(name, _)| name)
        .collect();
    assert!(readers.is_empty(), "the wall clock is read in {readers:?}");
}
