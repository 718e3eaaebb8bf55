//! Every operation the service runs through its seam (`Service::read`, `write`,
//! `read_resolving`, `background`), by a typed name: the name is the operation's metric label
//! (`group_service_db_operation_seconds{operation}`) and its span's name, so a label cannot be
//! misspelled or given to two operations.

macro_rules! operations {
    ($($(#[$doc:meta])* $op:ident = $label:literal,)*) => {
        /// An operation of the service (module doc).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[$doc])* $op,)*
        }

        impl Operation {
            /// Every operation, for tests and dashboards.
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)*];

            /// The metric label and span name.
            pub fn label(self) -> &'static str {
                match self {
                    $(Operation::$op => $label,)*
                }
            }
        }
    };
}

operations! {
    // A caller's calls.
    AddContact = "add_contact",
    AddMasters = "add_masters",
    AddMembers = "add_members",
    AutocompleteGroups = "autocomplete_groups",
    BatchCheckMembership = "batch_check_membership",
    CheckMembership = "check_membership",
    ConvertRoom = "convert_room",
    CreateGroup = "create_group",
    DeleteFeatureData = "delete_feature_data",
    DeleteGroup = "delete_group",
    DeleteRoom = "delete_room",
    DeleteTeam = "delete_team",
    DeleteTenant = "delete_tenant",
    DeleteUser = "delete_user",
    GetGroup = "get_group",
    GetRoom = "get_room",
    GetTeam = "get_team",
    GetTenant = "get_tenant",
    GetUser = "get_user",
    Leave = "leave",
    ListAuditEvents = "list_audit_events",
    ListContacts = "list_contacts",
    ListGroupNamesOfUser = "list_group_names_of_user",
    ListGroups = "list_groups",
    ListGroupsOfUser = "list_groups_of_user",
    ListMembers = "list_members",
    ListRooms = "list_rooms",
    ListTeams = "list_teams",
    ListTenants = "list_tenants",
    ListUsers = "list_users",
    ListUsersOf = "list_users_of",
    RemoveContact = "remove_contact",
    RemoveMasters = "remove_masters",
    RemoveMembers = "remove_members",
    ReportFeatureUsage = "report_feature_usage",
    SearchGroups = "search_groups",
    SetMembersExpiry = "set_members_expiry",
    TenantUsage = "tenant_usage",
    UpdateGroup = "update_group",
    UpsertRoom = "upsert_room",
    UpsertTeam = "upsert_team",
    UpsertTenant = "upsert_tenant",
    UpsertUser = "upsert_user",
    WatchEvents = "watch_events",
    // The service's own work: timers, retention, the relay, the cache's horizon.
    EarliestCursor = "earliest_cursor",
    FindDueMessagePurges = "find_due_message_purges",
    FindExpiredMembers = "find_expired_members",
    FindPrunableEvents = "find_prunable_events",
    NextExpiry = "next_expiry",
    PruneEvents = "prune_events",
    PurgeMessageData = "purge_message_data",
    RelayClaim = "relay_claim",
    RelayLag = "relay_lag",
    RelayPublished = "relay_published",
    SweepExpiredMembers = "sweep_expired_members",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case() {
        let labels: std::collections::BTreeSet<&str> =
            Operation::ALL.iter().map(|op| op.label()).collect();
        assert_eq!(labels.len(), Operation::ALL.len());
        for label in labels {
            assert!(
                label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
        }
    }
}
