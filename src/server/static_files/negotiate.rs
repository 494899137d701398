//! Reading the request headers a static file server negotiates on: `Accept-Encoding`,
//! `Range` and entity-tag lists.

use http::header::ACCEPT_ENCODING;
use http::HeaderMap;

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    /// `br`, from a precompressed `.br` sibling.
    Brotli,
    /// `gzip`, from a `.gz` sibling or compressed on the fly.
    Gzip,
}

impl Coding {
    /// The token used in `content-encoding`.
    pub(super) fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The suffix of a precompressed sibling file.
    pub(super) fn extension(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// The client's `Accept-Encoding`, as quality values (in thousandths) for the codings
/// the server knows.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct AcceptEncoding {
    brotli: u16,
    gzip: u16,
}

impl AcceptEncoding {
    /// Reads every `Accept-Encoding` header; none means identity only.
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        let mut brotli = None;
        let mut gzip = None;
        let mut any = None;
        for value in headers.get_all(ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let quality = parts
                    .filter_map(|param| param.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                    .map_or(Some(1000), |(_, q)| parse_quality(q.trim()));
                let Some(quality) = quality else {
                    continue;
                };
                let slot = match coding.as_str() {
                    "br" => &mut brotli,
                    "gzip" | "x-gzip" => &mut gzip,
                    "*" => &mut any,
                    _ => continue,
                };
                *slot = Some(slot.map_or(quality, |earlier: u16| earlier.max(quality)));
            }
        }
        AcceptEncoding {
            brotli: brotli.or(any).unwrap_or(0),
            gzip: gzip.or(any).unwrap_or(0),
        }
    }

    /// Whether the client takes this coding at all.
    pub(super) fn accepts(&self, coding: Coding) -> bool {
        self.quality(coding) > 0
    }

    /// The acceptable codings, best first; `br` wins a tie.
    pub(super) fn preference(&self) -> Vec<Coding> {
        let mut codings: Vec<Coding> = [Coding::Brotli, Coding::Gzip]
            .into_iter()
            .filter(|coding| self.accepts(*coding))
            .collect();
        codings.sort_by_key(|coding| std::cmp::Reverse(self.quality(*coding)));
        codings
    }

    fn quality(&self, coding: Coding) -> u16 {
        match coding {
            Coding::Brotli => self.brotli,
            Coding::Gzip => self.gzip,
        }
    }
}

/// `q=0.8` as 800; `None` when malformed.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// What a `Range` header asks of a representation of a known length.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ByteRange {
    /// Send everything: no usable single range (malformed, other unit, or several
    /// ranges, which are answered whole rather than as multipart).
    Full,
    /// Send bytes `start..=end`.
    Partial {
        /// The first byte.
        start: u64,
        /// The last byte, inclusive.
        end: u64,
    },
    /// The range starts past the end: 416.
    Unsatisfiable,
}

impl ByteRange {
    /// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n` against `len` bytes.
    pub(super) fn parse(header: &str, len: u64) -> ByteRange {
        let header = header.trim();
        let Some((unit, spec)) = header.split_once('=') else {
            return ByteRange::Full;
        };
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return ByteRange::Full;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return ByteRange::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let number = |text: &str| -> Option<u64> {
            (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse().ok())
                .flatten()
        };
        if first.is_empty() {
            let Some(suffix) = number(last) else {
                return ByteRange::Full;
            };
            if suffix == 0 || len == 0 {
                return ByteRange::Unsatisfiable;
            }
            return ByteRange::Partial {
                start: len.saturating_sub(suffix),
                end: len - 1,
            };
        }
        let Some(start) = number(first) else {
            return ByteRange::Full;
        };
        let end = if last.is_empty() {
            None
        } else {
            match number(last) {
                Some(end) if end >= start => Some(end),
                _ => return ByteRange::Full,
            }
        };
        if start >= len {
            return ByteRange::Unsatisfiable;
        }
        ByteRange::Partial {
            start,
            end: end.map_or(len - 1, |end| end.min(len - 1)),
        }
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, `*` matches all).
pub(super) fn etag_list_matches(list: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    list.split(',').map(str::trim).any(|theirs| {
        theirs == "*" || (!theirs.is_empty() && theirs.trim_start_matches("W/") == ours)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(value: &str) -> AcceptEncoding {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        AcceptEncoding::from_headers(&headers)
    }

    #[test]
    fn accept_encoding_prefers_brotli_unless_quality_says_otherwise() {
        assert_eq!(
            accept("gzip, deflate, br").preference(),
            vec![Coding::Brotli, Coding::Gzip]
        );
        assert_eq!(
            accept("br;q=0.5, gzip").preference(),
            vec![Coding::Gzip, Coding::Brotli]
        );
        assert_eq!(accept("gzip;q=0, br").preference(), vec![Coding::Brotli]);
        assert_eq!(accept("identity").preference(), vec![]);
        assert_eq!(
            accept("*;q=0.3, gzip").preference(),
            vec![Coding::Gzip, Coding::Brotli]
        );
        assert_eq!(accept("x-gzip").preference(), vec![Coding::Gzip]);
        assert_eq!(accept("gzip;q=2").preference(), vec![]);
        assert_eq!(
            AcceptEncoding::from_headers(&HeaderMap::new()).preference(),
            vec![]
        );
    }

    #[test]
    fn ranges_in_three_forms() {
        let partial = |start, end| ByteRange::Partial { start, end };
        assert_eq!(ByteRange::parse("bytes=0-9", 100), partial(0, 9));
        assert_eq!(ByteRange::parse("bytes=90-", 100), partial(90, 99));
        assert_eq!(ByteRange::parse("bytes=-10", 100), partial(90, 99));
        assert_eq!(ByteRange::parse("bytes=-500", 100), partial(0, 99));
        assert_eq!(ByteRange::parse("bytes=50-500", 100), partial(50, 99));
        assert_eq!(ByteRange::parse("Bytes = 1-2", 100), partial(1, 2));
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable_and_odd_ones_ignored() {
        assert_eq!(
            ByteRange::parse("bytes=100-", 100),
            ByteRange::Unsatisfiable
        );
        assert_eq!(ByteRange::parse("bytes=-0", 100), ByteRange::Unsatisfiable);
        assert_eq!(ByteRange::parse("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(ByteRange::parse("bytes=5-1", 100), ByteRange::Full);
        assert_eq!(ByteRange::parse("bytes=0-1,5-6", 100), ByteRange::Full);
        assert_eq!(ByteRange::parse("items=0-1", 100), ByteRange::Full);
        assert_eq!(ByteRange::parse("bytes=a-b", 100), ByteRange::Full);
        assert_eq!(ByteRange::parse("bytes=+1-2", 100), ByteRange::Full);
        assert_eq!(ByteRange::parse("bytes", 100), ByteRange::Full);
    }

    #[test]
    fn etag_lists_match_weakly() {
        assert!(etag_list_matches("\"a\"", "\"a\""));
        assert!(etag_list_matches("W/\"a\"", "\"a\""));
        assert!(etag_list_matches("\"x\", \"a\"", "\"a\""));
        assert!(etag_list_matches("*", "\"a\""));
        assert!(!etag_list_matches("\"ab\"", "\"a\""));
        assert!(!etag_list_matches("", "\"a\""));
    }
}
