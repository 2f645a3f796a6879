//! Writing files and folders so that nothing is ever seen half-written, and nothing that Ingot did
//! not make is replaced.
//!
//! Every write that matters (checkpoints, token shards, search indexes, manifests, reports, fetched
//! assets) goes through this module:
//!
//! - [`write_file`] / [`StagedFile`]: write `.<name>.<pid>.tmp` beside the destination, fsync it,
//!   rename it over the destination, fsync the folder. Readers see the old file or the new one.
//! - [`StagedDir`]: fill `.<name>.tmp-<pid>/` beside the destination folder, fsync every file and
//!   the folder, then swap it in: the old folder is renamed to `.<name>.old-<pid>`, the new one
//!   renamed into place, the folder synced, the old copy deleted. A crash between the two renames
//!   leaves no destination but a complete old copy, which [`clean_folder`] puts back.
//! - Leftovers of writers that were killed (their pid is gone) are removed by the next write to the
//!   same place, so interrupted work leaves no litter after the next run.
//! - [`check_output`]: the output-path policy. A destination is replaced only if it does not exist,
//!   is an empty folder, or carries the marker file that Ingot writes into what it makes (a
//!   `--force` flag overrides, for folders the user says are theirs to lose). [`check_not_inside`]
//!   refuses an output that would swallow the command's own input, `--force` or not.
//!
//! Fault injection for tests: `INGOT_FAULT=<point>[@<name>]` aborts the process (as a SIGKILL
//! would: no destructors, no cleanup) when it reaches `<point>` while writing a file or folder
//! called `<name>` (any name if none is given). The points are
//! [`FAULT_BEFORE_RENAME`] (a file or folder is complete in its temporary place, not yet renamed)
//! and [`FAULT_BETWEEN_RENAMES`] (a folder swap has moved the old folder aside, not yet the new one
//! in). Tests use it to show that the old state survives and that the next run cleans up.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Fault point: the new contents are complete and synced in the temporary file or folder.
pub const FAULT_BEFORE_RENAME: &str = "before-rename";
/// Fault point: a folder swap moved the old folder aside but has not moved the new one in.
pub const FAULT_BETWEEN_RENAMES: &str = "between-renames";

// ---------------------------------------------------------------------------------------------
// Files

/// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut staged = StagedFile::create(path)?;
    staged.writer().write_all(bytes).map_err(Error::io("write", staged.tmp_path()))?;
    staged.commit()
}

/// A file being written beside its destination; [`StagedFile::commit`] renames it into place.
/// Dropped without a commit (an error on the way), it removes the temporary file.
#[derive(Debug)]
pub struct StagedFile {
    dest: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl StagedFile {
    /// Start writing `dest` (its folder is created if needed). Temporary files left beside it by
    /// writers that died are removed first.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = parent_of(dest);
        fs::create_dir_all(dir).map_err(Error::io("create the folder", dir))?;
        clean_folder(dir)?;
        let tmp = dir.join(format!(".{}.{}.tmp", file_name(dest), std::process::id()));
        let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        Ok(Self { dest: dest.to_path_buf(), tmp, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// Where the bytes go (buffered). Writers that need to seek back (a header written last) use
    /// `get_mut()` after a flush, or [`StagedFile::file`].
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("a StagedFile has its writer until commit consumes it")
    }

    /// The underlying file, with the buffer flushed first (for seeking).
    pub fn file(&mut self) -> Result<&mut File> {
        let tmp = self.tmp.clone();
        let w = self.writer();
        w.flush().map_err(Error::io("write", &tmp))?;
        Ok(w.get_mut())
    }

    /// The temporary file's path (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush, fsync, rename over the destination, fsync the folder.
    pub fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("commit runs once");
        let file = writer.into_inner().map_err(|e| Error::io("write", &self.tmp)(e.into_error()))?;
        file.sync_all().map_err(Error::io("sync", &self.tmp))?;
        drop(file);
        fault_point(FAULT_BEFORE_RENAME, &self.dest);
        fs::rename(&self.tmp, &self.dest).map_err(Error::io("rename a finished file onto", &self.dest))?;
        sync_dir(parent_of(&self.dest));
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Folders

/// A folder being filled beside its destination; [`StagedDir::commit`] swaps it into place.
/// Dropped without a commit, it removes the temporary folder.
#[derive(Debug)]
pub struct StagedDir {
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Start a new version of the folder `dest`. Puts back an old copy left by a swap that crashed
    /// halfway, and removes temporary and old copies left by writers that died.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = parent_of(dest);
        fs::create_dir_all(dir).map_err(Error::io("create the folder", dir))?;
        clean_folder(dir)?;
        let tmp = sibling(dest, &format!(".tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(Error::io("remove the stale temporary folder", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
        Ok(Self { dest: dest.to_path_buf(), tmp, committed: false })
    }

    /// The temporary folder to write into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Fsync every file in the temporary folder and the folder itself, then swap it into place.
    pub fn commit(mut self) -> Result<()> {
        sync_tree(&self.tmp)?;
        fault_point(FAULT_BEFORE_RENAME, &self.dest);
        let aside = sibling(&self.dest, &format!(".old-{}", std::process::id()));
        if aside.exists() {
            fs::remove_dir_all(&aside).map_err(Error::io("remove the stale old copy", &aside))?;
        }
        // rename() does not replace a non-empty folder (nor a file by a folder): move it aside.
        let had_old = fs::symlink_metadata(&self.dest).is_ok();
        if had_old {
            fs::rename(&self.dest, &aside).map_err(Error::io("move aside the previous", &self.dest))?;
            fault_point(FAULT_BETWEEN_RENAMES, &self.dest);
        }
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            if had_old {
                let _ = fs::rename(&aside, &self.dest);
            }
            return Err(Error::io("move the new folder into place at", &self.dest)(e));
        }
        self.committed = true;
        sync_dir(parent_of(&self.dest));
        if had_old {
            // The new folder is live; failing to delete the old copy wastes disk but loses nothing.
            remove_any(&aside);
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Put `dir` in order after writers that died: undo folder swaps that died between their two
/// renames (a `.<name>.old-<pid>` with no `<name>` is renamed back), and remove the temporary files
/// and folders and the superseded old copies of writers that are gone. Entries of live writers
/// (another process writing here now) are left alone. Every staged write calls this first.
pub fn clean_folder(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let Some(leftover) = Leftover::parse(&name) else { continue };
        if leftover.pid == std::process::id() || process_alive(leftover.pid) {
            continue;
        }
        let path = entry.path();
        match leftover.kind {
            LeftoverKind::Temporary => {
                tracing::info!("removing {} left by an interrupted write", path.display());
                remove_any(&path);
            }
            LeftoverKind::Old => {
                let dest = dir.join(leftover.dest);
                if fs::symlink_metadata(&dest).is_ok() {
                    remove_any(&path);
                } else {
                    tracing::info!("restoring {} from an interrupted swap", dest.display());
                    fs::rename(&path, &dest).map_err(Error::io("restore the previous copy of", &dest))?;
                }
            }
        }
    }
    Ok(())
}

/// The complete previous copy of the folder `dest` when a swap died between its two renames (no
/// `dest`, an old copy beside it), for readers that must not write.
pub fn previous_copy(dest: &Path) -> Option<PathBuf> {
    if fs::symlink_metadata(dest).is_ok() {
        return None;
    }
    let want = file_name(dest);
    let entries = fs::read_dir(parent_of(dest)).ok()?;
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(Leftover::parse)
                .is_some_and(|l| l.kind == LeftoverKind::Old && l.dest == want)
        })
        .map(|e| e.path())
        .max_by_key(|p| fs::symlink_metadata(p).and_then(|m| m.modified()).ok())
}

#[derive(Debug, PartialEq)]
enum LeftoverKind {
    /// `.<dest>.<pid>.tmp` (a file) or `.<dest>.tmp-<pid>` (a folder): never complete.
    Temporary,
    /// `.<dest>.old-<pid>`: a complete previous version moved aside by a folder swap.
    Old,
}

/// A name this module gives to its temporary and old copies, taken apart.
#[derive(Debug)]
struct Leftover<'a> {
    dest: &'a str,
    pid: u32,
    kind: LeftoverKind,
}

impl<'a> Leftover<'a> {
    fn parse(name: &'a str) -> Option<Self> {
        let rest = name.strip_prefix('.')?;
        if let Some(stem) = rest.strip_suffix(".tmp") {
            let (dest, pid) = stem.rsplit_once('.')?;
            return Some(Self { dest, pid: pid.parse().ok()?, kind: LeftoverKind::Temporary });
        }
        let (dest, tail) = rest.rsplit_once('.')?;
        let (kind, pid) = if let Some(pid) = tail.strip_prefix("tmp-") {
            (LeftoverKind::Temporary, pid)
        } else {
            (LeftoverKind::Old, tail.strip_prefix("old-")?)
        };
        Some(Self { dest, pid: pid.parse().ok()?, kind })
    }
}

// ---------------------------------------------------------------------------------------------
// The output-path policy

/// May a command write `what` (e.g. "search index") at `dest`?
///
/// Yes if nothing is there, if it is an empty folder, or if it is a folder holding `marker` (the
/// file Ingot writes into every folder of this kind, so it knows the folder is its own). Anything
/// else (a user's folder, a file) is refused unless `force`; the error says what is there and how
/// to go on.
pub fn check_output(dest: &Path, what: &str, marker: &str, force: bool) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(dest) else { return Ok(()) };
    if force {
        return Ok(());
    }
    let found = if meta.is_dir() {
        let mut entries = fs::read_dir(dest).map_err(Error::io("list", dest))?;
        if entries.next().is_none() || dest.join(marker).is_file() {
            return Ok(());
        }
        format!("it is a folder that is not an Ingot {what} (it has no {marker})")
    } else {
        "it is a file".to_string()
    };
    Err(Error::OutputExists {
        path: dest.to_path_buf(),
        detail: format!("{found}; choose another output path, or pass --force to replace it"),
    })
}

/// May a command write the file `what` at `dest`? Yes if nothing is there or `looks_ours` says the
/// file there is one Ingot writes (e.g. a tokenizer.json), or with `force`; a folder is never
/// replaced by a file.
pub fn check_output_file(dest: &Path, what: &str, looks_ours: impl Fn(&Path) -> bool, force: bool) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(dest) else { return Ok(()) };
    let detail = if meta.is_dir() {
        format!("it is a folder; give a file path for the {what}")
    } else if force || looks_ours(dest) {
        return Ok(());
    } else {
        format!("it is a file that is not an Ingot {what}; choose another output path, or pass --force to replace it")
    };
    Err(Error::OutputExists { path: dest.to_path_buf(), detail })
}

/// Refuse to write `output` where replacing it would delete `input` (the same folder or one that
/// contains it). An output inside the input folder is fine.
pub fn check_not_inside(output: &Path, input: &Path, input_what: &str) -> Result<()> {
    let (Ok(out), Ok(inp)) = (absolute(output), absolute(input)) else { return Ok(()) };
    if inp.starts_with(&out) {
        return Err(Error::OutputExists {
            path: output.to_path_buf(),
            detail: format!(
                "replacing it would delete the {input_what} {} itself; choose an output path outside it",
                input.display()
            ),
        });
    }
    Ok(())
}

/// The path made absolute and with `.`/`..` and symlinks resolved as far as it exists.
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let abs = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    // Canonicalize the longest existing ancestor, then append the rest.
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while fs::symlink_metadata(existing).is_err() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut out = fs::canonicalize(existing)?;
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Fault injection

/// Abort the process here if `INGOT_FAULT` names this point, and (with `@name`) the file or folder
/// name being written (see the module docs).
pub fn fault_point(point: &str, dest: &Path) {
    let Some(spec) = std::env::var_os("INGOT_FAULT") else { return };
    let spec = spec.to_string_lossy();
    let (name, target) = match spec.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (spec.as_ref(), None),
    };
    if name == point && target.is_none_or(|t| file_name(dest) == t) {
        eprintln!("INGOT_FAULT: aborting at {point} of {}", dest.display());
        std::process::abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `<dest><suffix>` in the same folder (a rename within one folder is atomic). Hidden, so that
/// folder listings (corpus readers, checkpoint lists) pass over it.
fn sibling(dest: &Path, suffix: &str) -> PathBuf {
    parent_of(dest).join(format!(".{}{suffix}", file_name(dest)))
}

fn remove_any(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = result {
        tracing::warn!("could not remove {}: {e}", path.display());
    }
}

/// Whether a process with this id may still be running. Where that cannot be known (no /proc),
/// assume it is, so a live writer's files are never deleted from under it.
fn process_alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    if proc_root.join("self").exists() {
        proc_root.join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Fsync every regular file under `dir`, then the folders, deepest first.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io("inspect", &path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path).and_then(|f| f.sync_all()).map_err(Error::io("sync", &path))?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// Make renames in `dir` durable. Not every file system (nor Windows) lets a folder be synced;
/// there the rename is what we have.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
