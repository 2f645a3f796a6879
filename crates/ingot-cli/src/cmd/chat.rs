//! `ingot chat`: a multi-turn conversation on stdin/stdout. `/reset` starts over, `/exit` (or end
//! of input) quits. Works interactively and with piped input, one user turn per line.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use clap::Args;
use ingot_tokenizer::Message;

use crate::args::{GenArgs, ModelArgs};

#[derive(Args, Debug)]
pub struct ChatCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gen: GenArgs,
    /// A system message to start the conversation with (default: the template's own, if any).
    #[arg(long)]
    pub system: Option<String>,
}

pub fn run(cmd: ChatCmd) -> Result<()> {
    let params = cmd.gen.params()?;
    let p = cmd.model.load()?;
    anyhow::ensure!(p.is_chat(), "this model has no chat template; use `ingot generate --raw` instead");
    let interactive = std::io::stdin().is_terminal();
    let fresh = || -> Vec<Message> { cmd.system.iter().map(|s| Message::new("system", s)).collect() };
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
        let prompt = p.tokenizer.encode(&p.chat_prompt(&history)?, false)?;
        if prompt.len() + params.max_tokens > p.model.context_length() && history.len() > 1 {
            eprintln!("[the conversation is near the context limit; /reset to start over]");
        }
        let g = ingot_generate::generate(&p.model, &p.tokenizer, &prompt, &params, &p.device, |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        })?;
        writeln!(stdout)?;
        history.push(Message::new("assistant", g.text.trim()));
    }
    Ok(())
}
