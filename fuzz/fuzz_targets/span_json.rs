//! Any line of JSON lines handed to the span parser gives a span or the reason it is not one,
//! never a panic; the fast path (pydantic's exact shape) and the general one agree.
#![no_main]

use ferret_convert::span::parse_span;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let mut strings = String::new();
    let _ = parse_span(line, &mut strings);
});
