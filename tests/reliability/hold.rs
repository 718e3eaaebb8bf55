//! A slow operation on demand: the tenant's row (PostgreSQL) or the writer (SQLite) held by a
//! transaction behind the server's back, so that the tenant's creates wait for it.

use std::time::Duration;

use crate::harness::{TestServer, backend};

/// Holds writes of `tenant` for `hold`, from a task; returns once the hold is in place.
pub async fn hold_writes(
    srv: &TestServer,
    tenant: i64,
    hold: Duration,
) -> tokio::task::JoinHandle<()> {
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let task = if backend() == "postgres" {
        let (client, conn) = tokio_postgres::connect(&srv.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        tokio::spawn(async move {
            client.batch_execute("BEGIN").await.unwrap();
            client
                .execute(
                    "SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE",
                    &[&tenant],
                )
                .await
                .unwrap();
            let _ = held_tx.send(());
            tokio::time::sleep(hold).await;
            client.batch_execute("ROLLBACK").await.unwrap();
        })
    } else {
        let store = srv.store.clone();
        let held = std::sync::Mutex::new(Some(held_tx));
        tokio::spawn(async move {
            store
                .write(|_tx| {
                    if let Some(tx) = held.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    Box::pin(async move {
                        tokio::time::sleep(hold).await;
                        Ok(())
                    })
                })
                .await
                .unwrap();
        })
    };
    held_rx.await.expect("the hold starts");
    task
}
