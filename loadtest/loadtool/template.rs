//! The part of ghz's call templates that the load tool supports: `{{.Field}}` for the fields of
//! ghz's `CallData` and the functions `newUUID`, `randomString N` and `randomInt MIN MAX`.
//! Anything else is an error when the run starts, not a silently literal string.

use std::fmt::Write as _;

use rand::Rng;

/// Per-call values a template can name (ghz `runner/calldata.go`).
pub struct CallData<'a> {
    pub worker_id: &'a str,
    pub request_number: u64,
    pub method: &'a prost_reflect::MethodDescriptor,
}

enum Piece {
    Text(String),
    Field(Field),
    NewUuid,
    RandomString(usize),
    RandomInt(i64, i64),
}

#[derive(Clone, Copy)]
enum Field {
    WorkerId,
    RequestNumber,
    FullyQualifiedName,
    MethodName,
    ServiceName,
    InputName,
    OutputName,
    IsClientStreaming,
    IsServerStreaming,
    Timestamp,
    TimestampUnix,
    TimestampUnixMilli,
    TimestampUnixNano,
    Uuid,
}

/// A parsed template; `is_static` when it has no action and renders to itself.
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow::anyhow!("template: `{{{{` without `}}}}` in {text}"))?;
            pieces.push(parse_action(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template { pieces })
    }

    pub fn is_static(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    pub fn render(&self, cd: &CallData<'_>) -> String {
        let mut out = String::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::NewUuid | Piece::Field(Field::Uuid) => out.push_str(&uuid_v4()),
                Piece::RandomString(n) => {
                    const CHARS: &[u8] =
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                    let mut rng = rand::rng();
                    out.extend((0..*n).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char));
                }
                Piece::RandomInt(min, max) => {
                    let _ = write!(out, "{}", rand::rng().random_range(*min..*max));
                }
                Piece::Field(f) => {
                    let m = cd.method;
                    let _ = match f {
                        Field::WorkerId => write!(out, "{}", cd.worker_id),
                        Field::RequestNumber => write!(out, "{}", cd.request_number),
                        Field::FullyQualifiedName => {
                            write!(out, "{}.{}", m.parent_service().full_name(), m.name())
                        }
                        Field::MethodName => write!(out, "{}", m.name()),
                        Field::ServiceName => write!(out, "{}", m.parent_service().full_name()),
                        Field::InputName => write!(out, "{}", m.input().full_name()),
                        Field::OutputName => write!(out, "{}", m.output().full_name()),
                        Field::IsClientStreaming => write!(out, "{}", m.is_client_streaming()),
                        Field::IsServerStreaming => write!(out, "{}", m.is_server_streaming()),
                        Field::Timestamp => write!(out, "{}", rfc3339(now.as_secs())),
                        Field::TimestampUnix => write!(out, "{}", now.as_secs()),
                        Field::TimestampUnixMilli => write!(out, "{}", now.as_millis()),
                        Field::TimestampUnixNano => write!(out, "{}", now.as_nanos()),
                        Field::Uuid => unreachable!("handled above"),
                    };
                }
            }
        }
        out
    }
}

fn parse_action(action: &str) -> anyhow::Result<Piece> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let field = |f| Ok(Piece::Field(f));
    match words.as_slice() {
        [".WorkerID"] => field(Field::WorkerId),
        [".RequestNumber"] => field(Field::RequestNumber),
        [".FullyQualifiedName"] => field(Field::FullyQualifiedName),
        [".MethodName"] => field(Field::MethodName),
        [".ServiceName"] => field(Field::ServiceName),
        [".InputName"] => field(Field::InputName),
        [".OutputName"] => field(Field::OutputName),
        [".IsClientStreaming"] => field(Field::IsClientStreaming),
        [".IsServerStreaming"] => field(Field::IsServerStreaming),
        [".Timestamp"] => field(Field::Timestamp),
        [".TimestampUnix"] => field(Field::TimestampUnix),
        [".TimestampUnixMilli"] => field(Field::TimestampUnixMilli),
        [".TimestampUnixNano"] => field(Field::TimestampUnixNano),
        [".UUID"] => field(Field::Uuid),
        ["newUUID"] => Ok(Piece::NewUuid),
        ["randomString", n] => Ok(Piece::RandomString(n.parse()?)),
        ["randomInt", a, b] => {
            // As ghz: min below 0 becomes 0, max at or below 0 becomes 1, max exclusive.
            let (min, max) = (a.parse::<i64>()?.max(0), b.parse::<i64>()?);
            let max = if max <= 0 { 1 } else { max };
            anyhow::ensure!(
                min < max,
                "template: randomInt {min} {max} has an empty range"
            );
            Ok(Piece::RandomInt(min, max))
        }
        _ => anyhow::bail!(
            "template: `{{{{{action}}}}}` is not supported (fields of ghz's CallData such as \
             .RequestNumber, .UUID, .WorkerID, .Timestamp*; functions newUUID, randomString N, \
             randomInt MIN MAX)"
        ),
    }
}

/// A random (version 4) UUID.
pub fn uuid_v4() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(x >> 4)] as char);
        out.push(HEX[usize::from(x & 0x0f)] as char);
    }
    out
}

/// UTC seconds since the epoch as RFC 3339 (civil-from-days, Howard Hinnant's algorithm).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn unknown_actions_are_errors() {
        assert!(Template::parse("{{.GROUP}}").is_err());
        assert!(Template::parse("a {{.RequestNumber}} b").is_ok());
        assert!(Template::parse("plain").is_ok_and(|t| t.is_static()));
    }

    #[test]
    fn uuid_has_version_4() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let dashes: Vec<usize> = u.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{u}");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
    }
}
