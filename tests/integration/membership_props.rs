//! MembershipService against a small in-memory model (R05, R21, R22): random AddMembers and
//! RemoveMembers over a few users, teams and groups, then every CheckMembership and
//! ListEffectiveMembers compared with the model.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use proptest::prelude::*;
use tonic_types::StatusExt;

use crate::fixtures::*;
use crate::harness::*;

const T: i64 = 1;
/// Users 2..=5 (user 1 is the admin who makes the calls).
const USERS: usize = 4;
const TEAMS: usize = 2;
const GROUPS: usize = 5;
/// The users of each team, as indexes into the users.
const TEAM_USERS: [&[usize]; TEAMS] = [&[0, 1], &[1, 2]];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum M {
    User(usize),
    Team(usize),
    Group(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Add(usize, Vec<M>),
    Remove(usize, Vec<M>),
}

fn user_id(i: usize) -> i64 {
    i as i64 + 2
}

fn team_id(i: usize) -> i64 {
    i as i64 + 10
}

/// Group `g`'s only master, one of the modelled users.
fn master_of(g: usize) -> usize {
    g % USERS
}

fn member() -> impl Strategy<Value = M> {
    prop_oneof![
        (0..USERS).prop_map(M::User),
        (0..TEAMS).prop_map(M::Team),
        (0..GROUPS).prop_map(M::Group),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        0..GROUPS,
        prop::collection::vec(member(), 1..=3),
    )
        .prop_map(|(add, g, ms)| {
            if add {
                Op::Add(g, ms)
            } else {
                Op::Remove(g, ms)
            }
        })
}

/// Direct members of each group; each group's master never changes (only AddMembers and
/// RemoveMembers run), so removing it is always the last master going.
struct Model {
    direct: Vec<BTreeSet<M>>,
}

impl Model {
    fn new() -> Self {
        Model {
            direct: (0..GROUPS)
                .map(|g| BTreeSet::from([M::User(master_of(g))]))
                .collect(),
        }
    }

    /// Whether `to` is `from` or nested in it, at any depth.
    fn contains_group(&self, from: usize, to: usize) -> bool {
        from == to
            || self.direct[from]
                .iter()
                .any(|m| matches!(m, M::Group(x) if self.contains_group(*x, to)))
    }

    /// The answer the service should give: the reason of a refusal, or the change made.
    fn apply(&mut self, op: &Op) -> Result<(), &'static str> {
        match op {
            Op::Add(g, ms) => {
                let ms: BTreeSet<M> = ms.iter().copied().collect();
                let new: Vec<M> = ms
                    .iter()
                    .filter(|m| !self.direct[*g].contains(m))
                    .copied()
                    .collect();
                // R21: with five groups the depth never reaches ten, so only cycles are refused.
                if new
                    .iter()
                    .any(|m| matches!(m, M::Group(x) if self.contains_group(*x, *g)))
                {
                    return Err("MEMBERSHIP_CYCLE");
                }
                if new.is_empty() {
                    return Err("ALREADY_MEMBER");
                }
                self.direct[*g].extend(new);
                Ok(())
            }
            Op::Remove(g, ms) => {
                let present: BTreeSet<M> = ms
                    .iter()
                    .filter(|m| self.direct[*g].contains(m))
                    .copied()
                    .collect();
                if present.contains(&M::User(master_of(*g))) {
                    return Err("LAST_MASTER");
                }
                if present.is_empty() {
                    return Err("NOT_A_MEMBER");
                }
                self.direct[*g].retain(|m| !present.contains(m));
                Ok(())
            }
        }
    }

    /// R22: user indexes reached directly, through teams and through nested groups.
    fn effective(&self, g: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for m in &self.direct[g] {
            match m {
                M::User(u) => {
                    out.insert(*u);
                }
                M::Team(t) => out.extend(TEAM_USERS[*t].iter().copied()),
                M::Group(x) => out.extend(self.effective(*x)),
            }
        }
        out
    }
}

fn to_ref(m: M, groups: &[String]) -> pb::MemberRef {
    match m {
        M::User(u) => user_member(user_id(u)),
        M::Team(t) => team_member(team_id(t)),
        M::Group(g) => group_member(&groups[g]),
    }
}

/// The ErrorInfo reason of a refusal.
fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| format!("{:?} without ErrorInfo: {status:?}", status.code()))
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let Some(srv) = TestServer::start().await else {
        return Ok(());
    };
    srv.company(T, 1 + USERS as i64).await;
    for (t, users) in TEAM_USERS.iter().enumerate() {
        let users: Vec<i64> = users.iter().map(|u| user_id(*u)).collect();
        srv.team(T, team_id(t), &users).await;
    }
    let mut groups = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let master = user_id(master_of(g));
        groups.push(
            group(T, &format!("G{g}"))
                .master(master)
                .create(&srv)
                .await
                .name,
        );
    }

    let mut model = Model::new();
    let mut c = srv.membership(T, 1, true);
    for (i, op) in ops.iter().enumerate() {
        let want = model.apply(op);
        let got = match op {
            Op::Add(g, ms) => {
                let members = ms.iter().map(|m| to_ref(*m, &groups)).collect();
                add(&mut c, &groups[*g], members).await.map(drop)
            }
            Op::Remove(g, ms) => {
                let members = ms.iter().map(|m| to_ref(*m, &groups)).collect();
                remove(&mut c, &groups[*g], members).await.map(drop)
            }
        };
        let got = got.map_err(|e| reason(&e));
        prop_assert_eq!(got, want.map_err(str::to_owned), "op {} {:?}", i, op);
    }

    for (g, name) in groups.iter().enumerate() {
        let want = model.effective(g);
        for u in 0..USERS {
            prop_assert_eq!(
                check(&mut c, name, user_id(u)).await,
                (
                    want.contains(&u),
                    master_of(g) == u,
                    model.direct[g].contains(&M::User(u)),
                ),
                "group {} user {}",
                g,
                u
            );
        }
        let listed: Vec<i64> = effective_of(&mut c, name, 100).await;
        let want: Vec<i64> = want.into_iter().map(user_id).collect();
        prop_assert_eq!(listed, want, "effective members of group {}", g);
    }
    srv.stop().await;
    Ok(())
}

proptest! {
    // Each case starts a server over a new database: few cases, and a failure is reported
    // with its shrunk ops rather than saved to a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn r22_membership_matches_a_model_after_random_changes(
        ops in prop::collection::vec(op(), 20)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run_case(ops))?;
    }
}
