//! The one Diesel schema both backends share (see migrations/).

diesel::table! {
    tenants (tenant_id) {
        tenant_id -> BigInt,
        display_name -> Text,
        plan -> Text,
        core_enabled -> Bool,
        group_creation -> Text,
        masters_may_manage_settings -> Bool,
        storage_quota_bytes -> BigInt,
        storage_used_bytes -> BigInt,
        group_count -> BigInt,
        create_time -> BigInt,
        update_time -> BigInt,
    }
}

diesel::table! {
    users (tenant_id, user_id) {
        tenant_id -> BigInt,
        user_id -> BigInt,
        email -> Text,
        display_name -> Text,
        is_admin -> Bool,
        external_messaging_allowed -> Bool,
        kind -> Text,
        direct_group_count -> BigInt,
    }
}

diesel::table! {
    teams (tenant_id, team_id) {
        tenant_id -> BigInt,
        team_id -> BigInt,
        display_name -> Text,
        email -> Text,
    }
}

diesel::table! {
    team_members (tenant_id, team_id, user_id) {
        tenant_id -> BigInt,
        team_id -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    contacts (tenant_id, user_id, contact_tenant_id, contact_user_id) {
        tenant_id -> BigInt,
        user_id -> BigInt,
        contact_tenant_id -> BigInt,
        contact_user_id -> BigInt,
    }
}

diesel::table! {
    groups (tenant_id, group_id) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        display_name -> Text,
        name_key -> Text,
        description -> Text,
        photo_uri -> Text,
        kind -> Text,
        is_public -> Bool,
        use_message -> Bool,
        use_note -> Bool,
        use_event -> Bool,
        use_task -> Bool,
        use_folder -> Bool,
        notify_all_members -> Bool,
        master_manages_features -> Bool,
        external_key -> Nullable<Text>,
        storage_used_bytes -> BigInt,
        version -> BigInt,
        create_time -> BigInt,
        update_time -> BigInt,
        search_text -> Text,
        mailing_list -> Nullable<Text>,
        ml_block_external -> Bool,
        message_purge_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    group_user_members (tenant_id, group_id, user_tenant_id, user_id) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        user_tenant_id -> BigInt,
        user_id -> BigInt,
        is_master -> Bool,
        add_time -> BigInt,
        expire_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    group_team_members (tenant_id, group_id, team_id) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        team_id -> BigInt,
        add_time -> BigInt,
        expire_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    group_group_members (tenant_id, group_id, member_group_id) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        member_group_id -> BigInt,
        add_time -> BigInt,
        expire_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    message_rooms (tenant_id, room_id) {
        tenant_id -> BigInt,
        room_id -> BigInt,
        display_name -> Text,
        converted_group_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    room_members (tenant_id, room_id, user_tenant_id, user_id) {
        tenant_id -> BigInt,
        room_id -> BigInt,
        user_tenant_id -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    create_requests (tenant_id, request_id) {
        tenant_id -> BigInt,
        request_id -> Text,
        fingerprint -> Text,
        group_id -> BigInt,
        create_time -> BigInt,
    }
}

diesel::table! {
    events (tenant_id, event_id) {
        tenant_id -> BigInt,
        event_id -> BigInt,
        group_id -> Nullable<BigInt>,
        kind -> Text,
        payload -> Text,
        create_time -> BigInt,
        seq -> BigInt,
        actor -> Text,
        published -> Bool,
    }
}

diesel::table! {
    event_sequences (tenant_id) {
        tenant_id -> BigInt,
        last_seq -> BigInt,
        pruned_seq -> BigInt,
    }
}

diesel::table! {
    relay_lease (name) {
        name -> Text,
        holder -> Text,
        expires -> BigInt,
    }
}

diesel::table! {
    batch_requests (tenant_id, request_id) {
        tenant_id -> BigInt,
        request_id -> Text,
        fingerprint -> Text,
        response -> Text,
        create_time -> BigInt,
    }
}

diesel::table! {
    mailing_list_senders (tenant_id, group_id, user_tenant_id, user_id) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        user_tenant_id -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    mailing_list_recipients (tenant_id, group_id, address) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        address -> Text,
    }
}

diesel::table! {
    feature_usage (tenant_id, group_id, feature) {
        tenant_id -> BigInt,
        group_id -> BigInt,
        feature -> Text,
        bytes -> BigInt,
        update_time -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    users,
    teams,
    team_members,
    contacts,
    groups,
    group_user_members,
    group_team_members,
    group_group_members,
    message_rooms,
    room_members,
    create_requests,
    events,
    event_sequences,
    relay_lease,
    batch_requests,
    mailing_list_senders,
    mailing_list_recipients,
    feature_usage,
);
