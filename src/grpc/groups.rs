//! `groups.v1.GroupService`.

use tonic::{Request, Response, Status};

use super::convert::{invalid, page, parse_group_name, parse_parent};
use super::pb;
use super::pb::group_service_server::GroupService;
use super::{caller, to_status};
use crate::domain::Service;
use crate::domain::external::{ConvertRoom, over_quota};
use crate::domain::groups::CreateGroup;
use crate::domain::settings::{DataFeature, UpdateGroup};

pub struct GroupApi {
    service: Service,
}

impl GroupApi {
    pub fn new(service: Service) -> Self {
        GroupApi { service }
    }
}

#[tonic::async_trait]
impl GroupService for GroupApi {
    async fn create_group(
        &self,
        req: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let caller = caller(&req)?;
        let cmd: CreateGroup = req.into_inner().try_into()?;
        let group = self
            .service
            .create_group(&caller, cmd)
            .await
            .map_err(to_status)?;
        Ok(Response::new(group.into()))
    }

    async fn get_group(
        &self,
        req: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let caller = caller(&req)?;
        let (tenant, id) = parse_group_name("name", &req.get_ref().name)?;
        let group = self
            .service
            .get_group(&caller, tenant, id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(group.into()))
    }

    async fn delete_group(
        &self,
        req: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, id) = parse_group_name("name", &r.name)?;
        let etag = Some(r.etag).filter(|e| !e.is_empty());
        self.service
            .delete_group(&caller, tenant, id, etag)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn update_group(
        &self,
        req: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let caller = caller(&req)?;
        let cmd: UpdateGroup = req.into_inner().try_into()?;
        let group = self
            .service
            .update_group(&caller, cmd)
            .await
            .map_err(to_status)?;
        Ok(Response::new(group.into()))
    }

    async fn list_groups(
        &self,
        req: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let tenant = parse_parent("parent", &r.parent)?;
        let (groups, next_page_token) = self
            .service
            .list_groups(&caller, tenant, r.filter, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn search_groups(
        &self,
        req: Request<pb::SearchGroupsRequest>,
    ) -> Result<Response<pb::SearchGroupsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let tenant = parse_parent("parent", &r.parent)?;
        let (groups, next_page_token) = self
            .service
            .search_groups(&caller, tenant, r.query, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SearchGroupsResponse {
            groups: groups.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn autocomplete_groups(
        &self,
        req: Request<pb::AutocompleteGroupsRequest>,
    ) -> Result<Response<pb::AutocompleteGroupsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let tenant = parse_parent("parent", &r.parent)?;
        let groups = self
            .service
            .autocomplete_groups(&caller, tenant, r.prefix, r.limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AutocompleteGroupsResponse {
            groups: groups.into_iter().map(Into::into).collect(),
        }))
    }

    async fn delete_feature_data(
        &self,
        req: Request<pb::DeleteFeatureDataRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, id) = parse_group_name("name", &r.name)?;
        let mut features = Vec::with_capacity(r.features.len());
        for (i, f) in r.features.iter().enumerate() {
            features.push(match pb::DataFeature::try_from(*f) {
                Ok(pb::DataFeature::Note) => DataFeature::Note,
                Ok(pb::DataFeature::Event) => DataFeature::Event,
                Ok(pb::DataFeature::Folder) => DataFeature::Folder,
                _ => {
                    return Err(invalid(
                        &format!("features[{i}]"),
                        "must be NOTE, EVENT or FOLDER",
                    ));
                }
            });
        }
        let group = self
            .service
            .delete_feature_data(&caller, tenant, id, features)
            .await
            .map_err(to_status)?;
        Ok(Response::new(group.into()))
    }

    async fn report_feature_usage(
        &self,
        req: Request<pb::ReportFeatureUsageRequest>,
    ) -> Result<Response<pb::ReportFeatureUsageResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, id) = parse_group_name("name", &r.name)?;
        let (group, owner) = self
            .service
            .report_feature_usage(&caller, tenant, id, r.feature, r.bytes)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReportFeatureUsageResponse {
            group: Some(group.into()),
            over_quota: over_quota(&owner),
            tenant_storage_used_bytes: owner.storage_used_bytes,
            tenant_storage_quota_bytes: owner.storage_quota_bytes,
        }))
    }

    async fn convert_message_room(
        &self,
        req: Request<pb::ConvertMessageRoomRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let caller = caller(&req)?;
        let cmd: ConvertRoom = req.into_inner().try_into()?;
        let created = self
            .service
            .convert_room(&caller, cmd)
            .await
            .map_err(to_status)?;
        Ok(Response::new(created.into()))
    }

    async fn get_tenant_usage(
        &self,
        req: Request<pb::GetTenantUsageRequest>,
    ) -> Result<Response<pb::TenantUsage>, Status> {
        let caller = caller(&req)?;
        let tenant = parse_parent("name", &req.get_ref().name)?;
        let usage = self
            .service
            .tenant_usage(&caller, tenant)
            .await
            .map_err(to_status)?;
        Ok(Response::new(usage.into()))
    }
}
