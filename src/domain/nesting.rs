//! R21: nested groups never form a cycle, and no chain of group-in-group edges is longer
//! than [`MAX_NESTING`]. The check runs under the tenant's nesting lock
//! (`Tx::lock_nesting`), so two concurrent additions cannot each pass it and together
//! break it.

use super::error::{Error, Reason, Result};
use super::model::{GroupId, TenantId};
use super::repo::Tx;

/// R21: the longest chain of group-in-group edges.
pub const MAX_NESTING: usize = 10;

/// Adding `member` into `parent` must not close a cycle nor make a chain longer than
/// `MAX_NESTING` edges. Both walks are level by level (one query a level, de-duplicated), so
/// their cost grows with the depth and width of the two neighbourhoods, never with the size
/// of the tenant.
pub(crate) async fn check_nesting(
    tx: &mut dyn Tx,
    tenant: TenantId,
    parent: GroupId,
    member: GroupId,
) -> Result<()> {
    if parent == member {
        return Err(cycle("a group cannot contain itself"));
    }
    // Longest chain below `member`, and above `parent`. Levels are de-duplicated within a
    // level only, so a group reached by a short and a long path counts at the long one.
    let mut below = 0;
    let mut frontier = vec![member];
    while below <= MAX_NESTING {
        let next = tx.child_groups(tenant, &frontier).await?;
        if next.contains(&parent) {
            return Err(cycle("the group is already contained in the member group"));
        }
        if next.is_empty() {
            break;
        }
        below += 1;
        frontier = next;
    }
    let mut above = 0;
    let mut frontier = vec![parent];
    while above <= MAX_NESTING {
        let next = tx.parent_groups(tenant, &frontier).await?;
        if next.is_empty() {
            break;
        }
        above += 1;
        frontier = next;
    }
    if above + 1 + below > MAX_NESTING {
        return Err(Error::precondition(
            Reason::NestingTooDeep,
            format!("nested groups may be at most {MAX_NESTING} levels deep"),
        ));
    }
    Ok(())
}

fn cycle(message: &'static str) -> Error {
    Error::precondition(Reason::MembershipCycle, message)
}
