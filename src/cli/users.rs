//! `dars user ...`: console accounts from the command line (the way the first technician
//! account is made). Passwords are asked twice on a terminal, without echo, or read as one
//! line from stdin when it is not a terminal (for scripts).

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::service::Role;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account for the console at /admin
    Add {
        /// The account name (a-z, 0-9, '.', '_', '-')
        name: String,
        /// teacher or technician
        #[arg(long, value_parser = ["teacher", "technician"])]
        role: String,
    },
    /// Set a new password for an account (its open sessions end)
    Passwd { name: String },
    /// Remove an account
    Remove { name: String },
    /// List the accounts
    List,
}

/// Who the audit log names for changes made here.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    if user.is_empty() {
        "command line".to_owned()
    } else {
        format!("command line ({user})")
    }
}

fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new password for {name}: "))?;
        let again = rpassword::prompt_password("the same password again: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            anyhow::bail!("no password on stdin: give it as one line, or run this on a terminal to be asked");
        }
        Ok(password)
    }
}

pub fn run(config: &Config, command: UserCommand) -> anyhow::Result<ExitCode> {
    let library = super::open(config)?;
    match command {
        UserCommand::Add { name, role } => {
            let role = Role::parse(&role)?;
            crate::service::accounts::check_name(&name)?;
            let password = read_password(&name)?;
            library.add_account(&actor(), &name, role, &password)?;
            say!(
                "added {} account {name}; it can log in at http://<this computer>:8080/admin",
                role.as_str()
            );
        }
        UserCommand::Passwd { name } => {
            if !library.accounts()?.iter().any(|a| a.name == name) {
                anyhow::bail!("there is no account named {name} (see `dars user list`)");
            }
            let password = read_password(&name)?;
            library.set_password(&actor(), &name, &password)?;
            say!("the password of {name} was set; its open sessions were ended");
        }
        UserCommand::Remove { name } => {
            library.remove_account(&actor(), &name)?;
            say!("removed account {name}");
        }
        UserCommand::List => {
            let accounts = library.accounts()?;
            if accounts.is_empty() {
                say!("no accounts yet; add one with `dars user add NAME --role technician`");
            }
            for account in accounts {
                say!("{:<24} {}", account.name, account.role.as_str());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
