//! One module per command. Each takes parsed flags, calls the library crates, and prints
//! through [`Output`]. Errors carry enough context to stand alone as one line.

mod backup;
mod dashboard;
mod data_dir;
mod demo;
mod export;
mod field;
mod identity;
mod init;
mod pin;
mod plan;
mod run;
mod show;
mod street;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::output::Output;

pub use data_dir::resolve_data_dir;

pub fn run(cli: Cli) -> Result<()> {
    let out = Output {
        json: cli.global.json,
    };
    let data = cli.global.data;
    match cli.command {
        Command::Init(args) => init::run(&resolve_data_dir(data)?, args, out),
        Command::Plan(cmd) => plan::run(&resolve_data_dir(data)?, cmd, out),
        Command::Visit(cmd) => field::visit(&resolve_data_dir(data)?, cmd, out),
        Command::Deliver(args) => field::deliver(&resolve_data_dir(data)?, args, out),
        Command::Sweep(cmd) => field::sweep(&resolve_data_dir(data)?, cmd, out),
        Command::Correct(args) => field::correct(&resolve_data_dir(data)?, args, out),
        Command::Show(cmd) => show::run(&resolve_data_dir(data)?, cmd, out),
        Command::Export(args) => export::run(&resolve_data_dir(data)?, args),
        Command::Demo(args) => demo::run(args, out),
        Command::Office(cmd) => identity::office(&resolve_data_dir(data)?, cmd, out),
        Command::Enroll(args) => identity::enroll(&resolve_data_dir(data)?, args, out),
        Command::Join { file } => identity::join(&resolve_data_dir(data)?, &file, out),
        Command::Pin(cmd) => pin::run(&resolve_data_dir(data)?, cmd, out),
        Command::Revoke { node } => identity::revoke(&resolve_data_dir(data)?, &node, out),
        Command::Run(args) => run::run(&resolve_data_dir(data)?, args, out),
        Command::Status => run::status(&resolve_data_dir(data)?, out),
        Command::Backup { out: file } => backup::backup(&resolve_data_dir(data)?, &file, out),
        Command::Restore { file } => backup::restore(&resolve_data_dir(data)?, &file, out),
    }
}
