//! `groups.v1.GroupService`.

use tonic::{Request, Response, Status};

use super::convert::parse_group_name;
use super::pb;
use super::pb::group_service_server::GroupService;
use super::{caller, to_status};
use crate::domain::Service;
use crate::domain::groups::CreateGroup;

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
}
