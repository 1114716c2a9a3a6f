//! Request paths: the normal form locations are matched against, and the
//! `rewrite-target` replacement.

use regex::Captures;

/// Bring a request path to the form nginx matches locations against:
/// percent-escapes of unreserved characters decoded (so `%2e%2e` is `..`),
/// repeated slashes merged, `.` and `..` segments resolved. `None` when the
/// path does not start with `/` or `..` climbs above the root, which nginx
/// answers with 400.
pub fn normalize(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/').skip(1) {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    // A trailing slash (or a trailing dot segment) keeps the path a "directory".
    let last = decoded.rsplit('/').next().unwrap_or("");
    if out.is_empty() || matches!(last, "" | "." | "..") {
        out.push('/');
    }
    Some(out)
}

/// Decode `%XX` where it stands for an unreserved character; leave the
/// rest (`%2F`, `%3F`, …) escaped so the path keeps its structure. `None`
/// on a malformed escape or a control character.
fn decode_unreserved(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else if v < 0x20 || v == 0x7f {
                return None;
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else if b < 0x20 || b == 0x7f {
            return None;
        } else {
            // The path is valid UTF-8 (it came from a &str); copy the
            // character whole.
            let ch = raw[i..].chars().next()?;
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Some(out)
}

/// Expand an nginx rewrite replacement: `$1`…`$9` are the capture groups
/// (empty when a group did not take part), `$0` the whole match; any other
/// `$` is literal.
pub fn expand(target: &str, caps: &Captures<'_>) -> String {
    let mut out = String::with_capacity(target.len() + 16);
    let mut chars = target.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                chars.next();
                if let Some(m) = caps.get(d as usize) {
                    out.push_str(m.as_str());
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Join a rewritten path with the request's query as nginx does: the
/// original arguments follow the replacement's own, after `&`.
pub fn with_query(path: &str, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        None => path.to_string(),
        Some(q) if path.contains('?') => format!("{path}&{q}"),
        Some(q) => format!("{path}?{q}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn normal_forms() {
        assert_eq!(normalize("/").as_deref(), Some("/"));
        assert_eq!(normalize("/a//b/./c/").as_deref(), Some("/a/b/c/"));
        assert_eq!(normalize("/a/b/../c").as_deref(), Some("/a/c"));
        assert_eq!(normalize("/a/..").as_deref(), Some("/"));
        assert_eq!(normalize("/%61%2Fb").as_deref(), Some("/a%2Fb"));
        assert_eq!(normalize("/a/%2e%2e/b").as_deref(), Some("/b"));
        assert_eq!(normalize("/ü").as_deref(), Some("/ü"));
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        assert_eq!(normalize("/.."), None);
        assert_eq!(normalize("/a/../../etc/passwd"), None);
        assert_eq!(normalize("/%2e%2e/etc"), None);
        assert_eq!(normalize("relative"), None);
        assert_eq!(normalize("/bad%zz"), None);
        assert_eq!(normalize("/nul%00"), None);
    }

    #[test]
    fn capture_groups() {
        let re = Regex::new("(?i)/foo(/|$)(.*)").unwrap();
        let caps = re.captures("/foo/bar/baz").unwrap();
        assert_eq!(expand("/admin/$2", &caps), "/admin/bar/baz");
        let caps = re.captures("/foo").unwrap();
        assert_eq!(expand("/admin/$2", &caps), "/admin/");
        assert_eq!(expand("/$9x$", &caps), "/x$");
    }

    #[test]
    fn query_follows_the_replacement() {
        assert_eq!(with_query("/a", Some("x=1")), "/a?x=1");
        assert_eq!(with_query("/a?y=2", Some("x=1")), "/a?y=2&x=1");
        assert_eq!(with_query("/a", None), "/a");
    }
}
