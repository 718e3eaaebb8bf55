//! The two text formats `/metrics` serves, chosen by the scraper's `Accept` header.
//!
//! - OpenMetrics 1.0.0 (`application/openmetrics-text; version=1.0.0`), what prometheus-client
//!   encodes, when the scraper names it (Prometheus does, preferring it to the classic format).
//! - The classic Prometheus text format (`text/plain; version=0.0.4`) otherwise: no `Accept`,
//!   `*/*`, `text/plain`, and every scraper that names no OpenMetrics. prometheus-client encodes
//!   only OpenMetrics, so the classic text is rewritten from it (`classic`).

/// A text format of the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    /// The format to answer an `Accept` header with: OpenMetrics when the header names it
    /// (without a version, or version 1.0.0) with a quality at least that of the classic
    /// format's (`text/plain` without a version or with 0.0.4, `text/*`, `*/*`); classic
    /// otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut openmetrics = 0.0_f32;
        let mut classic = 0.0_f32;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0_f32;
            let mut version = None;
            for param in parts {
                match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some((k, v)) if k.eq_ignore_ascii_case("q") => {
                        q = v.parse().unwrap_or(0.0);
                    }
                    Some((k, v)) if k.eq_ignore_ascii_case("version") => version = Some(v),
                    _ => {}
                }
            }
            match (media.as_str(), version) {
                ("application/openmetrics-text", None | Some("1.0.0")) => {
                    openmetrics = openmetrics.max(q);
                }
                ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => {
                    classic = classic.max(q);
                }
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= classic {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The classic text format of an OpenMetrics text as prometheus-client encodes it (HELP, TYPE
/// and UNIT lines before each family's samples; no exemplars here): no `# EOF` and no
/// `# UNIT`; a counter family is named as its samples are (`<name>_total`), an info family
/// becomes a gauge named `<name>_info`, a stateset a gauge, and `unknown` is `untyped`.
pub fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(h) = line.strip_prefix("# HELP ") {
            help = Some(h);
            continue;
        }
        if let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|t| t.rsplit_once(' '))
        {
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_owned(), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(text) = help.take().and_then(|h| h.split_once(' ').map(|(_, t)| t)) {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(&format!("# HELP {h}\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_chooses_the_format() {
        let cases = [
            (None, Format::Classic),
            (Some(""), Format::Classic),
            (Some("*/*"), Format::Classic),
            (Some("text/plain"), Format::Classic),
            (Some("text/plain;version=0.0.4"), Format::Classic),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("application/openmetrics-text; version=1.0.0"),
                Format::OpenMetrics,
            ),
            // Prometheus 2's header, and Prometheus 3's (protobuf first, not served here).
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,\
                     application/openmetrics-text;version=0.0.1;q=0.4,\
                     text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Format::OpenMetrics,
            ),
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;\
                     escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
                Format::Classic,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Classic),
            (
                Some("application/openmetrics-text;version=2.0.0"),
                Format::Classic,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn classic_names_counters_by_their_samples_and_ends_without_eof() {
        let om = "# HELP calls Calls.\n\
                  # TYPE calls counter\n\
                  calls_total{code=\"OK\"} 3\n\
                  # HELP lag_seconds Lag.\n\
                  # TYPE lag_seconds gauge\n\
                  # UNIT lag_seconds seconds\n\
                  lag_seconds 0.5\n\
                  # HELP build Build.\n\
                  # TYPE build info\n\
                  build_info{version=\"1\"} 1\n\
                  # HELP odd Odd.\n\
                  # TYPE odd unknown\n\
                  odd 1\n\
                  # EOF\n";
        let want = "# HELP calls_total Calls.\n\
                    # TYPE calls_total counter\n\
                    calls_total{code=\"OK\"} 3\n\
                    # HELP lag_seconds Lag.\n\
                    # TYPE lag_seconds gauge\n\
                    lag_seconds 0.5\n\
                    # HELP build_info Build.\n\
                    # TYPE build_info gauge\n\
                    build_info{version=\"1\"} 1\n\
                    # HELP odd Odd.\n\
                    # TYPE odd untyped\n\
                    odd 1\n";
        assert_eq!(classic(om), want);
    }
}
