//! Raw values as a customer profile carries them, and the one place where text is read as a
//! number, a boolean or a missing value (training data and scoring requests both go through here).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One raw value of a profile, as given by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawValue {
    /// Explicitly unknown (null, a blank cell): imputed as in training.
    Missing,
    /// A boolean, as JSON gives it.
    Bool(bool),
    /// A number.
    Number(f64),
    /// Text: a category, or a number or boolean written out.
    Text(String),
}

impl RawValue {
    /// Returns a borrowed view of the value.
    pub fn as_value(&self) -> Value<'_> {
        match self {
            RawValue::Missing => Value::Missing,
            RawValue::Bool(flag) => Value::Bool(*flag),
            RawValue::Number(number) => Value::Number(*number),
            RawValue::Text(text) => Value::Text(text),
        }
    }
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_value().fmt(f)
    }
}

impl From<&str> for RawValue {
    fn from(text: &str) -> Self {
        RawValue::Text(text.to_string())
    }
}

impl From<f64> for RawValue {
    fn from(number: f64) -> Self {
        RawValue::Number(number)
    }
}

impl From<bool> for RawValue {
    fn from(flag: bool) -> Self {
        RawValue::Bool(flag)
    }
}

/// A borrowed raw value, so that tables can be encoded without allocating a string per cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Explicitly unknown: imputed as in training.
    Missing,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// Text: a category, or a number or boolean written out.
    Text(&'a str),
}

impl Value<'_> {
    /// Returns the owned form of the value.
    pub fn to_raw(self) -> RawValue {
        match self {
            Value::Missing => RawValue::Missing,
            Value::Bool(flag) => RawValue::Bool(flag),
            Value::Number(number) => RawValue::Number(number),
            Value::Text(text) => RawValue::Text(text.to_string()),
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Missing => f.write_str("missing"),
            Value::Bool(flag) => write!(f, "{flag}"),
            Value::Number(number) => write!(f, "{number}"),
            Value::Text(text) => f.write_str(text),
        }
    }
}

/// A customer profile: the raw values by feature name. Names the schema does not know are ignored.
pub type Profile = BTreeMap<String, RawValue>;

/// Tells whether a text cell means "no value" (blank, NA, N/A, null, None, NaN, ?).
pub fn is_missing_token(text: &str) -> bool {
    let trimmed = trim(text);
    // Every token is empty, one symbol, or starts with `n`: most values leave at the first byte.
    match trimmed.as_bytes() {
        [] | [b'?'] | [b'-'] => true,
        [b'n' | b'N', ..] => match trimmed.len() {
            2 => trimmed.eq_ignore_ascii_case("na"),
            3 => trimmed.eq_ignore_ascii_case("n/a") || trimmed.eq_ignore_ascii_case("nan"),
            4 => trimmed.eq_ignore_ascii_case("null") || trimmed.eq_ignore_ascii_case("none"),
            _ => false,
        },
        _ => false,
    }
}

/// `str::trim`, with a shortcut for the usual text that starts and ends with a visible ASCII
/// character and so has nothing to trim.
pub(crate) fn trim(text: &str) -> &str {
    let visible = |byte: Option<&u8>| byte.is_some_and(|byte| byte.is_ascii_graphic());
    let bytes = text.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// Reads a boolean written as yes/no, true/false, y/n, t/f or 1/0 (any case), also with a trailing
/// dot as some exports write it (`True.`) or as a number equal to 1 or 0 (`1.0`). Training,
/// inference, labels and scoring all read booleans through here, so they agree.
pub fn parse_bool_token(text: &str) -> Option<bool> {
    let trimmed = trim(text);
    let word = trimmed.strip_suffix('.').unwrap_or(trimmed);
    // Only the spelling of the word's length can match.
    let spelling = match word.len() {
        1 => match word.as_bytes()[0].to_ascii_lowercase() {
            b'y' | b't' | b'1' => Some(true),
            b'n' | b'f' | b'0' => Some(false),
            _ => None,
        },
        2 => word.eq_ignore_ascii_case("no").then_some(false),
        3 => word.eq_ignore_ascii_case("yes").then_some(true),
        4 => word.eq_ignore_ascii_case("true").then_some(true),
        5 => word.eq_ignore_ascii_case("false").then_some(false),
        _ => None,
    };
    if spelling.is_some() {
        return spelling;
    }
    match parse_number_token(trimmed) {
        Some(1.0) => Some(true),
        Some(0.0) => Some(false),
        _ => None,
    }
}

/// Reads a number from text; `None` when the text is not a number. NaN and infinities are
/// returned as such so the caller can reject them by name.
pub fn parse_number_token(text: &str) -> Option<f64> {
    trim(text).parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tokens_are_recognised_in_any_case() {
        for token in ["", " ", "NA", "n/a", "NULL", "None", "NaN", "?"] {
            assert!(is_missing_token(token), "{token:?}");
        }
        assert!(!is_missing_token("0"));
        assert!(!is_missing_token("No"));
    }

    #[test]
    fn missing_tokens_are_found_past_the_first_byte_shortcut() {
        for token in [
            "-",
            " - ",
            "N/A ",
            "\tnull",
            "NONE",
            "\u{a0}NA\u{a0}",
            "nAn",
        ] {
            assert!(is_missing_token(token), "{token:?}");
        }
        for value in [
            "-5",
            "--",
            "??",
            "n",
            "No",
            "Nonexistent",
            "nan.",
            "\u{a0}Yes",
            "None of it",
        ] {
            assert!(!is_missing_token(value), "{value:?}");
        }
        // The shortcut trims exactly as `str::trim` does, Unicode spaces included.
        for text in ["x", " x", "x ", "\u{2003}x\u{2003}", "é", " é ", "", "  "] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
        assert_eq!(parse_number_token("\u{a0}12.5 "), Some(12.5));
    }

    #[test]
    fn booleans_accept_the_usual_spellings() {
        assert_eq!(parse_bool_token(" Yes"), Some(true));
        assert_eq!(parse_bool_token("FALSE"), Some(false));
        assert_eq!(parse_bool_token("0"), Some(false));
        assert_eq!(parse_bool_token("True."), Some(true));
        assert_eq!(parse_bool_token("1.0"), Some(true));
        assert_eq!(parse_bool_token("0.0"), Some(false));
        assert_eq!(parse_bool_token("0.5"), None);
        assert_eq!(parse_bool_token("."), None);
        assert_eq!(parse_bool_token("maybe"), None);
        for (text, flag) in [
            ("y", true),
            ("T", true),
            ("1", true),
            ("N", false),
            ("f", false),
        ] {
            assert_eq!(parse_bool_token(text), Some(flag), "{text}");
        }
        for text in ["nO", "YES.", "tRuE", "False", "no.", " y "] {
            assert!(parse_bool_token(text).is_some(), "{text}");
        }
        for text in [
            "x",
            "ye",
            "on",
            "yess",
            "truth",
            "falsy",
            "noo",
            "yes please",
        ] {
            assert_eq!(parse_bool_token(text), None, "{text}");
        }
    }

    #[test]
    fn raw_values_round_trip_through_json() {
        let values = vec![
            RawValue::Missing,
            RawValue::Bool(true),
            RawValue::Number(2.5),
            RawValue::Text("Month-to-month".into()),
        ];
        let json = serde_json::to_string(&values).unwrap();
        assert_eq!(json, r#"[null,true,2.5,"Month-to-month"]"#);
        let back: Vec<RawValue> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, values);
    }
}
