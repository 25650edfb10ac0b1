//! Console accounts: teachers and technicians, Argon2id password hashes, login (slowed by
//! [`super::logins`]), server-side sessions with a CSRF token each, and the audit log.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Serialize;

use super::logins::{ACCOUNT_LIMIT, ADDRESS_LIMIT};
use super::{Library, ServiceError};
use crate::store::{self, StoreError};

/// How long a session lasts from login: a school day.
pub const SESSION_SECS: i64 = 8 * 3600;
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// What an account may do. Technicians may do everything teachers may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Teacher,
    Technician,
}

impl Role {
    pub fn parse(text: &str) -> Result<Role, ServiceError> {
        match text.trim() {
            "teacher" => Ok(Role::Teacher),
            "technician" => Ok(Role::Technician),
            other => Err(ServiceError::Refused(format!(
                "unknown role {other:?}: use teacher or technician"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Technician => "technician",
        }
    }
}

/// An account as listed (never with its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

/// Who is acting: a logged-in account, or the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: String,
    pub role: Role,
    /// The session's CSRF token, put in every form and checked on every POST.
    pub csrf: String,
}

/// A session just opened: the secret token for the cookie, and the session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub session: Session,
    pub max_age_secs: i64,
}

/// A new random token: 32 bytes from the operating system, as hex.
pub fn random_token() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
    Ok(crate::keys::encode_hex(&bytes))
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Account names: 1-32 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Refused(format!(
            "bad account name {name:?}: use 1 to 32 lowercase letters a-z, digits, '.', '_' or '-' (for example \"aysel.m\")"
        )))
    }
}

fn check_password(password: &str) -> Result<(), ServiceError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ServiceError::Refused(format!(
            "the password is too short: use at least {MIN_PASSWORD} characters"
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, ServiceError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash to check unknown names against, so a wrong name costs as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no such account, ever").unwrap_or_default())
}

fn account_from(row: store::AccountRow) -> Result<Account, ServiceError> {
    Ok(Account {
        role: Role::parse(&row.role)?,
        name: row.name,
        created_at: row.created_at,
    })
}

impl Library {
    /// Adds an account; `actor` is who did it (for the audit log).
    pub fn add_account(&self, actor: &str, name: &str, role: Role, password: &str) -> Result<(), ServiceError> {
        check_name(name)?;
        check_password(password)?;
        let hash = hash_password(password)?;
        self.pool
            .with(|conn| {
                let tx = conn.transaction()?;
                if !store::insert_account(&tx, name, role.as_str(), &hash)? {
                    return Ok(false);
                }
                store::append_audit(&tx, actor, "account added", &format!("{name} ({})", role.as_str()))?;
                tx.commit()?;
                Ok(true)
            })?
            .then_some(())
            .ok_or_else(|| ServiceError::Refused(format!("there is already an account named {name}")))
    }

    /// Sets a new password for `name`; its open sessions end.
    pub fn set_password(&self, actor: &str, name: &str, password: &str) -> Result<(), ServiceError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        let changed = self.pool.with(|conn| {
            let tx = conn.transaction()?;
            let changed = store::set_password_hash(&tx, name, &hash)?;
            if changed {
                store::append_audit(&tx, actor, "password set", name)?;
            }
            tx.commit()?;
            Ok(changed)
        })?;
        changed.then_some(()).ok_or_else(|| no_account(name))
    }

    /// Removes account `name` and its sessions.
    pub fn remove_account(&self, actor: &str, name: &str) -> Result<(), ServiceError> {
        let removed = self.pool.with(|conn| {
            let tx = conn.transaction()?;
            let removed = store::delete_account(&tx, name)?;
            if removed {
                store::append_audit(&tx, actor, "account removed", name)?;
            }
            tx.commit()?;
            Ok(removed)
        })?;
        removed.then_some(()).ok_or_else(|| no_account(name))
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<Account>, ServiceError> {
        self.pool
            .with(|conn| store::list_accounts(conn))?
            .into_iter()
            .map(account_from)
            .collect()
    }

    /// Checks a password and opens a session. Refused without checking while the client
    /// address or the account is locked out after too many failures.
    pub fn login(&self, name: &str, password: &str, client: IpAddr) -> Result<NewSession, ServiceError> {
        let address_key = format!("address {client}");
        let account_key = format!("account {}", name.trim());
        if let Err(wait) = self.logins.check(&[&address_key, &account_key]) {
            return Err(ServiceError::Throttled(wait.as_secs().max(1)));
        }
        let name = name.trim();
        let row = match self.pool.with(|conn| store::get_account(conn, name)) {
            Ok(row) => Some(row),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let stored = row.as_ref().map_or(dummy_hash(), |r| r.password_hash.as_str());
        let good = verify_password(password, stored) && row.is_some();
        let Some(row) = row.filter(|_| good) else {
            self.logins.fail(&address_key, ADDRESS_LIMIT);
            self.logins.fail(&account_key, ACCOUNT_LIMIT);
            let shown: String = name.chars().take(40).collect();
            self.audit(&shown, "login failed", &format!("from {client}"))?;
            return Err(ServiceError::WrongPassword);
        };
        self.logins.clear(&address_key);
        self.logins.clear(&account_key);
        let token = random_token()?;
        let csrf = random_token()?;
        let expires = store::now_secs() + SESSION_SECS;
        let role = Role::parse(&row.role)?;
        self.pool.with(|conn| {
            store::insert_session(conn, &token_hash(&token), &row.name, &csrf, expires)?;
            store::append_audit(conn, &row.name, "login", &format!("from {client}"))
        })?;
        Ok(NewSession {
            token,
            session: Session {
                account: row.name,
                role,
                csrf,
            },
            max_age_secs: SESSION_SECS,
        })
    }

    /// The live session a cookie's token names, if any.
    pub fn session(&self, token: &str) -> Result<Option<Session>, ServiceError> {
        let Some(row) = self.pool.with(|conn| store::get_session(conn, &token_hash(token)))? else {
            return Ok(None);
        };
        Ok(Some(Session {
            account: row.account,
            role: Role::parse(&row.role)?,
            csrf: row.csrf,
        }))
    }

    /// Ends the session of `token`.
    pub fn logout(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.pool.with(|conn| store::delete_session(conn, &token_hash(token)))?)
    }

    /// Writes a line to the audit log.
    pub fn audit(&self, account: &str, action: &str, details: &str) -> Result<(), ServiceError> {
        Ok(self
            .pool
            .with(|conn| store::append_audit(conn, account, action, details))?)
    }

    /// The newest `limit` lines of the audit log.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<store::AuditEntry>, ServiceError> {
        Ok(self.pool.with(|conn| store::recent_audit(conn, limit))?)
    }
}

fn no_account(name: &str) -> ServiceError {
    ServiceError::Refused(format!("there is no account named {name} (see `dars user list`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        for bad in ["", "Aysel", "-a", "a b", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("aysel.m_2").is_ok());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
    }
}
