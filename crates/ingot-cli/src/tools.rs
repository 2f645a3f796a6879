//! Building the tool set a command was asked for (`--tools calculator,search --index DIR`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use ingot_tools::Tool;

#[derive(Args, Debug, Clone, Default)]
pub struct ToolArgs {
    /// Tools the model may call: calculator, search (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tools: Vec<String>,
    /// The search index (made by `ingot index build DIR`), for the search tool.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Most model turns in the tool-calling loop.
    #[arg(long, default_value_t = 4)]
    pub max_steps: usize,
    /// Show every step: the model's text, the calls and their results.
    #[arg(long)]
    pub trace: bool,
}

impl ToolArgs {
    pub fn build(&self) -> Result<Vec<Box<dyn Tool>>> {
        let mut tools: Vec<Box<dyn Tool>> = Vec::new();
        for name in &self.tools {
            match name.trim() {
                "calculator" => tools.push(Box::new(ingot_tools::Calculator)),
                "search" => {
                    let Some(index) = &self.index else {
                        bail!("--tools search needs --index DIR (build one with `ingot index build DOCS_DIR`)")
                    };
                    tools.push(Box::new(ingot_tools::SearchTool::new(ingot_tools::SearchIndex::open(index)?)));
                }
                other => bail!("unknown tool '{other}'; available: calculator, search"),
            }
        }
        Ok(tools)
    }
}
