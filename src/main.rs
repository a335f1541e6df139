use std::process::ExitCode;

use clap::Parser;
use rstap::cli::Cli;
use rstap::script::ScriptError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match rstap::session::run(&cli) {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(err) => {
            // Script errors carry their own location and source excerpt.
            match err.downcast_ref::<ScriptError>() {
                Some(script_error) => eprintln!("{script_error}"),
                None => eprintln!("rstap: error: {err:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
