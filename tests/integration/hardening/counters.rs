//! Counters: a reported size is bounded, so no report can overflow the
//! group's or the tenant's storage counter (it used to make every later report of the
//! tenant INTERNAL on PostgreSQL and drift the counter on SQLite).

use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// `domain::limits::MAX_REPORTED_BYTES`.
const MAX: i64 = 1 << 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_reported_bytes_are_bounded_and_counters_stay_exact() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let a = group(1, "A").master(2).create(&srv).await;
    let b = group(1, "B").master(2).create(&srv).await;
    for bytes in [i64::MAX, MAX + 1, -1] {
        let err = report_usage(&srv, &a.name, "folder", bytes)
            .await
            .unwrap_err();
        assert_bad_field(&err, "bytes");
    }
    let mut expected = 0;
    for g in [&a, &b] {
        for feature in ["message", "note", "event", "task", "folder"] {
            let r = report_usage(&srv, &g.name, feature, MAX).await.unwrap();
            expected += MAX;
            assert_eq!(r.tenant_storage_used_bytes, expected);
        }
    }
    assert_eq!(get(&srv, &a.name).await.storage_used_bytes, 5 * MAX);
    // Later reports of the tenant still work and move the counters exactly.
    let r = report_usage(&srv, &b.name, "folder", 7).await.unwrap();
    assert_eq!(r.tenant_storage_used_bytes, expected - MAX + 7);
    assert_eq!(
        srv.get_tenant(1).await.storage_used_bytes,
        expected - MAX + 7
    );
    let err = report_usage(&srv, &b.name, "folder\0", 7)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
