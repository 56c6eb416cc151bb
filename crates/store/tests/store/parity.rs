//! Migration parity: after migrating, SQLite and PostgreSQL have the same tables, columns
//! (in order, with corresponding types, nullability and primary keys), indexes (name, table,
//! uniqueness, columns and their direction) and foreign keys.

use std::collections::BTreeMap;

use sqlx::{Connection, SqliteConnection};

use crate::harness::{run, Db, Kind};

#[derive(Debug, PartialEq, Eq)]
struct Column {
    name: String,
    /// The SQLite storage type the column maps to.
    ty: String,
    not_null: bool,
    /// Position in the primary key (1-based), 0 if not part of it.
    pk: i64,
}

#[derive(Debug, PartialEq, Eq)]
struct Index {
    table: String,
    unique: bool,
    /// (column, descending)
    columns: Vec<(String, bool)>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    tables: BTreeMap<String, Vec<Column>>,
    indexes: BTreeMap<String, Index>,
    /// (table, column) -> (referenced table, referenced column)
    foreign_keys: BTreeMap<(String, String), (String, String)>,
}

/// The SQLite type each PostgreSQL type of the schema corresponds to (what sqlx maps the
/// same Rust type to).
fn sqlite_type_of(pg: &str) -> String {
    match pg {
        "uuid" | "bytea" => "BLOB",
        "timestamp with time zone" | "jsonb" | "text" => "TEXT",
        "bigint" | "boolean" => "INTEGER",
        other => panic!("a PostgreSQL type the parity test does not know: {other}"),
    }
    .to_owned()
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut c = SqliteConnection::connect(url).await.unwrap();
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for t in tables {
        let cols: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&t)
        .fetch_all(&mut c)
        .await
        .unwrap();
        let cols = cols
            .into_iter()
            .map(|(name, ty, not_null, pk)| Column {
                name,
                ty,
                not_null,
                pk,
            })
            .collect();
        let fks: Vec<(String, String, String)> =
            sqlx::query_as("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list($1)")
                .bind(&t)
                .fetch_all(&mut c)
                .await
                .unwrap();
        for (from, table, to) in fks {
            schema.foreign_keys.insert((t.clone(), from), (table, to));
        }
        // Indexes made by CREATE INDEX (those behind PRIMARY KEY have no SQL).
        let indexes: Vec<(String, bool)> = sqlx::query_as(
            "SELECT l.name, l.\"unique\" FROM pragma_index_list($1) l \
             JOIN sqlite_master m ON m.name = l.name WHERE m.sql IS NOT NULL",
        )
        .bind(&t)
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (name, unique) in indexes {
            let columns: Vec<(String, bool)> = sqlx::query_as(
                "SELECT name, \"desc\" FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno",
            )
            .bind(&name)
            .fetch_all(&mut c)
            .await
            .unwrap();
            schema.indexes.insert(
                name,
                Index {
                    table: t.clone(),
                    unique,
                    columns,
                },
            );
        }
        schema.tables.insert(t, cols);
    }
    c.close().await.unwrap();
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for t in tables {
        let cols: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT c.column_name::text, c.data_type::text, c.is_nullable = 'NO', \
             COALESCE((SELECT k.ordinal_position::bigint \
               FROM information_schema.table_constraints tc \
               JOIN information_schema.key_column_usage k \
                 ON k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name \
               WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name = c.table_name \
                 AND k.column_name = c.column_name), 0) \
             FROM information_schema.columns c \
             WHERE c.table_schema = 'public' AND c.table_name = $1 ORDER BY c.ordinal_position",
        )
        .bind(&t)
        .fetch_all(&mut c)
        .await
        .unwrap();
        let cols = cols
            .into_iter()
            .map(|(name, ty, not_null, pk)| Column {
                name,
                ty: sqlite_type_of(&ty),
                not_null,
                pk,
            })
            .collect();
        schema.tables.insert(t, cols);
    }
    let fks: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, a.attname::text, rt.relname::text, ra.attname::text \
         FROM pg_constraint k \
         JOIN pg_class t ON t.oid = k.conrelid \
         JOIN pg_class rt ON rt.oid = k.confrelid \
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] \
         JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1] \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = 'public'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for (t, col, rt, rcol) in fks {
        schema.foreign_keys.insert((t, col), (rt, rcol));
    }
    // Indexes made by CREATE INDEX (not those behind a constraint such as a primary key).
    /// (name, table, unique, columns, descending flags)
    type IndexRow = (String, String, bool, Vec<String>, Vec<bool>);
    let indexes: Vec<IndexRow> = sqlx::query_as(
        "SELECT i.relname::text, t.relname::text, ix.indisunique, \
           array_agg(a.attname::text ORDER BY k.ord), \
           array_agg(((ix.indoption::int2[])[k.ord - 1] & 1) = 1 ORDER BY k.ord) \
         FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid) \
         GROUP BY i.relname, t.relname, ix.indisunique",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for (name, table, unique, cols, descs) in indexes {
        let columns = cols.into_iter().zip(descs).collect();
        schema.indexes.insert(
            name,
            Index {
                table,
                unique,
                columns,
            },
        );
    }
    c.close().await.unwrap();
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_define_the_same_schema() {
    run(Kind::Sqlite, |sqlite: Db| async move {
        run(Kind::Postgres, |postgres: Db| async move {
            let lite = sqlite_schema(&sqlite.url).await;
            let pg = postgres_schema(&postgres.url).await;
            // The schema is really there (a broken query must not make two empty schemas).
            let expect = [
                "api_keys",
                "artifacts",
                "audit_events",
                "audit_heads",
                "audit_key",
                "credentials",
                "issuer_keys",
                "pools",
                "run_events",
                "run_logs",
                "runs",
                "secrets",
                "workspace_keys",
                "workspaces",
            ];
            assert_eq!(lite.tables.keys().collect::<Vec<_>>(), expect);
            assert!(lite.indexes.contains_key("runs_workspace_idempotency_key"));
            assert!(
                lite.indexes["runs_workspace_created_idx"].columns[1]
                    == ("created_at".to_owned(), true)
            );
            assert!(lite
                .foreign_keys
                .contains_key(&("run_events".to_owned(), "run_id".to_owned())));
            assert_eq!(lite.tables, pg.tables);
            assert_eq!(lite.indexes, pg.indexes);
            assert_eq!(lite.foreign_keys, pg.foreign_keys);
        })
        .await
    })
    .await;
}
