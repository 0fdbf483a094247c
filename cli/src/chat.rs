//! `rill chat`: an interactive terminal chat over the folder's chat template. Each turn
//! sends the whole conversation; the session reuses the cached prefix, so a turn costs
//! its new tokens only. `/reset` forgets the conversation, `/regen` rewrites the last
//! reply, `/quit` (or end of input) leaves; Ctrl-C stops the reply being written.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use rill::{ChatMessage, Session, SessionOptions, StopReason};

/// Options of `rill chat`.
#[derive(Args)]
pub struct ChatArgs {
    /// Model folder (with a chat template: chat_template.jinja, or `chat_template` in
    /// tokenizer_config.json).
    #[arg(long)]
    model: PathBuf,
    /// A system message opening the conversation.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: crate::SamplingArgs,
    #[command(flatten)]
    open: crate::OpenArgs,
    /// Context length in tokens (0: the model's maximum). When it fills, the oldest
    /// turns after the system message are dropped.
    #[arg(long, default_value_t = 0)]
    context: usize,
    /// Pause this long after each printed piece (slows replies down for demos and tests).
    #[arg(long, default_value_t = 0)]
    stream_delay_ms: u64,
    /// Assisted generation: a smaller model folder with the same tokenizer proposes the
    /// next tokens for the model to check (the replies are the same).
    #[arg(long, value_name = "DIR")]
    assistant: Option<PathBuf>,
}

const HELP: &str = "commands: /reset forgets the conversation, /regen rewrites the last reply, /quit leaves; Ctrl-C stops a reply";

pub fn run(a: ChatArgs) -> anyhow::Result<()> {
    let config = a.sampling.config()?;
    let model = a.open.open(&a.model)?;
    anyhow::ensure!(
        model.has_chat_template(),
        "{} has no chat template (chat_template.jinja, or `chat_template` in tokenizer_config.json); use `rill generate`",
        a.model.display()
    );
    let system: Vec<ChatMessage> = a
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s))
        .collect();
    let pinned = if system.is_empty() {
        0
    } else {
        let text = model.apply_chat_template(&system, false)?;
        model.encode(&text, false)?.len()
    };
    let mut session = Session::new(
        model.clone(),
        SessionOptions {
            context_len: a.context,
            context_policy: rill::ContextPolicy::SlidingWindow { pinned },
            ..Default::default()
        },
    )?;
    session.set_generation_config(config)?;
    if let Some(dir) = &a.assistant {
        session.set_assistant(Some(a.open.open(dir)?))?;
    }

    // Ctrl-C: cancel the reply in progress; at the prompt, only a hint.
    let generating = Arc::new(AtomicBool::new(false));
    let token = session.cancel_token();
    let flag = generating.clone();
    ctrlc::set_handler(move || {
        if flag.load(Ordering::Acquire) {
            token.cancel();
        } else {
            eprint!("\n(/quit or Ctrl-D leaves)\n> ");
        }
    })?;

    println!("rill chat with {} — {HELP}", a.model.display());
    let mut messages = system.clone();
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            return Ok(());
        }
        match line.trim() {
            "" => continue,
            "/quit" | "/exit" => return Ok(()),
            "/help" => {
                println!("{HELP}");
                continue;
            }
            "/reset" => {
                messages = system.clone();
                session.reset();
                println!("(conversation cleared)");
                continue;
            }
            "/regen" => {
                if messages.last().is_some_and(|m| m.role == "assistant") {
                    messages.pop();
                } else {
                    println!("(no reply to regenerate)");
                    continue;
                }
            }
            text => messages.push(ChatMessage::new("user", text)),
        }
        generating.store(true, Ordering::Release);
        let result = session.chat(&messages, |piece| {
            let mut out = std::io::stdout().lock();
            let ok = out
                .write_all(piece.as_bytes())
                .and_then(|_| out.flush())
                .is_ok();
            if a.stream_delay_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(a.stream_delay_ms));
            }
            ok
        });
        generating.store(false, Ordering::Release);
        match result {
            Ok(reply) => {
                if reply.stop == StopReason::Cancelled {
                    print!(" [stopped]");
                }
                println!();
                messages.push(ChatMessage::new("assistant", reply.text.trim()));
            }
            Err(e) => {
                println!();
                eprintln!("error: {e}");
                messages.pop();
            }
        }
    }
}
