//! `.deb` and `.rpm` packages from a built binary and `dist/`.
//!
//! What goes where is read from `cargo metadata`: the package fields of
//! `crates/singularity` and its `[package.metadata.deb]` (cargo-deb's layout:
//! `assets = [[source, dest, mode]]`, `conf-files`, `maintainer-scripts`,
//! `depends`/`conflicts`/`replaces`/`provides`) and
//! `[package.metadata.generate-rpm]` (cargo-generate-rpm's layout: `assets =
//! [{ source, dest, mode, config }]`, `*_script` files, `conflicts` and
//! `obsoletes` tables). Sources are relative to the crate's directory;
//! `target/release/NAME` means NAME in the release directory given on the
//! command line; a `*` in the last component is a glob; a destination ending
//! in `/` is a directory. Man pages are gzipped.
//!
//! The tree is staged under the output directory and packed by `dpkg-deb
//! --root-owner-group` and `rpmbuild -bb` (a spec written here): no fakeroot,
//! no cargo-deb or cargo-generate-rpm to install.

use md5::{Digest, Md5};
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package fields and metadata tables of one cargo package.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Package name.
    pub name: String,
    /// Version (`0.1.0`).
    pub version: String,
    /// One-line description.
    pub description: String,
    /// SPDX license expression.
    pub license: String,
    /// Repository URL, if any.
    pub repository: Option<String>,
    /// Directory holding the package's Cargo.toml.
    pub manifest_dir: PathBuf,
    /// `[package.metadata.deb]`.
    pub deb: Value,
    /// `[package.metadata.generate-rpm]`.
    pub rpm: Value,
}

/// Runs `cargo metadata --no-deps` in `workspace` and picks `package`.
pub fn read_meta(workspace: &Path, package: &str) -> Result<Meta, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(workspace)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let all: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    meta_from_json(&all, package)
}

/// Picks `package` out of `cargo metadata` JSON.
pub fn meta_from_json(all: &Value, package: &str) -> Result<Meta, String> {
    let p = all["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == package))
        .ok_or_else(|| format!("no package {package} in cargo metadata"))?;
    let text = |key: &str| p[key].as_str().unwrap_or_default().to_string();
    let manifest = PathBuf::from(text("manifest_path"));
    Ok(Meta {
        name: text("name"),
        version: text("version"),
        description: text("description"),
        license: text("license"),
        repository: p["repository"].as_str().map(str::to_string),
        manifest_dir: manifest.parent().map(Path::to_path_buf).unwrap_or_default(),
        deb: p["metadata"]["deb"].clone(),
        rpm: p["metadata"]["generate-rpm"].clone(),
    })
}

/// One file to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Where it comes from.
    pub source: PathBuf,
    /// Where it goes, relative to `/` (no leading slash); `.gz` not yet added.
    pub dest: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// A configuration file the administrator may edit.
    pub config: bool,
}

impl Asset {
    /// Man pages are installed gzipped.
    fn gzipped(&self) -> bool {
        self.dest.starts_with("usr/share/man")
    }

    /// The installed path, relative.
    pub fn installed(&self) -> PathBuf {
        if self.gzipped() {
            let mut name = self.dest.as_os_str().to_owned();
            name.push(".gz");
            PathBuf::from(name)
        } else {
            self.dest.clone()
        }
    }
}

/// Expands one asset entry: `target/release/` sources, globs, directory
/// destinations.
pub fn expand(
    manifest_dir: &Path,
    release_dir: &Path,
    source: &str,
    dest: &str,
    mode: &str,
    config: bool,
) -> Result<Vec<Asset>, String> {
    let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("{source}: bad mode {mode:?}"))?;
    let source_path = match source.strip_prefix("target/release/") {
        Some(rest) => release_dir.join(rest),
        None => manifest_dir.join(source),
    };
    let file_name = source_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{source}: no file name"))?
        .to_string();
    let sources = if let Some((prefix, suffix)) = file_name.split_once('*') {
        let parent = source_path.parent().unwrap_or(Path::new("."));
        let mut found: Vec<PathBuf> = fs::read_dir(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
                })
            })
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(format!("{source}: matches no file"));
        }
        found
    } else {
        vec![source_path]
    };
    let dest = dest.trim_start_matches('/');
    sources
        .into_iter()
        .map(|s| {
            if !s.is_file() {
                return Err(format!("{}: not a file", s.display()));
            }
            let d = if dest.ends_with('/') {
                Path::new(dest).join(s.file_name().unwrap_or_default())
            } else {
                PathBuf::from(dest)
            };
            Ok(Asset {
                source: s,
                dest: d,
                mode,
                config,
            })
        })
        .collect()
}

/// The `.deb`'s assets from `[package.metadata.deb]`.
pub fn deb_assets(meta: &Meta, release_dir: &Path) -> Result<Vec<Asset>, String> {
    let conf: Vec<&str> = meta.deb["conf-files"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for entry in meta.deb["assets"]
        .as_array()
        .ok_or("[package.metadata.deb] has no assets")?
    {
        let fields: Vec<&str> = entry
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let [source, dest, mode] = fields[..] else {
            return Err(format!("deb asset {entry}: want [source, dest, mode]"));
        };
        for mut a in expand(&meta.manifest_dir, release_dir, source, dest, mode, false)? {
            a.config = conf.iter().any(|c| Path::new(c.trim_start_matches('/')) == a.dest);
            out.push(a);
        }
    }
    Ok(out)
}

/// The `.rpm`'s assets from `[package.metadata.generate-rpm]`.
pub fn rpm_assets(meta: &Meta, release_dir: &Path) -> Result<Vec<Asset>, String> {
    let mut out = Vec::new();
    for entry in meta.rpm["assets"]
        .as_array()
        .ok_or("[package.metadata.generate-rpm] has no assets")?
    {
        let field = |k: &str| entry[k].as_str().ok_or_else(|| format!("rpm asset {entry}: no {k}"));
        let config = !entry["config"].is_null() && entry["config"] != false;
        out.extend(expand(
            &meta.manifest_dir,
            release_dir,
            field("source")?,
            field("dest")?,
            field("mode")?,
            config,
        )?);
    }
    Ok(out)
}

/// Copies assets under `root` (gzipping man pages) with their modes.
pub fn stage(root: &Path, assets: &[Asset]) -> Result<(), String> {
    for a in assets {
        let target = root.join(a.installed());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        if a.gzipped() {
            let out = Command::new("gzip")
                .args(["-9", "-n", "-c"])
                .arg(&a.source)
                .output()
                .map_err(|e| format!("gzip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "gzip {}: {}",
                    a.source.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            fs::write(&target, out.stdout)
        } else {
            fs::copy(&a.source, &target).map(drop)
        }
        .map_err(|e| format!("{}: {e}", target.display()))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(a.mode))
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(())
}

/// Every file under `root`, relative, sorted.
fn files_under(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in fs::read_dir(root.join(&rel)).map_err(|e| format!("{}: {e}", root.join(&rel).display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let path = rel.join(e.file_name());
            if e.file_type().map_err(|e| e.to_string())?.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Gives every directory under `root` (and `root`) mode 0755: they were
/// created under whatever umask the build ran with, and the packages must
/// not depend on it (nor ship group-writable system directories).
fn directories_0755(root: &Path) -> Result<(), String> {
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            if e.file_type().map_err(|e| e.to_string())?.is_dir() {
                todo.push(e.path());
            }
        }
    }
    Ok(())
}

/// Field `key` of a metadata table as a string, or `default`.
fn field<'a>(table: &'a Value, key: &str, default: &'a str) -> &'a str {
    table[key].as_str().unwrap_or(default)
}

/// Debian's name for a Rust target architecture.
pub fn deb_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i686" => "i386",
        other => other,
    }
}

/// The DEBIAN/control text.
pub fn deb_control(meta: &Meta, arch: &str, installed_kib: u64) -> String {
    let d = &meta.deb;
    let revision = field(d, "revision", "1");
    let mut c = String::new();
    let _ = writeln!(c, "Package: {}", field(d, "name", &meta.name));
    let _ = writeln!(c, "Version: {}-{revision}", meta.version);
    let _ = writeln!(c, "Architecture: {}", deb_arch(arch));
    let _ = writeln!(
        c,
        "Maintainer: {}",
        field(d, "maintainer", "unknown <unknown@example.invalid>")
    );
    let _ = writeln!(c, "Installed-Size: {installed_kib}");
    for (key, name) in [
        ("depends", "Depends"),
        ("pre-depends", "Pre-Depends"),
        ("recommends", "Recommends"),
        ("suggests", "Suggests"),
        ("conflicts", "Conflicts"),
        ("breaks", "Breaks"),
        ("replaces", "Replaces"),
        ("provides", "Provides"),
    ] {
        let v = field(d, key, "");
        if !v.is_empty() {
            let _ = writeln!(c, "{name}: {v}");
        }
    }
    let _ = writeln!(c, "Section: {}", field(d, "section", "misc"));
    let _ = writeln!(c, "Priority: {}", field(d, "priority", "optional"));
    if let Some(home) = &meta.repository {
        let _ = writeln!(c, "Homepage: {home}");
    }
    let _ = writeln!(c, "Description: {}", meta.description);
    for l in field(d, "extended-description", "").trim().lines() {
        let l = l.trim_end();
        let _ = writeln!(c, " {}", if l.is_empty() { "." } else { l });
    }
    c
}

/// What a package build produced.
#[derive(Debug)]
pub struct Built {
    /// The package file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn built(path: PathBuf) -> Result<Built, String> {
    let size = fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    Ok(Built { path, size })
}

fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The time the packages carry (file times, build time), so that the same
/// binary and sources always give the same packages: `SOURCE_DATE_EPOCH` if
/// set, else the time of the checkout's last commit.
pub fn source_date_epoch(workspace: &Path) -> Result<u64, String> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={v}: not a number of seconds"));
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|_| out.status.success())
        .ok_or_else(|| "cannot date the packages: set SOURCE_DATE_EPOCH or build in a git checkout".to_string())
}

/// Builds the `.deb` into `out` (staging under `out/.stage/deb`), dated
/// `epoch` (seconds since 1970).
pub fn build_deb(meta: &Meta, release_dir: &Path, arch: &str, epoch: u64, out: &Path) -> Result<Built, String> {
    let root = out.join(".stage/deb");
    fresh_dir(&root)?;
    let assets = deb_assets(meta, release_dir)?;
    stage(&root, &assets)?;
    let name = field(&meta.deb, "name", &meta.name).to_string();
    let doc = root.join("usr/share/doc").join(&name);
    fs::create_dir_all(&doc).map_err(|e| e.to_string())?;
    fs::write(
        doc.join("copyright"),
        format!(
            "{name} {}\n\nCopyright: the {name} developers\nLicense: {}\n",
            meta.version, meta.license
        ),
    )
    .map_err(|e| e.to_string())?;
    fs::set_permissions(doc.join("copyright"), fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
    let files = files_under(&root)?;
    let mut md5sums = String::new();
    let mut kib = 0;
    for f in &files {
        let bytes = fs::read(root.join(f)).map_err(|e| e.to_string())?;
        kib += (bytes.len() as u64).div_ceil(1024);
        let digest = Md5::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(md5sums, "{hex}  {}", f.display());
    }
    let debian = root.join("DEBIAN");
    fs::create_dir_all(&debian).map_err(|e| e.to_string())?;
    let write = |n: &str, text: &str, mode: u32| -> Result<(), String> {
        let p = debian.join(n);
        fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
    };
    write("control", &deb_control(meta, arch, kib), 0o644)?;
    write("md5sums", &md5sums, 0o644)?;
    let conffiles: String = assets
        .iter()
        .filter(|a| a.config)
        .map(|a| format!("/{}\n", a.installed().display()))
        .collect();
    if !conffiles.is_empty() {
        write("conffiles", &conffiles, 0o644)?;
    }
    if let Some(dir) = meta.deb["maintainer-scripts"].as_str() {
        for script in ["preinst", "postinst", "prerm", "postrm"] {
            let src = meta.manifest_dir.join(dir).join(script);
            if src.is_file() {
                write(script, &fs::read_to_string(&src).map_err(|e| e.to_string())?, 0o755)?;
            }
        }
    }
    directories_0755(&root)?;
    let revision = field(&meta.deb, "revision", "1");
    let path = out.join(format!("{name}_{}-{revision}_{}.deb", meta.version, deb_arch(arch)));
    // dpkg-deb dates the archive members and clamps file times to it.
    run(Command::new("dpkg-deb")
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&path))?;
    built(path)
}

/// The spec file for `rpmbuild -bb`.
pub fn rpm_spec(meta: &Meta, arch: &str, stage: &Path, assets: &[Asset], dirs: &[PathBuf]) -> Result<String, String> {
    let r = &meta.rpm;
    let mut s = String::new();
    let _ = writeln!(s, "%global debug_package %{{nil}}");
    let _ = writeln!(s, "%global __os_install_post %{{nil}}");
    let _ = writeln!(s, "%global _build_id_links none");
    // xz payloads install on every rpm in use (zstd needs rpm >= 4.14).
    let _ = writeln!(s, "%global _binary_payload w6.xzdio");
    // Reproducible: build time from SOURCE_DATE_EPOCH, file times clamped to
    // it, no build host name.
    let _ = writeln!(s, "%global source_date_epoch_from_changelog 0");
    let _ = writeln!(s, "%global use_source_date_epoch_as_buildtime 1");
    let _ = writeln!(s, "%global clamp_mtime_to_source_date_epoch 1");
    let _ = writeln!(s, "%global _buildhost reproducible");
    let _ = writeln!(s, "Name: {}", field(r, "name", &meta.name));
    let _ = writeln!(s, "Version: {}", meta.version);
    let _ = writeln!(s, "Release: {}", field(r, "release", "1"));
    let _ = writeln!(s, "Summary: {}", field(r, "summary", &meta.description));
    let _ = writeln!(s, "License: {}", meta.license);
    if let Some(url) = &meta.repository {
        let _ = writeln!(s, "URL: {url}");
    }
    let _ = writeln!(s, "BuildArch: {arch}");
    let _ = writeln!(s, "AutoReqProv: no");
    for (key, tag) in [
        ("requires", "Requires"),
        ("conflicts", "Conflicts"),
        ("obsoletes", "Obsoletes"),
        ("provides", "Provides"),
    ] {
        if let Some(table) = r[key].as_object() {
            for (name, version) in table {
                match version.as_str().unwrap_or("*").trim() {
                    "*" | "" => _ = writeln!(s, "{tag}: {name}"),
                    v => _ = writeln!(s, "{tag}: {name} {v}"),
                }
            }
        }
    }
    let _ = writeln!(s, "\n%description");
    let description = r["description"]
        .as_str()
        .or(meta.deb["extended-description"].as_str())
        .unwrap_or(&meta.description);
    let _ = writeln!(s, "{}", description.trim());
    let stage = stage.to_str().ok_or("staging path is not UTF-8")?;
    if stage.contains(char::is_whitespace) || stage.contains(['"', '\'', '%', '$', '\\']) {
        return Err(format!(
            "staging path {stage:?} has characters rpmbuild scripts cannot take"
        ));
    }
    let _ = writeln!(
        s,
        "\n%install\nmkdir -p %{{buildroot}}\ncp -a {stage}/. %{{buildroot}}/"
    );
    for (key, section) in [
        ("pre_install_script", "%pre"),
        ("post_install_script", "%post"),
        ("pre_uninstall_script", "%preun"),
        ("post_uninstall_script", "%postun"),
    ] {
        if let Some(file) = r[key].as_str() {
            let path = meta.manifest_dir.join(file);
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let _ = writeln!(s, "\n{section}\n{}", text.trim_end());
        }
    }
    let _ = writeln!(s, "\n%files\n%defattr(-,root,root,-)");
    for d in dirs {
        let _ = writeln!(s, "%dir /{}", d.display());
    }
    for a in assets {
        let prefix = if a.config { "%config(noreplace) " } else { "" };
        let _ = writeln!(s, "{prefix}/{}", a.installed().display());
    }
    Ok(s)
}

/// Builds the `.rpm` into `out` (staging and rpmbuild's tree under
/// `out/.stage/rpm*`), dated `epoch` (seconds since 1970).
pub fn build_rpm(meta: &Meta, release_dir: &Path, arch: &str, epoch: u64, out: &Path) -> Result<Built, String> {
    let root = out.join(".stage/rpm");
    let top = out.join(".stage/rpmbuild");
    fresh_dir(&root)?;
    fresh_dir(&top)?;
    let assets = rpm_assets(meta, release_dir)?;
    stage(&root, &assets)?;
    directories_0755(&root)?;
    let name = field(&meta.rpm, "name", &meta.name).to_string();
    // Directories the package owns: those named after it (/etc/singularity...).
    let mut dirs: Vec<PathBuf> = assets
        .iter()
        .flat_map(|a| a.dest.ancestors().skip(1).map(Path::to_path_buf).collect::<Vec<_>>())
        .filter(|d| d.file_name().is_some_and(|n| n == name.as_str()))
        .collect();
    dirs.sort();
    dirs.dedup();
    let root_abs = fs::canonicalize(&root).map_err(|e| e.to_string())?;
    let top_abs = fs::canonicalize(&top).map_err(|e| e.to_string())?;
    let spec_path = top_abs.join(format!("{name}.spec"));
    fs::write(&spec_path, rpm_spec(meta, arch, &root_abs, &assets, &dirs)?).map_err(|e| e.to_string())?;
    run(Command::new("rpmbuild")
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top_abs.display()))
        .arg("--target")
        .arg(arch)
        .arg(&spec_path))?;
    let release = field(&meta.rpm, "release", "1");
    let file = format!("{name}-{}-{release}.{arch}.rpm", meta.version);
    let produced = top_abs.join("RPMS").join(arch).join(&file);
    let path = out.join(&file);
    fs::rename(&produced, &path).map_err(|e| format!("{}: {e}", produced.display()))?;
    built(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(dir: &Path) -> Meta {
        let all = json!({"packages": [{
            "name": "demo", "version": "1.2.3", "description": "A demo.", "license": "MIT",
            "repository": null, "manifest_path": dir.join("Cargo.toml"),
            "metadata": {
                "deb": {
                    "maintainer": "Someone <a@b.invalid>",
                    "conflicts": "old-demo",
                    "extended-description": "Line one.\n\nLine two.",
                    "conf-files": ["/etc/demo/demo.conf"],
                    "assets": [
                        ["target/release/demo", "usr/sbin/", "755"],
                        ["files/demo.conf", "etc/demo/demo.conf", "644"],
                        ["files/*.8", "usr/share/man/man8/", "644"]
                    ]
                },
                "generate-rpm": {
                    "assets": [
                        {"source": "target/release/demo", "dest": "/usr/sbin/demo", "mode": "755"},
                        {"source": "files/demo.conf", "dest": "/etc/demo/demo.conf", "mode": "644", "config": "noreplace"}
                    ],
                    "obsoletes": {"old-demo": "*"},
                    "conflicts": {"old-demo": "< 2"}
                }
            }
        }]});
        meta_from_json(&all, "demo").unwrap()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("files")).unwrap();
        fs::create_dir_all(dir.path().join("rel")).unwrap();
        fs::write(dir.path().join("rel/demo"), "bin").unwrap();
        fs::write(dir.path().join("files/demo.conf"), "[main]\n").unwrap();
        fs::write(dir.path().join("files/demo.8"), ".TH DEMO 8\n").unwrap();
        fs::write(dir.path().join("files/demo-x.8"), ".TH DEMO-X 8\n").unwrap();
        fs::write(dir.path().join("files/other.5"), ".TH OTHER 5\n").unwrap();
        dir
    }

    #[test]
    fn deb_assets_expand_release_dir_globs_and_conffiles() {
        let dir = tree();
        let m = meta(dir.path());
        let assets = deb_assets(&m, &dir.path().join("rel")).unwrap();
        let dests: Vec<_> = assets.iter().map(|a| a.installed()).collect();
        assert_eq!(
            dests,
            [
                "usr/sbin/demo",
                "etc/demo/demo.conf",
                "usr/share/man/man8/demo-x.8.gz",
                "usr/share/man/man8/demo.8.gz"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(assets[0].source, dir.path().join("rel/demo"));
        assert_eq!(assets[0].mode, 0o755);
        assert!(assets[1].config && !assets[0].config);
    }

    #[test]
    fn globs_that_match_nothing_and_missing_files_fail() {
        let dir = tree();
        let rel = dir.path().join("rel");
        assert!(expand(dir.path(), &rel, "files/*.9", "x/", "644", false)
            .unwrap_err()
            .contains("matches no file"));
        assert!(expand(dir.path(), &rel, "files/nope", "x/", "644", false)
            .unwrap_err()
            .contains("not a file"));
        assert!(expand(dir.path(), &rel, "files/demo.8", "x/", "9z", false)
            .unwrap_err()
            .contains("bad mode"));
    }

    #[test]
    fn control_has_relations_and_folded_description() {
        let dir = tree();
        let c = deb_control(&meta(dir.path()), "x86_64", 42);
        assert!(
            c.starts_with("Package: demo\nVersion: 1.2.3-1\nArchitecture: amd64\n"),
            "{c}"
        );
        assert!(
            c.contains("Installed-Size: 42\n") && c.contains("Conflicts: old-demo\n"),
            "{c}"
        );
        assert!(c.ends_with("Description: A demo.\n Line one.\n .\n Line two.\n"), "{c}");
        assert!(!c.contains("Replaces") && !c.contains("Homepage"), "{c}");
    }

    #[test]
    fn spec_lists_files_config_and_relations() {
        let dir = tree();
        let m = meta(dir.path());
        let assets = rpm_assets(&m, &dir.path().join("rel")).unwrap();
        let spec = rpm_spec(&m, "x86_64", Path::new("/s"), &assets, &[PathBuf::from("etc/demo")]).unwrap();
        assert!(
            spec.contains("Obsoletes: old-demo\n") && spec.contains("Conflicts: old-demo < 2\n"),
            "{spec}"
        );
        assert!(
            spec.contains("%dir /etc/demo\n/usr/sbin/demo\n%config(noreplace) /etc/demo/demo.conf\n"),
            "{spec}"
        );
        assert!(spec.contains("cp -a /s/. %{buildroot}/"), "{spec}");
        assert!(rpm_spec(&m, "x86_64", Path::new("/a b"), &assets, &[]).is_err());
    }

    #[test]
    fn stage_gzips_man_pages_and_sets_modes() {
        let dir = tree();
        let m = meta(dir.path());
        let root = dir.path().join("root");
        stage(&root, &deb_assets(&m, &dir.path().join("rel")).unwrap()).unwrap();
        let mode = fs::metadata(root.join("usr/sbin/demo")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        let gz = fs::read(root.join("usr/share/man/man8/demo.8.gz")).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(
            files_under(&root).unwrap(),
            [
                "etc/demo/demo.conf",
                "usr/sbin/demo",
                "usr/share/man/man8/demo-x.8.gz",
                "usr/share/man/man8/demo.8.gz"
            ]
            .map(PathBuf::from)
        );
    }
}
