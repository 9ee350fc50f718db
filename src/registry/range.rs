//! HTTP `Range: bytes=...` for blob requests (one range; RFC 9110 §14).

/// The outcome of a `Range` header against a blob of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// No usable range (absent, malformed, several ranges, or the whole blob): serve 200.
    Full,
    /// Serve bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interpret a `Range` header value. Malformed values and multi-range requests are ignored
/// (RFC 9110 lets a server ignore Range), so they give [`RangeReq::Full`].
pub fn parse_range(header: Option<&str>, len: u64) -> RangeReq {
    let Some(h) = header else {
        return RangeReq::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    let r = if a.is_empty() {
        // Suffix: the last n bytes.
        let Some(n) = num(b) else {
            return RangeReq::Full;
        };
        if n == 0 || len == 0 {
            return RangeReq::Unsatisfiable;
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let Some(start) = num(a) else {
            return RangeReq::Full;
        };
        let end = if b.is_empty() {
            u64::MAX
        } else {
            match num(b) {
                Some(e) if e >= start => e,
                _ => return RangeReq::Full,
            }
        };
        if start >= len {
            return RangeReq::Unsatisfiable;
        }
        (start, end.min(len - 1))
    };
    if r == (0, len - 1) {
        RangeReq::Full
    } else {
        RangeReq::Partial {
            start: r.0,
            end: r.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeReq::*;

    #[test]
    fn forms() {
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-3"), 10),
            Partial { start: 0, end: 3 }
        );
        assert_eq!(
            parse_range(Some("bytes=4-"), 10),
            Partial { start: 4, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Partial { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Partial { start: 5, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=-100"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 10), Full);
        assert_eq!(
            parse_range(Some("bytes=9-9"), 10),
            Partial { start: 9, end: 9 }
        );
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=-"), 10), Full);
    }
}
