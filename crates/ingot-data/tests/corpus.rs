//! Reading corpora: folders of .txt and .jsonl, normalisation, and errors that name the file
//! and line.

use ingot_data::{read_corpus, Error};
use ingot_test_support::temp_dir;

#[test]
fn reads_a_folder_sorted_and_normalised() {
    let dir = temp_dir("corpus-folder");
    std::fs::write(dir.join("b.txt"), "\u{feff}second\r\nline two\r\n").unwrap();
    std::fs::write(dir.join("a.txt"), "first").unwrap();
    std::fs::write(dir.join("c.jsonl"), "{\"text\": \"x\\r\\ny\", \"id\": 7}\n\n{\"text\": \"z\"}\n").unwrap();
    std::fs::write(dir.join("notes.md"), "not part of the corpus").unwrap();
    std::fs::write(dir.join(".hidden.txt"), "skipped").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/deep.txt"), "one level only").unwrap();

    let docs = read_corpus(&dir).unwrap();
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a.txt", "b.txt", "c.jsonl:1", "c.jsonl:3"]);
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["first", "second\nline two\n", "x\ny", "z"]);

    // A single file works too.
    let one = read_corpus(&dir.join("c.jsonl")).unwrap();
    assert_eq!(one.len(), 2);
}

#[test]
fn bad_jsonl_lines_are_named() {
    let dir = temp_dir("corpus-jsonl");
    let cases = [
        ("{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n", 3, "no \"text\" field (keys: txt)"),
        ("{\"text\": \"ok\"}\n{\"text\": 12}\n", 2, "\"text\" should be a string, found a number"),
        ("{\"text\": \"ok\"\n", 1, "not JSON"),
        ("[\"text\"]\n", 1, "expected a JSON object, found an array"),
    ];
    for (i, (content, line, want)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("bad{i}.jsonl"));
        std::fs::write(&path, content).unwrap();
        let err = read_corpus(&path).unwrap_err();
        assert!(matches!(err, Error::BadJsonLine { line: l, .. } if l == line), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&format!("bad{i}.jsonl:{line}:")), "{message}");
        assert!(message.contains(want), "{message}");
    }
}

#[test]
fn missing_empty_and_wrong_inputs_are_reported() {
    let dir = temp_dir("corpus-errors");
    let err = read_corpus(&dir.join("nope")).unwrap_err();
    assert!(matches!(err, Error::CorpusNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("scripts/fetch-assets corpus"), "{err}");

    let err = read_corpus(&dir).unwrap_err();
    assert!(err.to_string().contains("no .txt or .jsonl files"), "{err}");

    std::fs::write(dir.join("empty.jsonl"), "\n\n").unwrap();
    let err = read_corpus(&dir).unwrap_err();
    assert!(matches!(err, Error::EmptyCorpus { .. }), "{err:?}");

    let csv = dir.join("data.csv");
    std::fs::write(&csv, "a,b").unwrap();
    assert!(read_corpus(&csv).unwrap_err().to_string().contains(".jsonl"));

    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9").unwrap();
    let err = read_corpus(&latin1).unwrap_err().to_string();
    assert!(err.contains("not UTF-8") && err.contains("offset 3"), "{err}");
}
