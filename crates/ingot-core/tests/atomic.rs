//! The atomic-write module: files and folders are replaced whole or not at all, leftovers of dead
//! writers are cleaned up (or, for a folder swap that died halfway, put back), and the output-path
//! policy refuses to replace what Ingot did not make.
//!
//! Real kills (`INGOT_FAULT`, a process abort between the temporary write and the rename) are
//! tested per write path on the binary in crates/ingot-cli/tests/crash_safety.rs; here the states
//! such a kill leaves behind are built by hand, with a pid that cannot be alive.

use std::fs;
use std::io::Write;

use ingot_core::atomic::{self, StagedDir, StagedFile};
use ingot_test_support::temp_dir;

/// A pid above the kernel's pid_max (4194304 at most), so never a live process.
const DEAD_PID: u32 = 999_999_999;

#[test]
fn write_file_replaces_whole_and_leaves_no_temporary() {
    let dir = temp_dir("atomic-file");
    let path = dir.join("a.json");
    atomic::write_file(&path, b"old").unwrap();
    atomic::write_file(&path, b"new contents").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new contents");
    assert_eq!(dir.list(""), vec!["a.json"]);
}

#[test]
fn a_dropped_staged_file_leaves_the_old_file_and_no_litter() {
    let dir = temp_dir("atomic-drop");
    let path = dir.join("shard.bin");
    atomic::write_file(&path, b"old").unwrap();
    let mut staged = StagedFile::create(&path).unwrap();
    staged.writer().write_all(b"half of the new").unwrap();
    assert!(staged.tmp_path().exists());
    drop(staged); // an error on the way
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(dir.list(""), vec!["shard.bin"]);
}

#[test]
fn next_write_removes_temporaries_of_dead_writers_only() {
    let dir = temp_dir("atomic-litter");
    let dead_file = dir.write(format!(".x.bin.{DEAD_PID}.tmp"), b"partial");
    let dead_dir = dir.join(format!(".index.tmp-{DEAD_PID}"));
    fs::create_dir_all(&dead_dir).unwrap();
    // Our own pid counts as alive: a writer in this process may be using it.
    let live = dir.write(format!(".y.bin.{}.tmp", std::process::id()), b"in use");
    // A user's hidden file that merely looks similar is not Ingot's.
    let users = dir.write(".notes.tmp", b"mine");
    atomic::write_file(&dir.join("other.txt"), b"x").unwrap();
    assert!(!dead_file.exists() && !dead_dir.exists(), "{:?}", dir.list(""));
    assert!(live.exists() && users.exists());
}

#[test]
fn folder_swap_replaces_the_folder() {
    let dir = temp_dir("atomic-dir");
    let dest = dir.join("index");
    for version in ["v1", "v2"] {
        let staged = StagedDir::create(&dest).unwrap();
        fs::write(staged.path().join("data"), version).unwrap();
        fs::create_dir(staged.path().join("sub")).unwrap();
        fs::write(staged.path().join("sub/more"), version).unwrap();
        staged.commit().unwrap();
    }
    assert_eq!(fs::read_to_string(dest.join("data")).unwrap(), "v2");
    assert_eq!(fs::read_to_string(dest.join("sub/more")).unwrap(), "v2");
    assert_eq!(dir.list(""), vec!["index"], "no temporary or old copy is left");
}

#[test]
fn a_dropped_staged_folder_leaves_the_old_one() {
    let dir = temp_dir("atomic-dir-drop");
    let dest = dir.join("ckpt");
    let staged = StagedDir::create(&dest).unwrap();
    fs::write(staged.path().join("w"), "old").unwrap();
    staged.commit().unwrap();
    let staged = StagedDir::create(&dest).unwrap();
    fs::write(staged.path().join("w"), "new, unfinished").unwrap();
    drop(staged);
    assert_eq!(fs::read_to_string(dest.join("w")).unwrap(), "old");
    assert_eq!(dir.list(""), vec!["ckpt"]);
}

#[test]
fn a_swap_that_died_between_renames_is_put_back() {
    let dir = temp_dir("atomic-between");
    // The state a kill between the two renames leaves: no `index`, the old copy aside, the new one
    // complete in its temporary folder.
    let old = dir.join(format!(".index.old-{DEAD_PID}"));
    fs::create_dir_all(&old).unwrap();
    fs::write(old.join("data"), "old").unwrap();
    let tmp = dir.join(format!(".index.tmp-{DEAD_PID}"));
    fs::create_dir_all(&tmp).unwrap();
    fs::write(tmp.join("data"), "new").unwrap();

    let dest = dir.join("index");
    assert_eq!(atomic::previous_copy(&dest).as_deref(), Some(old.as_path()), "readers find the old copy");
    atomic::clean_folder(dir.path()).unwrap();
    assert_eq!(fs::read_to_string(dest.join("data")).unwrap(), "old");
    assert_eq!(dir.list(""), vec!["index"]);
    assert_eq!(atomic::previous_copy(&dest), None);
}

#[test]
fn old_copy_beside_a_complete_folder_is_removed() {
    let dir = temp_dir("atomic-old");
    fs::create_dir_all(dir.join("index")).unwrap();
    fs::write(dir.join("index/data"), "new").unwrap();
    fs::create_dir_all(dir.join(format!(".index.old-{DEAD_PID}"))).unwrap();
    atomic::clean_folder(dir.path()).unwrap();
    assert_eq!(dir.list(""), vec!["index"]);
    assert_eq!(fs::read_to_string(dir.join("index/data")).unwrap(), "new");
}

#[test]
fn output_policy_refuses_what_ingot_did_not_make() {
    let dir = temp_dir("atomic-policy");
    let check = |name: &str, force: bool| atomic::check_output(&dir.join(name), "search index", "manifest.json", force);
    assert!(check("absent", false).is_ok());
    fs::create_dir_all(dir.join("empty")).unwrap();
    assert!(check("empty", false).is_ok());
    dir.write("ours/manifest.json", "{}");
    assert!(check("ours", false).is_ok());

    dir.write("notes/todo.txt", "buy milk");
    let err = check("notes", false).unwrap_err().to_string();
    assert!(err.contains("notes") && err.contains("manifest.json") && err.contains("--force"), "{err}");
    assert!(check("notes", true).is_ok(), "--force overrides");

    dir.write("a-file", "data");
    let err = check("a-file", false).unwrap_err().to_string();
    assert!(err.contains("a file") && err.contains("--force"), "{err}");
}

#[test]
fn output_may_not_contain_the_input() {
    let dir = temp_dir("atomic-inside");
    dir.write("docs/a.txt", "text");
    let docs = dir.join("docs");
    let err = atomic::check_not_inside(&docs, &docs, "documents folder").unwrap_err().to_string();
    assert!(err.contains("would delete the documents folder"), "{err}");
    assert!(atomic::check_not_inside(dir.path(), &docs, "documents folder").is_err(), "a parent of the input");
    // Spelled differently: relative segments resolve to the same folder.
    let dotted = dir.join("docs/../docs/.");
    assert!(atomic::check_not_inside(&dotted, &docs, "documents folder").is_err());
    assert!(atomic::check_not_inside(&docs.join(".ingot-index"), &docs, "documents folder").is_ok(), "inside is fine");
    assert!(atomic::check_not_inside(&dir.join("elsewhere"), &docs, "documents folder").is_ok());
}
