//! `ingot chat`: a multi-turn conversation on stdin/stdout. `/reset` starts over, `/exit` (or end
//! of input) quits. Works interactively and with piped input, one user turn per line.
//!
//! With `--tools`, each user turn runs the tool-calling loop over the whole conversation; the calls
//! and results of a turn are shown with `--trace` but only the final answer joins the history, so
//! later turns see a plain conversation and the context is spent on what was said, not on tool traffic.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use clap::Args;
use ingot_tokenizer::Message;

use crate::args::{GenArgs, ModelArgs};
use crate::tools::ToolArgs;

#[derive(Args, Debug)]
pub struct ChatCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gen: GenArgs,
    /// A system message to start the conversation with (default: the template's own, if any).
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub tools: ToolArgs,
}

pub fn run(cmd: ChatCmd) -> Result<()> {
    let params = cmd.gen.params()?;
    // Tools first: a bad tool file or name is reported before the model takes time to load.
    let tools = cmd.tools.build()?;
    let p = cmd.model.load()?;
    anyhow::ensure!(p.is_chat(), "this model has no chat template; use `ingot generate --raw` instead");
    let agent = if tools.is_empty() {
        None
    } else {
        let mut agent =
            ingot_tools::Agent::new(&p, tools).with_params(params.clone()).with_max_steps(cmd.tools.max_steps);
        if let Some(s) = &cmd.system {
            agent = agent.with_system(s.clone());
        }
        Some(agent)
    };
    let interactive = std::io::stdin().is_terminal();
    // With tools the agent writes the system message (its own plus the tool description), so the
    // history holds only the turns.
    let fresh = || -> Vec<Message> {
        match agent {
            Some(_) => Vec::new(),
            None => cmd.system.iter().map(|s| Message::new("system", s)).collect(),
        }
    };
    let mut history = fresh();
    let mut stdout = std::io::stdout().lock();
    if interactive {
        eprintln!("Chatting with {}. /reset starts over, /exit quits.", p.files.path.display());
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            write!(stdout, "> ")?;
            stdout.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let text = line.trim();
        match text {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history = fresh();
                writeln!(stdout, "[conversation reset]")?;
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", text));
        let reply = if let Some(agent) = &agent {
            let trace = cmd.tools.trace;
            let answer = agent.run_conversation(&history, |step| {
                if trace {
                    crate::tools::print_step(step);
                }
            })?;
            // Not streamed: until a step ends it is unknown whether it is a tool call or the answer.
            writeln!(stdout, "{}", answer.answer.trim())?;
            answer.answer
        } else {
            let prompt = p.tokenizer.encode(&p.chat_prompt(&history)?, false)?;
            if prompt.len() + params.max_tokens > p.model.context_length() && history.len() > 1 {
                eprintln!("[the conversation is near the context limit; /reset to start over]");
            }
            let g = ingot_generate::generate(&p.model, &p.tokenizer, &prompt, &params, &p.device, |piece| {
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            })?;
            writeln!(stdout)?;
            g.text
        };
        history.push(Message::new("assistant", reply.trim()));
    }
    Ok(())
}
