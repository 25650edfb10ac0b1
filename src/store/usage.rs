//! Usage figures: counts of lesson views and offline saves per lesson per day. Nothing that
//! could name a person is kept: no addresses, no user agents, no times finer than a day.

use rusqlite::{Connection, params};

use super::Result;

/// One counted figure: `count` uses of `kind` (0 view, 1 offline save) of `lesson` on `day`
/// (days since 1970-01-01, UTC).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub day: i64,
    pub lesson: String,
    pub kind: u8,
    pub count: u64,
}

/// Adds `rows` to the stored counts in one transaction.
pub fn add_usage(conn: &mut Connection, rows: &[UsageRow]) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO usage (day, lesson, kind, count) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (day, lesson, kind) DO UPDATE SET count = count + excluded.count",
        )?;
        for row in rows {
            stmt.execute(params![
                row.day,
                row.lesson,
                row.kind,
                i64::try_from(row.count).unwrap_or(i64::MAX)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Every stored count for days `from..=to`, by day, lesson and kind.
pub fn usage_between(conn: &Connection, from: i64, to: i64) -> Result<Vec<UsageRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, lesson, kind, count FROM usage WHERE day BETWEEN ?1 AND ?2 ORDER BY day, lesson, kind",
    )?;
    let rows = stmt.query_map([from, to], |r| {
        Ok(UsageRow {
            day: r.get(0)?,
            lesson: r.get(1)?,
            kind: r.get(2)?,
            count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        super::super::migrate(&mut conn, std::path::Path::new(":memory:")).expect("migrate");
        conn
    }

    fn row(day: i64, lesson: &str, kind: u8, count: u64) -> UsageRow {
        UsageRow {
            day,
            lesson: lesson.to_owned(),
            kind,
            count,
        }
    }

    #[test]
    fn counts_add_up_and_ranges_select_days() {
        let mut conn = store();
        add_usage(&mut conn, &[row(10, "a", 0, 2), row(10, "a", 1, 1), row(11, "b", 0, 5)]).expect("add");
        add_usage(&mut conn, &[row(10, "a", 0, 3)]).expect("add again");
        assert_eq!(
            usage_between(&conn, 0, 100).expect("all"),
            vec![row(10, "a", 0, 5), row(10, "a", 1, 1), row(11, "b", 0, 5)]
        );
        assert_eq!(usage_between(&conn, 11, 11).expect("one day"), vec![row(11, "b", 0, 5)]);
        assert!(usage_between(&conn, 12, 20).expect("none").is_empty());
    }
}
