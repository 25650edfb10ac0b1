//! One lesson page rewritten for the saved file (with lol_html, a streaming HTML rewriter):
//! the body kept, the head's styles collected and scoped, pictures inlined, links turned into
//! anchors, ids made unique in the file, scripts and event handlers dropped.

use std::cell::RefCell;

use lol_html::html_content::{ContentType, Element};
use lol_html::{RewriteStrSettings, element, rewrite_str, text};

use super::resolve::Target;
use super::{Build, PICTURE_MAX, css, essence};
use crate::service::ServiceError;
use crate::ui::{Text, human_size};

const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// A page of the saved file, ready to be put in its section.
#[derive(Debug, Default)]
pub struct PageOut {
    pub body: String,
    pub title: String,
    pub lang: Option<String>,
    pub dir: Option<String>,
    pub class: Option<String>,
    /// The classes of the lesson stylesheets this page links.
    pub sheets: Vec<String>,
}

struct State<'b, 'c> {
    build: &'b mut Build<'c>,
    lesson: usize,
    page: usize,
    path: String,
    out: PageOut,
    style: String,
    error: Option<ServiceError>,
}

type Handled = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Rewrites page `page` of lesson `lesson`.
pub fn rewrite(build: &mut Build<'_>, lesson: usize, page: usize) -> Result<PageOut, ServiceError> {
    let path = build.lessons[lesson].pages[page].clone();
    let raw = build.read(lesson, &path)?;
    let html = String::from_utf8_lossy(&raw).into_owned();
    let title = page_title(&html).unwrap_or_else(|| path.clone());
    let state = RefCell::new(State {
        build,
        lesson,
        page,
        path,
        out: PageOut {
            title,
            ..PageOut::default()
        },
        style: String::new(),
        error: None,
    });
    let settings = RewriteStrSettings::new()
        .with_strict(false)
        .append_element_content_handler(element!("*", |el| handle(&state, el)))
        .append_element_content_handler(text!("style", |t| {
            let mut s = state.borrow_mut();
            s.style.push_str(t.as_str());
            t.remove();
            if t.last_in_text_node() {
                let css_text = std::mem::take(&mut s.style);
                let scope = format!("#{}", s.build.lessons[s.lesson].page_anchor(s.page));
                let (lesson, path) = (s.lesson, s.path.clone());
                let scoped = s.build.css(lesson, &path, &css_text, &scope, 0);
                match scoped {
                    Ok(scoped) => s.build.inline_css.push(scoped),
                    Err(e) => return stop(&mut s, e),
                }
            }
            Ok(())
        }));
    let body = rewrite_str(&html, settings);
    let mut state = state.into_inner();
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    state.out.body = body.map_err(|e| ServiceError::Internal(format!("cannot rewrite {}: {e}", state.path)))?;
    Ok(state.out)
}

fn stop(state: &mut State<'_, '_>, e: ServiceError) -> Handled {
    state.error = Some(e);
    Err("stopped".into())
}

/// The text of the page's first `<title>`.
fn page_title(html: &str) -> Option<String> {
    let title = RefCell::new((String::new(), false));
    let _ = rewrite_str(
        html,
        RewriteStrSettings::new()
            .with_strict(false)
            .append_element_content_handler(text!("title", |t| {
                let mut title = title.borrow_mut();
                if !title.1 {
                    title.0.push_str(t.as_str());
                    title.1 = t.last_in_text_node();
                }
                Ok(())
            })),
    );
    let (text, _) = title.into_inner();
    let text = decode_entities(text.split_whitespace().collect::<Vec<_>>().join(" ").as_str());
    (!text.is_empty()).then_some(text)
}

/// The few character references page titles use.
fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn handle(state: &RefCell<State<'_, '_>>, el: &mut Element<'_, '_>) -> Handled {
    let mut s = state.borrow_mut();
    match handle_inner(&mut s, el) {
        Ok(()) => Ok(()),
        Err(e) => stop(&mut s, e),
    }
}

fn handle_inner(s: &mut State<'_, '_>, el: &mut Element<'_, '_>) -> Result<(), ServiceError> {
    let tag = el.tag_name().to_ascii_lowercase();
    let svg = el.namespace_uri() == SVG_NS;
    let events: Vec<String> = el
        .attributes()
        .iter()
        .map(|a| a.name())
        .filter(|n| n.to_ascii_lowercase().starts_with("on"))
        .collect();
    for name in events {
        el.remove_attribute(&name);
    }
    match tag.as_str() {
        "script" => {
            s.build.lessons[s.lesson].had_scripts = true;
            el.remove();
            return Ok(());
        }
        "noscript" | "head" => el.remove_and_keep_content(),
        "html" | "body" => {
            if let Some(lang) = el.get_attribute("lang") {
                s.out.lang = Some(lang);
            }
            if let Some(dir) = el.get_attribute("dir") {
                s.out.dir = Some(dir);
            }
            if tag == "body"
                && let Some(class) = el.get_attribute("class")
            {
                s.out.class = Some(class);
            }
            el.remove_and_keep_content();
            return Ok(());
        }
        "title" if !svg => {
            el.remove();
            return Ok(());
        }
        "meta" | "base" | "track" => {
            el.remove();
            return Ok(());
        }
        "link" => {
            let rel = el.get_attribute("rel").unwrap_or_default().to_ascii_lowercase();
            if rel.split_whitespace().any(|r| r == "stylesheet")
                && let Some(href) = el.get_attribute("href")
                && let Target::File { lesson, path } = s.build.resolve(s.lesson, &s.path, &href)
            {
                let class = s.build.sheet(lesson, &path)?;
                if !s.out.sheets.contains(&class) {
                    s.out.sheets.push(class);
                }
            }
            el.remove();
            return Ok(());
        }
        "style" => el.remove_and_keep_content(),
        "main" => {
            let _ = el.set_tag_name("div");
            let class = el
                .get_attribute("class")
                .map_or("dars-main".to_owned(), |c| format!("{c} dars-main"));
            set(el, "class", &class);
        }
        "img" if picture(s, el)? => return Ok(()),
        "input"
            if el
                .get_attribute("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("image")) =>
        {
            if let Some(src) = el.get_attribute("src") {
                match s.picture_uri(&src)? {
                    Some(uri) => set(el, "src", &uri),
                    None => el.remove_attribute("src"),
                }
            }
        }
        "source" => {
            if let Some(srcset) = el.get_attribute("srcset") {
                match s.best_of_srcset(&srcset)? {
                    Some(uri) => set(el, "srcset", &uri),
                    None => el.remove(),
                }
            } else if let Some(src) = el.get_attribute("src") {
                let link = s.download_link(&src)?;
                el.replace(&link, ContentType::Html);
                return Ok(());
            }
        }
        "video" | "audio" => {
            let src = el.get_attribute("src");
            let names: Vec<String> = el.attributes().iter().map(|a| a.name()).collect();
            for name in names {
                if name != "id" {
                    el.remove_attribute(&name);
                }
            }
            let _ = el.set_tag_name("div");
            set(el, "class", "dars-media");
            let mut lead = format!("<p>{}</p>", escape(s.build.opts.lang.t(Text::MediaPlaceholder)));
            if let Some(src) = src {
                lead.push_str(&s.download_link(&src)?);
            }
            el.prepend(&lead, ContentType::Html);
        }
        "iframe" | "embed" | "object" | "frame" => {
            let src = el.get_attribute("src").or_else(|| el.get_attribute("data"));
            let link = match src {
                Some(src) => s.download_link(&src)?,
                None => String::new(),
            };
            el.replace(&format!("<p class=\"dars-media\">{link}</p>"), ContentType::Html);
            return Ok(());
        }
        "a" | "area" | "form" => {
            let attr = if tag == "form" { "action" } else { "href" };
            if let Some(href) = el.get_attribute(attr) {
                let target = s.build.resolve(s.lesson, &s.path, &href);
                let size_note = match &target {
                    Target::File { lesson, path } => s.build.lessons[*lesson].files.get(path).and_then(|f| {
                        super::is_material(&f.media_type).then(|| {
                            format!(
                                " <small class=\"dars-size\">({}, {})</small>",
                                human_size(f.size),
                                s.build.opts.lang.t(Text::OnlineOnly)
                            )
                        })
                    }),
                    _ => None,
                };
                match s.build.link_href(s.lesson, s.page, target) {
                    Some(url) => set(el, attr, &url),
                    None => el.remove_attribute(attr),
                }
                if let Some(note) = size_note
                    && tag == "a"
                {
                    el.after(&note, ContentType::Html);
                }
            }
        }
        "image" | "use" | "feimage" if svg => {
            for attr in ["href", "xlink:href"] {
                if let Some(href) = el.get_attribute(attr) {
                    if let Some(fragment) = href.strip_prefix('#') {
                        let anchor = s.build.element_anchor(s.lesson, s.page, fragment);
                        set(el, attr, &format!("#{anchor}"));
                    } else {
                        match s.picture_uri(&href)? {
                            Some(uri) => set(el, attr, &uri),
                            None => el.remove_attribute(attr),
                        }
                    }
                }
            }
        }
        _ => {}
    }
    common_attributes(s, el)
}

fn set(el: &mut Element<'_, '_>, name: &str, value: &str) {
    let _ = el.set_attribute(name, value);
}

/// Ids made unique in the file, references to them following, and pictures in `style`.
fn common_attributes(s: &mut State<'_, '_>, el: &mut Element<'_, '_>) -> Result<(), ServiceError> {
    let (lesson, page) = (s.lesson, s.page);
    if let Some(id) = el.get_attribute("id") {
        set(el, "id", &s.build.element_anchor(lesson, page, &id));
    }
    if el.tag_name().eq_ignore_ascii_case("a")
        && let Some(name) = el.get_attribute("name")
        && el.get_attribute("id").is_none()
    {
        set(el, "id", &s.build.element_anchor(lesson, page, &name));
    }
    for attr in [
        "for",
        "aria-labelledby",
        "aria-describedby",
        "aria-controls",
        "aria-owns",
        "headers",
        "list",
    ] {
        if let Some(value) = el.get_attribute(attr) {
            let ids: Vec<String> = value
                .split_whitespace()
                .map(|id| s.build.element_anchor(lesson, page, id))
                .collect();
            set(el, attr, &ids.join(" "));
        }
    }
    let attrs: Vec<(String, String)> = el.attributes().iter().map(|a| (a.name(), a.value())).collect();
    for (name, value) in attrs {
        if name == "style" {
            let path = s.path.clone();
            let rewritten = s.build.css_urls(lesson, page, &path, &value)?;
            set(el, "style", &rewritten);
        } else if value.contains("url(#") {
            let rewritten = css::rewrite_urls(&value, &mut |u| match u.strip_prefix('#') {
                Some(f) => format!("#{}", s.build.element_anchor(lesson, page, f)),
                None => u.to_owned(),
            });
            set(el, &name, &rewritten);
        }
    }
    Ok(())
}

/// An `<img>`: inlined, or replaced by its description and a link when it cannot be.
/// Returns whether the element was replaced.
fn picture(s: &mut State<'_, '_>, el: &mut Element<'_, '_>) -> Result<bool, ServiceError> {
    if let Some(srcset) = el.get_attribute("srcset") {
        el.remove_attribute("srcset");
        el.remove_attribute("sizes");
        if let Some(uri) = s.best_of_srcset(&srcset)? {
            set(el, "src", &uri);
            return Ok(false);
        }
    }
    let Some(src) = el.get_attribute("src") else {
        return Ok(false);
    };
    if src.trim_start().starts_with("data:") {
        return Ok(false);
    }
    if let Some(uri) = s.picture_uri(&src)? {
        set(el, "src", &uri);
        return Ok(false);
    }
    let alt = el.get_attribute("alt").unwrap_or_default();
    let link = s.download_link(&src)?;
    el.replace(
        &format!("<span class=\"dars-big\">{} {link}</span>", escape(&alt)),
        ContentType::Html,
    );
    Ok(true)
}

impl State<'_, '_> {
    /// A picture reference as a data: URI, if it is a lesson picture that fits.
    fn picture_uri(&mut self, reference: &str) -> Result<Option<String>, ServiceError> {
        match self.build.resolve(self.lesson, &self.path, reference) {
            Target::File { lesson, path } => Ok(self.build.data_uri(lesson, &path)?.map(|u| u.to_string())),
            _ => Ok(None),
        }
    }

    /// The one candidate of a `srcset` worth keeping on a phone (about 2x), inlined.
    fn best_of_srcset(&mut self, srcset: &str) -> Result<Option<String>, ServiceError> {
        if srcset.contains("data:") {
            return Ok(None);
        }
        let mut candidates: Vec<(f64, String)> = Vec::new();
        for part in srcset.split(',') {
            let mut words = part.split_whitespace();
            let Some(url) = words.next() else { continue };
            let descriptor = words.next().unwrap_or("1x");
            let value = descriptor[..descriptor.len().saturating_sub(1)]
                .parse::<f64>()
                .unwrap_or(1.0);
            // Widths compare as densities of a 360 px wide screen.
            let density = if descriptor.ends_with('w') {
                value / 360.0
            } else {
                value
            };
            candidates.push((density, url.to_owned()));
        }
        // Closest to 2x first, preferring the sharper one on a tie.
        candidates.sort_by(|a, b| {
            let da = (a.0 - 2.0).abs();
            let db = (b.0 - 2.0).abs();
            da.total_cmp(&db).then(b.0.total_cmp(&a.0))
        });
        for (_, url) in candidates {
            let fits = match self.build.resolve(self.lesson, &self.path, &url) {
                Target::File { lesson, ref path } => self.build.lessons[lesson]
                    .files
                    .get(path)
                    .is_some_and(|f| f.size <= PICTURE_MAX),
                _ => false,
            };
            if fits && let Some(uri) = self.picture_uri(&url)? {
                return Ok(Some(uri));
            }
        }
        Ok(None)
    }

    /// A link to a file that is not in the saved file: its name, size and where to get it.
    fn download_link(&mut self, reference: &str) -> Result<String, ServiceError> {
        let lang = self.build.opts.lang;
        let target = self.build.resolve(self.lesson, &self.path, reference);
        let (name, size, too_big) = match &target {
            Target::File { lesson, path } => {
                let file = &self.build.lessons[*lesson].files[path];
                let (size, picture) = (file.size, essence(&file.media_type).starts_with("image/"));
                if picture {
                    self.build.list(*lesson, path, true);
                }
                let name = path.rsplit('/').next().unwrap_or(path).to_owned();
                (name, Some(size), picture)
            }
            _ => (reference.to_owned(), None, false),
        };
        let href = self.build.link_href(self.lesson, self.page, target);
        let label = if too_big {
            format!("{} ({})", lang.t(Text::TooBigPicture), name)
        } else {
            name
        };
        let detail = match size {
            Some(size) => format!(
                " <small class=\"dars-size\">({}, {})</small>",
                human_size(size),
                lang.t(Text::OnlineOnly)
            ),
            None => String::new(),
        };
        Ok(match href {
            Some(href) => format!("<a href=\"{}\">{}</a>{detail}", escape(&href), escape(&label)),
            None => format!("{}{detail}", escape(&label)),
        })
    }
}

impl Build<'_> {
    /// The class that scopes stylesheet `path` of `lesson`, scoping and storing it the first
    /// time it is linked.
    fn sheet(&mut self, lesson: usize, path: &str) -> Result<String, ServiceError> {
        let key = (lesson, path.to_owned());
        if let Some((class, _)) = self.sheets.get(&key) {
            return Ok(class.clone());
        }
        let class = format!("dars-s{}", self.sheets.len() + 1);
        // Reserve the class first, so a sheet importing itself does not loop.
        self.sheets.insert(key.clone(), (class.clone(), String::new()));
        let raw = self.read(lesson, path)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let scoped = self.css(lesson, path, &text, &format!(".{class}"), 0)?;
        self.sheets.insert(key, (class.clone(), scoped));
        Ok(class)
    }

    /// CSS from file `path` of `lesson` (or a page's `<style>`), scoped under `scope`, with
    /// its pictures inlined and its `@import`s (of lesson files, four deep) inlined.
    fn css(
        &mut self,
        lesson: usize,
        path: &str,
        text: &str,
        scope: &str,
        depth: usize,
    ) -> Result<String, ServiceError> {
        let with_urls = self.css_urls(lesson, usize::MAX, path, text)?;
        let mut error = None;
        let mut imports: Vec<(String, Option<String>)> = Vec::new();
        // Scoping needs the imported sheets' text: resolve them first, then scope.
        {
            let mut collect = |target: &str| -> Option<String> {
                imports.push((target.to_owned(), None));
                None
            };
            let _ = css::scope(&with_urls, scope, &mut collect);
        }
        for (target, text_out) in &mut imports {
            if depth >= 4 {
                break;
            }
            if let Target::File { lesson: l, path: p } = self.resolve(lesson, path, target) {
                match self.read(l, &p) {
                    Ok(raw) => {
                        let imported = String::from_utf8_lossy(&raw).into_owned();
                        match self.css(l, &p, &imported, scope, depth + 1) {
                            Ok(scoped) => *text_out = Some(scoped),
                            Err(e) => error = Some(e),
                        }
                    }
                    Err(e) => error = Some(e),
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        let mut next = imports.into_iter();
        Ok(css::scope(&with_urls, scope, &mut |_| next.next().and_then(|(_, t)| t)))
    }

    /// CSS with every `url()` to a lesson picture or font inlined; fragments follow the
    /// page's ids (`page` is `usize::MAX` for a stylesheet file, whose fragments stay).
    fn css_urls(&mut self, lesson: usize, page: usize, path: &str, text: &str) -> Result<String, ServiceError> {
        let mut error = None;
        let out = css::rewrite_urls(text, &mut |url| {
            if url.starts_with("data:") {
                return url.to_owned();
            }
            if let Some(fragment) = url.strip_prefix('#') {
                return if page == usize::MAX {
                    url.to_owned()
                } else {
                    format!("#{}", self.element_anchor(lesson, page, fragment))
                };
            }
            match self.resolve(lesson, path, url) {
                Target::File { lesson: l, path: p } => match self.data_uri(l, &p) {
                    Ok(Some(uri)) => uri.to_string(),
                    Ok(None) => "data:,".to_owned(),
                    Err(e) => {
                        error = Some(e);
                        "data:,".to_owned()
                    }
                },
                // Nothing is fetched from the network when the file is opened.
                _ => "data:,".to_owned(),
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}
