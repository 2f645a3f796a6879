//! `ingot index build DIR`: a BM25 search index over a folder of .txt/.md documents, for the
//! `search` tool. Written atomically: an interrupted build leaves the previous index usable.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct IndexCmd {
    #[command(subcommand)]
    pub action: IndexAction,
}

#[derive(Subcommand, Debug)]
pub enum IndexAction {
    /// Index every .txt/.md file under DIR (default index folder: DIR/.ingot-index).
    Build {
        /// The documents folder: every .txt/.md file under it is indexed (hidden entries skipped).
        dir: PathBuf,
        /// The index folder to write (default: DIR/.ingot-index). It must be absent, empty or an
        /// earlier Ingot index; it is never DIR itself or a folder containing DIR.
        #[arg(long, value_name = "INDEX_DIR")]
        out: Option<PathBuf>,
        /// Replace whatever is at --out, even if it is not an Ingot index.
        #[arg(long)]
        force: bool,
    },
    /// Search an index from the command line.
    Search {
        /// The words to search for (BM25 ranking, no query syntax).
        query: String,
        /// The index folder made by `ingot index build` (DIR/.ingot-index by default).
        #[arg(long, value_name = "INDEX_DIR")]
        index: PathBuf,
        /// How many passages to show, best first.
        #[arg(long, default_value_t = 3)]
        k: usize,
    },
}

pub fn run(cmd: IndexCmd) -> Result<()> {
    match cmd.action {
        IndexAction::Build { dir, out, force } => {
            let out = out.unwrap_or_else(|| dir.join(".ingot-index"));
            let r = if force {
                ingot_tools::SearchIndex::build_replacing(&dir, &out)?
            } else {
                ingot_tools::SearchIndex::build(&dir, &out)?
            };
            println!(
                "indexed {} documents, {} passages into {} in {} ms",
                r.manifest.documents,
                r.manifest.passages,
                out.display(),
                r.manifest.build_millis
            );
            for (path, why) in &r.skipped {
                eprintln!("skipped {}: {why}", ingot_core::text::escaped(&path.display().to_string(), 300));
            }
        }
        IndexAction::Search { query, index, k } => {
            let idx = ingot_tools::SearchIndex::open(&index)?;
            for (i, h) in idx.search(&query, k)?.iter().enumerate() {
                println!("[{}] {} (passage {}, score {:.2})\n{}\n", i + 1, h.source, h.passage, h.score, h.text.trim());
            }
        }
    }
    Ok(())
}
