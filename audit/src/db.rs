//! The two databases the audit store runs on, behind one small interface: SQLite in the state
//! directory (one relay), or PostgreSQL (several relays, one record). The store writes its SQL
//! once, with `?1`-style numbered parameters that this module passes to PostgreSQL as `$1`;
//! where the dialects differ (schema, JSON fields, write locks) this module says it.

use std::path::{Path, PathBuf};

/// Where the audit record lives.
#[derive(Clone)]
pub enum Location {
    /// `audit.sqlite` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`host=… user=… dbname=…` or `postgres://…`).
    Postgres(String),
}

/// A value passed to or read from SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL (only ever stored in integer columns).
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// The integer, or `None` for NULL or another type.
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The text (empty for other types).
    pub fn text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            _ => String::new(),
        }
    }
    /// The text, or `None` for NULL.
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    /// The bytes (empty for other types).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Bytes(b) => b.clone(),
            _ => Vec::new(),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

/// A database error, with what the store was doing.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("PostgreSQL: column {0} has a type the audit store does not use")]
    Type(usize),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An open connection.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// The schema, one entry per version, for SQLite and for PostgreSQL.
pub struct Migrations {
    pub sqlite: &'static [&'static str],
    pub postgres: &'static [&'static str],
}

/// The SQLite file in a state directory.
pub fn sqlite_file(dir: &Path) -> PathBuf {
    dir.join(super::store::FILE)
}

impl Db {
    /// Connects. A new SQLite file is created readable by its owner only.
    pub fn open(at: &Location) -> Result<Self, DbError> {
        match at {
            Location::Sqlite(dir) => {
                let path = sqlite_file(dir);
                if !path.exists() {
                    // Created empty with the right mode first: SQLite would create it 0644.
                    let mut opts = std::fs::OpenOptions::new();
                    opts.write(true).create(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                    opts.open(&path)?;
                }
                let conn = rusqlite::Connection::open(&path)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                Ok(Db::Sqlite(conn))
            }
            Location::Postgres(url) => Ok(Db::Postgres(Box::new(postgres::Client::connect(
                url,
                postgres::NoTls,
            )?))),
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// The text of JSON field `field` of column `column`, in this dialect.
    pub fn json_field(&self, column: &str, field: &str) -> String {
        match self {
            Db::Sqlite(_) => format!("json_extract({column}, '$.{field}')"),
            Db::Postgres(_) => format!("(({column})::jsonb ->> '{field}')"),
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))? as u64)
            }
            Db::Postgres(c) => {
                let p = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                Ok(c.execute(pg_sql(sql).as_str(), &refs)?)
            }
        }
    }

    /// Runs a query; its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows =
                    st.query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                            rusqlite::types::ValueRef::Real(v) => Value::Int(v as i64),
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                        });
                    }
                    out.push(row);
                }
                Ok(out)
            }
            Db::Postgres(c) => {
                use postgres::types::Type;
                let p = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                let mut out = Vec::new();
                for r in c.query(pg_sql(sql).as_str(), &refs)? {
                    let mut row = Vec::with_capacity(r.len());
                    for (i, col) in r.columns().iter().enumerate() {
                        let v = match *col.type_() {
                            Type::INT8 => r.get::<_, Option<i64>>(i).map(Value::Int),
                            Type::INT4 => r.get::<_, Option<i32>>(i).map(|v| Value::Int(v.into())),
                            Type::TEXT | Type::VARCHAR => {
                                r.get::<_, Option<String>>(i).map(Value::Text)
                            }
                            Type::BYTEA => r.get::<_, Option<Vec<u8>>>(i).map(Value::Bytes),
                            _ => return Err(DbError::Type(i)),
                        };
                        row.push(v.unwrap_or(Value::Null));
                    }
                    out.push(row);
                }
                Ok(out)
            }
        }
    }

    /// Runs several statements (the schema).
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => Ok(c.batch_execute(sql)?),
        }
    }

    /// Runs `f` in a transaction, committed if `f` succeeds and rolled back if not. A `write`
    /// transaction appends to the record: one writer at a time, also across relays sharing a
    /// PostgreSQL database.
    pub fn transaction<T, E: From<DbError>>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E> {
        let begin = match (write, &*self) {
            (false, _) => "BEGIN",
            (true, Db::Sqlite(_)) => "BEGIN IMMEDIATE",
            (true, Db::Postgres(_)) => "BEGIN; LOCK TABLE audit_record IN EXCLUSIVE MODE",
        };
        self.batch(begin)?;
        match f(self) {
            Ok(t) => {
                self.batch("COMMIT")?;
                Ok(t)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Applies the migrations this database has not seen; fails on a schema newer than
    /// this relay knows. Two relays starting at once on one PostgreSQL apply them once.
    pub fn migrate(&mut self, m: &Migrations) -> Result<Result<(), (u32, usize)>, DbError> {
        let list = if self.is_postgres() {
            m.postgres
        } else {
            m.sqlite
        };
        self.transaction(false, |db| {
            let version = match db {
                Db::Sqlite(c) => {
                    c.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?
                }
                Db::Postgres(c) => {
                    c.batch_execute(
                        "SELECT pg_advisory_xact_lock(4711000047);
                         CREATE TABLE IF NOT EXISTS fernhilfe_schema (version INTEGER NOT NULL);",
                    )?;
                    c.query_opt("SELECT version FROM fernhilfe_schema", &[])?
                        .map_or(0, |r| r.get::<_, i32>(0) as u32)
                }
            };
            if version as usize > list.len() {
                return Ok(Err((version, list.len())));
            }
            for (i, sql) in list.iter().enumerate().skip(version as usize) {
                db.batch(sql)?;
                let v = (i + 1) as i64;
                match db {
                    Db::Sqlite(c) => c.pragma_update(None, "user_version", v)?,
                    Db::Postgres(c) => {
                        c.execute("DELETE FROM fernhilfe_schema", &[])?;
                        c.execute(
                            "INSERT INTO fernhilfe_schema (version) VALUES ($1)",
                            &[&(v as i32)],
                        )?;
                    }
                }
            }
            Ok(Ok(()))
        })
    }
}

fn sqlite_value(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Value::Bytes(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Null => Box::new(None::<i64>),
                Value::Int(i) => Box::new(*i),
                Value::Text(s) => Box::new(s.clone()),
                Value::Bytes(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

/// `?1` → `$1`: the store's SQL in PostgreSQL's parameter syntax.
fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_parameters_become_dollars_outside_quotes() {
        assert_eq!(
            super::pg_sql("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
    }
}
