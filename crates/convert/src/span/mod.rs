//! Parsing one span's JSON (pydantic's `model_dump_json` of ferret's `SpanModel`) into the fields
//! a record needs, with every check a bad row can fail.

mod fast;

use std::borrow::Cow;
use std::ops::Range;

use fast::SpanFields;
use ferret_format::SpanId;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A span as parsed. Its text fields are byte ranges into the batch's strings buffer (see
/// [`parse_span`]), so a batch of spans costs a few allocations, not a few per span.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSpan {
    /// The encoded span id.
    pub span_id: SpanId,
    /// The source id text, kept only when it had to be hashed.
    pub original_id: Option<Range<u32>>,
    /// The encoded parent id; `None` for null or empty (ferret treats both as a root).
    pub parent_id: Option<SpanId>,
    /// The run id.
    pub run_id: Range<u32>,
    /// The name.
    pub name: Range<u32>,
    /// Start time, bit-for-bit.
    pub start_time: f64,
    /// Duration, bit-for-bit, or null.
    pub duration: Option<f64>,
    /// The tags object's JSON text; empty for `{}`.
    pub tags: Range<u32>,
    /// The status string.
    pub status: Range<u32>,
}

/// The text of a field of a [`ParsedSpan`].
pub fn field<'a>(strings: &'a str, range: &Range<u32>) -> &'a str {
    &strings[range.start as usize..range.end as usize]
}

fn stash(strings: &mut String, s: &str) -> Range<u32> {
    let start = strings.len() as u32;
    strings.push_str(s);
    start..strings.len() as u32
}

#[derive(Deserialize)]
struct RawSpan<'a> {
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    start_time: f64,
    end_time: Option<f64>,
    duration: Option<f64>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
}

/// Parses one span, appending its text fields to `strings`; the error says what was wrong, in
/// one line.
pub fn parse_span(json: &str, strings: &mut String) -> Result<ParsedSpan, String> {
    match fast::read_span(json) {
        Some(fields) => store(fields, strings),
        None => parse_with_serde(json, strings),
    }
}

/// The general parser: any key order, whitespace, escapes, missing optional fields; and the
/// error messages.
fn parse_with_serde(json: &str, strings: &mut String) -> Result<ParsedSpan, String> {
    let raw: RawSpan = serde_json::from_str(json).map_err(|e| format!("bad span JSON: {e}"))?;
    // The fast path checks end_time where it reads it; it is not stored.
    if raw.end_time.is_some_and(|v| !v.is_finite()) {
        return Err("end_time is not a finite number".to_string());
    }
    let tags = match raw.tags {
        None => "",
        Some(t) => t.get().trim(),
    };
    store(
        SpanFields {
            span_id: &raw.span_id,
            parent_id: raw.parent_id.as_deref(),
            run_id: &raw.run_id,
            name: &raw.name,
            start_time: raw.start_time,
            duration: raw.duration,
            tags,
            status: raw.status.as_deref().unwrap_or("ok"),
        },
        strings,
    )
}

/// Checks what JSON alone does not (finite numbers, tags an object) and stores the text fields.
fn store(span: SpanFields, strings: &mut String) -> Result<ParsedSpan, String> {
    for (field, v) in [
        ("start_time", Some(span.start_time)),
        ("duration", span.duration),
    ] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(format!("{field} is not a finite number"));
        }
    }
    if !span.tags.is_empty() && !span.tags.starts_with('{') {
        return Err("tags is not a JSON object".to_string());
    }
    let tags = if span.tags.is_empty() || is_empty_object(span.tags) {
        ""
    } else {
        span.tags
    };
    let (span_id, hashed) = SpanId::encode(span.span_id);
    let parent_id = span
        .parent_id
        .filter(|p| !p.is_empty())
        .map(|p| SpanId::encode(p).0);
    Ok(ParsedSpan {
        span_id,
        original_id: hashed.then(|| stash(strings, span.span_id)),
        parent_id,
        run_id: stash(strings, span.run_id),
        name: stash(strings, span.name),
        start_time: span.start_time,
        duration: span.duration,
        tags: stash(strings, tags),
        status: stash(strings, span.status),
    })
}

fn is_empty_object(text: &str) -> bool {
    text[1..].trim_start().starts_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"span_id":"effb39edf9a54126bfc91fdc87a0acb7","parent_id":"da992886d90d4f4a95522fbc2cd2dda6","run_id":"d328e006c64f4cc2a91e353d98346f09","name":"leaf","start_time":1795628036.6272376,"end_time":1795628036.6272469,"duration":9.298324584960938e-6,"tags":{},"status":"ok"}"#;

    #[test]
    fn parses_ferret_json_bit_exactly() {
        let mut text = String::new();
        let s = parse_span(GOOD, &mut text).unwrap();
        assert_eq!(s.start_time, 1795628036.6272376);
        assert_eq!(s.duration, Some(9.298324584960938e-6));
        assert_eq!(field(&text, &s.name), "leaf");
        assert_eq!(field(&text, &s.run_id), "d328e006c64f4cc2a91e353d98346f09");
        assert_eq!(field(&text, &s.tags), "");
        assert!(s.original_id.is_none());
        assert_eq!(
            s.parent_id.unwrap().to_hex(),
            "da992886d90d4f4a95522fbc2cd2dda6"
        );
    }

    #[test]
    fn keeps_tags_verbatim_and_odd_ids() {
        let json = GOOD
            .replace(r#""tags":{}"#, r#""tags":{"a": [1, null], "é": "\"x\""}"#)
            .replace("effb39edf9a54126bfc91fdc87a0acb7", "req-1")
            .replace(
                r#""parent_id":"da992886d90d4f4a95522fbc2cd2dda6""#,
                r#""parent_id":"""#,
            );
        let mut text = String::new();
        let s = parse_span(&json, &mut text).unwrap();
        assert_eq!(field(&text, &s.tags), r#"{"a": [1, null], "é": "\"x\""}"#);
        assert_eq!(field(&text, s.original_id.as_ref().unwrap()), "req-1");
        assert_eq!(
            s.parent_id, None,
            "an empty parent_id is a root, as in ferret"
        );
    }

    #[test]
    fn bad_rows_say_why() {
        let cases = [
            ("{", "bad span JSON"),
            (
                &GOOD.replace(r#""name":"leaf","#, "") as &str,
                "missing field `name`",
            ),
            (
                &GOOD.replace(r#""name":"leaf""#, r#""name":7"#),
                "invalid type",
            ),
            (
                &GOOD.replace("9.298324584960938e-6", "1e999"),
                "bad span JSON",
            ),
            (
                &GOOD.replace(r#""tags":{}"#, r#""tags":[1]"#),
                "tags is not a JSON object",
            ),
            (&GOOD.replace("1795628036.6272376", "NaN"), "bad span JSON"),
        ];
        for (json, want) in cases {
            let err = parse_span(json, &mut String::new()).unwrap_err();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }
}
