//! What the console does to lessons already stored: list them all (hidden ones too), hide or
//! show them to phones, delete local ones. Who may do what is decided here.

use serde::Serialize;

use super::accounts::{Role, Session};
use super::{Library, ServiceError};
use crate::store::{self, LessonRow, Origin, StoreError};

/// A lesson as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleLesson {
    #[serde(flatten)]
    pub row: LessonRow,
    pub hidden: bool,
}

/// Whether `role` may hide, show or delete a lesson of this origin. Teachers manage the
/// centre's own lessons (uploaded or imported locally, and the built-in samples); technicians
/// may also hide a publisher's lesson. A signed lesson is never deleted from the console: it
/// would come back with the publisher's next package, and hiding it says what is meant.
fn may_change(role: Role, origin: &Origin, delete: bool) -> bool {
    match origin {
        Origin::Local | Origin::Sample => true,
        Origin::Publisher(_) => !delete && role == Role::Technician,
    }
}

fn refused(origin: &Origin, delete: bool) -> ServiceError {
    let what = if delete {
        "deleted"
    } else {
        "hidden or shown by a teacher"
    };
    let key = match origin {
        Origin::Publisher(key) => key.as_str(),
        _ => "",
    };
    ServiceError::Forbidden(format!(
        "this lesson is signed by publisher {key} and cannot be {what}; a technician can hide it"
    ))
}

impl Library {
    /// Every lesson in the store, with whether it is hidden from phones.
    pub fn all_lessons(&self) -> Result<Vec<ConsoleLesson>, ServiceError> {
        let (rows, hidden) = self
            .pool
            .with(|conn| Ok((store::list_all_lessons(conn)?, store::hidden_ids(conn)?)))?;
        Ok(rows
            .into_iter()
            .map(|row| ConsoleLesson {
                hidden: hidden.binary_search(&row.meta.id).is_ok(),
                row,
            })
            .collect())
    }

    /// Hides lesson `id` from phones (or shows it again), as `actor`.
    pub fn set_hidden(&self, actor: &Session, id: &str, hidden: bool) -> Result<(), ServiceError> {
        let changed = self.pool.with(|conn| {
            let tx = conn.transaction()?;
            let row = store::get_lesson(&tx, id)?;
            if !may_change(actor.role, &row.origin, false) {
                return Ok(Err(refused(&row.origin, false)));
            }
            let changed = store::set_hidden(&tx, id, hidden)?;
            if changed {
                let action = if hidden { "lesson hidden" } else { "lesson shown" };
                store::append_audit(&tx, &actor.account, action, id)?;
            }
            tx.commit()?;
            Ok(Ok(changed))
        });
        let changed = changed.map_err(super::not_found)??;
        if changed {
            self.caches.invalidate();
        }
        Ok(())
    }

    /// Deletes a local lesson, as `actor`.
    pub fn delete_lesson(&self, actor: &Session, id: &str) -> Result<(), ServiceError> {
        let done = self.pool.with(|conn| {
            let tx = conn.transaction()?;
            let row = store::get_lesson(&tx, id)?;
            if !may_change(actor.role, &row.origin, true) {
                return Ok(Err(refused(&row.origin, true)));
            }
            store::remove_lesson(&tx, id)?;
            store::set_hidden(&tx, id, false)?;
            store::append_audit(
                &tx,
                &actor.account,
                "lesson deleted",
                &format!("{id}: {}", row.meta.title),
            )?;
            tx.commit()?;
            Ok(Ok(()))
        });
        done.map_err(super::not_found)??;
        self.caches.invalidate();
        Ok(())
    }

    /// Whether lesson `id` is hidden from phones.
    pub(super) fn hidden(&self, id: &str) -> Result<bool, StoreError> {
        self.pool.with(|conn| store::is_hidden(conn, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_change_what() {
        let signed = Origin::Publisher("abc".into());
        assert!(may_change(Role::Teacher, &Origin::Local, true));
        assert!(may_change(Role::Teacher, &Origin::Sample, false));
        assert!(!may_change(Role::Teacher, &signed, false));
        assert!(!may_change(Role::Teacher, &signed, true));
        assert!(may_change(Role::Technician, &signed, false));
        assert!(!may_change(Role::Technician, &signed, true));
    }
}
