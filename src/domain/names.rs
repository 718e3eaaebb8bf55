//! Resource names of the API, one small type per resource: `Display` writes the canonical text
//! (`tenants/{tenant}/groups/{group}`), `FromStr` reads it back, and `parse(field, text)` turns
//! a bad name into the INVALID_ARGUMENT violation that names the request field.

use std::fmt;
use std::str::FromStr;

use super::error::Error;
use super::model::{GroupId, GroupRef, RoomId, TeamId, TenantId, UserId, UserKey};
use super::text::quote;

/// Why a text is not the resource name it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The text does not have the resource's shape; holds the pattern, e.g. `tenants/{tenant}`.
    Shape(&'static str),
    /// A segment where an id belongs is not a positive integer; holds that segment.
    Id(String),
    /// The external key after `key:` breaks the key rule; holds why.
    Key(String),
}

impl NameError {
    /// The violation of `field` that the API answers for this error.
    pub fn at(self, field: &str) -> Error {
        Error::invalid(field, self.to_string())
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Shape(pattern) => write!(f, "must be {pattern}"),
            NameError::Id(segment) => write!(f, "{} is not a positive id", quote(segment)),
            NameError::Key(problem) => write!(f, "external key {problem}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Reads the ids of a name shaped like `pattern` (literal collections at even positions, ids at
/// odd ones). The shape is checked before any id, and ids are checked in order.
fn parse_ids<const N: usize>(text: &str, pattern: &'static str) -> Result<[i64; N], NameError> {
    let parts: Vec<&str> = text.split('/').collect();
    let shape: Vec<&str> = pattern.split('/').collect();
    let same_shape =
        parts.len() == shape.len() && parts.iter().zip(&shape).step_by(2).all(|(p, s)| p == s);
    if !same_shape || parts.len() != 2 * N {
        return Err(NameError::Shape(pattern));
    }
    let mut ids = [0; N];
    for (id, segment) in ids.iter_mut().zip(parts.iter().skip(1).step_by(2)) {
        *id = canonical_id(segment).ok_or_else(|| NameError::Id((*segment).to_owned()))?;
    }
    Ok(ids)
}

/// A positive id written the one way `Display` writes it: ASCII digits, no sign, no leading
/// zero. `groups/+5` and `groups/05` would otherwise name group 5 under a second name.
fn canonical_id(segment: &str) -> Option<i64> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if !digits || segment.starts_with('0') {
        return None;
    }
    segment.parse::<i64>().ok()
}

/// Writes `pattern` with its placeholders (odd positions) replaced by `ids`, in order.
fn write_name(f: &mut fmt::Formatter<'_>, pattern: &str, ids: &[i64]) -> fmt::Result {
    for (i, part) in pattern.split('/').enumerate() {
        if i > 0 {
            f.write_str("/")?;
        }
        if i % 2 == 1 {
            write!(f, "{}", ids[i / 2])?;
        } else {
            f.write_str(part)?;
        }
    }
    Ok(())
}

macro_rules! resource_names {
    ($(
        $(#[$doc:meta])*
        $name:ident = $pattern:literal { $($field:ident: $id:ident),+ }
    )*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            $(pub $field: $id,)+
        }

        impl $name {
            /// The name's shape, as error messages show it.
            pub const PATTERN: &'static str = $pattern;

            /// Reads the name given in request field `field`.
            pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
                text.parse().map_err(|e: NameError| e.at(field))
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, NameError> {
                let [$($field),+] = parse_ids(text, Self::PATTERN)?;
                Ok($name { $($field: $id($field)),+ })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_name(f, Self::PATTERN, &[$(self.$field.0),+])
            }
        }
    )*};
}

resource_names! {
    /// A tenant (company).
    TenantName = "tenants/{tenant}" { tenant: TenantId }
    /// A user of a tenant; partner contacts are named this way.
    UserName = "tenants/{tenant}/users/{user}" { tenant: TenantId, user: UserId }
    /// A team (org unit) of a tenant.
    TeamName = "tenants/{tenant}/teams/{team}" { tenant: TenantId, team: TeamId }
    /// A group of a tenant.
    GroupName = "tenants/{tenant}/groups/{group}" { tenant: TenantId, group: GroupId }
    /// A general message room of a tenant.
    RoomName = "tenants/{tenant}/rooms/{room}" { tenant: TenantId, room: RoomId }
}

/// The most characters an external key holds.
pub const MAX_EXTERNAL_KEY_CHARS: usize = 100;

/// Characters an external key may not hold (the product's rule): they would make its resource
/// name ambiguous in a path or a URL.
pub const EXTERNAL_KEY_FORBIDDEN: [char; 5] = ['/', '%', '#', '?', '\\'];

/// Why `key` is not an external key: 1-100 characters, none of `/ % # ? \`.
pub fn external_key_problem(key: &str) -> Option<String> {
    let n = key.chars().count();
    if n == 0 || n > MAX_EXTERNAL_KEY_CHARS {
        return Some(format!(
            "must be 1-{MAX_EXTERNAL_KEY_CHARS} characters, is {n}"
        ));
    }
    key.chars()
        .find(|c| EXTERNAL_KEY_FORBIDDEN.contains(c))
        .map(|c| format!("must not contain {c:?} (none of / % # ? \\)"))
}

/// A group named by id (`tenants/{tenant}/groups/{group}`) or by its external key
/// (`tenants/{tenant}/groups/key:{key}`). The key is written as it is: it cannot hold `/`, `%`,
/// `#`, `?` or `\`, so it needs no escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupPath {
    pub tenant: TenantId,
    pub group: GroupRef,
}

impl GroupPath {
    pub const PATTERN: &'static str =
        "tenants/{tenant}/groups/{group} or tenants/{tenant}/groups/key:{external_key}";

    /// Reads the group named in request field `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        text.parse().map_err(|e: NameError| e.at(field))
    }
}

impl From<GroupName> for GroupPath {
    fn from(n: GroupName) -> Self {
        GroupPath {
            tenant: n.tenant,
            group: GroupRef::Id(n.group),
        }
    }
}

impl FromStr for GroupPath {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = text.splitn(4, '/').collect();
        let [collection, tenant, groups, group] = parts[..] else {
            return Err(NameError::Shape(Self::PATTERN));
        };
        if collection != "tenants" || groups != "groups" || group.contains('/') {
            return Err(NameError::Shape(Self::PATTERN));
        }
        let tenant = canonical_id(tenant).ok_or_else(|| NameError::Id(tenant.to_owned()))?;
        let group = match group.strip_prefix("key:") {
            Some(key) => {
                if let Some(problem) = external_key_problem(key) {
                    return Err(NameError::Key(problem));
                }
                GroupRef::Key(key.to_owned())
            }
            None => GroupRef::Id(GroupId(
                canonical_id(group).ok_or_else(|| NameError::Id(group.to_owned()))?,
            )),
        };
        Ok(GroupPath {
            tenant: TenantId(tenant),
            group,
        })
    }
}

impl fmt::Display for GroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenants/{}/groups/{}", self.tenant, self.group)
    }
}

impl From<UserKey> for UserName {
    fn from(k: UserKey) -> Self {
        UserName {
            tenant: k.tenant,
            user: k.user,
        }
    }
}

impl From<UserName> for UserKey {
    fn from(n: UserName) -> Self {
        UserKey {
            tenant: n.tenant,
            user: n.user,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::error::FieldViolation;

    fn violation(err: Error) -> FieldViolation {
        match err {
            Error::InvalidArgument(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("not one violation: {other:?}"),
        }
    }

    #[test]
    fn names_print_canonically_and_read_back() {
        let group = GroupName {
            tenant: TenantId(1),
            group: GroupId(42),
        };
        assert_eq!(group.to_string(), "tenants/1/groups/42");
        assert_eq!("tenants/1/groups/42".parse(), Ok(group));

        let tenant = TenantName {
            tenant: TenantId(9),
        };
        assert_eq!(tenant.to_string(), "tenants/9");
        assert_eq!("tenants/9".parse(), Ok(tenant));

        let user = UserName::from(UserKey {
            tenant: TenantId(2),
            user: UserId(7),
        });
        assert_eq!(user.to_string(), "tenants/2/users/7");
        assert_eq!(UserKey::from(user).user, UserId(7));

        let team = TeamName {
            tenant: TenantId(3),
            team: TeamId(4),
        };
        assert_eq!(team.to_string(), "tenants/3/teams/4");
        assert_eq!("tenants/3/teams/4".parse(), Ok(team));

        let room = RoomName {
            tenant: TenantId(5),
            room: RoomId(i64::MAX),
        };
        assert_eq!(room.to_string(), format!("tenants/5/rooms/{}", i64::MAX));
        assert_eq!(room.to_string().parse(), Ok(room));
    }

    #[test]
    fn a_name_of_another_shape_names_the_pattern() {
        for text in [
            "",
            "tenants/1",
            "tenants/1/groups",
            "tenants/1/groups/2/",
            "tenants/1/rooms/2",
            "tenant/1/groups/2",
            "/tenants/1/groups/2",
            "tenants/1/groups/2/members/3",
        ] {
            assert_eq!(
                text.parse::<GroupName>(),
                Err(NameError::Shape("tenants/{tenant}/groups/{group}")),
                "{text}"
            );
        }
        assert_eq!(
            "tenants".parse::<TenantName>(),
            Err(NameError::Shape("tenants/{tenant}"))
        );
    }

    #[test]
    fn ids_must_be_positive_integers_and_the_tenant_is_checked_first() {
        for (text, segment) in [
            ("tenants/0/groups/2", "0"),
            ("tenants/-1/groups/2", "-1"),
            ("tenants/x/groups/y", "x"),
            ("tenants//groups/2", ""),
            ("tenants/1/groups/0", "0"),
            ("tenants/01/groups/5", "01"),
            ("tenants/1/groups/+5", "+5"),
            ("tenants/1/groups/ 5", " 5"),
            ("tenants/1/groups/5\u{0}", "5\u{0}"),
            (
                "tenants/1/groups/99999999999999999999",
                "99999999999999999999",
            ),
        ] {
            assert_eq!(
                text.parse::<GroupName>(),
                Err(NameError::Id(segment.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn a_group_is_named_by_id_or_by_external_key() {
        let by_id: GroupPath = "tenants/1/groups/42".parse().unwrap();
        assert_eq!(by_id.group, GroupRef::Id(GroupId(42)));
        let by_key: GroupPath = "tenants/1/groups/key:hr-2026 Q1".parse().unwrap();
        assert_eq!(by_key.tenant, TenantId(1));
        assert_eq!(by_key.group, GroupRef::Key("hr-2026 Q1".into()));
        assert_eq!(by_key.to_string(), "tenants/1/groups/key:hr-2026 Q1");
        assert_eq!(by_key.to_string().parse(), Ok(by_key));
        let long = "k".repeat(MAX_EXTERNAL_KEY_CHARS);
        assert!(
            format!("tenants/1/groups/key:{long}")
                .parse::<GroupPath>()
                .is_ok()
        );
        for bad in [
            "tenants/1/groups/key:",
            "tenants/1/groups/key:a%20b",
            "tenants/1/groups/key:a#b",
            "tenants/1/groups/key:a?b",
            "tenants/1/groups/key:a\\b",
        ] {
            assert!(
                matches!(bad.parse::<GroupPath>(), Err(NameError::Key(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            format!("tenants/1/groups/key:{long}k").parse::<GroupPath>(),
            Err(NameError::Key(_))
        ));
        for shape in [
            "tenants/1/groups/key:a/b",
            "tenants/1/groups",
            "tenant/1/groups/2",
        ] {
            assert_eq!(
                shape.parse::<GroupPath>(),
                Err(NameError::Shape(GroupPath::PATTERN)),
                "{shape}"
            );
        }
        assert_eq!(
            "tenants/01/groups/key:a".parse::<GroupPath>(),
            Err(NameError::Id("01".into()))
        );
    }

    #[test]
    fn parse_gives_the_violation_the_api_answers() {
        let v = violation(GroupName::parse("group", "groups/1").unwrap_err());
        assert_eq!(v.field, "group");
        assert_eq!(v.description, "must be tenants/{tenant}/groups/{group}");

        let v = violation(RoomName::parse("room", "tenants/1/rooms/abc").unwrap_err());
        assert_eq!(v.field, "room");
        assert_eq!(v.description, "\"abc\" is not a positive id");

        let v = violation(TenantName::parse("parent", "tenants/1/groups/2").unwrap_err());
        assert_eq!(v.field, "parent");
        assert_eq!(v.description, "must be tenants/{tenant}");
    }
}
