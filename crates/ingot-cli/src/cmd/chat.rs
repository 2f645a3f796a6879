//! `ingot chat`: a multi-turn conversation on stdin/stdout. `/reset` starts over, `/exit` (or end
//! of input) quits. Works interactively and with piped input, one user turn per line.
//!
//! With `--tools`, each user turn runs the tool-calling loop over the whole conversation; the calls
//! and results of a turn are shown with `--trace` but only the final answer joins the history, so
//! later turns see a plain conversation and the context is spent on what was said, not on tool traffic.
//!
//! A session outlives its bad turns: a line that is not UTF-8 or is over [`MAX_LINE_BYTES`], a
//! prompt too long for the context, an unknown `/command`, any error of one turn, is reported on
//! stderr, leaves the conversation as it was, and the next line is read. Ctrl-C during a reply
//! stops that reply (generation checks a flag between tokens) and keeps what was said; Ctrl-C at
//! the prompt, or a second one while a reply is stopping, ends the session.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use ingot_generate::generate::generate_until;
use ingot_generate::{FinishReason, GenerateParams, Pipeline};
use ingot_tokenizer::Message;
use ingot_tools::{Agent, AgentError};

use crate::args::{GenArgs, ModelArgs};
use crate::tools::ToolArgs;

/// The longest line read as one turn. No context window holds a megabyte of text, and the cap
/// keeps a stray binary file on stdin from being read into memory whole.
const MAX_LINE_BYTES: usize = 1 << 20;

/// What `/help`-less users are told when they mistype a command.
const COMMANDS: &str = "/reset /exit /quit";

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
    let cancel = interrupt::install();
    let agent = if tools.is_empty() {
        None
    } else {
        let mut agent =
            Agent::new(&p, tools).with_params(params.clone()).with_max_steps(cmd.tools.max_steps).with_cancel(cancel);
        if let Some(s) = &cmd.system {
            agent = agent.with_system(s.clone());
        }
        Some(agent)
    };
    let interactive = io::stdin().is_terminal();
    // With tools the agent writes the system message (its own plus the tool description), so the
    // history holds only the turns.
    let fresh = || -> Vec<Message> {
        match agent {
            Some(_) => Vec::new(),
            None => cmd.system.iter().map(|s| Message::new("system", s)).collect(),
        }
    };
    let mut history = fresh();
    let mut stdout = io::stdout().lock();
    if interactive {
        eprintln!("Chatting with {}. /reset starts over, /exit quits, Ctrl-C stops a reply.", p.files.path.display());
    }
    let mut stdin = io::stdin().lock();
    let chat = Chat { p: &p, agent: agent.as_ref(), params: &params, trace: cmd.tools.trace, cancel };
    for line_no in 1.. {
        if interactive {
            write!(stdout, "> ")?;
            stdout.flush()?;
        }
        let text = match read_line(&mut stdin, MAX_LINE_BYTES)? {
            None => break,
            Some(Line::Text(text)) => text,
            Some(Line::NotUtf8 { valid_up_to }) => {
                eprintln!(
                    "error: line {line_no} is not UTF-8 text (bad byte at offset {valid_up_to}); nothing was sent"
                );
                continue;
            }
            Some(Line::TooLong) => {
                eprintln!("error: line {line_no} is over {} MiB; nothing was sent", MAX_LINE_BYTES >> 20);
                continue;
            }
        };
        let text = match parse_command(text.trim()) {
            Input::Empty => continue,
            Input::Exit => break,
            Input::Reset => {
                history = fresh();
                writeln!(stdout, "[conversation reset]")?;
                continue;
            }
            Input::Unknown(name) => {
                eprintln!("error: unknown command {name}; commands: {COMMANDS} (start a line with // to send one beginning with /)");
                continue;
            }
            Input::Say(text) => text,
        };
        history.push(Message::user(text));
        interrupt::start_reply();
        let outcome = chat.reply(&history, &mut stdout);
        interrupt::end_reply();
        match outcome {
            Ok(Reply { text, stopped }) => {
                if stopped {
                    eprintln!("[reply stopped]");
                }
                if text.trim().is_empty() && stopped {
                    history.pop(); // nothing was answered: the turn never happened
                } else {
                    history.push(Message::assistant(text.trim()));
                }
            }
            Err(e) => {
                history.pop();
                eprintln!("error: {}; the conversation is unchanged", crate::one_line(&e));
            }
        }
    }
    Ok(())
}

/// What one turn needs, whichever way it is answered.
struct Chat<'a> {
    p: &'a Pipeline,
    agent: Option<&'a Agent<'a>>,
    params: &'a GenerateParams,
    trace: bool,
    cancel: &'static AtomicBool,
}

/// A finished or stopped reply.
struct Reply {
    text: String,
    /// Ctrl-C stopped it; `text` is what came before.
    stopped: bool,
}

impl Chat<'_> {
    /// Answer the last user turn of `history`, streaming the reply to `out`.
    fn reply(&self, history: &[Message], out: &mut impl Write) -> Result<Reply> {
        if let Some(agent) = self.agent {
            let trace = self.trace;
            let answer = agent.run_conversation(history, |step| {
                if trace {
                    crate::tools::print_step(step);
                }
            });
            return match answer {
                // Not streamed: until a step ends it is unknown whether it is a tool call or the answer.
                Ok(answer) => {
                    writeln!(out, "{}", answer.answer.trim())?;
                    Ok(Reply { text: answer.answer, stopped: false })
                }
                Err(AgentError::Cancelled) => Ok(Reply { text: String::new(), stopped: true }),
                Err(e) => Err(e.into()),
            };
        }
        let p = self.p;
        let prompt = p.encode_chat(history)?;
        let ctx = p.model.context_length();
        if prompt.len() < ctx && prompt.len() + self.params.max_tokens > ctx && history.len() > 1 {
            eprintln!("[the conversation is near the context limit; /reset to start over]");
        }
        let g = generate_until(&p.model, &p.tokenizer, &prompt, self.params, &p.device, self.cancel, |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        })?;
        writeln!(out)?;
        Ok(Reply { text: g.text, stopped: g.finish_reason == FinishReason::Cancelled })
    }
}

/// What a line of input asks for.
#[derive(Debug, PartialEq)]
enum Input<'a> {
    Empty,
    Exit,
    Reset,
    /// A `/word` that is not a command: reported, never sent to the model.
    Unknown(&'a str),
    /// Text for the model (`//x` sends `/x`).
    Say(&'a str),
}

fn parse_command(text: &str) -> Input<'_> {
    if text.is_empty() {
        return Input::Empty;
    }
    if text.starts_with("//") {
        return Input::Say(&text[1..]);
    }
    if !text.starts_with('/') {
        return Input::Say(text);
    }
    let name = text.split_whitespace().next().unwrap_or(text);
    match name {
        "/exit" | "/quit" => Input::Exit,
        "/reset" => Input::Reset,
        _ => Input::Unknown(name),
    }
}

/// One line of input, read as bytes so that a bad one costs only itself.
#[derive(Debug, PartialEq)]
enum Line {
    Text(String),
    NotUtf8 { valid_up_to: usize },
    TooLong,
}

/// The next line without its line ending; None at end of input. A line over `max` bytes is
/// skipped to its end and reported as [`Line::TooLong`].
fn read_line<R: BufRead>(reader: &mut R, max: usize) -> io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let n = (&mut *reader).take(max as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > max {
        skip_to_line_end(reader)?;
        return Ok(Some(Line::TooLong));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(match String::from_utf8(buf) {
        Ok(text) => Line::Text(text),
        Err(e) => Line::NotUtf8 { valid_up_to: e.utf8_error().valid_up_to() },
    }))
}

fn skip_to_line_end(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Ctrl-C for a chat session: during a reply the first one raises [`CANCEL`], which generation
/// checks between tokens; at the prompt, or a second time, the process exits.
mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Raised by the first Ctrl-C of a reply.
    static CANCEL: AtomicBool = AtomicBool::new(false);
    /// True while a reply is being generated.
    static REPLYING: AtomicBool = AtomicBool::new(false);

    /// Install the SIGINT handler (where the platform has one) and return the cancel flag.
    pub fn install() -> &'static AtomicBool {
        #[cfg(unix)]
        install_handler();
        &CANCEL
    }

    #[cfg(unix)]
    fn install_handler() {
        // SAFETY: `action` is fully initialised (zeroed, then the handler, flags and an emptied
        // mask) before `sigaction` reads it, and the handler only touches atomics and calls
        // `write` and `_exit`, which POSIX lists as async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // Restart reads: a Ctrl-C at the prompt exits from the handler rather than surfacing
            // as an error of the read.
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) != 0 {
                eprintln!("[Ctrl-C handling unavailable: {}]", std::io::Error::last_os_error());
            }
        }
    }

    pub fn start_reply() {
        CANCEL.store(false, Ordering::SeqCst);
        REPLYING.store(true, Ordering::SeqCst);
    }

    pub fn end_reply() {
        REPLYING.store(false, Ordering::SeqCst);
    }

    #[cfg(unix)]
    extern "C" fn on_sigint(_signal: libc::c_int) {
        if REPLYING.load(Ordering::SeqCst) && !CANCEL.swap(true, Ordering::SeqCst) {
            return;
        }
        // At the prompt there is nothing half-written: every reply was flushed as it streamed.
        // The user asked to leave, so it is a clean exit (status 0), as /exit is.
        // SAFETY: `write` and `_exit` are async-signal-safe; the buffer is a static byte string.
        unsafe {
            libc::write(2, b"\n".as_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_bytes_and_bad_ones_cost_only_themselves() {
        let input: &[u8] = b"hello\r\n\xff\xfebad\nxxxxxxxxxxxx\nlast";
        let mut reader = io::BufReader::with_capacity(4, input);
        let mut next = || read_line(&mut reader, 8).unwrap();
        assert_eq!(next(), Some(Line::Text("hello".into())));
        assert_eq!(next(), Some(Line::NotUtf8 { valid_up_to: 0 }));
        assert_eq!(next(), Some(Line::TooLong));
        assert_eq!(next(), Some(Line::Text("last".into())));
        assert_eq!(next(), None);
    }

    #[test]
    fn commands_are_recognised_and_unknown_ones_never_sent() {
        assert_eq!(parse_command("/exit"), Input::Exit);
        assert_eq!(parse_command("/reset"), Input::Reset);
        assert_eq!(parse_command("/xyz now"), Input::Unknown("/xyz"));
        assert_eq!(parse_command("//etc/passwd?"), Input::Say("/etc/passwd?"));
        assert_eq!(parse_command("hi /exit"), Input::Say("hi /exit"));
        assert_eq!(parse_command(""), Input::Empty);
    }
}
