//! Tests for the `search` tool: build, reopen, ranking, rebuilds, crash safety, hostile queries.
//! Each test works in its own temporary folder (`docs/` and `index/` inside it), removed at the end.

use std::fs;
use std::path::Path;

use ingot_test_support::temp_dir;
use ingot_tools::search::{build_staged, split_passages, MANIFEST_FILE, MAX_PASSAGE_WORDS};
use ingot_tools::{SearchError, SearchIndex, SearchTool, Tool, ToolError};
use serde_json::json;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A small folder: two notes, a nested file, and files that must be skipped.
fn sample_docs(root: &Path) {
    write(
        root,
        "notes/garden.md",
        "# Garden\n\nThe tomatoes went in on the third of May.\n\nThe basil needs more sun than the mint.",
    );
    write(root, "notes/travel.txt", "Flight to Lisbon departs at 07:40.\n\nThe hotel confirmation code is ZEBRA-4471.");
    write(root, "projects/deep/ideas.md", "Build a sourdough starter tracker.");
    write(root, "image.png", "ZEBRA-4471 should not be found in a png");
    write(root, ".hidden/secret.md", "ZEBRA-4471 hidden copy");
    fs::write(root.join("latin1.txt"), [0x5a, 0xe9, 0xff, 0x00]).unwrap();
}

#[test]
fn build_reopen_and_find_unique_fact() {
    let t = temp_dir("search-basic");
    sample_docs(&t.join("docs"));
    let report = SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    assert_eq!(report.manifest.documents, 3, "{report:?}");
    assert_eq!(report.skipped.len(), 1, "the non-UTF-8 .txt is skipped: {report:?}");
    assert!(t.join("index").join(MANIFEST_FILE).is_file());

    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert_eq!(index.manifest().documents, 3);
    let hits = index.search("hotel confirmation code", 3).unwrap();
    assert!(!hits.is_empty());
    assert_eq!(hits[0].source, "notes/travel.txt");
    assert!(hits[0].text.contains("ZEBRA-4471"), "{:?}", hits[0]);

    let hits = index.search("sourdough", 3).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].source, "projects/deep/ideas.md");

    // Stemming: "tomato" finds "tomatoes".
    let hits = index.search("tomato", 3).unwrap();
    assert_eq!(hits[0].source, "notes/garden.md");
}

#[test]
fn more_specific_passage_ranks_first() {
    let t = temp_dir("search-rank");
    write(&t.join("docs"), "a.md", "The quarterly budget meeting covered many topics, including lunch.");
    write(
        &t.join("docs"),
        "b.md",
        "Budget review: the marketing budget for the quarterly campaign was cut; the budget \
         committee approved the quarterly budget revision.",
    );
    write(&t.join("docs"), "c.md", "An unrelated note about cats and dogs.");
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    let index = SearchIndex::open(&t.join("index")).unwrap();
    let hits = index.search("quarterly budget", 3).unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0].source, "b.md");
    assert!(hits[0].score > hits[1].score);
}

#[test]
fn rebuild_reflects_edits_deletions_and_additions() {
    let t = temp_dir("search-rebuild");
    sample_docs(&t.join("docs"));
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();

    write(&t.join("docs"), "notes/travel.txt", "The hotel confirmation code is OKAPI-9090.");
    fs::remove_file(t.join("docs").join("projects/deep/ideas.md")).unwrap();
    write(&t.join("docs"), "new/recipe.md", "Pistachio gelato needs a pinch of salt.");
    let report = SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    assert_eq!(report.manifest.documents, 3);

    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert!(index.search("ZEBRA", 5).unwrap().is_empty(), "edited text is gone");
    assert_eq!(index.search("OKAPI", 5).unwrap()[0].source, "notes/travel.txt");
    assert!(index.search("sourdough", 5).unwrap().is_empty(), "deleted file is gone");
    assert_eq!(index.search("pistachio", 5).unwrap()[0].source, "new/recipe.md");

    // No temporary or old folders are left beside the index.
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("index."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn crash_before_swap_keeps_previous_index() {
    let t = temp_dir("search-crash");
    sample_docs(&t.join("docs"));
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();

    write(&t.join("docs"), "notes/travel.txt", "The hotel confirmation code is OKAPI-9090.");
    let staged = build_staged(&t.join("docs"), &t.join("index"), false).unwrap();
    let tmp = staged.tmp_dir().to_path_buf();
    assert!(tmp.join(MANIFEST_FILE).is_file(), "staged index is complete");
    std::mem::forget(staged); // the process "dies" here, before the swap

    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert_eq!(index.search("ZEBRA", 3).unwrap()[0].source, "notes/travel.txt");
    assert!(index.search("OKAPI", 3).unwrap().is_empty());
    drop(index);

    // The next build ignores the leftover temporary folder and succeeds.
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert_eq!(index.search("OKAPI", 3).unwrap()[0].source, "notes/travel.txt");
}

#[test]
fn leftover_tmp_from_dead_build_is_harmless_and_cleaned() {
    let t = temp_dir("search-leftover");
    sample_docs(&t.join("docs"));
    // A half-written folder from a build whose process is gone (pid far above any real one).
    let stale = t.join(".index.tmp-4000000000");
    write(&stale, "meta.json", "{ truncated");
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    assert!(!stale.exists(), "stale temporary folder is removed");
    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert_eq!(index.search("sourdough", 3).unwrap().len(), 1);
}

#[test]
fn crash_between_renames_falls_back_to_old_index() {
    let t = temp_dir("search-between");
    sample_docs(&t.join("docs"));
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    // The swap moved the live index aside and then the process died.
    let old = t.join(".index.old-4000000001");
    fs::rename(t.join("index"), &old).unwrap();

    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert_eq!(index.search("sourdough", 3).unwrap().len(), 1);
    drop(index);

    // The next build restores and then replaces it.
    write(&t.join("docs"), "extra.md", "Quokka sighting on Rottnest.");
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    assert!(!old.exists());
    let index = SearchIndex::open(&t.join("index")).unwrap();
    assert_eq!(index.search("quokka", 3).unwrap()[0].source, "extra.md");
}

#[test]
fn hostile_queries_never_fail() {
    let t = temp_dir("search-hostile");
    sample_docs(&t.join("docs"));
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    let index = SearchIndex::open(&t.join("index")).unwrap();
    let long = "hotel ".repeat(10_000);
    let queries = [
        "",
        "   ",
        "!!!???...",
        "\"unbalanced",
        "unbalanced\"",
        "field:value",
        "nosuchfield:hotel",
        "source:notes/travel.txt",
        "passage:0",
        "(((",
        ")))",
        "AND OR",
        "AND",
        "NOT",
        "-",
        "+",
        "*",
        "hotel~",
        "hotel^",
        "hotel^abc",
        "[a TO",
        "{ } [ ] ^ ~ : \\ /",
        "title:\"x",
        "🦀🔥 emoji",
        "\u{0}\u{1}",
        "ä ö ü 日本語",
        "what's the hotel's code?",
        "IN [1 2",
        long.as_str(),
    ];
    for q in queries {
        let hits = index.search(q, 5);
        assert!(hits.is_ok(), "query {q:?}: {hits:?}");
    }
    assert!(index.search("", 5).unwrap().is_empty());
    assert!(index.search("hotel", 0).unwrap().is_empty());
    // A question with punctuation still finds the fact.
    let hits = index.search("what's the hotel's confirmation code?", 3).unwrap();
    assert_eq!(hits[0].source, "notes/travel.txt");
}

#[test]
fn missing_index_says_how_to_build_one() {
    let t = temp_dir("search-missing");
    let err = SearchIndex::open(&t.join("index")).unwrap_err();
    assert!(matches!(err, SearchError::IndexMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("ingot index build"), "{err}");
}

#[test]
fn corrupt_index_is_reported_clearly() {
    let t = temp_dir("search-corrupt");
    write(&t.join("index"), "meta.json", "not json");
    let err = SearchIndex::open(&t.join("index")).unwrap_err();
    assert!(matches!(err, SearchError::IndexCorrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("ingot index build"), "{err}");

    // A manifest but broken tantivy files.
    sample_docs(&t.join("docs"));
    // The broken folder above is not an Ingot index (no manifest): a plain build refuses it.
    assert!(matches!(SearchIndex::build(&t.join("docs"), &t.join("index")), Err(SearchError::Core(_))));
    SearchIndex::build_replacing(&t.join("docs"), &t.join("index")).unwrap();
    fs::write(t.join("index").join("meta.json"), "{ garbage").unwrap();
    let err = SearchIndex::open(&t.join("index")).unwrap_err();
    assert!(matches!(err, SearchError::IndexCorrupt { .. }), "{err:?}");
}

#[test]
fn missing_docs_dir_is_an_error_and_leaves_index_alone() {
    let t = temp_dir("search-nodocs");
    sample_docs(&t.join("docs"));
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    let err = SearchIndex::build(&t.join("nope"), &t.join("index")).unwrap_err();
    assert!(matches!(err, SearchError::DocsDirMissing { .. }), "{err:?}");
    assert_eq!(SearchIndex::open(&t.join("index")).unwrap().manifest().documents, 3);
}

#[test]
fn passages_are_bounded_and_cover_the_text() {
    let long_para = (0..1000).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let short = "a short paragraph of five";
    let text = format!("{short}\n\n{short}\n\n{long_para}\n\n\n{short}");
    let passages = split_passages(&text);
    for p in &passages {
        let n = p.split_whitespace().count();
        assert!((1..=MAX_PASSAGE_WORDS).contains(&n), "{n} words");
    }
    let words: usize = passages.iter().map(|p| p.split_whitespace().count()).sum();
    assert_eq!(words, text.split_whitespace().count(), "no word lost or duplicated");
    assert!(split_passages("").is_empty());
    assert!(split_passages("\n\n  \n").is_empty());
}

#[test]
fn tool_formats_hits_and_validates_arguments() {
    let t = temp_dir("search-tool");
    sample_docs(&t.join("docs"));
    write(&t.join("docs"), "long.md", &format!("walrus {}", "filler ".repeat(250)));
    SearchIndex::build(&t.join("docs"), &t.join("index")).unwrap();
    let tool = SearchTool::new(SearchIndex::open(&t.join("index")).unwrap());
    assert_eq!(tool.name(), "search");
    assert_eq!(tool.parameters()["required"], json!(["query"]));

    let out = tool.call(&json!({"query": "hotel confirmation"})).unwrap();
    assert!(out.starts_with("[1] notes/travel.txt: "), "{out}");
    assert!(out.contains("ZEBRA-4471"));

    let out = tool.call(&json!({"query": "walrus", "k": 1})).unwrap();
    assert!(out.starts_with("[1] long.md: walrus"), "{out}");
    assert!(out.chars().count() < 450 && out.ends_with('…'), "truncated: {out}");

    let out = tool.call(&json!({"query": "xylophone"})).unwrap();
    assert!(out.starts_with("No passages matched"), "{out}");

    let err = tool.call(&json!({})).unwrap_err();
    assert!(matches!(err, ToolError::MissingArgument { .. }), "{err:?}");
    let err = tool.call(&json!("hotel")).unwrap_err();
    assert!(matches!(err, ToolError::ArgumentsNotObject { .. }), "{err:?}");
    for bad_k in [json!(0), json!(11), json!(2.5), json!("3"), json!(-1)] {
        let err = tool.call(&json!({"query": "hotel", "k": bad_k})).unwrap_err();
        assert!(matches!(err, ToolError::WrongArgumentType { .. }), "k={bad_k}: {err:?}");
        assert!(err.to_string().contains("1 to 10"), "{err}");
    }
}
