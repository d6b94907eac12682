//! What a command prints: every command returns one [`Outcome`] holding both forms of
//! its result, text for people and a JSON value for scripts (`--json`), so the two never
//! drift apart in what they contain. Notes and progress go to stderr, results to stdout,
//! so `ember-wallet sign ... > tx.hex` captures only the result.

use serde_json::Value;

use super::error::CliError;

/// A command's result in both forms.
#[derive(Debug)]
pub struct Outcome {
    /// For people: printed as is, followed by a newline.
    pub text: String,
    /// For scripts: printed as one line of JSON.
    pub json: Value,
}

impl Outcome {
    /// A result with its text and JSON forms.
    pub fn new(text: impl Into<String>, json: Value) -> Outcome {
        Outcome { text: text.into(), json }
    }

    /// Prints the result on stdout in the chosen form.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.json);
        } else {
            println!("{}", self.text.trim_end_matches('\n'));
        }
    }
}

/// Prints an error on stderr in the chosen form.
pub fn print_error(err: &CliError, json: bool) {
    if json {
        let v = serde_json::json!({ "error": { "kind": err.kind(), "message": err.to_string() } });
        eprintln!("{v}");
    } else {
        eprintln!("error: {err}");
    }
}

/// A remark on stderr that does not change the result (e.g. which network was chosen).
pub fn note(message: &str) {
    eprintln!("note: {message}");
}
