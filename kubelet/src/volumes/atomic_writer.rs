//! Projects a set of files into a directory so readers never see a half
//! update, as Kubernetes' AtomicWriter does for configMap, secret,
//! downwardAPI and projected volumes:
//!
//! ```text
//! <target>/..2024_05_01_12_00_00.1234567890/   the files, written once
//! <target>/..data -> ..2024_05_01_12_00_00.1234567890
//! <target>/key    -> ..data/key               one link per top-level name
//! ```
//!
//! An update writes a new timestamped directory, points a `..data_tmp`
//! link at it and renames that over `..data` (rename is atomic), then
//! removes names that are gone and the old directory. Names starting with
//! `..` are reserved.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// Its content.
    pub data: Vec<u8>,
    /// Its permission bits (`0644`).
    pub mode: u32,
}

/// Files by path relative to the target directory.
pub type Payload = BTreeMap<String, FileProjection>;

/// Make `target` (which must exist) hold exactly `payload`. Returns whether
/// anything was written: nothing is when every file already has its
/// content and mode and no file is to go.
pub fn write(target: &Path, payload: &Payload) -> io::Result<bool> {
    let payload = validate_payload(payload)?;
    let data_dir = target.join(DATA_DIR);
    let old_ts = match fs::read_link(&data_dir) {
        Ok(p) => Some(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(context(e, "error reading link for data directory")),
    };
    // Only a `..`-named sibling is ever ours to remove.
    let old_ts = old_ts.filter(|p| is_ts_dir_name(p));

    let mut to_remove = BTreeSet::new();
    if let Some(old) = &old_ts {
        let old_path = target.join(old);
        to_remove = paths_to_remove(&payload, &old_path)?;
        if !should_write(target, &payload, &old_path)? && to_remove.is_empty() {
            return Ok(false);
        }
    }

    let ts_dir = new_ts_dir(target)?;
    let ts_name = ts_dir.file_name().map(PathBuf::from).unwrap_or_default();
    if let Err(e) = write_payload(&payload, &ts_dir) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(context(e, "error writing payload to ts data directory"));
    }
    create_user_visible_files(target, &payload)
        .map_err(|e| context(e, "error creating visible symlinks"))?;

    let new_data_dir = target.join(NEW_DATA_DIR);
    // A link left by an update that did not finish.
    let _ = fs::remove_file(&new_data_dir);
    if let Err(e) = std::os::unix::fs::symlink(&ts_name, &new_data_dir) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(context(e, "error creating symbolic link for atomic update"));
    }
    if let Err(e) = fs::rename(&new_data_dir, &data_dir) {
        let _ = fs::remove_file(&new_data_dir);
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(context(
            e,
            "error renaming symbolic link for data directory",
        ));
    }

    for p in &to_remove {
        // Only the links in the target itself; deeper paths went with the
        // old timestamped directory.
        if !p.contains('/') {
            match fs::remove_file(target.join(p)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(context(e, "error removing old visible symlinks")),
            }
        }
    }
    if let Some(old) = old_ts {
        match fs::remove_dir_all(target.join(&old)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(context(e, "error removing old data directory")),
        }
    }
    Ok(true)
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn is_ts_dir_name(p: &Path) -> bool {
    let mut components = p.components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(name)), None)
            if name.to_str().is_some_and(|n| n.starts_with("..") && n.len() > 2)
    )
}

/// Paths cleaned as Go's `filepath.Clean` would, each checked: relative,
/// no `..` element, not starting with `..`, within length limits.
fn validate_payload(payload: &Payload) -> io::Result<Payload> {
    let mut clean = Payload::new();
    for (path, file) in payload {
        validate_path(path).map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
        let cleaned = Path::new(path)
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => n.to_str(),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/");
        if cleaned.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid path: must not be empty: {path:?}"),
            ));
        }
        clean.insert(cleaned, file.clone());
    }
    Ok(clean)
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(format!("invalid path: must not be empty: {path:?}"));
    }
    if path.starts_with('/') {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
        ));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(format!("invalid path: must not contain '..': {path}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    Ok(())
}

/// Whether a file differs from the current version (content or mode), or
/// a top-level link is missing.
fn should_write(target: &Path, payload: &Payload, old_ts: &Path) -> io::Result<bool> {
    for (path, file) in payload {
        let on_disk = old_ts.join(path);
        let meta = match fs::symlink_metadata(&on_disk) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        if !meta.is_file() || meta.permissions().mode() & 0o7777 != file.mode & 0o7777 {
            return Ok(true);
        }
        if fs::read(&on_disk)? != file.data {
            return Ok(true);
        }
        let top = path.split('/').next().unwrap_or(path);
        if fs::symlink_metadata(target.join(top)).is_err() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Paths in the current version that the payload (with its parent
/// directories) no longer has.
fn paths_to_remove(payload: &Payload, old_ts: &Path) -> io::Result<BTreeSet<String>> {
    let mut current = BTreeSet::new();
    match walk(old_ts, "", &mut current) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(context(e, "error determining user-visible files to remove")),
    }
    let mut wanted = BTreeSet::new();
    for path in payload.keys() {
        let mut p = path.as_str();
        loop {
            wanted.insert(p.to_string());
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }
    Ok(current.difference(&wanted).cloned().collect())
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &rel, out)?;
        }
        out.insert(rel);
    }
    Ok(())
}

/// A new `..YYYY_MM_DD_HH_MM_SS.<random>` directory, mode 0755 so every
/// user in the container can reach the files.
fn new_ts_dir(target: &Path) -> io::Result<PathBuf> {
    let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S");
    for _ in 0..100 {
        let random = std::hash::RandomState::new().build_hasher().finish() % 10_000_000_000;
        let dir = target.join(format!("..{stamp}.{random}"));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(context(e, "unable to create new temp directory")),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "unable to create new temp directory",
    ))
}

fn write_payload(payload: &Payload, dir: &Path) -> io::Result<()> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent)?;
        }
        // Created with its mode so a secret is never readable by others,
        // then chmod so the umask does not change it.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode & 0o7777)
            .open(&full)?;
        f.write_all(&file.data)?;
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode & 0o7777))?;
    }
    Ok(())
}

/// `<target>/<first element> -> ..data/<first element>` for each path.
fn create_user_visible_files(target: &Path, payload: &Payload) -> io::Result<()> {
    for path in payload.keys() {
        let top = path.split('/').next().unwrap_or(path);
        let link = target.join(top);
        match fs::symlink_metadata(&link) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &link)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileProjection {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn link(p: &Path) -> String {
        fs::read_link(p).unwrap().to_string_lossy().into_owned()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !(n.starts_with("..") && n != DATA_DIR))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn layout() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let written = write(
            t,
            &payload(&[("a", "alpha", 0o644), ("sub/b", "beta", 0o400)]),
        )
        .unwrap();
        assert!(written);
        let ts = link(&t.join(DATA_DIR));
        assert!(ts.starts_with(".."), "{ts}");
        assert_eq!(mode(&t.join(&ts)), 0o755);
        assert_eq!(link(&t.join("a")), "..data/a");
        assert_eq!(link(&t.join("sub")), "..data/sub");
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "alpha");
        assert_eq!(fs::read_to_string(t.join("sub/b")).unwrap(), "beta");
        assert_eq!(mode(&t.join(&ts).join("a")), 0o644);
        assert_eq!(mode(&t.join(&ts).join("sub/b")), 0o400);
        assert_eq!(names(t), ["..data", "a", "sub"]);
    }

    #[test]
    fn unchanged_payload_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let p = payload(&[("a", "alpha", 0o644)]);
        assert!(write(t, &p).unwrap());
        let ts = link(&t.join(DATA_DIR));
        assert!(!write(t, &p).unwrap());
        assert_eq!(link(&t.join(DATA_DIR)), ts);
        // A mode change is a change.
        assert!(write(t, &payload(&[("a", "alpha", 0o600)])).unwrap());
        assert_ne!(link(&t.join(DATA_DIR)), ts);
    }

    #[test]
    fn update_swaps_data_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        write(
            t,
            &payload(&[("a", "1", 0o644), ("gone", "x", 0o644), ("d/x", "x", 0o644)]),
        )
        .unwrap();
        let old = link(&t.join(DATA_DIR));
        write(t, &payload(&[("a", "2", 0o644), ("d/y", "y", 0o644)])).unwrap();
        let new = link(&t.join(DATA_DIR));
        assert_ne!(old, new);
        assert!(!t.join(&old).exists(), "old timestamped dir removed");
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "2");
        assert!(fs::symlink_metadata(t.join("gone")).is_err());
        assert!(!t.join("d/x").exists());
        assert_eq!(fs::read_to_string(t.join("d/y")).unwrap(), "y");
        assert!(!t.join(NEW_DATA_DIR).exists());
        assert_eq!(names(t), ["..data", "a", "d"]);
        // Everything removed: an empty data dir.
        write(t, &Payload::new()).unwrap();
        assert_eq!(names(t), ["..data"]);
    }

    #[test]
    fn empty_payload_still_has_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), &Payload::new()).unwrap());
        assert!(dir.path().join(DATA_DIR).is_dir());
        assert!(!write(dir.path(), &Payload::new()).unwrap());
    }

    #[test]
    fn invalid_paths() {
        let dir = tempfile::tempdir().unwrap();
        for (path, msg) in [
            ("/abs", "invalid path: must be relative path: /abs"),
            ("a/../b", "invalid path: must not contain '..': a/../b"),
            ("..data", "invalid path: must not start with '..': ..data"),
            ("", "invalid path: must not be empty: \"\""),
        ] {
            let err = write(dir.path(), &payload(&[(path, "x", 0o644)])).unwrap_err();
            assert_eq!(err.to_string(), msg);
        }
        let long = "a".repeat(256);
        assert!(write(dir.path(), &payload(&[(&long, "x", 0o644)])).is_err());
        // `./a//b/` is cleaned to `a/b`.
        write(dir.path(), &payload(&[("./a//b/", "x", 0o644)])).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a/b")).unwrap(), "x");
    }
}
