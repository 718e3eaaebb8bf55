//! Start-up through the real binary: a setting that cannot work stops the server at once with
//! one line on stderr naming the setting and the address or file; secrets come from flags,
//! variables or the files their `_FILE` variables name.

use std::time::Duration;

use tonic::Code;

use crate::harness::*;
use group_service::auth::mint_hs256;
use group_service::grpc::pb;

/// How long a refused start may take: no network and no retries are involved.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// The server's one stderr line, once it has exited non-zero within `REFUSED_WITHIN`.
async fn refusal(mut server: ServerProcess) -> String {
    let (status, stderr) = server.refused_within(REFUSED_WITHIN).await;
    assert!(!status.success(), "exit status {status}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    lines[0].to_owned()
}

/// With a token secret given, nothing is generated (or logged) before the failure.
fn with_secret(command: &mut std::process::Command) {
    command.env(
        "GROUP_SERVICE_JWT_SECRET",
        std::str::from_utf8(SECRET).unwrap(),
    );
}

#[tokio::test]
async fn corrupt_sqlite_file_fails_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("groups.db");
    std::fs::write(&file, rand::random::<[u8; 32]>().repeat(2048)).unwrap();
    let line = refusal(ServerProcess::start(|c| {
        with_secret(c);
        c.arg("--database-url").arg(&file);
    }))
    .await;
    assert_eq!(
        line,
        format!(
            "group-service: cannot open the SQLite database {}: file is not a database",
            file.display()
        )
    );
}

#[tokio::test]
async fn taken_grpc_port_names_the_flag_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let line = refusal(ServerProcess::start_listening(
        &addr.to_string(),
        with_secret,
    ))
    .await;
    assert!(
        line.starts_with(&format!(
            "group-service: cannot listen on {addr} (--listen, GROUP_SERVICE_LISTEN): \
             Address already in use"
        )),
        "{line}"
    );
}

#[tokio::test]
async fn taken_metrics_port_names_the_flag_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let line = refusal(ServerProcess::start(|c| {
        with_secret(c);
        c.args(["--metrics-listen", &addr.to_string()]);
    }))
    .await;
    assert!(
        line.starts_with(&format!(
            "group-service: cannot listen on {addr} \
             (--metrics-listen, GROUP_SERVICE_METRICS_LISTEN): Address already in use"
        )),
        "{line}"
    );
}

#[tokio::test]
async fn listen_address_without_a_port_names_the_flag() {
    let line = refusal(ServerProcess::start_listening("localhost", with_secret)).await;
    assert_eq!(
        line,
        "group-service: cannot listen on localhost (--listen, GROUP_SERVICE_LISTEN): invalid \
         socket address (expected HOST:PORT, e.g. 127.0.0.1:50051)"
    );
}

/// A data dir that cannot be created, even by root: its parent is a regular file. Without a
/// token secret the server writes its development secret there first; with one, the SQLite
/// database is the first file it needs there.
#[tokio::test]
async fn unwritable_data_dir_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let data = file.join("data");

    let line = refusal(ServerProcess::start(|c| {
        c.arg("--data-dir").arg(&data);
    }))
    .await;
    assert!(
        line.starts_with(&format!(
            "group-service: cannot write the development token secret {} \
             (--data-dir, GROUP_SERVICE_DATA_DIR): ",
            data.join("jwt-secret").display()
        )),
        "{line}"
    );

    let line = refusal(ServerProcess::start(|c| {
        with_secret(c);
        c.env_remove("DATABASE_URL").arg("--data-dir").arg(&data);
    }))
    .await;
    assert!(
        line.starts_with(&format!(
            "group-service: cannot create the directory {} of the SQLite database: ",
            data.display()
        )),
        "{line}"
    );
}

/// The token secret and the database URL from the files their `_FILE` variables name, each
/// with the trailing newline an editor leaves: tokens signed with that secret are accepted,
/// others refused, and the database is the file named.
#[tokio::test]
async fn secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("jwt-secret");
    std::fs::write(&secret_file, [SECRET, b"\n"].concat()).unwrap();
    let database = dir.path().join("from-file.db");
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, format!("{}\n", database.display())).unwrap();

    let mut server = ServerProcess::start(|c| {
        c.env_remove("DATABASE_URL")
            .env("DATABASE_URL_FILE", &url_file)
            .env("GROUP_SERVICE_JWT_SECRET_FILE", &secret_file);
    });
    if let Err((status, stderr)) = server.serving().await {
        panic!("the server exited ({status}): {stderr}");
    }
    assert!(database.exists(), "the database is the file named");

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let directory = |secret: &[u8]| {
        let token = mint_hs256(secret, 1, "directory", false, true, 600).unwrap();
        pb::directory_service_client::DirectoryServiceClient::with_interceptor(
            channel.clone(),
            Bearer::new(&token),
        )
    };
    let tenant = pb::UpsertTenantRequest {
        tenant: Some(pb::Tenant {
            id: 1,
            display_name: "Acme".into(),
            plan: pb::Plan::Free as i32,
            group_creation: pb::GroupCreation::AdminsOnly as i32,
            ..Default::default()
        }),
    };
    directory(SECRET)
        .upsert_tenant(tenant.clone())
        .await
        .expect("a token signed with the secret from the file");
    let err = directory(b"another-secret-0123456789")
        .upsert_tenant(tenant)
        .await
        .unwrap_err();
    assert_reason(&err, Code::Unauthenticated, "BAD_SIGNATURE");
}

#[tokio::test]
async fn secret_given_twice_fails_start_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("jwt-secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let line = refusal(ServerProcess::start(|c| {
        with_secret(c);
        c.env("GROUP_SERVICE_JWT_SECRET_FILE", &secret_file);
    }))
    .await;
    assert_eq!(
        line,
        "group-service: GROUP_SERVICE_JWT_SECRET (or --jwt-secret) and \
         GROUP_SERVICE_JWT_SECRET_FILE are both set: give one of them"
    );
}

#[tokio::test]
async fn unreadable_secret_file_fails_start_naming_the_variable_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file");
    let line = refusal(ServerProcess::start(|c| {
        with_secret(c);
        c.env_remove("DATABASE_URL")
            .env("DATABASE_URL_FILE", &missing);
    }))
    .await;
    assert_eq!(
        line,
        format!(
            "group-service: cannot read DATABASE_URL_FILE {}: No such file or directory (os \
             error 2)",
            missing.display()
        )
    );
}
