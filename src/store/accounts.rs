//! The console's tables: accounts (name, role, Argon2id hash), sessions (by token hash, with
//! their CSRF token and expiry), the audit log, and lessons hidden from phones.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Result, StoreError, now_secs};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRow {
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: i64,
}

/// Adds an account; returns false when the name is taken.
pub fn insert_account(conn: &Connection, name: &str, role: &str, password_hash: &str) -> Result<bool> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO accounts (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, role, password_hash, now_secs()],
    )? > 0)
}

/// One account by name.
pub fn get_account(conn: &Connection, name: &str) -> Result<AccountRow> {
    conn.prepare_cached("SELECT name, role, password_hash, created_at FROM accounts WHERE name = ?1")?
        .query_row([name], |r| {
            Ok(AccountRow {
                name: r.get(0)?,
                role: r.get(1)?,
                password_hash: r.get(2)?,
                created_at: r.get(3)?,
            })
        })
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Every account, by name.
pub fn list_accounts(conn: &Connection) -> Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached("SELECT name, role, password_hash, created_at FROM accounts ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(AccountRow {
            name: r.get(0)?,
            role: r.get(1)?,
            password_hash: r.get(2)?,
            created_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Replaces an account's password hash and ends its sessions; false when there is no such account.
pub fn set_password_hash(conn: &Connection, name: &str, password_hash: &str) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE accounts SET password_hash = ?2 WHERE name = ?1",
        params![name, password_hash],
    )? > 0;
    conn.execute("DELETE FROM sessions WHERE account = ?1", [name])?;
    Ok(changed)
}

/// Removes an account (its sessions go with it); false when there was none.
pub fn delete_account(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM accounts WHERE name = ?1", [name])? > 0)
}

/// How many accounts hold `role`.
pub fn count_role(conn: &Connection, role: &str) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM accounts WHERE role = ?1", [role], |r| r.get(0))?)
}

/// A live session: the account, its role and the session's CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub account: String,
    pub role: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// Stores a new session under the hash of its token (expired sessions are swept here too).
pub fn insert_session(conn: &Connection, token_hash: &[u8], account: &str, csrf: &str, expires_at: i64) -> Result<()> {
    let now = now_secs();
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "INSERT INTO sessions (token_hash, account, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token_hash, account, csrf, now, expires_at],
    )?;
    Ok(())
}

/// The unexpired session with this token hash.
pub fn get_session(conn: &Connection, token_hash: &[u8]) -> Result<Option<SessionRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.account, a.role, s.csrf, s.expires_at FROM sessions s JOIN accounts a ON a.name = s.account
             WHERE s.token_hash = ?1 AND s.expires_at > ?2",
        )?
        .query_row(params![token_hash, now_secs()], |r| {
            Ok(SessionRow {
                account: r.get(0)?,
                role: r.get(1)?,
                csrf: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })
        .optional()?)
}

/// Ends a session.
pub fn delete_session(conn: &Connection, token_hash: &[u8]) -> Result<()> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub account: String,
    pub action: String,
    pub details: String,
}

/// Appends to the audit log.
pub fn append_audit(conn: &Connection, account: &str, action: &str, details: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO audit (at, account, action, details) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![now_secs(), account, action, details])?;
    Ok(())
}

/// The newest `limit` audit entries, newest first.
pub fn recent_audit(conn: &Connection, limit: u32) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached("SELECT at, account, action, details FROM audit ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| {
        Ok(AuditEntry {
            at: r.get(0)?,
            account: r.get(1)?,
            action: r.get(2)?,
            details: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Hides (or shows again) lesson `id` from phones; returns whether anything changed.
pub fn set_hidden(conn: &Connection, id: &str, hidden: bool) -> Result<bool> {
    Ok(if hidden {
        conn.execute(
            "INSERT OR IGNORE INTO hidden_lessons (id, hidden_at) VALUES (?1, ?2)",
            params![id, now_secs()],
        )?
    } else {
        conn.execute("DELETE FROM hidden_lessons WHERE id = ?1", [id])?
    } > 0)
}

/// Whether lesson `id` is hidden from phones.
pub fn is_hidden(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM hidden_lessons WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The ids of every hidden lesson.
pub fn hidden_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM hidden_lessons ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        super::super::migrate(&mut conn, std::path::Path::new(":memory:")).expect("migrate");
        conn
    }

    #[test]
    fn sessions_end_with_their_account_and_on_expiry() {
        let conn = db();
        assert!(insert_account(&conn, "amina", "teacher", "h").expect("insert"));
        assert!(!insert_account(&conn, "amina", "teacher", "h").expect("dupe"));
        insert_session(&conn, b"live", "amina", "c1", now_secs() + 60).expect("session");
        insert_session(&conn, b"old", "amina", "c2", now_secs() - 1).expect("session");
        assert_eq!(
            get_session(&conn, b"live").expect("get").map(|s| s.role),
            Some("teacher".into())
        );
        assert_eq!(get_session(&conn, b"old").expect("get"), None);
        assert!(set_password_hash(&conn, "amina", "h2").expect("passwd"));
        assert_eq!(
            get_session(&conn, b"live").expect("get"),
            None,
            "a new password ends sessions"
        );
        insert_session(&conn, b"again", "amina", "c3", now_secs() + 60).expect("session");
        assert!(delete_account(&conn, "amina").expect("delete"));
        assert_eq!(get_session(&conn, b"again").expect("get"), None);
    }

    #[test]
    fn hidden_lessons_and_audit() {
        let conn = db();
        assert!(set_hidden(&conn, "a", true).expect("hide"));
        assert!(!set_hidden(&conn, "a", true).expect("hide again"));
        assert!(is_hidden(&conn, "a").expect("is"));
        assert!(set_hidden(&conn, "a", false).expect("show"));
        assert!(!is_hidden(&conn, "a").expect("is"));
        append_audit(&conn, "x", "one", "").expect("audit");
        append_audit(&conn, "x", "two", "d").expect("audit");
        let log = recent_audit(&conn, 10).expect("log");
        assert_eq!(
            log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["two", "one"]
        );
    }
}
