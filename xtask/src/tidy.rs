//! `cargo xtask tidy`: rules the compiler cannot check.
//!
//! - Layering: the normal (not dev, not build) dependency closure of every sans-IO
//!   crate must not reach an async runtime, a socket crate or an adapter.
//! - Every crate under `crates/` is classified below, and is named `midge-*`.
//! - Every publishable library crate carries `license = "MIT OR Apache-2.0"` and a
//!   README.md in its folder.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::util::{self, cargo};

/// Crates that must stay sans-IO: no runtime, no sockets, no clock.
const SANS_IO_CRATES: &[&str] = &[
    "midge-codec",
    "midge-sn-codec",
    "midge-topic",
    "midge-time",
    "midge-store",
    "midge-session",
    "midge-broker",
    "midge-auth",
];

/// Crates under `crates/` that may do I/O: the runtime adapters and the binaries.
const IO_CRATES: &[&str] = &[
    "midge-runtime",
    "midge-server",
    "midge-client",
    "midge-tokio",
    "midge-smol",
    "midged",
    "midge",
    "midge-testkit",
    "midge-gateway",
];

/// Runtimes, reactors and socket crates a sans-IO crate must never depend on.
/// (TLS libraries such as rustls are themselves sans-IO and are allowed.)
const FORBIDDEN_IN_CORES: &[&str] = &[
    "tokio",
    "tokio-util",
    "smol",
    "async-std",
    "async-io",
    "async-net",
    "async-executor",
    "mio",
    "socket2",
    "polling",
    "futures-io",
    "glommio",
    // Our own adapters and binaries are I/O crates too.
    "midge-runtime",
    "midge-server",
    "midge-client",
    "midge-tokio",
    "midge-smol",
    "midge-gateway",
    "midged",
    "midge",
];

const LICENSE: &str = "MIT OR Apache-2.0";

/// One package of the workspace graph, as far as tidy cares.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) manifest_dir: PathBuf,
    pub(crate) license: Option<String>,
    pub(crate) is_lib: bool,
    pub(crate) publishable: bool,
}

/// The parts of `cargo metadata` that tidy uses.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    pub(crate) packages: BTreeMap<String, Package>,
    pub(crate) workspace_members: Vec<String>,
    /// Package id -> ids of its normal (non-dev, non-build) dependencies.
    pub(crate) normal_deps: BTreeMap<String, Vec<String>>,
}

/// Runs every tidy rule and reports all violations at once.
pub(crate) fn run(root: &Path) -> Result<()> {
    let json = util::output(&mut cargo(
        root,
        ["metadata", "--format-version", "1", "--all-features"],
    ))?;
    let value: Value = serde_json::from_str(&json).context("cargo metadata printed bad JSON")?;
    let metadata = parse_metadata(&value)?;
    let problems = check(root, &metadata);
    if problems.is_empty() {
        let cores: Vec<&str> = workspace_packages(&metadata)
            .filter(|p| SANS_IO_CRATES.contains(&p.name.as_str()))
            .map(|p| p.name.as_str())
            .collect();
        println!(
            "tidy: ok ({} workspace packages; sans-IO crates checked: {})",
            metadata.workspace_members.len(),
            cores.join(", ")
        );
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn workspace_packages(metadata: &Metadata) -> impl Iterator<Item = &Package> {
    metadata
        .workspace_members
        .iter()
        .filter_map(|id| metadata.packages.get(id))
}

/// Extracts packages, members and the normal dependency edges from metadata JSON.
pub(crate) fn parse_metadata(value: &Value) -> Result<Metadata> {
    let mut metadata = Metadata::default();
    let packages = value
        .get("packages")
        .and_then(Value::as_array)
        .context("cargo metadata: no `packages` array")?;
    for package in packages {
        let field = |key: &str| package.get(key).and_then(Value::as_str);
        let id = field("id").context("package without id")?.to_owned();
        let name = field("name").context("package without name")?.to_owned();
        let manifest = field("manifest_path").context("package without manifest_path")?;
        let manifest_dir = Path::new(manifest)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let is_lib = package
            .get("targets")
            .and_then(Value::as_array)
            .is_some_and(|targets| {
                targets.iter().any(|target| {
                    target
                        .get("kind")
                        .and_then(Value::as_array)
                        .is_some_and(|kinds| {
                            kinds
                                .iter()
                                .filter_map(Value::as_str)
                                .any(|kind| matches!(kind, "lib" | "rlib" | "dylib" | "proc-macro"))
                        })
                })
            });
        // `publish = false` shows up as an empty registry list.
        let publishable = package
            .get("publish")
            .and_then(Value::as_array)
            .is_none_or(|registries| !registries.is_empty());
        metadata.packages.insert(
            id.clone(),
            Package {
                id,
                name,
                manifest_dir,
                license: field("license").map(str::to_owned),
                is_lib,
                publishable,
            },
        );
    }
    metadata.workspace_members = value
        .get("workspace_members")
        .and_then(Value::as_array)
        .context("cargo metadata: no `workspace_members`")?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let nodes = value
        .get("resolve")
        .and_then(|r| r.get("nodes"))
        .and_then(Value::as_array)
        .context("cargo metadata: no `resolve.nodes` (was --no-deps used?)")?;
    for node in nodes {
        let Some(id) = node.get("id").and_then(Value::as_str) else {
            continue;
        };
        let deps = node
            .get("deps")
            .and_then(Value::as_array)
            .map(|deps| {
                deps.iter()
                    .filter(|dep| is_normal_dep(dep))
                    .filter_map(|dep| dep.get("pkg").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        metadata.normal_deps.insert(id.to_owned(), deps);
    }
    Ok(metadata)
}

/// A dependency edge counts when at least one of its kinds is "normal" (null).
fn is_normal_dep(dep: &Value) -> bool {
    dep.get("dep_kinds")
        .and_then(Value::as_array)
        .is_some_and(|kinds| {
            kinds
                .iter()
                .any(|kind| kind.get("kind").is_none_or(Value::is_null))
        })
}

/// All rule violations, as human-readable lines.
pub(crate) fn check(root: &Path, metadata: &Metadata) -> Vec<String> {
    let mut problems = Vec::new();
    let crates_dir = root.join("crates");
    for package in workspace_packages(metadata) {
        let name = package.name.as_str();
        if package.manifest_dir.starts_with(&crates_dir) {
            if !name.starts_with("midge-") && !IO_CRATES.contains(&name) {
                problems.push(format!(
                    "crate `{name}` lives under crates/ but its name does not start with `midge-`"
                ));
            }
            if !SANS_IO_CRATES.contains(&name) && !IO_CRATES.contains(&name) {
                problems.push(format!(
                    "crate `{name}` is not classified: add it to SANS_IO_CRATES or IO_CRATES \
                     in xtask/src/tidy.rs"
                ));
            }
        }
        if package.is_lib && package.publishable {
            if package.license.as_deref() != Some(LICENSE) {
                problems.push(format!(
                    "library crate `{name}` must have license = \"{LICENSE}\" (found {:?})",
                    package.license
                ));
            }
            if !package.manifest_dir.join("README.md").is_file() {
                problems.push(format!(
                    "library crate `{name}` has no README.md in {}",
                    package.manifest_dir.display()
                ));
            }
        }
        if SANS_IO_CRATES.contains(&name) {
            problems.extend(
                forbidden_paths(metadata, &package.id)
                    .into_iter()
                    .map(|path| format!("sans-IO crate depends on an I/O crate: {path}")),
            );
        }
    }
    problems
}

/// Breadth-first search over normal dependencies from `start`; returns, for each
/// forbidden crate reached, the shortest path `a -> b -> forbidden`.
pub(crate) fn forbidden_paths(metadata: &Metadata, start: &str) -> Vec<String> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut seen: BTreeSet<&str> = BTreeSet::from([start]);
    let mut queue: VecDeque<&str> = VecDeque::from([start]);
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        for dep in metadata.normal_deps.get(id).into_iter().flatten() {
            let dep = dep.as_str();
            if !seen.insert(dep) {
                continue;
            }
            parent.insert(dep, id);
            let is_forbidden = metadata
                .packages
                .get(dep)
                .is_some_and(|p| FORBIDDEN_IN_CORES.contains(&p.name.as_str()));
            if is_forbidden {
                found.push(render_path(metadata, &parent, dep));
            } else {
                queue.push_back(dep);
            }
        }
    }
    found
}

fn render_path(metadata: &Metadata, parent: &BTreeMap<&str, &str>, end: &str) -> String {
    let mut chain = vec![end];
    let mut current = end;
    while let Some(&up) = parent.get(current) {
        chain.push(up);
        current = up;
    }
    chain
        .iter()
        .rev()
        .map(|id| metadata.packages.get(*id).map_or(*id, |p| p.name.as_str()))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, dir: &str, lib: bool) -> Value {
        let kind = if lib { "lib" } else { "bin" };
        serde_json::json!({
            "id": format!("{name} 0.1.0"),
            "name": name,
            "manifest_path": format!("{dir}/Cargo.toml"),
            "license": LICENSE,
            "publish": null,
            "targets": [{ "kind": [kind] }],
        })
    }

    fn edge(name: &str, kind: Option<&str>) -> Value {
        serde_json::json!({
            "pkg": format!("{name} 0.1.0"),
            "dep_kinds": [{ "kind": kind, "target": null }],
        })
    }

    #[test]
    fn runtime_reached_through_a_normal_dependency_is_reported_with_its_path() {
        let value = serde_json::json!({
            "packages": [
                package("midge-codec", "/r/crates/midge-codec", true),
                package("helper", "/reg/helper", true),
                package("tokio", "/reg/tokio", true),
                package("mio", "/reg/mio", true),
            ],
            "workspace_members": ["midge-codec 0.1.0"],
            "resolve": { "nodes": [
                { "id": "midge-codec 0.1.0", "deps": [
                    edge("helper", None),
                    edge("mio", Some("dev")),
                ]},
                { "id": "helper 0.1.0", "deps": [edge("tokio", None)] },
                { "id": "tokio 0.1.0", "deps": [] },
                { "id": "mio 0.1.0", "deps": [] },
            ]},
        });
        let metadata = parse_metadata(&value).unwrap();
        let paths = forbidden_paths(&metadata, "midge-codec 0.1.0");
        // mio is only a dev-dependency, so only the tokio path counts.
        assert_eq!(paths, vec!["midge-codec -> helper -> tokio".to_owned()]);
    }

    #[test]
    fn build_dependencies_are_ignored() {
        let value = serde_json::json!({
            "packages": [
                package("midge-topic", "/r/crates/midge-topic", true),
                package("tokio", "/reg/tokio", true),
            ],
            "workspace_members": ["midge-topic 0.1.0"],
            "resolve": { "nodes": [
                { "id": "midge-topic 0.1.0", "deps": [edge("tokio", Some("build"))] },
                { "id": "tokio 0.1.0", "deps": [] },
            ]},
        });
        let metadata = parse_metadata(&value).unwrap();
        assert!(forbidden_paths(&metadata, "midge-topic 0.1.0").is_empty());
    }

    #[test]
    fn unclassified_and_misnamed_crates_under_crates_dir_are_reported() {
        let value = serde_json::json!({
            "packages": [
                package("widget", "/r/crates/widget", false),
                package("midge-tokio", "/r/crates/midge-tokio", false),
            ],
            "workspace_members": ["widget 0.1.0", "midge-tokio 0.1.0"],
            "resolve": { "nodes": [] },
        });
        let metadata = parse_metadata(&value).unwrap();
        let problems = check(Path::new("/r"), &metadata);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("`widget`")));
    }

    #[test]
    fn library_without_readme_or_licence_is_reported() {
        let mut pkg = package("midge-store", "/nonexistent/crates/midge-store", true);
        pkg["license"] = Value::from("MIT");
        let value = serde_json::json!({
            "packages": [pkg],
            "workspace_members": ["midge-store 0.1.0"],
            "resolve": { "nodes": [] },
        });
        let metadata = parse_metadata(&value).unwrap();
        let problems = check(Path::new("/nonexistent"), &metadata);
        assert!(
            problems.iter().any(|p| p.contains("license")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("README")),
            "{problems:?}"
        );
    }
}
