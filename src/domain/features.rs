//! Message-room features' data: R09 (DeleteFeatureData: only where data exists, cannot be
//! undone, the owning services are told) and the usage reports that R19 charges to the
//! tenant owning the group.

use std::collections::BTreeSet;

use super::access::{Capability, Lock, locate, may, standing, visible_group};
use super::caller::Caller;
use super::error::{Error, Reason, Result, Violations};
use super::events::{EventKind, FeatureDataPurged, FeatureUsageReported, PurgedFeature, emit};
use super::limits::MAX_REPORTED_BYTES;
use super::model::*;
use super::operation::Operation;
use super::service::Service;

/// The features whose data size other services report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    Message,
    Note,
    Event,
    Task,
    Folder,
}

impl Feature {
    pub const ALL: [Feature; 5] = [
        Feature::Message,
        Feature::Note,
        Feature::Event,
        Feature::Task,
        Feature::Folder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Message => "message",
            Feature::Note => "note",
            Feature::Event => "event",
            Feature::Task => "task",
            Feature::Folder => "folder",
        }
    }

    pub fn parse(s: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The feature data kinds that can be deleted (R09).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataFeature {
    Note,
    Event,
    Folder,
}

impl DataFeature {
    pub fn feature(self) -> Feature {
        match self {
            DataFeature::Note => Feature::Note,
            DataFeature::Event => Feature::Event,
            DataFeature::Folder => Feature::Folder,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.feature().as_str()
    }
}

impl Service {
    /// Deletes the data of note, event or folder (R09): only where data exists; cannot be
    /// undone. Records the purge as an event that tells the owning services.
    pub async fn delete_feature_data(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        features: Vec<DataFeature>,
    ) -> Result<Group> {
        if features.is_empty() {
            return Err(Error::invalid(
                "features",
                "name at least one of note, event, folder",
            ));
        }
        let features: BTreeSet<DataFeature> = features.into_iter().collect();
        self.write(
            Operation::DeleteFeatureData,
            caller,
            (group, features),
            |tx, actor, (group, features)| {
                Box::pin(async move {
                    let group = visible_group(tx, actor, tenant, group, Lock::ForUpdate).await?;
                    let id = group.id;
                    let standing = standing(tx, actor, &group).await?;
                    if !may(standing, &group, Capability::RoomFeature) {
                        return Err(Error::permission(
                            Reason::NotGroupManager,
                            "the caller may not manage this group's features",
                        ));
                    }
                    let usage = tx.feature_usage(tenant, id).await?;
                    let now = tx.now();
                    let mut purged = Vec::new();
                    for &f in features {
                        let bytes = usage
                            .iter()
                            .find(|(name, _)| name == f.as_str())
                            .map_or(0, |(_, b)| *b);
                        if bytes <= 0 {
                            return Err(Error::precondition(
                                Reason::NoFeatureData,
                                format!("the group has no {} data", f.as_str()),
                            ));
                        }
                        tx.set_feature_usage(tenant, id, f.as_str(), 0, now).await?;
                        tx.add_storage(tenant, id, -bytes).await?;
                        let feature = f.as_str();
                        purged.push(PurgedFeature { feature, bytes });
                    }
                    tx.touch_group(tenant, id, now).await?;
                    let group_name = group.resource_name();
                    let kind = EventKind::FeatureDataPurged(FeatureDataPurged {
                        group: group_name,
                        purged,
                    });
                    emit(tx, &group, kind, now).await?;
                    tx.get_group(tenant, id)
                        .await?
                        .ok_or(Error::NotFound("group"))
                })
            },
        )
        .await
    }

    /// A service of the owning tenant reports how much data a feature holds for a group.
    /// R19: an external group's data counts against the tenant that owns it. A report is
    /// recorded even when it takes the tenant over its quota (the data exists already); the
    /// answer carries the tenant so the caller sees it is over.
    pub async fn report_feature_usage(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        feature: String,
        bytes: i64,
    ) -> Result<(Group, Tenant)> {
        caller.require_service_of(tenant)?;
        let mut v = Violations::default();
        let parsed = Feature::parse(&feature);
        v.check(parsed.is_some(), "feature", || {
            "must be message, note, event, task or folder".into()
        });
        v.check((0..=MAX_REPORTED_BYTES).contains(&bytes), "bytes", || {
            format!("must be 0-{MAX_REPORTED_BYTES}")
        });
        v.finish()?;
        let feature = parsed.ok_or_else(|| Error::invalid("feature", "unknown feature"))?;
        self.write(
            Operation::ReportFeatureUsage,
            caller,
            group,
            |tx, _, group| {
                Box::pin(async move {
                    let id = locate(tx, tenant, group).await?;
                    let group = tx
                        .lock_group(tenant, id)
                        .await?
                        .ok_or(Error::NotFound("group"))?;
                    let now = tx.now();
                    let name = feature.as_str();
                    let old = tx.set_feature_usage(tenant, id, name, bytes, now).await?;
                    tx.add_storage(tenant, id, bytes - old).await?;
                    let report = FeatureUsageReported {
                        group: group.resource_name(),
                        feature: name,
                        bytes,
                    };
                    emit(tx, &group, EventKind::FeatureUsageReported(report), now).await?;
                    let group = tx
                        .get_group(tenant, id)
                        .await?
                        .ok_or(Error::NotFound("group"))?;
                    let owner = tx
                        .get_tenant(tenant)
                        .await?
                        .ok_or(Error::NotFound("tenant"))?;
                    Ok((group, owner))
                })
            },
        )
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn r09_every_feature_parses_from_its_name() {
        for f in Feature::ALL {
            assert_eq!(Feature::parse(f.as_str()), Some(f));
        }
        assert_eq!(Feature::parse("mailing_list"), None);
        assert_eq!(DataFeature::Folder.feature(), Feature::Folder);
    }
}
