//! The rules for text that every request field follows (R25), and the one definition of how
//! names compare (R01):
//!
//! - **Control characters** (Unicode general category Cc: C0, DEL, C1) are refused in every
//!   text field of every request, except TAB and LF in a `description` (multi-line text). The
//!   edge (`grpc::codec`) applies the rule to each string field of a request as it decodes it.
//! - **Names** are stored in NFC with leading and trailing white space removed; a name made
//!   only of white space and invisible characters (Default_Ignorable_Code_Point, e.g. U+200B,
//!   U+2060, U+FEFF, U+00AD) is no name.
//! - **Comparison keys** (uniqueness, search, autocomplete) fold case fully (Unicode
//!   CaseFolding C+F: "Straße" and "STRASSE" meet, "ς" meets "σ"), compare canonically
//!   equivalent texts as equal ("Cafe\u{301}" and "Café") and ignore invisible characters.

use icu_casemap::CaseMapper;
use icu_properties::CodePointSetData;
use icu_properties::props::DefaultIgnorableCodePoint;
use unicode_normalization::UnicodeNormalization;

/// Bumped whenever `fold_case` changes: stored keys of an older version are computed again
/// at start-up (`store::rekey`).
pub const KEY_VERSION: i32 = 2;

/// How many characters of a client's text an error message quotes.
pub const QUOTE_CHARS: usize = 32;

/// Whether `c` may appear in the text field named `field` (its last path segment decides).
pub fn allowed_char(field: &str, c: char) -> bool {
    if !c.is_control() {
        return true;
    }
    let multi_line = field.rsplit('.').next() == Some("description");
    multi_line && (c == '\n' || c == '\t')
}

/// The first character of `text` that the field may not hold, if any.
pub fn first_forbidden(field: &str, text: &str) -> Option<char> {
    // Control characters are U+0000-U+001F, U+007F and U+0080-U+009F, the last encoded as
    // 0xC2 0x80-0x9F: text without those bytes (nearly all of it) holds none.
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return None;
    }
    text.chars().find(|c| !allowed_char(field, *c))
}

/// The violation description for a forbidden character.
pub fn forbidden_description(c: char) -> String {
    format!(
        "must not contain control characters (found U+{:04X})",
        c as u32
    )
}

fn invisible(c: char) -> bool {
    c.is_whitespace() || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// A name as stored: NFC, without leading or trailing white space or invisible characters.
pub fn normalize_name(name: &str) -> String {
    let nfc: String = name.nfc().collect();
    nfc.trim_matches(invisible).to_owned()
}

/// Whether `name` has nothing visible in it (empty, white space, invisible characters).
pub fn is_blank(name: &str) -> bool {
    name.chars().all(invisible)
}

/// The comparison key of a text: full case folding of the canonical decomposition, invisible
/// characters removed, recomposed (NFC) so that keys compare and prefix byte-wise.
pub fn fold_case(s: &str) -> String {
    let decomposed: String = s.nfd().collect();
    let folded = CaseMapper::new().fold_string(&decomposed);
    folded
        .chars()
        .filter(|c| !CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(*c))
        .nfc()
        .collect()
}

/// At most `QUOTE_CHARS` characters of a client's text, Debug-quoted, with "…" when cut: error
/// messages and details stay small whatever was sent.
pub fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_fully_and_canonically() {
        assert_eq!(fold_case("Straße"), fold_case("STRASSE"));
        assert_eq!(fold_case("Cafe\u{301}"), fold_case("Café"));
        assert_eq!(fold_case("ΣΑΣ"), fold_case("σας"));
        assert_eq!(fold_case("De\u{200b}sign"), "design");
        assert_ne!(fold_case("Design"), fold_case("Designs"));
    }

    #[test]
    fn names_are_trimmed_and_invisible_ones_are_blank() {
        assert_eq!(normalize_name(" Design\u{200b} "), "Design");
        assert_eq!(normalize_name("Cafe\u{301}"), "Café");
        for blank in [
            "",
            " ",
            "\u{200b}",
            "\u{2060}\u{feff}",
            "\u{00ad}",
            "\u{3000}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        assert!(!is_blank("a\u{200b}"));
    }

    #[test]
    fn control_characters_are_refused_but_description_keeps_lines() {
        assert_eq!(first_forbidden("group.display_name", "a\0b"), Some('\0'));
        assert_eq!(first_forbidden("group.display_name", "a\nb"), Some('\n'));
        assert_eq!(first_forbidden("group.description", "a\n\tb"), None);
        assert_eq!(first_forbidden("group.description", "a\rb"), Some('\r'));
        assert_eq!(first_forbidden("query", "a\u{85}"), Some('\u{85}'));
    }

    #[test]
    fn the_byte_scan_agrees_with_the_character_rule_for_every_code_point() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = format!("a{c}\u{e9}");
            let by_chars = text.chars().find(|c| !allowed_char("name", *c));
            assert_eq!(
                first_forbidden("name", &text),
                by_chars,
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "x".repeat(10_000);
        assert_eq!(quote(&long).chars().count(), QUOTE_CHARS + 3);
    }
}
