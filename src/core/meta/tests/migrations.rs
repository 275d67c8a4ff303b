//! CockroachDB's migration set (`migrations/cockroach/`), checked where it
//! can be here, on PostgreSQL: it builds the same tables and columns as
//! PostgreSQL's own set, and every file can run a second time over what it
//! made (CockroachDB may commit a migration's schema changes one by one, so
//! a retried migration meets its own earlier statements).

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Connection, Row};

use crate::core::meta::migrate::shared_migrator;

/// Every (table, column, type) of the public schema.
async fn columns(conn: &mut AnyConnection) -> BTreeSet<(String, String, String)> {
    sqlx::query(
        "SELECT table_name::TEXT AS t, column_name::TEXT AS c, data_type::TEXT AS d \
         FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(conn)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("t"), r.get("c"), r.get("d")))
    .collect()
}

async fn migrated_with(server: &str, cockroach: bool) -> AnyConnection {
    let url = crate::testing::fresh_postgres_database(server).await;
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    shared_migrator(cockroach).run(&mut conn).await.unwrap();
    conn
}

#[tokio::test]
async fn cockroach_migrations_build_the_same_schema_and_can_run_again() {
    let Ok(server) = std::env::var("CISTERN_TEST_DATABASE_URL") else {
        eprintln!("CISTERN_TEST_DATABASE_URL is not set: no PostgreSQL run");
        return;
    };
    let mut postgres = migrated_with(&server, false).await;
    let mut cockroach = migrated_with(&server, true).await;
    let tables = columns(&mut postgres).await;
    assert!(tables.len() > 80, "{} columns", tables.len());
    assert_eq!(columns(&mut cockroach).await, tables);

    let migrations = shared_migrator(true);
    for migration in migrations.iter() {
        sqlx::raw_sql(&migration.sql)
            .execute(&mut cockroach)
            .await
            .unwrap_or_else(|e| panic!("{} again: {e}", migration.description));
    }
    assert_eq!(columns(&mut cockroach).await, tables);
    let notices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cluster_notices")
        .fetch_one(&mut cockroach)
        .await
        .unwrap();
    assert_eq!(notices, 2, "each seeded row once");
}
