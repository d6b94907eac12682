//! `ember-wallet`: the command-line wallet. Parses the command line, runs the command,
//! and prints either its result (stdout) or its error (stderr), as text or as JSON.
//! The commands themselves live in [`cli`]; the key material, payments and node client
//! in the `ember_wallet` library.

mod cli;

use clap::Parser;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => cli::output::usage_error(e, cli::output::json_requested(std::env::args_os())),
    };
    let json = cli.global.json;
    match cli::run(cli) {
        Ok(outcome) => outcome.print(json),
        Err(err) => {
            cli::output::print_error(&err, json);
            std::process::exit(err.exit_code());
        }
    }
}
