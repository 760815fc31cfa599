//! The layer rule of `lib.rs`, checked against the code: every `crate::` path in a module's code (comments
//! aside) names a module on a lower floor, or one its floor lists as a neighbour it may use, and never one
//! the module must reach through another (the HTTP edge reaches SQL and storage only through `ops`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The floors, lowest first: a module uses only modules of lower floors, or the neighbours named with it.
const FLOORS: &[&[(&str, &[&str])]] = &[
    &[("oci", &[]), ("config", &[]), ("telemetry", &[]), ("cli", &[])],
    &[("errors", &[]), ("pace", &[])],
    &[("limits", &[]), ("storage", &[]), ("connections", &[])],
    &[("metadata", &[]), ("tls", &["connections"])],
    &[("auth", &[]), ("tenant", &[])],
    &[("ops", &[])],
    &[("app", &[])],
    &[("http", &[])],
    &[("bootstrap", &[])],
];

/// Lower modules a module may not use directly.
const THROUGH_OTHERS: &[(&str, &[&str])] = &[("http", &["metadata", "storage"])];

/// The source files of top-level module `module`: `src/<module>.rs` or everything under `src/<module>/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut files = Vec::new();
    let mut folders = vec![src.join(module)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level modules a file's code names through `crate::` (line comments and doc comments skipped),
/// in paths and in `use crate::{…}` groups, nested or spread over lines.
fn modules_used(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let items = match rest.strip_prefix('{') {
            Some(group) => top_level_items(group),
            None => vec![rest],
        };
        for item in items {
            let name: String = item
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// The items of a `{…}` group whose text starts after its `{`: split at its own commas, up to its `}`.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

#[test]
fn every_module_uses_only_lower_floors_and_its_named_neighbours() {
    let floor_of = |name: &str| FLOORS.iter().position(|floor| floor.iter().any(|(m, _)| *m == name));
    let mut broken = Vec::new();
    for (floor, modules) in FLOORS.iter().enumerate() {
        for (module, neighbours) in modules.iter() {
            let files = files_of(module);
            assert!(!files.is_empty(), "no source for module {module}");
            for file in files {
                for used in modules_used(&std::fs::read_to_string(&file).unwrap()) {
                    let bypassed = THROUGH_OTHERS
                        .iter()
                        .any(|(m, lower)| m == module && lower.contains(&used.as_str()));
                    let allowed = used == *module
                        || neighbours.contains(&used.as_str())
                        || (floor_of(&used).is_some_and(|f| f < floor) && !bypassed);
                    if !allowed {
                        broken.push(format!("{} uses crate::{used}", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layer rule:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_module_has_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if module && !["lib", "main", "layer_rule"].contains(&name.as_str()) {
            assert!(
                FLOORS.iter().any(|floor| floor.iter().any(|(m, _)| *m == name)),
                "src/{name} has no floor in layer_rule::FLOORS"
            );
        }
    }
}

#[test]
fn crate_paths_are_read_from_code_and_groups() {
    let text = "//! see [`crate::http`]\nuse crate::{oci::digest, errors::OciError};\nlet x = crate::pace::Pace; // crate::app\n\
                use crate::{\n    auth::{self, Identity},\n    metadata::{Db, registries::RegistryRow},\n};\n";
    let used: Vec<String> = modules_used(text).into_iter().collect();
    assert_eq!(used, ["auth", "errors", "metadata", "oci", "pace"]);
}
