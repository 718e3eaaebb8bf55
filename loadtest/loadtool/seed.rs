//! Builds a large tenant straight into a migrated database with batched multi-row INSERTs,
//! keeping every counter the service maintains consistent (the tenant's `group_count`, each
//! user's `direct_group_count`) and every rule the service enforces true of the data: names
//! unique per tenant, at least one master per group, no user in more than 2,000 groups, an
//! acyclic nesting chain.
//!
//! Layout of the load tenant (`--tenant`, default 1), users numbered from 1:
//! - user 1: an admin, master of the nesting chain only;
//! - user 2: a plain member, direct member of `--heavy-groups` groups (2,000: R03's limit);
//! - user 3: in many groups but not in the chain nor the team (the "no" of CheckMembership);
//! - the last `--team-size` users form team 1;
//! - groups `nest-1` > `nest-2` > ... > `nest-5` (each the member of the one before), the last
//!   holding team 1: a team user is a member of `nest-1` through five levels;
//! - the other groups have `--members-per-group` direct users each (the first a master), spread
//!   evenly over users 3 and up; half of them public;
//! - beyond user 2's groups, `--nested-groups` groups each hold one other group (one level, so
//!   the tenant has as many nesting rows as a real one would, not only the chain's), and team 1
//!   is a member of the `--team-groups` groups after those: walks that read the tenant's
//!   nestings or team rows instead of a group's own show in every call that walks.
//!
//! Plus `--create-tenants` empty PAID tenants (ids after the load tenant) with
//! `--create-users` users each, user 1 an admin: room for CreateGroup runs.

use std::fmt::Write as _;
use std::time::Instant;

use diesel::{Connection, SqliteConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use group_service::domain::model::{name_key, next_id, now_micros, search_text};
use group_service::store::is_postgres_url;
use serde_json::{Value, json};

/// R03: direct groups a user may be in.
const USER_GROUP_LIMIT: u64 = 2_000;
/// Depth of the nesting chain.
const DEPTH: usize = 5;
/// Rows per INSERT statement.
const BATCH: usize = 1_000;
const WORDS: [&str; 16] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

#[derive(clap::Args, Debug, Clone)]
pub struct SeedArgs {
    /// `postgres://...` or an SQLite file, already migrated (`group-service migrate`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Id of the load tenant.
    #[arg(long, default_value_t = 1)]
    pub tenant: i64,
    /// Groups of the load tenant, the nesting chain included (PAID allows 100,000).
    #[arg(long, default_value_t = 100_000)]
    pub groups: usize,
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    /// Users of team 1 (the last users of the tenant).
    #[arg(long, default_value_t = 10_000)]
    pub team_size: usize,
    /// Direct user members of each group, its master included.
    #[arg(long, default_value_t = 10)]
    pub members_per_group: usize,
    /// Groups user 2 is a direct member of.
    #[arg(long, default_value_t = 2_000)]
    pub heavy_groups: usize,
    /// Groups (after user 2's) that each hold one more group as a member.
    #[arg(long, default_value_t = 10_000)]
    pub nested_groups: usize,
    /// Groups (after the nested ones) that hold team 1.
    #[arg(long, default_value_t = 1_000)]
    pub team_groups: usize,
    /// Empty tenants for CreateGroup runs.
    #[arg(long, default_value_t = 16)]
    pub create_tenants: usize,
    #[arg(long, default_value_t = 100)]
    pub create_users: usize,
    /// Delete these tenants first (with all their rows) instead of failing when one exists.
    #[arg(long)]
    pub replace: bool,
    /// HS256 secret of the server: when given, the answer carries tokens for the users it names.
    #[arg(long, env = "GROUP_SERVICE_JWT_SECRET")]
    pub jwt_secret: Option<String>,
    /// Lifetime of those tokens.
    #[arg(long, default_value_t = 7200)]
    pub token_ttl: u64,
}

enum Db {
    Pg(Box<AsyncPgConnection>),
    Sqlite(SyncConnectionWrapper<SqliteConnection>),
}

impl Db {
    async fn open(url: &str) -> anyhow::Result<Db> {
        if is_postgres_url(url) {
            Ok(Db::Pg(Box::new(AsyncPgConnection::establish(url).await?)))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
            anyhow::ensure!(
                std::path::Path::new(&path).exists(),
                "{path} does not exist: run `group-service migrate` with this DATABASE_URL first"
            );
            let conn =
                tokio::task::spawn_blocking(move || SqliteConnection::establish(&path)).await??;
            Ok(Db::Sqlite(SyncConnectionWrapper::new(conn)))
        }
    }

    async fn exec(&mut self, sql: &str) -> anyhow::Result<()> {
        let r = match self {
            Db::Pg(c) => c.batch_execute(sql).await,
            Db::Sqlite(c) => c.batch_execute(sql).await,
        };
        r.map_err(|e| {
            let head: String = sql.chars().take(120).collect();
            anyhow::anyhow!("{e} (in: {head}...)")
        })
    }

    fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

/// Collects rows and sends them as multi-row INSERTs of `BATCH` rows.
struct Inserter<'a> {
    db: &'a mut Db,
    head: String,
    sql: String,
    rows: usize,
    total: u64,
}

impl<'a> Inserter<'a> {
    fn new(db: &'a mut Db, table: &str, columns: &str) -> Self {
        Inserter {
            db,
            head: format!("INSERT INTO {table} ({columns}) VALUES "),
            sql: String::new(),
            rows: 0,
            total: 0,
        }
    }

    async fn row(&mut self, values: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
        if self.rows == 0 {
            self.sql.clear();
            self.sql.push_str(&self.head);
        } else {
            self.sql.push(',');
        }
        self.sql.push('(');
        self.sql.write_fmt(values)?;
        self.sql.push(')');
        self.rows += 1;
        self.total += 1;
        if self.rows == BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<u64> {
        if self.rows > 0 {
            self.db.exec(&self.sql).await?;
            self.rows = 0;
        }
        Ok(self.total)
    }
}

/// A string literal (the seed's strings are plain ASCII; quotes are doubled all the same).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn b(v: bool) -> &'static str {
    if v { "TRUE" } else { "FALSE" }
}

/// Direct user members of bulk group `g` (index among the bulk groups); the first is the master.
fn members(a: &SeedArgs, g: usize) -> impl Iterator<Item = i64> + '_ {
    let pool = a.users - 2;
    (0..a.members_per_group).map(move |j| {
        if j == a.members_per_group - 1 && g < a.heavy_groups {
            2
        } else {
            3 + ((g * a.members_per_group + j) % pool) as i64
        }
    })
}

fn validate(a: &SeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.groups > DEPTH, "--groups must exceed the chain's {DEPTH}");
    anyhow::ensure!(
        a.users >= a.members_per_group + 3,
        "--users too small for --members-per-group"
    );
    anyhow::ensure!(
        a.members_per_group >= 2,
        "--members-per-group must be at least 2"
    );
    anyhow::ensure!(
        a.team_size >= 1 && a.team_size + 3 <= a.users,
        "--team-size must leave users 1-3 out of the team"
    );
    anyhow::ensure!(
        a.heavy_groups <= a.groups - DEPTH && a.heavy_groups as u64 <= USER_GROUP_LIMIT,
        "--heavy-groups must be at most the bulk groups and {USER_GROUP_LIMIT}"
    );
    anyhow::ensure!(
        a.heavy_groups + 2 * a.nested_groups + a.team_groups <= a.groups - DEPTH,
        "--heavy-groups, twice --nested-groups and --team-groups must fit in the bulk groups"
    );
    anyhow::ensure!(
        a.groups <= 100_000,
        "a PAID tenant holds at most 100,000 groups"
    );
    anyhow::ensure!(a.create_users >= 1, "--create-users must be at least 1");
    Ok(())
}

pub async fn seed(a: SeedArgs) -> anyhow::Result<Value> {
    validate(&a)?;
    let started = Instant::now();
    let mut db = Db::open(&a.database_url).await?;
    let t = a.tenant;
    let create_tenants: Vec<i64> = (1..=a.create_tenants as i64).map(|i| t + i).collect();
    let all_tenants: Vec<String> = std::iter::once(t)
        .chain(create_tenants.iter().copied())
        .map(|x| x.to_string())
        .collect();
    let in_list = all_tenants.join(",");
    let bulk = a.groups - DEPTH;
    let now = now_micros();

    // Direct group counts, from the same function that writes the rows.
    let mut counts = vec![0u64; a.users + 1];
    counts[1] = DEPTH as u64;
    for g in 0..bulk {
        for u in members(&a, g) {
            counts[u as usize] += 1;
        }
    }
    let max = counts.iter().max().copied().unwrap_or(0);
    anyhow::ensure!(
        max <= USER_GROUP_LIMIT,
        "a user would be in {max} groups: raise --users or lower --members-per-group"
    );
    let group_ids: Vec<i64> = (0..a.groups).map(|_| next_id()).collect();
    let (chain, bulk_ids) = group_ids.split_at(DEPTH);

    if !db.is_pg() {
        // Checks the seed's own rows, and makes --replace cascade (a no-op inside BEGIN).
        db.exec("PRAGMA foreign_keys = ON").await?;
    }
    if a.replace {
        for table in ["events", "create_requests", "batch_requests", "tenants"] {
            db.exec(&format!(
                "DELETE FROM {table} WHERE tenant_id IN ({in_list})"
            ))
            .await?;
        }
    }
    let mut fk_checks = true;
    if db.is_pg() {
        // Foreign-key triggers checking rows one by one take most of the time; the rows are
        // valid by construction (the SQLite seed, built by the same code, checks them). Needs
        // a superuser; without one the triggers run.
        fk_checks = db
            .exec("SET session_replication_role = replica")
            .await
            .is_err();
    }
    db.exec("BEGIN").await?;
    if db.is_pg() {
        db.exec("SET LOCAL synchronous_commit = off").await?;
    }

    let mut ins = Inserter::new(
        &mut db,
        "tenants",
        "tenant_id, display_name, plan, core_enabled, group_creation, \
         masters_may_manage_settings, storage_quota_bytes, storage_used_bytes, group_count, \
         create_time, update_time",
    );
    ins.row(format_args!(
        "{t}, 'Load tenant {t}', 'PAID', TRUE, 'ADMINS_ONLY', TRUE, 0, 0, {}, {now}, {now}",
        a.groups
    ))
    .await?;
    for c in &create_tenants {
        ins.row(format_args!(
            "{c}, 'Create tenant {c}', 'PAID', TRUE, 'ADMINS_ONLY', TRUE, 0, 0, 0, {now}, {now}"
        ))
        .await?;
    }
    ins.flush().await.map_err(|e| {
        anyhow::anyhow!("{e}: does a tenant {in_list} exist already? (--replace deletes them)")
    })?;

    let mut ins = Inserter::new(
        &mut db,
        "users",
        "tenant_id, user_id, email, display_name, is_admin, external_messaging_allowed, kind, \
         direct_group_count",
    );
    for (u, count) in counts.iter().enumerate().skip(1) {
        ins.row(format_args!(
            "{t}, {u}, 'u{u}@t{t}.example', 'User {u}', {}, TRUE, 'WORKS', {count}",
            b(u == 1),
        ))
        .await?;
    }
    for c in &create_tenants {
        for u in 1..=a.create_users {
            ins.row(format_args!(
                "{c}, {u}, 'u{u}@t{c}.example', 'User {u}', {}, TRUE, 'WORKS', 0",
                b(u == 1)
            ))
            .await?;
        }
    }
    let users = ins.flush().await?;

    db.exec(&format!(
        "INSERT INTO teams (tenant_id, team_id, display_name, email) \
         VALUES ({t}, 1, 'Team 1', 'team1@t{t}.example')"
    ))
    .await?;
    let mut ins = Inserter::new(&mut db, "team_members", "tenant_id, team_id, user_id");
    for u in (a.users - a.team_size + 1)..=a.users {
        ins.row(format_args!("{t}, 1, {u}")).await?;
    }
    let team_members = ins.flush().await?;

    let mut ins = Inserter::new(
        &mut db,
        "groups",
        "tenant_id, group_id, display_name, name_key, description, photo_uri, kind, is_public, \
         use_message, use_note, use_event, use_task, use_folder, notify_all_members, \
         master_manages_features, external_key, storage_used_bytes, version, create_time, \
         update_time, search_text, mailing_list, ml_block_external",
    );
    let named = chain
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, format!("nest-{}", i + 1), false))
        .chain(bulk_ids.iter().enumerate().map(|(g, id)| {
            (
                *id,
                format!("{}-{g:06}", WORDS[g % WORDS.len()]),
                g % 2 == 0,
            )
        }));
    for (id, name, public) in named {
        let description = format!("Load test group {name} of tenant {t}");
        ins.row(format_args!(
            "{t}, {id}, {}, {}, {}, '', 'INTERNAL', {}, TRUE, FALSE, FALSE, FALSE, FALSE, FALSE, \
             FALSE, NULL, 0, 1, {now}, {now}, {}, NULL, FALSE",
            lit(&name),
            lit(&name_key(&name)),
            lit(&description),
            b(public),
            lit(&search_text(&name, &description)),
        ))
        .await?;
    }
    let groups = ins.flush().await?;

    let mut ins = Inserter::new(
        &mut db,
        "group_user_members",
        "tenant_id, group_id, user_tenant_id, user_id, is_master, add_time",
    );
    for id in chain {
        ins.row(format_args!("{t}, {id}, {t}, 1, TRUE, {now}"))
            .await?;
    }
    for (g, id) in bulk_ids.iter().enumerate() {
        for (j, u) in members(&a, g).enumerate() {
            ins.row(format_args!("{t}, {id}, {t}, {u}, {}, {now}", b(j == 0)))
                .await?;
        }
    }
    let user_memberships = ins.flush().await?;

    let mut ins = Inserter::new(
        &mut db,
        "group_group_members",
        "tenant_id, group_id, member_group_id, add_time",
    );
    for pair in chain.windows(2) {
        ins.row(format_args!("{t}, {}, {}, {now}", pair[0], pair[1]))
            .await?;
    }
    let nested = &bulk_ids[a.heavy_groups..a.heavy_groups + 2 * a.nested_groups];
    let (parents, children) = nested.split_at(a.nested_groups);
    for (parent, child) in parents.iter().zip(children) {
        ins.row(format_args!("{t}, {parent}, {child}, {now}"))
            .await?;
    }
    let nestings = ins.flush().await?;
    let mut ins = Inserter::new(
        &mut db,
        "group_team_members",
        "tenant_id, group_id, team_id, add_time",
    );
    let after = a.heavy_groups + 2 * a.nested_groups;
    for id in std::iter::once(&chain[DEPTH - 1]).chain(&bulk_ids[after..after + a.team_groups]) {
        ins.row(format_args!("{t}, {id}, 1, {now}")).await?;
    }
    let team_rows = ins.flush().await?;
    db.exec("COMMIT").await?;
    if !fk_checks {
        db.exec("SET session_replication_role = DEFAULT").await?;
    }
    let inserted = started.elapsed();

    // PostgreSQL's autovacuum would get there within minutes; the benchmark should not
    // depend on when it does.
    let analyzed = Instant::now();
    if db.is_pg() {
        db.exec(
            "VACUUM ANALYZE tenants, users, teams, team_members, groups, group_user_members, \
             group_team_members, group_group_members",
        )
        .await?;
    }
    let analyze_s = analyzed.elapsed().as_secs_f64();

    let name = |id: i64| format!("tenants/{t}/groups/{id}");
    let mut out = json!({
        "backend": if db.is_pg() { "postgres" } else { "sqlite" },
        "tenant": t,
        "groups": groups,
        "users": users,
        "team_members": team_members,
        "user_memberships": user_memberships,
        "memberships": user_memberships + team_members + nestings + team_rows,
        "nestings": nestings,
        "team_group_rows": team_rows,
        "seconds": inserted.as_secs_f64(),
        "analyze_seconds": analyze_s,
        "foreign_key_checks": fk_checks,
        "admin_user": 1,
        "member_user": 2,
        "member_user_groups": counts[2],
        "outsider_user": 3,
        "team_user": a.users,
        "team": 1,
        "nest_depth": DEPTH,
        "nest_outer": name(chain[0]),
        "nest_inner": name(chain[DEPTH - 1]),
        // Bulk group 1 is private (odd) and has user 2 (below --heavy-groups, or at least
        // user 2 is in group 0, which is public).
        "private_group": name(bulk_ids[if a.heavy_groups > 1 { 1 } else { 0 }]),
        "public_group": name(bulk_ids[0]),
        // Up to 1,000 groups of the tenant, for reads over many keys.
        "group_sample": bulk_ids.iter().take(1000).map(|&id| name(id)).collect::<Vec<_>>(),
        "create_tenants": create_tenants,
        "create_users": a.create_users,
    });
    if let Some(secret) = &a.jwt_secret {
        let s = secret.as_bytes();
        let mint = |tenant: i64, user: i64, admin: bool| {
            group_service::auth::mint_hs256(s, tenant, &user.to_string(), admin, false, a.token_ttl)
        };
        out["tokens"] = json!({
            "admin": mint(t, 1, true)?,
            "member": mint(t, 2, false)?,
            "outsider": mint(t, 3, false)?,
            "create_admins": create_tenants
                .iter()
                .map(|c| mint(*c, 1, true))
                .collect::<anyhow::Result<Vec<_>>>()?,
        });
    }
    Ok(out)
}
