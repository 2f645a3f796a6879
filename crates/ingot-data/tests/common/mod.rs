//! Helpers shared by the data tests: scratch folders, a small corpus, a character tokenizer.
#![allow(dead_code)]

use std::path::PathBuf;

use ingot_data::Document;
use ingot_tokenizer::{char_level, Tokenizer, ENDOFTEXT};

/// A fresh, empty folder for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ingot-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

/// Six short documents of different lengths (Shakespeare's opening lines).
pub fn small_corpus() -> Vec<Document> {
    [
        "Now is the winter of our discontent\nMade glorious summer by this sun of York;",
        "When shall we three meet again\nIn thunder, lightning, or in rain?",
        "Two households, both alike in dignity,\nIn fair Verona, where we lay our scene,",
        "Who's there?\nNay, answer me: stand, and unfold yourself.",
        "If music be the food of love, play on;",
        "In sooth, I know not why I am so sad:\nIt wearies me; you say it wearies you;\nBut how I caught it...",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| Document { id: format!("doc{i}.txt"), text: text.to_string() })
    .collect()
}

pub fn char_tokenizer(docs: &[Document]) -> Tokenizer {
    char_level(docs.iter().map(|d| d.text.as_str()), &[ENDOFTEXT.to_string()]).expect("build a char tokenizer")
}
