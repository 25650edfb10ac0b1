//! CSS for saved files: `url(...)` references replaced (by pictures as data: URIs), and a
//! lesson's rules scoped under one class so lessons in a pack do not restyle each other.
//! A small scanner that respects comments, strings and nesting; not a full CSS parser.

/// Replaces every `url(...)` in `css` with what `resolve` returns for its (unquoted) text.
pub fn rewrite_urls(css: &str, resolve: &mut dyn FnMut(&str) -> String) -> String {
    let bytes = css.as_bytes();
    let mut out = String::with_capacity(css.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_comment(bytes, i),
            b'"' | b'\'' => i = skip_string(bytes, i),
            b'u' | b'U'
                if css.get(i..i + 4).is_some_and(|s| s.eq_ignore_ascii_case("url("))
                    && (i == 0 || !is_ident(bytes[i - 1])) =>
            {
                let start = i + 4;
                let Some(close) = find_close(bytes, start) else { break };
                let inner = css[start..close].trim();
                let inner = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                    .unwrap_or(inner);
                out.push_str(&css[copied..i]);
                out.push_str("url(\"");
                out.push_str(&resolve(inner).replace('"', "%22"));
                out.push_str("\")");
                i = close + 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&css[copied.min(css.len())..]);
    out
}

/// What [`scope`] does with `@import`: the imported sheet's text, already scoped, or `None`
/// to drop the rule.
pub type Import<'a> = &'a mut dyn FnMut(&str) -> Option<String>;

/// Scopes every rule of `css` under the selector `scope` (`html`, `body` and `:root` become
/// the scope itself, and the `main` element, renamed in saved files, becomes `.dars-main`),
/// inside `@media`, `@supports`, `@layer` and `@container` too. `@import`s are inlined by
/// `import`; `@font-face`, `@keyframes` and `@page` are kept as they are.
pub fn scope(css: &str, scope: &str, import: Import<'_>) -> String {
    let bytes = css.as_bytes();
    let mut out = String::with_capacity(css.len() + css.len() / 4);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() || c == b';' || c == b'}' {
            i += 1;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = skip_comment(bytes, i);
            continue;
        }
        if css[i..].starts_with("<!--") || css[i..].starts_with("-->") {
            i += if css[i..].starts_with("<!--") { 4 } else { 3 };
            continue;
        }
        // A prelude runs to `{` or `;` at this level.
        let start = i;
        let (end, brace) = prelude_end(bytes, i);
        let prelude = css[start..end].trim();
        if !brace {
            // A statement: only @import matters.
            if let Some(rest) = strip_at(prelude, "@import")
                && let Some(target) = import_target(rest)
                && let Some(sheet) = import(&target)
            {
                out.push_str(&sheet);
            }
            i = end + 1;
            continue;
        }
        let block_end = block_end(bytes, end + 1);
        let block = &css[end + 1..block_end.min(css.len())];
        i = block_end + 1;
        if let Some(at_rule) = prelude.strip_prefix('@') {
            let name = at_rule
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            out.push_str(prelude);
            out.push('{');
            if matches!(name.as_str(), "media" | "supports" | "layer" | "container" | "document") {
                out.push_str(&self::scope(block, scope, import));
            } else {
                out.push_str(block);
            }
            out.push('}');
        } else {
            let selectors: Vec<String> = split_top(prelude, b',')
                .iter()
                .map(|s| scope_selector(s.trim(), scope))
                .filter(|s| !s.is_empty())
                .collect();
            if selectors.is_empty() {
                continue;
            }
            out.push_str(&selectors.join(","));
            out.push('{');
            out.push_str(block);
            out.push('}');
        }
    }
    out
}

fn strip_at<'a>(prelude: &'a str, keyword: &str) -> Option<&'a str> {
    let head = prelude.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword).then(|| &prelude[keyword.len()..])
}

/// The address of `@import url(x) ...` or `@import "x" ...`.
fn import_target(rest: &str) -> Option<String> {
    let rest = rest.trim();
    let quoted = |s: &str| -> Option<String> {
        let q = s.chars().next()?;
        if q != '"' && q != '\'' {
            return None;
        }
        let end = s[1..].find(q)?;
        Some(s[1..1 + end].to_owned())
    };
    if rest.len() > 4 && rest[..4].eq_ignore_ascii_case("url(") {
        let inner = &rest[4..rest.find(')')?];
        let inner = inner.trim();
        return quoted(inner).or_else(|| Some(inner.to_owned()));
    }
    quoted(rest)
}

/// One selector put under `scope`.
fn scope_selector(selector: &str, scope: &str) -> String {
    if selector.is_empty() {
        return String::new();
    }
    let selector = rename_main(selector);
    let mut rest = selector.as_str();
    let mut head = String::new();
    // Leading `html`, `:root` and `body` compounds stand for the scope itself.
    let mut took = false;
    loop {
        let trimmed = rest.trim_start();
        let trimmed = if took {
            trimmed.trim_start_matches('>').trim_start()
        } else {
            trimmed
        };
        let word = ["html", ":root", "body"].into_iter().find(|w| {
            trimmed.len() >= w.len()
                && trimmed[..w.len()].eq_ignore_ascii_case(w)
                && trimmed.as_bytes().get(w.len()).is_none_or(|b| !is_ident(*b))
        });
        match word {
            Some(w) => {
                rest = &trimmed[w.len()..];
                // Whatever follows the word in the same compound (`.dark`, `[dir]`) stays.
                let compound_end = rest
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '+' || c == '~')
                    .unwrap_or(rest.len());
                head.push_str(&rest[..compound_end]);
                rest = &rest[compound_end..];
                took = true;
            }
            None => break,
        }
    }
    if took {
        format!("{scope}{head}{rest}")
    } else {
        format!("{scope} {selector}")
    }
}

/// `main` as a type selector becomes `.dars-main` (saved files keep one `<main>` of their own).
fn rename_main(selector: &str) -> String {
    let bytes = selector.as_bytes();
    let mut out = String::with_capacity(selector.len());
    let mut i = 0;
    while i < bytes.len() {
        let boundary_before = i == 0 || !(is_ident(bytes[i - 1]) || b".#:[\\".contains(&bytes[i - 1]));
        if boundary_before
            && selector[i..].len() >= 4
            && selector[i..i + 4].eq_ignore_ascii_case("main")
            && bytes.get(i + 4).is_none_or(|b| !is_ident(*b))
        {
            out.push_str(".dars-main");
            i += 4;
        } else {
            let c = selector[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80
}

fn skip_comment(bytes: &[u8], i: usize) -> usize {
    let mut j = i + 2;
    while j + 1 < bytes.len() && !(bytes[j] == b'*' && bytes[j + 1] == b'/') {
        j += 1;
    }
    (j + 2).min(bytes.len())
}

fn skip_string(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() && bytes[j] != quote && bytes[j] != b'\n' {
        if bytes[j] == b'\\' {
            j += 1;
        }
        j += 1;
    }
    (j + 1).min(bytes.len())
}

/// The `)` closing a `url(` whose text starts at `start`.
fn find_close(bytes: &[u8], start: usize) -> Option<usize> {
    let mut j = start;
    while j < bytes.len() {
        match bytes[j] {
            b')' => return Some(j),
            b'"' | b'\'' => j = skip_string(bytes, j),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// Where a prelude starting at `i` ends, and whether a block (`{`) follows.
fn prelude_end(bytes: &[u8], mut i: usize) -> (usize, bool) {
    let mut parens = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_comment(bytes, i),
            b'"' | b'\'' => i = skip_string(bytes, i),
            b'(' | b'[' => {
                parens += 1;
                i += 1;
            }
            b')' | b']' => {
                parens = parens.saturating_sub(1);
                i += 1;
            }
            b'{' if parens == 0 => return (i, true),
            b';' if parens == 0 => return (i, false),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// The `}` matching a block whose content starts at `i` (or the end of the text).
fn block_end(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 1usize;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_comment(bytes, i),
            b'"' | b'\'' => i = skip_string(bytes, i),
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Splits at `sep` outside parentheses, brackets and strings.
fn split_top(text: &str, sep: u8) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b if b == sep && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_import(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn urls_are_replaced_in_every_form_but_not_in_comments_or_strings() {
        let css = r#"a{background:url(img/a.png)} b{background:URL( "img/b.png" )} /* url(c.png) */ i{content:"url(d.png)"} p{background:url('e.svg')}"#;
        let mut seen = Vec::new();
        let out = rewrite_urls(css, &mut |u| {
            seen.push(u.to_owned());
            format!("data:{u}")
        });
        assert_eq!(seen, ["img/a.png", "img/b.png", "e.svg"]);
        assert!(out.contains(r#"url("data:img/a.png")"#), "{out}");
        assert!(
            out.contains("/* url(c.png) */") && out.contains(r#""url(d.png)""#),
            "{out}"
        );
    }

    #[test]
    fn rules_are_scoped_and_the_root_becomes_the_scope() {
        let css = "*{box-sizing:border-box} html{font-size:100%} body{margin:0} body.dark h1, main > p{color:red} \
                   @media (max-width:400px){table{font-size:.8rem}} @font-face{font-family:x} a:is(.x,.y){}";
        let out = scope(css, ".s1", &mut no_import);
        assert!(out.contains(".s1 *{box-sizing:border-box}"), "{out}");
        assert!(out.contains(".s1{font-size:100%}"), "{out}");
        assert!(out.contains(".s1{margin:0}"), "{out}");
        assert!(out.contains(".s1.dark h1,.s1 .dars-main > p{color:red}"), "{out}");
        assert!(
            out.contains("@media (max-width:400px){.s1 table{font-size:.8rem}}"),
            "{out}"
        );
        assert!(out.contains("@font-face{font-family:x}"), "{out}");
        assert!(out.contains(".s1 a:is(.x,.y){}"), "{out}");
    }

    #[test]
    fn imports_are_inlined_and_unknown_ones_dropped() {
        let out = scope(
            "@charset \"utf-8\"; @import url(\"base.css\"); @import 'missing.css' screen; p{x:y}",
            ".s2",
            &mut |target| (target == "base.css").then(|| ".s2 h1{a:b}".to_owned()),
        );
        assert_eq!(out, ".s2 h1{a:b}.s2 p{x:y}");
    }

    #[test]
    fn a_word_containing_main_is_not_renamed() {
        assert_eq!(scope_selector(".main-menu li", ".s"), ".s .main-menu li");
        assert_eq!(scope_selector("#domain", ".s"), ".s #domain");
        assert_eq!(scope_selector("html body > main", ".s"), ".s > .dars-main");
    }
}
