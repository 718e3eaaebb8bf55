//! Group settings: UpdateGroup with update mask and etag (fields changed by whom: the R06
//! matrix in `access`), R07 (external groups are private), R08 (features need message) and
//! R10 (the mailing list).

use std::time::Duration;

use super::access::{Capability, Lock, may, standing, visible_group};
use super::caller::{Actor, Caller};
use super::directory::is_email;
use super::error::{Error, Reason, Result, Violations};
use super::events::{EventKind, GroupUpdated, emit};
use super::grace::follow_message_switch;
use super::groups::{GroupSpec, check_etag, validate_spec};
use super::members::user_subject;
use super::model::*;
use super::names::UserName;
use super::operation::Operation;
use super::repo::Tx;
use super::service::Service;

/// Fields UpdateGroup can change (AIP-134 paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    DisplayName,
    Description,
    PhotoUri,
    Visibility,
    /// All five features.
    Features,
    FeatureMessage,
    FeatureNote,
    FeatureEvent,
    FeatureTask,
    FeatureFolder,
    MailingList,
    NotifyAllMembers,
    MasterManagesFeatures,
    ExternalKey,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::DisplayName,
        Field::Description,
        Field::PhotoUri,
        Field::Visibility,
        Field::Features,
        Field::MailingList,
        Field::NotifyAllMembers,
        Field::MasterManagesFeatures,
        Field::ExternalKey,
    ];

    pub fn parse(path: &str) -> Option<Field> {
        Some(match path {
            "display_name" => Field::DisplayName,
            "description" => Field::Description,
            "photo_uri" => Field::PhotoUri,
            "visibility" => Field::Visibility,
            "features" => Field::Features,
            "features.message" => Field::FeatureMessage,
            "features.note" => Field::FeatureNote,
            "features.event" => Field::FeatureEvent,
            "features.task" => Field::FeatureTask,
            "features.folder" => Field::FeatureFolder,
            "mailing_list" => Field::MailingList,
            "notify_all_members" => Field::NotifyAllMembers,
            "master_manages_features" => Field::MasterManagesFeatures,
            "external_key" => Field::ExternalKey,
            _ => return None,
        })
    }

    /// Who may change the field (R06).
    fn capability(self) -> Capability {
        match self {
            Field::DisplayName | Field::Description | Field::PhotoUri | Field::Visibility => {
                Capability::Basic
            }
            Field::Features
            | Field::FeatureMessage
            | Field::FeatureNote
            | Field::FeatureEvent
            | Field::FeatureTask
            | Field::FeatureFolder
            | Field::MailingList => Capability::RoomFeature,
            // The external key is what the tenant's integrations address the group by.
            Field::NotifyAllMembers | Field::MasterManagesFeatures | Field::ExternalKey => {
                Capability::AdminOnly
            }
        }
    }
}

/// R06 at creation: the fields a new group's settings set that UpdateGroup lets only admins
/// change. A creator who is not an admin may not set them either, or creating a group would
/// grant what updating it refuses (an external key the tenant's integrations act on).
pub(crate) fn admin_fields_set(spec: &GroupSpec) -> Vec<Field> {
    [
        (Field::NotifyAllMembers, spec.notify_all_members),
        (Field::MasterManagesFeatures, spec.master_manages_features),
        (Field::ExternalKey, spec.external_key.is_some()),
    ]
    .into_iter()
    .filter(|(f, set)| *set && f.capability() == Capability::AdminOnly)
    .map(|(f, _)| f)
    .collect()
}

/// What UpdateGroup and CreateGroup answer a caller who may not change or set a field.
pub(crate) fn fields_refused() -> Error {
    Error::permission(
        Reason::NotGroupManager,
        "the caller may not change these fields of this group",
    )
}

#[derive(Clone, Debug)]
pub struct UpdateGroup {
    pub tenant: TenantId,
    pub id: GroupRef,
    /// The new values; only the fields in `mask` are read.
    pub spec: GroupSpec,
    /// The fields to change, sorted: the request's update mask, or the populated fields when
    /// it omits the mask (AIP-134). Empty is refused.
    pub mask: Vec<Field>,
    pub etag: Option<String>,
}

pub const MAX_SENDERS: usize = 100;
pub const MAX_RECIPIENTS: usize = 100;

/// R10: 2-40 characters of `a-z 0-9 . - _ ! #` (upper case is rejected, not folded).
pub fn valid_address(local: &str) -> bool {
    (2..=40).contains(&local.len())
        && local.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '!' | '#')
        })
}

/// Field-level checks of a mailing list.
pub fn validate_mailing_list(list: &MailingList, prefix: &str, v: &mut Violations) {
    v.check(
        valid_address(&list.address),
        &format!("{prefix}mailing_list.address"),
        || "must be 2-40 characters of a-z 0-9 . - _ ! #".into(),
    );
    v.check(
        list.designated_senders.len() <= MAX_SENDERS,
        &format!("{prefix}mailing_list.designated_senders"),
        || format!("at most {MAX_SENDERS}"),
    );
    v.check(
        list.external_recipients.len() <= MAX_RECIPIENTS,
        &format!("{prefix}mailing_list.external_recipients"),
        || format!("at most {MAX_RECIPIENTS}"),
    );
    for (i, r) in list.external_recipients.iter().enumerate() {
        v.check(
            parse_contact(r).is_some() || is_email(r),
            &format!("{prefix}mailing_list.external_recipients[{i}]"),
            || "must be an email address or a contact tenants/{tenant}/users/{user}".into(),
        );
    }
}

/// `tenants/{t}/users/{u}`.
pub fn parse_contact(s: &str) -> Option<UserKey> {
    s.parse::<UserName>().ok().map(UserKey::from)
}

/// Sorts and de-duplicates senders and recipients (after validation named bad entries by
/// their index in the request).
pub fn normalize_mailing_list(list: &mut Option<MailingList>) {
    if let Some(l) = list {
        l.designated_senders.sort();
        l.designated_senders.dedup();
        l.external_recipients.sort();
        l.external_recipients.dedup();
    }
}

/// Rule-level checks of the group's settings as they would be stored: R07 (external groups
/// are private), R08 (features need message), R10 (address free, senders are members,
/// recipient contacts are partners).
pub(crate) async fn check_settings(tx: &mut dyn Tx, group: &Group) -> Result<()> {
    if group.kind == GroupKind::External && group.is_public {
        return Err(Error::precondition(
            Reason::ExternalGroupAlwaysPrivate,
            "external groups are always private",
        ));
    }
    let f = group.features;
    if !f.message && (f.note || f.event || f.task || f.folder) {
        return Err(Error::precondition(
            Reason::MessageRequired,
            "note, event, task and folder need message",
        ));
    }
    if let Some(list) = &group.mailing_list {
        if tx
            .address_in_use(group.tenant, &list.address, group.id)
            .await?
        {
            return Err(Error::precondition(
                Reason::AddressInUse,
                format!(
                    "{} is in use by a user, a team or another group",
                    list.address
                ),
            ));
        }
        for s in &list.designated_senders {
            if tx.user_member(group.tenant, group.id, *s).await?.is_none() {
                return Err(Error::precondition(
                    Reason::SenderNotMember,
                    format!("{} is not a member of the group", user_subject(*s)),
                ));
            }
        }
        for r in &list.external_recipients {
            if let Some(c) = parse_contact(r)
                && (c.tenant == group.tenant || !tx.is_partner_contact(group.tenant, c).await?)
            {
                return Err(Error::precondition(
                    Reason::NotAPartnerContact,
                    format!("{r} is not a partner contact of the tenant"),
                ));
            }
        }
    }
    Ok(())
}

fn apply(group: &mut Group, spec: &GroupSpec, field: Field) {
    match field {
        Field::DisplayName => group.display_name = spec.display_name.clone(),
        Field::Description => group.description = spec.description.clone(),
        Field::PhotoUri => group.photo_uri = spec.photo_uri.clone(),
        Field::Visibility => group.is_public = spec.is_public,
        Field::Features => group.features = spec.features,
        Field::FeatureMessage => group.features.message = spec.features.message,
        Field::FeatureNote => group.features.note = spec.features.note,
        Field::FeatureEvent => group.features.event = spec.features.event,
        Field::FeatureTask => group.features.task = spec.features.task,
        Field::FeatureFolder => group.features.folder = spec.features.folder,
        Field::MailingList => group.mailing_list = spec.mailing_list.clone(),
        Field::NotifyAllMembers => group.notify_all_members = spec.notify_all_members,
        Field::ExternalKey => group.external_key = spec.external_key.clone(),
        Field::MasterManagesFeatures => {
            group.master_manages_features = spec.master_manages_features
        }
    }
}

impl Service {
    /// UpdateGroup (AIP-134 mask, AIP-154 etag). All named fields change, or none.
    pub async fn update_group(&self, caller: &Caller, cmd: UpdateGroup) -> Result<Group> {
        if cmd.mask.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "name the fields to change, or *, or omit it and populate them in group",
            ));
        }
        let mut v = Violations::default();
        let mut probe = cmd.spec.clone();
        // Only masked fields are validated: an unmasked empty name is not a change.
        if !cmd.mask.contains(&Field::DisplayName) {
            probe.display_name = "x".into();
        }
        if !cmd.mask.contains(&Field::MailingList) {
            probe.mailing_list = None;
        }
        if !cmd.mask.contains(&Field::ExternalKey) {
            probe.external_key = None;
        }
        validate_spec(&probe, "group.", &mut v);
        v.finish()?;
        let mut cmd = cmd;
        normalize_mailing_list(&mut cmd.spec.mailing_list);
        let grace = self.message_grace;
        self.write(
            Operation::UpdateGroup,
            caller,
            cmd,
            move |tx, actor, cmd| Box::pin(async move { update_in(tx, actor, cmd, grace).await }),
        )
        .await
    }
}

async fn update_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    cmd: &UpdateGroup,
    grace: Duration,
) -> Result<Group> {
    let mut group = visible_group(tx, actor, cmd.tenant, &cmd.id, Lock::ForUpdate).await?;
    check_etag(&group, cmd.etag.as_deref())?;
    let standing = standing(tx, actor, &group).await?;
    if !cmd
        .mask
        .iter()
        .all(|f| may(standing, &group, f.capability()))
    {
        return Err(fields_refused());
    }
    tx.load_mailing_list(&mut group).await?;
    let before = group.clone();
    for f in &cmd.mask {
        apply(&mut group, &cmd.spec, *f);
    }
    // R08: turning message off turns the features that need it off.
    if cmd.mask.contains(&Field::FeatureMessage) && !group.features.message {
        group.features = Features::default();
    }
    check_settings(tx, &group).await?;
    follow_message_switch(tx, &before, &mut group, grace).await?;
    if group == before {
        return Ok(group);
    }
    let now = tx.now();
    group.version += 1;
    group.update_time = now;
    tx.update_group(&before, &group).await?;
    if group.mailing_list != before.mailing_list {
        tx.save_mailing_list(&group).await?;
    }
    let renamed = group.display_name != before.display_name;
    let notify = if renamed && group.notify_all_members {
        tx.effective_users(group.tenant, group.id).await?
    } else {
        Vec::new()
    };
    let updated = GroupUpdated {
        group: group.resource_name(),
        fields: cmd.mask.iter().map(|f| format!("{f:?}")).collect(),
        previous_name: before.display_name,
        notify,
    };
    let kind = if renamed {
        EventKind::GroupRenamed(updated)
    } else {
        EventKind::GroupUpdated(updated)
    };
    emit(tx, &group, kind, now).await?;
    Ok(group)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn r10_address_local_part_rule() {
        for good in ["ab", "team.dev", "a-b_c!d#e", &"a".repeat(40)] {
            assert!(valid_address(good), "{good}");
        }
        for bad in ["a", "Team", "with space", "a@b", "é1", &"a".repeat(41)] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn r10_contacts_are_tenant_user_names_with_positive_ids() {
        let k = parse_contact("tenants/2/users/9").unwrap();
        assert_eq!((k.tenant, k.user), (TenantId(2), UserId(9)));
        for bad in [
            "tenants/0/users/9",
            "tenants/2/users/x",
            "tenants/2/teams/9",
            "x@y.z",
        ] {
            assert!(parse_contact(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn r06_fields_sort_into_capabilities() {
        assert_eq!(Field::DisplayName.capability(), Capability::Basic);
        assert_eq!(Field::FeatureNote.capability(), Capability::RoomFeature);
        assert_eq!(Field::MailingList.capability(), Capability::RoomFeature);
        assert_eq!(Field::NotifyAllMembers.capability(), Capability::AdminOnly);
        assert_eq!(Field::parse("features.task"), Some(Field::FeatureTask));
        assert_eq!(Field::parse("etag"), None);
    }
}
