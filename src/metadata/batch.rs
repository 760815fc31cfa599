//! Several writes as one transaction, on either database by one algorithm: SQLite runs them as one
//! script on its writer (`BEGIN IMMEDIATE; …; COMMIT`, see `sqlite_writer`), Postgres as one statement of
//! data-modifying CTEs. Either way it is one round trip; a batch binding more values than one round trip
//! takes runs its statements one by one in a transaction instead.
//!
//! Postgres runs the statements of one round trip on one snapshot, in no promised order, so a batch is
//! written not to depend on order: no statement reads what another writes (conditions read the state
//! before the batch), and a statement that removes what other statements check comes last, where it also
//! runs when the statements go one by one. A statement may mark each row it changes (`RETURNING` a word);
//! running the batch returns the marks.

use sqlx::Row;

use super::{Db, Touches, Writer, on_tx, sqlite_writer};

/// Values bound by one round trip at most: below Postgres's limit on the parameters of one statement
/// (65,535); SQLite, as sqlx builds it, takes up to 250,000.
const ARGS_PER_ROUND_TRIP: usize = 65_000;

/// A value a batch binds.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::MaybeText(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

/// Binds `$args` in order to `$query`, whichever database it is for.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::MaybeText(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
            };
        }
        query
    }};
}

/// A statement of a batch, its parameters numbered as the batch binds them.
struct Statement {
    sql: String,
    mark: Option<&'static str>,
}

impl Statement {
    /// The statement with `RETURNING` its mark, if it has one.
    fn marked(&self) -> String {
        match self.mark {
            Some(mark) => format!("{} RETURNING CAST('{mark}' AS TEXT) AS mark", self.sql),
            None => self.sql.clone(),
        }
    }
}

/// Writes that run as one transaction, changing what `touches` says.
pub struct Batch<'a> {
    touches: Touches,
    args: Vec<Arg<'a>>,
    statements: Vec<Statement>,
}

impl<'a> Batch<'a> {
    pub fn new(touches: Touches) -> Self {
        Batch {
            touches,
            args: Vec::new(),
            statements: Vec::new(),
        }
    }

    /// Binds `value` and gives its placeholder (`$n`) for the statements.
    pub fn arg(&mut self, value: impl Into<Arg<'a>>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// Adds a statement.
    pub fn push(&mut self, sql: String) {
        self.statements.push(Statement { sql, mark: None });
    }

    /// Adds a statement that reports each row it changes as `mark`.
    pub fn push_marked(&mut self, sql: String, mark: &'static str) {
        self.statements.push(Statement { sql, mark: Some(mark) });
    }

    /// Runs the batch as one transaction; the marks of the rows changed, in no particular order.
    pub async fn run(self, db: &Db) -> sqlx::Result<Vec<String>> {
        if self.args.len() > ARGS_PER_ROUND_TRIP {
            return self.run_in_steps(db).await;
        }
        match &db.writer {
            Writer::Sqlite(writer) => {
                let sql = sqlite_writer::transaction(&self.script());
                let rows = db
                    .script(writer, self.touches, bind_all!(sqlx::query(&sql), &self.args))
                    .await?;
                rows.iter().map(|row| row.try_get(0)).collect()
            }
            Writer::Postgres(pool) => {
                let sql = self.ctes();
                let rows = bind_all!(sqlx::query(&sql), &self.args).fetch_all(pool).await;
                db.caches.forget(self.touches);
                rows?.iter().map(|row| row.try_get(0)).collect()
            }
        }
    }

    /// The statements as one SQLite script (without its transaction).
    fn script(&self) -> String {
        let statements: Vec<String> = self.statements.iter().map(Statement::marked).collect();
        statements.join(";\n")
    }

    /// The statements as one Postgres statement: each a CTE, the marked ones read by the main query.
    /// Postgres runs every data-modifying CTE to its end, read or not.
    fn ctes(&self) -> String {
        let ctes: Vec<String> = self
            .statements
            .iter()
            .enumerate()
            .map(|(i, s)| format!("s{i} AS ({})", s.marked()))
            .collect();
        let marks: Vec<String> = self
            .statements
            .iter()
            .enumerate()
            .filter(|(_, s)| s.mark.is_some())
            .map(|(i, _)| format!("SELECT mark FROM s{i}"))
            .collect();
        let main = if marks.is_empty() {
            "SELECT CAST(NULL AS TEXT) AS mark WHERE FALSE".to_owned()
        } else {
            marks.join(" UNION ALL ")
        };
        format!("WITH {} {main}", ctes.join(", "))
    }

    /// Runs the statements one by one in a transaction, each binding only the values it uses.
    async fn run_in_steps(self, db: &Db) -> sqlx::Result<Vec<String>> {
        let mut tx = db.begin(self.touches).await?;
        let mut marks = Vec::new();
        for statement in &self.statements {
            let (sql, args) = own_parameters(&statement.marked(), &self.args);
            let changed: Vec<String> = on_tx!(tx, c => {
                let rows = bind_all!(sqlx::query(&sql), &args).fetch_all(c).await?;
                rows.iter().map(|row| row.try_get(0)).collect::<sqlx::Result<_>>()
            })?;
            marks.extend(changed);
        }
        tx.commit().await?;
        Ok(marks)
    }
}

/// `sql` with its parameters renumbered from `$1` in the order they first appear, and the values of
/// `args` (numbered from `$1`) they stand for.
fn own_parameters<'a>(sql: &str, args: &[Arg<'a>]) -> (String, Vec<Arg<'a>>) {
    let mut out = String::with_capacity(sql.len());
    let mut used: Vec<usize> = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        let number: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        if number == 0 || number > args.len() {
            out.push('$');
            rest = &rest[at + 1..];
            continue;
        }
        let local = match used.iter().position(|&n| n == number) {
            Some(i) => i + 1,
            None => {
                used.push(number);
                used.len()
            }
        };
        out.push_str(&format!("${local}"));
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    (out, used.iter().map(|&n| args[n - 1]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_run_alone_binds_only_its_own_values_renumbered() {
        let args = [Arg::Int(10), Arg::Int(11), Arg::Text("a"), Arg::Text("b")];
        let (sql, used) = own_parameters("INSERT INTO t VALUES ($1, $4, $12, $4, $3)", &args);
        assert_eq!(sql, "INSERT INTO t VALUES ($1, $2, $12, $2, $3)");
        let shown: Vec<String> = used.iter().map(|a| format!("{a:?}")).collect();
        assert_eq!(shown, ["Int(10)", "Text(\"b\")", "Text(\"a\")"]);
    }

    /// On a real SQLite file: a batch binding more values than one round trip takes (here 132 statements
    /// of 501 values) runs in steps of one transaction, each statement binding only its own values, and
    /// its marks come back.
    #[tokio::test]
    async fn a_batch_past_the_round_trip_limit_runs_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = crate::metadata::connect(&url, 2, std::time::Duration::from_secs(5), false)
            .await
            .unwrap();
        let statements = ARGS_PER_ROUND_TRIP / 500 + 2;
        let hashes: Vec<String> = (0..statements).map(|n| format!("h{n}")).collect();
        let mut batch = Batch::new(Touches::Nothing);
        for hash in &hashes {
            let hash = batch.arg(hash.as_str());
            let values: Vec<String> = (0..500).map(|i| batch.arg(i)).collect();
            let sql = format!(
                "INSERT INTO operator_tokens (token_hash, created_at) SELECT {hash}, 0 WHERE 7 IN ({})",
                values.join(", ")
            );
            batch.push_marked(sql, "inserted");
        }
        assert!(batch.args.len() > ARGS_PER_ROUND_TRIP);
        let marks = batch.run(&db).await.unwrap();
        assert_eq!(marks.len(), statements);
        for n in [0, statements - 1] {
            assert!(crate::metadata::operators::exists(&db, &format!("h{n}")).await.unwrap());
        }
    }

    #[test]
    fn postgres_reads_the_marks_of_marked_statements_only() {
        let mut batch = Batch::new(Touches::Nothing);
        let id = batch.arg(7);
        batch.push_marked(format!("INSERT INTO a VALUES ({id})"), "inserted");
        batch.push(format!("DELETE FROM b WHERE id = {id}"));
        assert_eq!(
            batch.ctes(),
            "WITH s0 AS (INSERT INTO a VALUES ($1) RETURNING CAST('inserted' AS TEXT) AS mark), \
             s1 AS (DELETE FROM b WHERE id = $1) SELECT mark FROM s0"
        );
        assert_eq!(
            batch.script(),
            "INSERT INTO a VALUES ($1) RETURNING CAST('inserted' AS TEXT) AS mark;\nDELETE FROM b WHERE id = $1"
        );
    }
}
