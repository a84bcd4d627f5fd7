//! Rendering call trees: ferret's text (`name - 12.34ms (k=v, ...) !` under box-drawing guides)
//! with self time, or JSON. Both walk the tree with an explicit stack, so depth never threatens
//! the call stack.

use std::io::{self, Write};

use ferret_format::SpanFile;
use serde_json::Value;

use ferret_scan::tree::{CallTree, TreeNode};

use crate::text_table::printable;

/// Text options.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextStyle {
    /// ANSI colours as ferret uses them (terminals only).
    pub color: bool,
}

/// A tree to print, the file its spans are in, and, for trees of a population of files and
/// runs, where it comes from (`(file, run id)`, printed with it).
pub struct TreeIn<'a, D> {
    /// The file holding the tree's records.
    pub file: &'a SpanFile<D>,
    /// The tree.
    pub tree: &'a CallTree,
    /// The file (as given) and run id, when the trees come from several runs.
    pub origin: Option<(String, String)>,
}

impl<'a, D> TreeIn<'a, D> {
    /// Trees of one file and run: no origin printed.
    pub fn of_one_run(file: &'a SpanFile<D>, trees: &'a [CallTree]) -> Vec<TreeIn<'a, D>> {
        trees
            .iter()
            .map(|tree| TreeIn {
                file,
                tree,
                origin: None,
            })
            .collect()
    }
}

struct Span<'a> {
    id: String,
    name: &'a str,
    start: f64,
    duration: Option<f64>,
    status: &'a str,
    tags: &'a str,
}

fn span<'a, D: AsRef<[u8]>>(file: &'a SpanFile<D>, index: u64) -> Option<Span<'a>> {
    let seg = file.segment_of(index)?;
    let r = file.record(index)?;
    let extras = file.extras(seg, r);
    Some(Span {
        id: file.span_id_text(seg, r),
        name: file.name(r.name).unwrap_or("?"),
        start: r.start_time,
        duration: r.duration(),
        status: file.status(seg, r),
        tags: extras.tags_json(),
    })
}

/// What is left to print of a tree, on an explicit stack.
enum TextFrame<'t> {
    /// A node: the prefix of its line and the guide before its name.
    Node(&'t TreeNode, String, &'static str),
    /// The root's summary of elided spans.
    Elided,
}

/// Writes the trees as ferret prints them, plus each span's self time (a population's trees
/// each under a line naming its file and run).
pub fn write_trees_text<D: AsRef<[u8]>>(
    trees: &[TreeIn<D>],
    style: TextStyle,
    out: &mut dyn Write,
) -> io::Result<()> {
    for &TreeIn {
        file,
        tree,
        ref origin,
    } in trees
    {
        if let Some((path, run)) = origin {
            writeln!(out, "{} · run {}", printable(path), printable(run))?;
        }
        let mut stack = vec![TextFrame::Node(&tree.root, String::new(), "")];
        while let Some(frame) = stack.pop() {
            let (node, prefix, guide) = match frame {
                TextFrame::Node(node, prefix, guide) => (node, prefix, guide),
                TextFrame::Elided => {
                    writeln!(
                        out,
                        "└── … {} more spans, {:.2} s",
                        group_thousands(tree.elided_spans),
                        tree.elided_seconds
                    )?;
                    continue;
                }
            };
            let Some(s) = span(file, node.index) else {
                continue;
            };
            writeln!(out, "{prefix}{guide}{}", label(&s, node.self_time, style))?;
            let inner = match guide {
                "├── " => format!("{prefix}│   "),
                "└── " => format!("{prefix}    "),
                _ => prefix,
            };
            let elided = guide.is_empty() && tree.elided_spans > 0;
            if elided {
                stack.push(TextFrame::Elided); // pushed first: printed last, under the root
            }
            let n = node.children.len();
            for (i, child) in node.children.iter().enumerate().rev() {
                let last = i + 1 == n && !elided;
                stack.push(TextFrame::Node(
                    child,
                    inner.clone(),
                    if last { "└── " } else { "├── " },
                ));
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// What is left to write of a tree as HTML, on an explicit stack.
enum HtmlFrame<'t> {
    /// A node to open, and its depth.
    Open(&'t TreeNode, usize),
    /// The root's summary of elided spans.
    Elided,
    /// The end of a node with children.
    Close,
}

/// Writes the trees as collapsible HTML: a `<details>` per span with children (open to the
/// second level), a `<div>` per leaf, each labelled as the text prints it (errors marked), and
/// the root's summary of elided spans under its children.
pub fn write_trees_html<D: AsRef<[u8]>>(
    trees: &[TreeIn<D>],
    out: &mut dyn Write,
) -> io::Result<()> {
    let style = TextStyle { color: false };
    for &TreeIn {
        file,
        tree,
        ref origin,
    } in trees
    {
        writeln!(out, "<div class=\"tree\">")?;
        if let Some((path, run)) = origin {
            let origin = format!("{} · run {}", printable(path), printable(run));
            let origin = html_escape::encode_text(&origin);
            writeln!(out, "<div class=\"origin\">{origin}</div>")?;
        }
        let mut stack = vec![HtmlFrame::Open(&tree.root, 0)];
        while let Some(frame) = stack.pop() {
            let (node, depth) = match frame {
                HtmlFrame::Open(node, depth) => (node, depth),
                HtmlFrame::Elided => {
                    let spans = group_thousands(tree.elided_spans);
                    let secs = tree.elided_seconds;
                    writeln!(
                        out,
                        "<div class=\"leaf elided\">… {spans} more spans, {secs:.2} s</div>"
                    )?;
                    continue;
                }
                HtmlFrame::Close => {
                    writeln!(out, "</details>")?;
                    continue;
                }
            };
            let Some(s) = span(file, node.index) else {
                continue;
            };
            let text = label(&s, node.self_time, style);
            let text = html_escape::encode_text(&text);
            let error = if s.status != "ok" {
                " class=\"error\""
            } else {
                ""
            };
            let elided = depth == 0 && tree.elided_spans > 0;
            if node.children.is_empty() && !elided {
                writeln!(out, "<div class=\"leaf\"><span{error}>{text}</span></div>")?;
                continue;
            }
            let open = if depth < 2 { " open" } else { "" };
            writeln!(
                out,
                "<details{open}><summary><span{error}>{text}</span></summary>"
            )?;
            stack.push(HtmlFrame::Close);
            if elided {
                stack.push(HtmlFrame::Elided);
            }
            for child in node.children.iter().rev() {
                stack.push(HtmlFrame::Open(child, depth + 1));
            }
        }
        writeln!(out, "</div>")?;
    }
    Ok(())
}

fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line: `name - 12.34ms (k=v, ...) !  [self 1.00ms]`, coloured like ferret on a terminal.
fn label(s: &Span, self_seconds: f64, style: TextStyle) -> String {
    let ms = s.duration.unwrap_or(0.0) * 1000.0;
    let paint = |code: &str, text: &str| {
        if style.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let time_colour = if ms > 100.0 {
        "31"
    } else if ms > 50.0 {
        "33"
    } else {
        "32"
    };
    // Control characters escaped: a name or tag holding a newline keeps its line.
    let mut line = format!(
        "{} - {}",
        paint("1;36", &printable(s.name)),
        paint(time_colour, &format!("{ms:.2}ms"))
    );
    if let Ok(Value::Object(tags)) = serde_json::from_str::<Value>(s.tags) {
        if !tags.is_empty() {
            let items: Vec<String> = tags
                .iter()
                .map(|(k, v)| format!("{k}={}", python_str(v)))
                .collect();
            line.push(' ');
            line.push_str(&paint("2", &printable(&format!("({})", items.join(", ")))));
        }
    }
    if s.status != "ok" {
        line.push(' ');
        line.push_str(&paint("1;31", "!"));
    }
    line.push_str(&format!("  [self {:.2}ms]", self_seconds * 1000.0));
    line
}

/// A JSON value as Python's `str()` prints it after pydantic loaded it (ferret's tag text).
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => python_string_repr(s),
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", python_string_repr(k), python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn python_string_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation for decimal exponents
/// from -4 to 15, scientific (`1e-05`, `1.5e+16`) outside.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let point = exp as usize + 1;
            let mut int = digits.clone();
            while int.len() < point {
                int.push('0');
            }
            let frac = &int[point..];
            format!(
                "{}.{}",
                &int[..point],
                if frac.is_empty() { "0" } else { frac }
            )
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let rest = &digits[1..];
        let mantissa = if rest.is_empty() {
            digits[..1].to_string()
        } else {
            format!("{}.{rest}", &digits[..1])
        };
        format!(
            "{sign}{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// What is left to write of a tree's JSON, on an explicit stack.
enum JsonFrame<'t> {
    /// A node's object up to its children array; `first` among its siblings.
    Open(&'t TreeNode, bool),
    /// The end of a node's object (the root's carries the elided summary).
    Close(bool),
}

fn js(v: impl Into<Value>) -> String {
    v.into().to_string()
}

/// Writes `{FIELDS..., "roots": [...]}` (`fields`: the run id, or the population); every node
/// has span_id, name, start_time, duration, self_time, status, tags and children, and each root
/// an `elided` summary, and a population's roots their `file` and `run_id` too.
pub fn write_trees_json<D: AsRef<[u8]>>(
    fields: &serde_json::Map<String, Value>,
    trees: &[TreeIn<D>],
    out: &mut dyn Write,
) -> io::Result<()> {
    write!(out, "{{")?;
    for (key, value) in fields {
        write!(out, "{}:{value},", js(key.as_str()))?;
    }
    write!(out, "\"roots\":[")?;
    for (
        t,
        &TreeIn {
            file,
            tree,
            ref origin,
        },
    ) in trees.iter().enumerate()
    {
        let mut stack = vec![JsonFrame::Open(&tree.root, t == 0)];
        while let Some(frame) = stack.pop() {
            match frame {
                JsonFrame::Open(node, first) => {
                    let s = span(file, node.index).ok_or_else(|| {
                        io::Error::other("a tree names a record outside the file")
                    })?;
                    let is_root = std::ptr::eq(node, &tree.root);
                    let origin = match (origin, is_root) {
                        (Some((path, run)), true) => format!(
                            "\"file\":{},\"run_id\":{},",
                            js(path.as_str()),
                            js(run.as_str())
                        ),
                        _ => String::new(),
                    };
                    write!(
                        out,
                        "{}{{{origin}\"span_id\":{},\"name\":{},\"start_time\":{},\"duration\":{},\"self_time\":{},\"status\":{},\"tags\":{},\"children\":[",
                        if first { "" } else { "," },
                        js(s.id),
                        js(s.name),
                        js(s.start),
                        s.duration.map_or(Value::Null, Value::from),
                        js(node.self_time),
                        js(s.status),
                        s.tags,
                    )?;
                    stack.push(JsonFrame::Close(is_root));
                    for (i, child) in node.children.iter().enumerate().rev() {
                        stack.push(JsonFrame::Open(child, i == 0));
                    }
                }
                JsonFrame::Close(false) => write!(out, "]}}")?,
                JsonFrame::Close(true) => write!(
                    out,
                    "],\"elided\":{{\"spans\":{},\"seconds\":{}}}}}",
                    tree.elided_spans,
                    js(tree.elided_seconds)
                )?,
            }
        }
    }
    writeln!(out, "]}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (x, want) in [
            (2.5, "2.5"),
            (3.0, "3.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-0.5, "-0.5"),
            (1.5e-7, "1.5e-07"),
        ] {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    #[test]
    fn tags_print_as_python_str() {
        let v: Value = serde_json::from_str(
            r#"{"s":"héllo \"q\"","n":null,"b":true,"l":[1,"two",3.0,null,false],"o":{"a":{"b":[1,2]}},"q":["it's"]}"#,
        )
        .unwrap();
        let got: Vec<String> = v.as_object().unwrap().values().map(python_str).collect();
        assert_eq!(
            got,
            [
                "héllo \"q\"",
                "None",
                "True",
                "[1, 'two', 3.0, None, False]",
                "{'a': {'b': [1, 2]}}",
                "[\"it's\"]"
            ]
        );
    }
}
