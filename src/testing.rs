//! Helpers shared by the test suites (the library's unit tests and the
//! integration tests, which cannot share a module otherwise). Not part of
//! the service.

/// A fresh, empty PostgreSQL database on the server that `server_url`
/// names, and its URL. With `CISTERN_TEST_ISOLATION` set (for example to
/// `serializable`, which is how CockroachDB runs every transaction), the
/// database runs its transactions at that level.
#[doc(hidden)]
pub async fn fresh_postgres_database(server_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("cistern_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(server_url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    if let Ok(level) = std::env::var("CISTERN_TEST_ISOLATION") {
        assert!(
            level.chars().all(|c| c.is_ascii_alphabetic() || c == ' '),
            "CISTERN_TEST_ISOLATION is an isolation level"
        );
        sqlx::query(&format!(
            "ALTER DATABASE {name} SET default_transaction_isolation = '{level}'"
        ))
        .execute(&mut admin)
        .await
        .expect("set the test database's isolation level");
    }
    let (prefix, _) = server_url
        .rsplit_once('/')
        .expect("database url has a path");
    format!("{prefix}/{name}")
}
