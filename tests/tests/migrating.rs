//! docs/MIGRATING.md maps every public item of network-protocol 1.x and vstp
//! 0.2 that docs/migrating-items.txt lists: each item needs a table row in its
//! crate's section (`## From network-protocol 1.x`, `## From vstp 0.2`) whose
//! first column names it in backticks and whose second column says what
//! netproto has. A row that says "not yet" must name the issue that brings it.
#![allow(clippy::panic, missing_docs)]

use std::fmt::Write as _;
use std::path::Path;

/// The crates of the list and the heading of their section.
const SECTIONS: [(&str, &str); 2] = [
    ("network-protocol", "## From network-protocol 1.x"),
    ("vstp", "## From vstp 0.2"),
];

fn read_doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One entry of the list.
#[derive(Debug)]
struct Item {
    krate: String,
    name: String,
    line: usize,
}

/// One table row of a section.
#[derive(Debug)]
struct Row {
    krate: &'static str,
    /// The backticked spans of the first column.
    names: Vec<String>,
    /// The second column.
    netproto: String,
    line: usize,
}

/// Parses the list: `crate<TAB>item`, `#` comments, blank lines.
fn parse_items(list: &str) -> Vec<Item> {
    let mut items = Vec::new();
    for (i, line) in list.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((krate, name)) = line.split_once('\t') else {
            panic!("migrating-items.txt:{line_no}: expected `crate<TAB>item`, got {line:?}");
        };
        assert!(
            SECTIONS.iter().any(|(k, _)| *k == krate),
            "migrating-items.txt:{line_no}: unknown crate {krate:?}"
        );
        assert!(
            !name.trim().is_empty() && name == name.trim(),
            "migrating-items.txt:{line_no}: item {name:?} is empty or has spaces around it"
        );
        items.push(Item {
            krate: krate.to_owned(),
            name: name.to_owned(),
            line: line_no,
        });
    }
    items
}

/// The cells of a table line, split at every `|` not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    // What lies before the leading and after the trailing `|` is not a cell.
    cells.remove(0);
    cells.pop();
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The spans between backticks.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The table rows of the two sections (header and separator rows included:
/// their first column names nothing). Code blocks are skipped.
fn parse_rows(doc: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut section = None;
    let mut in_code = false;
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with("## ") {
            section = SECTIONS
                .iter()
                .find(|(_, heading)| line.trim_end() == *heading)
                .map(|(krate, _)| *krate);
            continue;
        }
        let Some(krate) = section else { continue };
        if !line.trim_start().starts_with('|') {
            continue;
        }
        let cells = cells(line);
        if cells.len() < 2 {
            continue;
        }
        rows.push(Row {
            krate,
            names: backticked(&cells[0]),
            netproto: cells[1].clone(),
            line: i + 1,
        });
    }
    rows
}

/// Whether a first-column span names `item`: the span is the item, or starts
/// with it followed by something that cannot continue a path (`(`, ` `, `{`,
/// `<`), so `Cluster` is not named by `Cluster::new`.
fn names(span: &str, item: &str) -> bool {
    span.strip_prefix(item).is_some_and(|rest| {
        rest.chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
    })
}

/// Every item without a row that maps it, as `file:line: crate item`.
fn unmapped(doc: &str, list: &str) -> Vec<String> {
    let rows = parse_rows(doc);
    parse_items(list)
        .into_iter()
        .filter(|item| {
            !rows.iter().any(|row| {
                row.krate == item.krate
                    && !row.netproto.is_empty()
                    && row.names.iter().any(|span| names(span, &item.name))
            })
        })
        .map(|item| {
            format!(
                "migrating-items.txt:{}: {} `{}`",
                item.line, item.krate, item.name
            )
        })
        .collect()
}

#[test]
fn every_listed_item_has_a_row() {
    let (doc, list) = (read_doc("MIGRATING.md"), read_doc("migrating-items.txt"));
    for (_, heading) in SECTIONS {
        assert!(
            doc.lines().any(|l| l.trim_end() == heading),
            "docs/MIGRATING.md has no `{heading}` section"
        );
    }
    let missing = unmapped(&doc, &list);
    if !missing.is_empty() {
        let mut msg = format!(
            "{} item(s) of docs/migrating-items.txt have no row in their section of \
             docs/MIGRATING.md (a table row whose first column names the item in \
             backticks and whose second column is not empty):\n",
            missing.len()
        );
        for m in &missing {
            let _ = writeln!(msg, "  {m}");
        }
        panic!("{msg}");
    }
}

#[test]
fn items_are_listed_once() {
    let items = parse_items(&read_doc("migrating-items.txt"));
    assert!(items.len() > 100, "the list looks truncated");
    for (i, a) in items.iter().enumerate() {
        if let Some(b) = items[..i]
            .iter()
            .find(|b| b.krate == a.krate && b.name == a.name)
        {
            panic!(
                "migrating-items.txt:{}: {} `{}` is already listed on line {}",
                a.line, a.krate, a.name, b.line
            );
        }
    }
}

#[test]
fn rows_not_built_yet_name_their_issue() {
    let doc = read_doc("MIGRATING.md");
    let unplanned: Vec<String> = parse_rows(&doc)
        .into_iter()
        .filter(|r| {
            r.netproto.to_ascii_lowercase().contains("not yet") && !r.netproto.contains("(#")
        })
        .map(|r| format!("MIGRATING.md:{}: {:?}", r.line, r.names))
        .collect();
    assert!(
        unplanned.is_empty(),
        "rows saying \"not yet\" without an issue number \"(#N)\":\n  {}",
        unplanned.join("\n  ")
    );
}

/// The check itself: a removed row, a row in the wrong section, an empty
/// netproto column and a longer name are all reported.
#[test]
fn the_check_reports_what_is_missing() {
    let doc = "\
# Title

## From network-protocol 1.x

| network-protocol | netproto |
|------------------|----------|
| `Cluster::new(peers)` | `Cluster::join` |
| `ServerHandle` | |
| `a \\| b` / `build_ping` | `Client::ping` |

```rust
| `is_pong` | in a code block |
```

## From vstp 0.2

| vstp | netproto |
|------|----------|
| `Pool` | not offered |
| `FrameTypeExt` | not yet (#18) |
";
    let list = "\
# comment
network-protocol\tCluster::new
network-protocol\tCluster
network-protocol\tServerHandle
network-protocol\tbuild_ping
network-protocol\tis_pong
network-protocol\tPool
vstp\tPool
vstp\tFrameType
";
    let missing = unmapped(doc, list);
    let names: Vec<&str> = missing
        .iter()
        .map(|m| m.rsplit('`').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["Cluster", "ServerHandle", "is_pong", "Pool", "FrameType"],
        "{missing:#?}"
    );

    // Removing a row of the real page adds its item to what is missing.
    let (real, list) = (read_doc("MIGRATING.md"), read_doc("migrating-items.txt"));
    let without: String = real
        .lines()
        .filter(|l| !l.starts_with("| `ServerHandle::clone`"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        without.len() < real.len(),
        "the row of ServerHandle::clone is gone?"
    );
    let before = unmapped(&real, &list);
    let after = unmapped(&without, &list);
    let added: Vec<&String> = after.iter().filter(|m| !before.contains(m)).collect();
    assert!(
        added.len() == 1 && added[0].ends_with("network-protocol `ServerHandle::clone`"),
        "{added:#?}"
    );
}
