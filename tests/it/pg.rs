//! A PostgreSQL database of its own for each test, on the server `FEEDLOOM_TEST_POSTGRES`
//! names (a URL such as `postgres://postgres@127.0.0.1:54329/postgres`). Without it, tests
//! that need one skip, unless `FEEDLOOM_REQUIRE_POSTGRES=1` (CI) makes that a failure.

use std::str::FromStr;

/// The server's URL, or `None` (skip) when there is none and none is required.
pub fn server(test: &str) -> Option<String> {
    match std::env::var("FEEDLOOM_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("FEEDLOOM_REQUIRE_POSTGRES").is_none(),
                "{test}: FEEDLOOM_REQUIRE_POSTGRES is set but FEEDLOOM_TEST_POSTGRES is not"
            );
            eprintln!("{test}: skipped (set FEEDLOOM_TEST_POSTGRES to a server URL)");
            None
        }
    }
}

/// A database created for one test; [`TempDb::drop_db`] removes it (a failed test leaves it
/// behind on the throwaway server, for a look).
pub struct TempDb {
    pub url: String,
    admin: String,
    name: String,
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let config = tokio_postgres::Config::from_str(url).expect("FEEDLOOM_TEST_POSTGRES is a URL");
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

impl TempDb {
    pub async fn create(test: &str) -> Option<TempDb> {
        let server = server(test)?;
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let name = format!(
            "feedloom_t_{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        admin(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let mut url = url::Url::parse(&server).expect("FEEDLOOM_TEST_POSTGRES is a URL");
        url.set_path(&name);
        Some(TempDb {
            url: url.to_string(),
            admin: server,
            name,
        })
    }

    /// A plain client on the test's database, for looking at what the store wrote.
    pub async fn client(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }

    pub async fn drop_db(self) {
        admin(&self.admin)
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("drop database {}: {e}", self.name));
    }
}
