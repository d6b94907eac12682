//! What a command prints: every command returns one [`Outcome`] holding both forms of
//! its result, text for people and a JSON value for scripts (`--json`), so the two never
//! drift apart in what they contain. Notes and progress go to stderr, results to stdout,
//! so `ember-wallet sign ... > tx.hex` captures only the result.
//!
//! A reader that stops early (`ember-wallet history | head -3`) is not an error: the
//! result is written with `write!`, never `println!` (which panics on a closed pipe), and
//! a closed stdout ends the process quietly with exit code 0 — except when the result was
//! to be shown once only (`create`'s recovery phrase), which is then said on stderr.
//! Command-line errors follow `--json` too: `{"error": {"kind": "usage", ...}}`.

use std::io::Write;

use serde_json::Value;

use super::error::CliError;

/// A command's result in both forms.
#[derive(Debug)]
pub struct Outcome {
    /// For people: printed as is, followed by a newline.
    pub text: String,
    /// For scripts: printed as one line of JSON.
    pub json: Value,
    /// What to say on stderr when stdout closes before the result is written whole: set
    /// for a result shown only once (a recovery phrase).
    pub if_cut_off: Option<String>,
}

impl Outcome {
    /// A result with its text and JSON forms.
    pub fn new(text: impl Into<String>, json: Value) -> Outcome {
        Outcome { text: text.into(), json, if_cut_off: None }
    }

    /// Prints the result on stdout in the chosen form; exits quietly when stdout is closed.
    pub fn print(&self, json: bool) {
        let text =
            if json { self.json.to_string() } else { self.text.trim_end_matches('\n').to_owned() };
        let mut out = std::io::stdout().lock();
        let written = writeln!(out, "{text}").and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                if let Some(warning) = &self.if_cut_off {
                    ember_wallet::errln!("error: standard output closed early: {warning}");
                    std::process::exit(1);
                }
                std::process::exit(0);
            }
            Err(e) => {
                ember_wallet::errln!("error: cannot write the result to standard output: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Prints an error on stderr in the chosen form.
pub fn print_error(err: &CliError, json: bool) {
    if json {
        let v = serde_json::json!({ "error": { "kind": err.kind(), "message": err.to_string() } });
        ember_wallet::errln!("{v}");
    } else {
        ember_wallet::errln!("error: {err}");
    }
}

/// Reports a command-line error (clap's) and exits: help and version go to stdout as
/// clap prints them; an error is clap's text, or with `--json` anywhere before `--` one
/// JSON object on stderr, like every other error. Exit code 2 either way.
pub fn usage_error(err: clap::Error, json: bool) -> ! {
    use clap::error::ErrorKind;
    if !json || matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        err.exit()
    }
    let rendered = err.render().to_string();
    let message = rendered.trim().trim_start_matches("error: ").to_owned();
    let v = serde_json::json!({ "error": { "kind": "usage", "message": message } });
    ember_wallet::errln!("{v}");
    std::process::exit(2)
}

/// Whether `--json` was given, read from the raw arguments: for errors found before (or
/// instead of) a successful parse.
pub fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// A remark on stderr that does not change the result (e.g. which network was chosen).
pub fn note(message: &str) {
    ember_wallet::errln!("note: {message}");
}
