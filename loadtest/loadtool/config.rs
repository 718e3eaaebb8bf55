//! ghz's JSON configuration (the keys of ghz `runner/config.go` that the load tool supports),
//! merged with command-line flags that override it, as ghz does.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Keys of ghz's configuration this tool reads.
const SUPPORTED: &[&str] = &[
    "call",
    "host",
    "insecure",
    "concurrency",
    "connections",
    "rps",
    "total",
    "duration",
    "max-duration",
    "timeout",
    "connect-timeout",
    "data",
    "data-file",
    "metadata",
    "metadata-file",
    "skipFirst",
    "name",
    "format",
    "output",
];

/// Keys of ghz's configuration that change nothing here: descriptors are built in (ghz
/// itself uses server reflection when `proto` and `protoset` are absent), and the rest are
/// labels or tuning of ghz's own process.
const IGNORED: &[&str] = &[
    "proto",
    "protoset",
    "import-paths",
    "reflect-metadata",
    "cpus",
    "tags",
    "debug",
    "count-errors",
    "keepalive",
    "lb-strategy",
    "max-recv-message-size",
    "max-send-message-size",
];

/// A ghz configuration file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ghz {
    pub call: Option<String>,
    pub host: Option<String>,
    pub insecure: Option<bool>,
    pub concurrency: Option<u64>,
    pub connections: Option<u64>,
    pub rps: Option<u64>,
    pub total: Option<u64>,
    pub duration: Option<String>,
    #[serde(rename = "max-duration")]
    pub max_duration: Option<String>,
    pub timeout: Option<String>,
    #[serde(rename = "connect-timeout")]
    pub connect_timeout: Option<String>,
    pub data: Option<Value>,
    #[serde(rename = "data-file")]
    pub data_file: Option<String>,
    pub metadata: Option<Value>,
    #[serde(rename = "metadata-file")]
    pub metadata_file: Option<String>,
    #[serde(rename = "skipFirst")]
    pub skip_first: Option<u64>,
    pub name: Option<String>,
    pub format: Option<String>,
    pub output: Option<String>,
}

impl Ghz {
    /// Reads a ghz JSON configuration; unknown keys are errors (ghz would silently ignore a
    /// misspelt one), keys that do not apply here are dropped with a note on stderr.
    pub fn load(path: &str) -> anyhow::Result<Ghz> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {path}: {e}"))?;
        let mut map: BTreeMap<String, Value> = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config {path} is not a JSON object: {e}"))?;
        for key in map.keys() {
            if IGNORED.contains(&key.as_str()) {
                eprintln!("note: {path}: ghz key `{key}` has no effect on group-load");
            } else if !SUPPORTED.contains(&key.as_str()) {
                anyhow::bail!(
                    "config {path}: `{key}` is not a ghz configuration key that group-load \
                     supports (supported: {})",
                    SUPPORTED.join(", ")
                );
            }
        }
        map.retain(|k, _| SUPPORTED.contains(&k.as_str()));
        let ghz: Ghz = serde_json::from_value(Value::Object(map.into_iter().collect()))
            .map_err(|e| anyhow::anyhow!("config {path}: {e}"))?;
        // ghz resolves data-file and metadata-file against the working directory; so do we.
        Ok(ghz)
    }
}

/// Go's `time.ParseDuration` for the forms ghz configurations use: `10s`, `1m30s`, `250ms`,
/// `1.5s`, `0`.
pub fn go_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    anyhow::ensure!(!rest.is_empty(), "empty duration");
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow::anyhow!("duration {s:?} needs a unit (ns, us, ms, s, m, h)"))?;
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| anyhow::anyhow!("bad duration {s:?}"))?;
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| num_end + i);
        let scale = match &rest[num_end..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => anyhow::bail!("duration {s:?}: unknown unit {u:?}"),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(go_duration("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("0").ok(), Some(Duration::ZERO));
        assert!(go_duration("10").is_err());
    }

    #[test]
    fn the_shipped_ghz_files_load() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/loadtest/ghz");
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && !path.to_string_lossy().contains("/data/")
            {
                let loaded = Ghz::load(&path.to_string_lossy());
                assert!(loaded.is_ok(), "{}: {:?}", path.display(), loaded.err());
            }
        }
    }
}
