//! Durations and sizes as config files write them (`"30s"`, `"10mb"`, or plain numbers).

use std::time::Duration;

use serde_json::Value;

/// Reads a duration: a number of seconds, or a string such as `500ms`, `30s`, `5m`,
/// `1h`, `2d`, `1w` (a bare number in a string is seconds too).
pub fn parse_duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .ok_or_else(|| "is not a non-negative number of seconds".to_owned())
            .and_then(bounded_seconds),
        Value::String(text) => parse_duration_text(text),
        _ => Err("is not a duration (a number of seconds or a string like \"30s\")".to_owned()),
    }
}

/// Reads a duration from text, as flags and environment variables give it.
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, unit) = split_unit(trimmed);
    let amount: f64 = number
        .parse()
        .ok()
        .filter(|amount: &f64| amount.is_finite() && *amount >= 0.0)
        .ok_or_else(|| "is not a duration (try \"30s\", \"500ms\" or \"5m\")".to_owned())?;
    let seconds_per_unit = match unit.to_ascii_lowercase().as_str() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err("is not a duration (units: ms, s, m, h, d, w; try \"30s\")".to_owned()),
    };
    bounded_seconds(amount * seconds_per_unit)
}

/// Longest duration accepted anywhere: ten years.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

fn bounded_seconds(seconds: f64) -> Result<Duration, String> {
    if seconds > MAX_SECONDS {
        return Err("is longer than ten years".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Reads a size in bytes: a number, or a string such as `512kb`, `10mb`, `1gb`.
pub fn parse_size(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(number) => number
            .as_u64()
            .ok_or_else(|| "is not a whole, non-negative number of bytes".to_owned()),
        Value::String(text) => parse_size_text(text),
        _ => Err("is not a size (a number of bytes or a string like \"10mb\")".to_owned()),
    }
}

/// Reads a size from text, as flags and environment variables give it.
pub fn parse_size_text(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, unit) = split_unit(trimmed);
    let amount: f64 = number
        .parse()
        .ok()
        .filter(|amount: &f64| amount.is_finite() && *amount >= 0.0)
        .ok_or_else(|| "is not a size (try \"10mb\" or \"512kb\")".to_owned())?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        _ => return Err("is not a size (units: b, kb, mb, gb)".to_owned()),
    };
    Ok((amount * multiplier as f64) as u64)
}

fn split_unit(text: &str) -> (&str, &str) {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    (text[..split].trim(), text[split..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_take_seconds_and_units() {
        assert_eq!(parse_duration(&json!(30)), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(&json!(0.5)), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration(&json!("500ms")),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_duration(&json!("5m")), Ok(Duration::from_secs(300)));
        assert_eq!(
            parse_duration(&json!("2d")),
            Ok(Duration::from_secs(172_800))
        );
        assert_eq!(
            parse_duration(&json!("1w")),
            Ok(Duration::from_secs(604_800))
        );
        assert_eq!(parse_duration(&json!("45")), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        let error = parse_duration(&json!("5 minutes")).unwrap_err();
        assert!(error.contains("try \"30s\""), "{error}");
        assert!(parse_duration(&json!(-1)).is_err());
        assert!(parse_duration(&json!(true)).is_err());
        assert!(parse_duration(&json!(1e300)).is_err());
        assert!(parse_duration(&json!("1e300w")).is_err());
    }

    #[test]
    fn sizes_take_bytes_and_units() {
        assert_eq!(parse_size(&json!(1024)), Ok(1024));
        assert_eq!(parse_size(&json!("512kb")), Ok(512 * 1024));
        assert_eq!(parse_size(&json!("10mb")), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size(&json!("1gb")), Ok(1 << 30));
        assert!(parse_size(&json!("ten")).is_err());
        assert!(parse_size(&json!(-5)).is_err());
    }
}
