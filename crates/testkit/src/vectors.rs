//! Reading the test vectors of docs/WIRE.md: fenced blocks of `key: value`
//! lines (a value may continue on indented lines), `expect` repeatable.

/// One vector block.
#[derive(Debug, Default, Clone)]
pub struct SpecVector {
    /// `key: value` fields in order (continuation lines joined).
    pub fields: Vec<(String, String)>,
    /// The `expect` lines.
    pub expect: Vec<String>,
}

impl SpecVector {
    /// A field's value, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every block fenced with ```` ```tag ```` in `spec`.
///
/// # Panics
/// On a line that is not `key: value`, or an unterminated block: the spec
/// itself is broken.
#[allow(clippy::panic)]
pub fn spec_vectors(spec: &str, tag: &str) -> Vec<SpecVector> {
    let fence = format!("```{tag}");
    let mut out = Vec::new();
    let mut current: Option<SpecVector> = None;
    for line in spec.lines() {
        if line.trim() == fence {
            current = Some(SpecVector::default());
            continue;
        }
        let Some(v) = current.as_mut() else { continue };
        if line.trim() == "```" {
            out.extend(current.take());
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            match v.fields.last_mut() {
                Some(last) => last.1.push_str(line.trim()),
                None => panic!("continuation line before any field: {line}"),
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            panic!("not a `key: value` line: {line}");
        };
        let value = value.trim().to_owned();
        if key == "expect" {
            v.expect.push(value);
        } else {
            v.fields.push((key.to_owned(), value));
        }
    }
    assert!(current.is_none(), "unterminated {tag} block");
    out
}

/// Bytes from hex digits (whitespace ignored).
///
/// # Panics
/// On an odd number of digits or a non-hex character.
#[allow(clippy::panic)]
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd number of hex digits");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("not hex: {s}")))
        .collect()
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}
