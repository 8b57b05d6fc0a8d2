//! The dependency rule of the crate, checked: tools → gateway → parts →
//! foundations, and no two top-level modules importing each other.
//!
//! The rule lives in docs/ARCHITECTURE.md ("The map"); this test reads the
//! source tree so that a change that breaks it fails here, with the file
//! and the import named, rather than being noticed months later. Test code
//! is left out: unit tests of the foundations make certificates with
//! `tools::pki`, as a dev-dependency would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its layer: a module may import its own layer
/// (without a circle) and the layers below, never one above.
const LAYERS: &[(&str, u8)] = &[
    ("identity", 0),
    ("refusal", 0),
    ("config", 0),
    ("tls", 0),
    ("catalogue", 0),
    ("redis", 0),
    ("clock", 0),
    ("proto", 0),
    ("embedded", 0),
    ("policy", 1),
    ("audit", 1),
    ("consent", 1),
    ("bus", 1),
    ("telemetry", 1),
    ("cluster", 1),
    ("console", 1),
    ("gateway", 2),
    ("witness", 2),
    ("tools", 3),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source tree is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            // `tests/` folders beside a module hold its unit tests.
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The source without comments and without `#[cfg(test)]` modules.
fn production_code(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let mut kept = String::new();
    let mut skip_depth: Option<i64> = None;
    let mut test_attribute = false;
    for line in lines {
        let trimmed = line.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += brace_balance(line);
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed == "#[cfg(test)]" {
            test_attribute = true;
            continue;
        }
        if test_attribute {
            test_attribute = false;
            if trimmed.starts_with("mod ") && trimmed.ends_with('{') {
                skip_depth = Some(brace_balance(line));
                continue;
            }
            if trimmed.starts_with("mod ") || trimmed.starts_with("use ") {
                continue;
            }
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

fn brace_balance(line: &str) -> i64 {
    line.chars().fold(0, |n, c| match c {
        '{' => n + 1,
        '}' => n - 1,
        _ => n,
    })
}

/// The top-level modules a file's production code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c};`: every first segment in the group.
            let end = group.find("};").unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

/// Who imports whom, with the first file that does, for the message.
fn graph(src: &Path) -> BTreeMap<(String, String), PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src/");
        let Some(first) = relative.components().next() else {
            continue;
        };
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if layer(&module).is_none() {
            continue; // lib.rs, main.rs, this file
        }
        let source = std::fs::read_to_string(&file).expect("a source file is readable");
        for target in imports(&production_code(&source)) {
            if target != module && layer(&target).is_some() {
                edges
                    .entry((module.clone(), target))
                    .or_insert_with(|| relative.to_owned());
            }
        }
    }
    edges
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if ["lib", "main", "layering"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            layer(&name).is_some(),
            "src/{name} has no layer in src/layering.rs: add it to LAYERS and to docs/ARCHITECTURE.md's map"
        );
    }
}

#[test]
fn dependencies_point_down_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    assert!(
        edges
            .keys()
            .any(|(from, to)| from == "gateway" && to == "audit"),
        "the scan found no import of the audit log by the gateway: it is not reading the tree"
    );
    let mut wrong = Vec::new();
    for ((from, to), file) in &edges {
        let (Some(a), Some(b)) = (layer(from), layer(to)) else {
            continue;
        };
        if a < b {
            wrong.push(format!(
                "{from} (layer {a}) imports {to} (layer {b}) in src/{}",
                file.display()
            ));
        }
        if from < to && edges.contains_key(&(to.clone(), from.clone())) {
            wrong.push(format!(
                "{from} and {to} import each other (src/{} and src/{})",
                file.display(),
                edges[&(to.clone(), from.clone())].display()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the dependency rule is broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_reads_groups_and_skips_test_modules() {
    let code = "use crate::{audit::Log, identity};\nfn f() { crate::clock::now_us(); }\n#[cfg(test)]\nmod tests {\n    use crate::tools::pki;\n    fn g() {}\n}\n";
    let found = imports(&production_code(code));
    let expected: BTreeSet<String> = ["audit", "identity", "clock"].map(String::from).into();
    assert_eq!(found, expected);
}
