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
        dir: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Search an index from the command line.
    Search {
        query: String,
        #[arg(long)]
        index: PathBuf,
        #[arg(long, default_value_t = 3)]
        k: usize,
    },
}

pub fn run(cmd: IndexCmd) -> Result<()> {
    match cmd.action {
        IndexAction::Build { dir, out } => {
            let out = out.unwrap_or_else(|| dir.join(".ingot-index"));
            let r = ingot_tools::SearchIndex::build(&dir, &out)?;
            println!(
                "indexed {} documents, {} passages into {} in {} ms",
                r.manifest.documents,
                r.manifest.passages,
                out.display(),
                r.manifest.build_millis
            );
            for s in &r.skipped {
                eprintln!("skipped {s:?}");
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
