//! `<base href>` for HTML served under a prefix.
//!
//! A static app reached at `/spa@1/some/route` gets its entrypoint, whose relative
//! URLs (`assets/app.js`) would otherwise resolve against `/spa@1/some/`. A
//! `<base href="/spa@1/">` makes them resolve against the app's base instead. The
//! document is scanned, not parsed: tags are found by name, comments are skipped, and
//! quoted attribute values may hold `>`.

/// The document with `<base href="{base}/">` inserted, or `None` when it already has
/// a `<base>` tag and is served as it is.
///
/// The tag goes right after the opening `<head…>` tag; without one, after `<html…>`;
/// without that, after `<!doctype…>` (so the document stays in standards mode); and
/// otherwise at the start (after a byte-order mark).
pub(super) fn inject_base(document: &[u8], base: &str) -> Option<Vec<u8>> {
    let mut head = None;
    let mut html = None;
    let mut doctype = None;
    let mut from = 0;
    while let Some(tag) = next_tag(document, from) {
        from = tag.end;
        match (tag.name.as_str(), tag.closing) {
            ("base", false) => return None,
            ("head", false) if head.is_none() => head = Some(tag.end),
            ("html", false) if html.is_none() => html = Some(tag.end),
            ("!doctype", false) if doctype.is_none() => doctype = Some(tag.end),
            ("head", true) | ("body", _) => break,
            _ => {}
        }
    }
    let at = head.or(html).or(doctype).unwrap_or_else(|| {
        if document.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        }
    });
    let tag = format!("<base href=\"{}/\">", escape_attribute(base));
    let mut out = Vec::with_capacity(document.len() + tag.len());
    out.extend_from_slice(&document[..at]);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&document[at..]);
    Some(out)
}

/// Escapes text for a double- or single-quoted HTML attribute value.
pub(super) fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A tag found in a document.
struct Tag {
    /// Lower-case name; `!doctype` for the doctype.
    name: String,
    /// `</name>`.
    closing: bool,
    /// Just past its `>`.
    end: usize,
}

/// The next tag at or after `from`, skipping comments and stray `<`.
fn next_tag(document: &[u8], mut from: usize) -> Option<Tag> {
    loop {
        let start = from + find(document.get(from..)?, b"<")?;
        let rest = &document[start..];
        if rest.starts_with(b"<!--") {
            let close = find(&rest[4..], b"-->")?;
            from = start + 4 + close + 3;
            continue;
        }
        let mut index = start + 1;
        let closing = document.get(index) == Some(&b'/');
        if closing {
            index += 1;
        }
        let bang = !closing && document.get(index) == Some(&b'!');
        if bang {
            index += 1;
        }
        let name_start = index;
        while document
            .get(index)
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
        {
            index += 1;
        }
        if index == name_start {
            from = start + 1;
            continue;
        }
        let mut name = String::from_utf8_lossy(&document[name_start..index]).to_ascii_lowercase();
        if bang {
            name.insert(0, '!');
        }
        let ends_name = matches!(
            document.get(index),
            None | Some(b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
        );
        if !ends_name {
            from = index;
            continue;
        }
        let end = tag_end(document, index)?;
        return Some(Tag { name, closing, end });
    }
}

/// Just past the `>` that ends a tag whose attributes start at `from`; a `>` inside a
/// quoted value does not count.
fn tag_end(document: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (offset, &byte) in document.get(from..)?.iter().enumerate() {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(open), _) if byte == open => quote = None,
            (None, b'>') => return Some(from + offset + 1),
            _ => {}
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injected(document: &str, base: &str) -> Option<String> {
        inject_base(document.as_bytes(), base).map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn base_goes_right_after_the_head_tag() {
        assert_eq!(
            injected(
                "<!doctype html><html><HEAD lang=\"a>b\"><title>x</title></HEAD></html>",
                "/spa@1"
            )
            .unwrap(),
            "<!doctype html><html><HEAD lang=\"a>b\"><base href=\"/spa@1/\"><title>x</title></HEAD></html>"
        );
    }

    #[test]
    fn without_head_base_goes_after_html_or_doctype_or_first() {
        assert_eq!(
            injected("<!DOCTYPE html><html lang=en><body>x</body>", "/a").unwrap(),
            "<!DOCTYPE html><html lang=en><base href=\"/a/\"><body>x</body>"
        );
        assert_eq!(
            injected("<!doctype html><p>x", "/a").unwrap(),
            "<!doctype html><base href=\"/a/\"><p>x"
        );
        assert_eq!(injected("<p>x", "/a").unwrap(), "<base href=\"/a/\"><p>x");
        assert_eq!(
            injected("\u{feff}<p>x", "/a").unwrap(),
            "\u{feff}<base href=\"/a/\"><p>x"
        );
    }

    #[test]
    fn a_document_with_a_base_is_left_alone() {
        assert_eq!(injected("<head><BASE href=\"/x/\"></head>", "/a"), None);
        assert_eq!(injected("<head><base/></head>", "/a"), None);
    }

    #[test]
    fn look_alike_tags_and_comments_do_not_count() {
        assert_eq!(
            injected("<header></header><!-- <head> <base> --><head></head>", "/a").unwrap(),
            "<header></header><!-- <head> <base> --><head><base href=\"/a/\"></head>"
        );
        assert_eq!(
            injected("<head><basefont></head>", "/a").unwrap(),
            "<head><base href=\"/a/\"><basefont></head>"
        );
        assert!(injected("<head></head><body><base></body>", "/a").is_some());
    }

    #[test]
    fn the_base_is_escaped() {
        assert_eq!(
            injected("<head>", "/a&\"<>'").unwrap(),
            "<head><base href=\"/a&amp;&quot;&lt;&gt;&#39;/\">"
        );
    }
}
