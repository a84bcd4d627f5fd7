//! The fast path for the one shape nearly every row has: pydantic's compact
//! `model_dump_json` of ferret's `SpanModel`, fields in declaration order, no whitespace, no
//! escapes in the string fields. It reads the fields in place instead of going through serde's
//! field matching; anything else, including every malformed row, returns `None` and goes to the
//! general serde parser, which then decides and words the error. So the fast path never has to
//! be right about a bad row, only about a good one, and a property test holds it to serde's
//! result on both.

use serde_json::value::RawValue;

/// The fields of one span, borrowed from the row's text.
#[derive(Debug, PartialEq)]
pub(super) struct SpanFields<'a> {
    pub span_id: &'a str,
    pub parent_id: Option<&'a str>,
    pub run_id: &'a str,
    pub name: &'a str,
    pub start_time: f64,
    pub duration: Option<f64>,
    pub tags: &'a str,
    pub status: &'a str,
}

/// Reads `json` if it has exactly pydantic's shape, `None` otherwise.
pub(super) fn read_span(json: &str) -> Option<SpanFields<'_>> {
    let mut c = Cursor { text: json, at: 0 };
    c.literal(b"{\"span_id\":")?;
    let span_id = c.string()?;
    c.literal(b",\"parent_id\":")?;
    let parent_id = c.nullable(Cursor::string)?;
    c.literal(b",\"run_id\":")?;
    let run_id = c.string()?;
    c.literal(b",\"name\":")?;
    let name = c.string()?;
    c.literal(b",\"start_time\":")?;
    let start_time = c.number()?;
    // end_time is not stored (duration is); it only has to be a finite number or null.
    c.literal(b",\"end_time\":")?;
    c.nullable(Cursor::finite_number)?;
    c.literal(b",\"duration\":")?;
    let duration = c.nullable(Cursor::number)?;
    c.literal(b",\"tags\":")?;
    let tags = c.object()?;
    c.literal(b",\"status\":")?;
    let status = c.string()?;
    c.literal(b"}")?;
    (c.at == json.len()).then_some(SpanFields {
        span_id,
        parent_id,
        run_id,
        name,
        start_time,
        duration,
        tags,
        status,
    })
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.at..]
    }

    /// Steps over `lit`. Its length is a constant, so the comparison compiles to a few loads,
    /// not a `memcmp` call (which cost 3% of a conversion).
    fn literal<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let head: &[u8; N] = self.rest().get(..N)?.try_into().ok()?;
        (head == lit).then(|| {
            self.at += N;
        })
    }

    fn nullable<T>(&mut self, value: fn(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        value(self).map(Some)
    }

    /// A string without escapes or control characters (those go to serde).
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let len = memchr::memchr(b'"', self.rest())?;
        // No early exit, so it vectorizes: strings are short and nearly always clean.
        let unusual = self.rest()[..len]
            .iter()
            .fold(false, |seen, &b| seen | (b == b'\\') | (b < 0x20));
        if unusual {
            return None;
        }
        let s = &self.text[self.at..self.at + len];
        self.at += len + 1;
        Some(s)
    }

    /// A number in JSON's grammar, checked and rounded correctly in one pass (lexical's JSON
    /// format; checking the grammar first and then calling `str::parse` read each number twice,
    /// a tenth of a conversion).
    fn number(&mut self) -> Option<f64> {
        const JSON: u128 = lexical_core::format::JSON;
        let options = lexical_core::ParseFloatOptions::new();
        let (value, len) =
            lexical_core::parse_partial_with_options::<f64, JSON>(self.rest(), &options).ok()?;
        self.at += len;
        // serde_json refuses numbers out of f64's range; so does the fast path, by declining.
        value.is_finite().then_some(value)
    }

    /// Steps over a number whose value is not needed, if it is finite. A plain decimal (no
    /// exponent) of at most 300 integer digits is, which a scan of its digits shows; anything
    /// else (an exponent, a leading zero, a sign alone) is parsed.
    fn finite_number(&mut self) -> Option<()> {
        let rest = self.rest();
        let digits_from = |i: usize| {
            rest[i.min(rest.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let sign = usize::from(rest.first() == Some(&b'-'));
        let int = digits_from(sign);
        let mut end = sign + int;
        let mut plain = (int == 1 || (2..=300).contains(&int) && rest[sign] != b'0')
            && !matches!(rest.get(end), Some(b'e' | b'E'));
        if rest.get(end) == Some(&b'.') {
            let frac = digits_from(end + 1);
            end += 1 + frac;
            plain &= frac > 0 && !matches!(rest.get(end), Some(b'e' | b'E'));
        }
        if !plain {
            return self.number().map(drop);
        }
        self.at += end;
        Some(())
    }

    /// An object's text, found and checked by serde_json in one pass (`{}`, what most spans
    /// have, without it).
    fn object(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.at..];
        if rest.starts_with("{}") {
            self.at += 2;
            return Some("{}");
        }
        if !rest.starts_with('{') {
            return None;
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        let object = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(object.get())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_span, parse_with_serde};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{32}",
            "[a-z_.<>0-9]{0,12}",
            any::<String>(),
            "[\"\\\\\u{1}é€😀 ]{0,4}",
        ]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            (1.7e9..1.8e9f64),
            (0.0..1.0f64),
            Just(0.0),
            Just(-0.0),
            Just(1795000000.0),
        ]
    }

    fn tags() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            number().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map(text(), value, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// A span in pydantic's field order (serde_json keeps an object's key order here, and writes
    /// it compactly, as pydantic does).
    fn span() -> impl Strategy<Value = Value> {
        (
            (text(), prop::option::of(text()), text(), text()),
            (
                number(),
                prop::option::of(number()),
                prop::option::of(number()),
            ),
            (
                tags(),
                prop_oneof![Just("ok".to_string()), Just("error".to_string()), text()],
            ),
        )
            .prop_map(
                |((id, parent, run, name), (start, end, duration), (tags, status))| {
                    json!({
                        "span_id": id, "parent_id": parent, "run_id": run, "name": name,
                        "start_time": start, "end_time": end, "duration": duration,
                        "tags": tags, "status": status,
                    })
                },
            )
    }

    /// Whether no fixed string field of `span` needs an escape (the fast path's condition).
    fn plain(span: &Value) -> bool {
        ["span_id", "parent_id", "run_id", "name", "status"]
            .into_iter()
            .filter_map(|key| span[key].as_str())
            .all(|s| !s.chars().any(|c| c == '"' || c == '\\' || c < ' '))
    }

    /// Number and string forms at the edges of JSON's grammar, in every field they can take:
    /// the fast path must read each exactly as serde does, or leave it to serde.
    #[test]
    fn fast_path_equals_serde_at_the_grammar_edges() {
        let good = r#"{"span_id":"effb39edf9a54126bfc91fdc87a0acb7","parent_id":null,"run_id":"r","name":"n","start_time":1.5,"end_time":2.5,"duration":1.0,"tags":{},"status":"ok"}"#;
        let numbers = [
            "0",
            "-0",
            "01",
            "-01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "1E-2",
            "1e999",
            "-1e999",
            "1e-999",
            "NaN",
            "Infinity",
            "0x10",
            "1_0",
            "00.5",
            "1.5e3",
            "17956000001.0000001",
            "1.7976931348623157e308",
            "123456789012345678901234567890",
            "-98765432109876543210.5e-3",
            "4.9e-324",
            "2.2250738585072011e-308",
            " 1",
            "1 ",
            "null",
            "true",
            "\"1\"",
        ];
        // Plain decimals around the longest that are surely finite (300 integer digits).
        let long = [
            "9".repeat(300),
            "9".repeat(308),
            "9".repeat(309),
            "9".repeat(400),
            format!("{}.25", "1".repeat(301)),
        ];
        let numbers: Vec<&str> = numbers
            .into_iter()
            .chain(long.iter().map(String::as_str))
            .collect();
        let strings = [
            r#""""#,
            r#""a\"b""#,
            r#""\u00e9""#,
            "\"\u{1}\"",
            "\"\t\"",
            r#""é😀""#,
            r#""\\""#,
            "null",
            "1",
            r#""a"#,
        ];
        let edits = numbers
            .iter()
            .flat_map(|n| ["1.5", "2.5", "1.0"].map(|f| (f, *n)))
            .chain(strings.iter().flat_map(|t| {
                [
                    r#""r""#,
                    r#""n""#,
                    r#""ok""#,
                    "null",
                    r#""effb39edf9a54126bfc91fdc87a0acb7""#,
                ]
                .map(|f| (f, *t))
            }));
        for (field, value) in edits {
            let json = good.replacen(field, value, 1);
            let (mut a, mut b) = (String::new(), String::new());
            assert_eq!(
                parse_span(&json, &mut a),
                parse_with_serde(&json, &mut b),
                "{json}"
            );
            assert_eq!(a, b, "{json}");
        }
    }

    /// Rows ferret-io really wrote (both beaver-db layouts) take the fast path unless they hold
    /// an escape, and read as serde reads them: the shape assumed above is pydantic's.
    #[test]
    fn real_ferret_rows_take_the_fast_path() {
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fixtures");
        let mut fast = 0;
        for (db, table) in [
            ("beaver1.db", "beaver_logs"),
            ("beaver2.db", "__beaver_logs__"),
        ] {
            let db = rusqlite::Connection::open_with_flags(
                fixtures.join(db),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let mut rows = db
                .prepare(&format!(
                    "SELECT data FROM {table} WHERE log_name = '_ferret_trace'"
                ))
                .unwrap();
            let rows = rows.query_map([], |r| r.get::<_, String>(0)).unwrap();
            for json in rows.map(Result::unwrap) {
                let (mut a, mut b) = (String::new(), String::new());
                assert_eq!(parse_span(&json, &mut a), parse_with_serde(&json, &mut b));
                let span: Value = serde_json::from_str(&json).unwrap();
                let took_fast_path = super::read_span(&json).is_some();
                assert_eq!(took_fast_path, plain(&span), "{json}");
                fast += usize::from(took_fast_path);
            }
        }
        assert!(fast > 100, "only {fast} rows took the fast path");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// On any span pydantic could write, the fast path gives serde's result bit for bit,
        /// and it does take every span whose fixed string fields need no escapes.
        #[test]
        fn fast_path_equals_serde_on_pydantic_output(span in span()) {
            let json = serde_json::to_string(&span).unwrap();
            let (mut a, mut b) = (String::new(), String::new());
            let fast = parse_span(&json, &mut a);
            let general = parse_with_serde(&json, &mut b);
            prop_assert_eq!(&fast, &general);
            prop_assert_eq!(a, b);
            prop_assert_eq!(super::read_span(&json).is_some(), plain(&span), "{}", json);
            if let Ok(parsed) = fast {
                prop_assert_eq!(
                    parsed.start_time.to_bits(),
                    span["start_time"].as_f64().unwrap().to_bits()
                );
                prop_assert_eq!(
                    parsed.duration.map(f64::to_bits),
                    span["duration"].as_f64().map(f64::to_bits)
                );
            }
        }

        /// A damaged row is judged exactly as serde judges it: the fast path never accepts what
        /// serde refuses, nor reads it differently.
        #[test]
        fn fast_path_equals_serde_on_damaged_rows(
            span in span(),
            at in any::<prop::sample::Index>(),
            edit in 0..3u8,
            byte in prop::sample::select(b"{}[]\",:0123456789.eE-+ntul \\a\x01\t".to_vec()),
        ) {
            let mut bytes = serde_json::to_vec(&span).unwrap();
            let i = at.index(bytes.len());
            match edit {
                0 => { bytes.remove(i); }
                1 => bytes.insert(i, byte),
                _ => bytes[i] = byte,
            }
            let Ok(json) = std::str::from_utf8(&bytes) else { return Ok(()) };
            let (mut a, mut b) = (String::new(), String::new());
            let fast = parse_span(json, &mut a).is_ok().then_some(a);
            let general = parse_with_serde(json, &mut b).is_ok().then_some(b);
            prop_assert_eq!(fast, general, "{}", json);
        }
    }
}
