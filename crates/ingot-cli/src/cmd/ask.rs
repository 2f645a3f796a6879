//! `ingot ask "QUESTION"`: one question, one answer, with the prompting strategies switched on by
//! flags: few-shot demonstrations, chain-of-thought, self-consistency voting.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ingot_generate::prompting::{self, Selection};

use crate::args::{GenArgs, ModelArgs};
use crate::tools::ToolArgs;

#[derive(Args, Debug)]
pub struct AskCmd {
    /// The question.
    pub question: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gen: GenArgs,
    /// Ask for step-by-step reasoning and a final "The answer is X." line.
    #[arg(long)]
    pub cot: bool,
    /// Sample this many reasoning chains and answer by majority vote (implies --cot; sampling at
    /// --temperature, 0.7 if left at 0).
    #[arg(long, value_name = "K")]
    pub self_consistency: Option<usize>,
    /// Demonstrations: a JSONL file of {"question", "answer"[, "rationale"]}.
    #[arg(long, value_name = "FILE")]
    pub examples: Option<PathBuf>,
    /// How many demonstrations to show.
    #[arg(long, default_value_t = 3)]
    pub shots: usize,
    /// Pick the demonstrations most similar to the question instead of a seeded sample.
    #[arg(long)]
    pub nearest: bool,
    /// A system message.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub tools: ToolArgs,
}

pub fn run(cmd: AskCmd) -> Result<()> {
    let mut params = cmd.gen.params()?;
    // Tools first: a bad tool file or name is reported before the model takes time to load.
    let tools = cmd.tools.build()?;
    anyhow::ensure!(
        tools.is_empty() || cmd.self_consistency.is_none(),
        "--self-consistency and --tools cannot be combined yet"
    );
    let p = cmd.model.load()?;
    let demos = match &cmd.examples {
        Some(path) => {
            let pool = prompting::read_examples(path)?;
            let selection = if cmd.nearest { Selection::Nearest } else { Selection::Random { seed: cmd.gen.seed } };
            prompting::select_examples(&pool, &cmd.question, cmd.shots, selection)
        }
        None => Vec::new(),
    };
    if !tools.is_empty() {
        let mut agent = ingot_tools::Agent::new(&p, tools).with_params(params).with_max_steps(cmd.tools.max_steps);
        if let Some(s) = &cmd.system {
            agent = agent.with_system(s.clone());
        }
        let question =
            if cmd.cot { format!("{}\n{}", cmd.question, prompting::COT_INSTRUCTION) } else { cmd.question.clone() };
        let trace = cmd.tools.trace;
        let answer = agent.run_with(&question, |step| {
            if trace {
                crate::tools::print_step(step);
            }
        })?;
        println!("{}", answer.answer.trim());
        return Ok(());
    }
    let cot = cmd.cot || cmd.self_consistency.is_some();
    let messages = prompting::build_messages(&cmd.question, &demos, cot, cmd.system.as_deref());
    if let Some(k) = cmd.self_consistency {
        if params.sampling.temperature == 0.0 {
            params.sampling.temperature = 0.7;
        }
        let vote = prompting::self_consistency(&p, &messages, k, &params)?;
        for (i, (chain, answer)) in vote.chains.iter().zip(&vote.answers).enumerate() {
            println!("--- chain {} (answer: {}) ---\n{}", i + 1, answer.as_deref().unwrap_or("none"), chain.trim());
        }
        let counts: Vec<String> = vote.counts.iter().map(|(a, n)| format!("{a}: {n}")).collect();
        println!("--- votes: {} ---", if counts.is_empty() { "no answers".to_string() } else { counts.join(", ") });
        println!("{}", vote.winner().unwrap_or("(no answer extracted)"));
        return Ok(());
    }
    let prompt = p.encode_chat(&messages)?;
    let mut stdout = std::io::stdout().lock();
    ingot_generate::generate(&p.model, &p.tokenizer, &prompt, &params, &p.device, |piece| {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    })?;
    writeln!(stdout)?;
    Ok(())
}
