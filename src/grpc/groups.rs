//! `groups.v1.GroupService`.

use super::convert::{Autocomplete, DeleteFeatureData, DeleteGroup, FeatureUsage, Query};
use super::pb;
use super::pb::group_service_server::GroupService;
use crate::domain::Service;
use crate::domain::external::ConvertRoom;
use crate::domain::groups::CreateGroup;
use crate::domain::names::{GroupPath, TenantName};
use crate::domain::settings::UpdateGroup;

pub struct GroupApi {
    service: Service,
}

impl GroupApi {
    pub fn new(service: Service) -> Self {
        GroupApi { service }
    }
}

handlers! {
    impl GroupService for GroupApi |s, caller| {
        create_group(pb::CreateGroupRequest) -> pb::Group =
            |cmd: CreateGroup| s.create_group(caller, cmd).await?;
        get_group(pb::GetGroupRequest) -> pb::Group =
            |g: GroupPath| s.get_group(caller, g.tenant, g.group).await?;
        delete_group(pb::DeleteGroupRequest) -> () =
            |d: DeleteGroup| s.delete_group(caller, d.name.tenant, d.name.group, d.etag).await?;
        update_group(pb::UpdateGroupRequest) -> pb::Group =
            |cmd: UpdateGroup| s.update_group(caller, cmd).await?;
        list_groups(pb::ListGroupsRequest) -> pb::ListGroupsResponse =
            |q: Query| s.list_groups(caller, q.tenant, q.text, q.page).await?;
        search_groups(pb::SearchGroupsRequest) -> pb::SearchGroupsResponse =
            |q: Query| s.search_groups(caller, q.tenant, q.text, q.page).await?;
        autocomplete_groups(pb::AutocompleteGroupsRequest) -> pb::AutocompleteGroupsResponse =
            |a: Autocomplete| s.autocomplete_groups(caller, a.tenant, a.prefix, a.limit).await?;
        delete_feature_data(pb::DeleteFeatureDataRequest) -> pb::Group =
            |d: DeleteFeatureData| {
                s.delete_feature_data(caller, d.name.tenant, d.name.group, d.features).await?
            };
        report_feature_usage(pb::ReportFeatureUsageRequest) -> pb::ReportFeatureUsageResponse =
            |u: FeatureUsage| {
                let (tenant, group) = (u.name.tenant, u.name.group);
                s.report_feature_usage(caller, tenant, group, u.feature, u.bytes).await?
            };
        convert_message_room(pb::ConvertMessageRoomRequest) -> pb::Group =
            |cmd: ConvertRoom| s.convert_room(caller, cmd).await?;
        get_tenant_usage(pb::GetTenantUsageRequest) -> pb::TenantUsage =
            |t: TenantName| s.tenant_usage(caller, t.tenant).await?;
    }
}
