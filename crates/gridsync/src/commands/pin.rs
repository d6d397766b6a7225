//! `gridsync pin set`, and the PIN `gridsync join` asks for: the secret that opens this
//! device's field app.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use gridsync_field::PinHash;
use gridsync_node::Replica;
use serde_json::json;

use crate::cli::PinCommand;
use crate::commands::field::open_replica;
use crate::output::Output;

/// Environment variable a script sets the PIN with (the command line would show it to
/// every user of the machine).
pub const PIN_ENV: &str = "GRIDSYNC_PIN";

pub fn run(data: &Path, cmd: PinCommand, out: Output) -> Result<()> {
    let PinCommand::Set = cmd;
    let mut replica = open_replica(data)?;
    let Some(pin) = read_new_pin(true)? else {
        bail!("no PIN given: type it when asked, or set ${PIN_ENV}");
    };
    save(&mut replica, &pin)?;
    out.emit(&json!({ "pin_set": true }), || {
        "PIN set: sign in to the field app with it (a running node uses it after a restart)"
            .to_owned()
    })
}

/// Hashes and stores `pin` as this device's PIN.
pub fn save(replica: &mut Replica, pin: &str) -> Result<()> {
    let hash = PinHash::new(pin)?;
    hash.save(replica).context("cannot store the PIN")?;
    Ok(())
}

/// The new PIN: from $GRIDSYNC_PIN, else asked twice on a terminal, else (when `from_stdin`)
/// one line of stdin. `None` when nothing was given (an empty answer on the terminal).
pub fn read_new_pin(from_stdin: bool) -> Result<Option<String>> {
    if let Ok(pin) = std::env::var(PIN_ENV) {
        return Ok(Some(pin.trim().to_owned()));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = prompt("Choose a PIN for the field app (4 to 12 digits; Enter to skip): ")?;
        if first.is_empty() {
            return Ok(None);
        }
        PinHash::new(&first)?;
        let again = prompt("The same PIN again: ")?;
        if again != first {
            bail!("the two PINs differ; nothing was changed");
        }
        return Ok(Some(first));
    }
    if from_stdin {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let pin = line.trim().to_owned();
        return Ok((!pin.is_empty()).then_some(pin));
    }
    Ok(None)
}

fn prompt(question: &str) -> Result<String> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
