//! Building the tool set a command was asked for (`--tools calculator,search,NAME --index DIR
//! --tool-file FILE`), shared by `ingot ask` and `ingot chat`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use ingot_tools::{Step, Tool};

#[derive(Args, Debug, Clone, Default)]
pub struct ToolArgs {
    /// Tools the model may call (comma-separated): calculator, search, and tools from --tool-file.
    #[arg(long, value_delimiter = ',')]
    pub tools: Vec<String>,
    /// The search index (made by `ingot index build DIR`), for the search tool.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// A TOML or JSON file of command tools (repeatable); name the ones to offer in --tools.
    #[arg(long, value_name = "FILE")]
    pub tool_file: Vec<PathBuf>,
    /// Most model turns in the tool-calling loop.
    #[arg(long, default_value_t = 4)]
    pub max_steps: usize,
    /// Show every step on stderr: the model's text, the calls and their results.
    #[arg(long)]
    pub trace: bool,
}

impl ToolArgs {
    /// The tools named in --tools, in that order. Tool files are read and checked whole even when
    /// only some of their tools are asked for, so a broken file is reported at once.
    pub fn build(&self) -> Result<Vec<Box<dyn Tool>>> {
        anyhow::ensure!(self.max_steps > 0, "--max-steps must be at least 1");
        let mut file_tools = ingot_tools::load_tool_files(&self.tool_file)?;
        if self.tools.is_empty() && !file_tools.is_empty() {
            let names: Vec<&str> = file_tools.iter().map(|t| t.name()).collect();
            bail!("--tool-file only defines tools; choose the ones to offer with --tools (here: {})", names.join(","));
        }
        let mut available: Vec<String> = ingot_tools::BUILTIN_TOOLS.iter().map(|s| s.to_string()).collect();
        available.extend(file_tools.iter().map(|t| t.name().to_string()));
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
                other => match file_tools.iter().position(|t| t.name() == other) {
                    Some(i) => tools.push(Box::new(file_tools.swap_remove(i))),
                    None if tools.iter().any(|t| t.name() == other) => bail!("--tools names '{other}' twice"),
                    None => {
                        let hint = if self.tool_file.is_empty() { " (more with --tool-file FILE)" } else { "" };
                        bail!("unknown tool '{other}'; available: {}{hint}", available.join(", "))
                    }
                },
            }
        }
        Ok(tools)
    }
}

/// Prints one step of the tool-calling loop on stderr, for --trace.
pub fn print_step(step: &Step) {
    eprintln!("--- model ---\n{}", step.model_text.trim());
    for r in &step.results {
        eprintln!("--- {} {} ---\n{}", r.name, if r.ok { "result" } else { "error" }, r.content);
    }
}
