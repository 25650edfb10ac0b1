//! The saved file around the pages: its head with every style, the table of contents, each
//! lesson's heading and separate downloads, and the profiles script.

use maud::{DOCTYPE, PreEscaped, html};

use super::page::PageOut;
use super::{Build, INLINE_BUDGET, PICTURE_MAX};
use crate::ui::{self, Lang, Text, grade_label, human_size};

/// The saved file's own styles; lesson styles are scoped under their pages, so neither side
/// restyles the other.
const FILE_CSS: &str = "body{margin:0;background:#fff;color:#1a1a1a;font:16px/1.5 system-ui,-apple-system,Roboto,Arial,sans-serif}\
.dars-top,.dars-toc,.dars-lesson-head,.dars-files,.who{max-width:42rem;margin-left:auto;margin-right:auto;padding-left:1rem;padding-right:1rem}\
.dars-top{background:#0a4d2c;color:#fff;max-width:none;padding-top:.6rem;padding-bottom:.6rem}.dars-top h1{margin:.2rem 0;font-size:1.4rem}\
.dars-top p{margin:.2rem 0}.dars-skip{position:absolute;left:-999px}.dars-skip:focus{left:1rem;top:1rem;background:#ff0;color:#000;padding:.5rem}\
.dars-toc a,.dars-files a{display:inline-block;min-height:48px;line-height:48px;color:#0b4f9c}\
.dars-lesson{border-top:6px solid #0a6b3d;margin-top:2rem}.dars-lesson-head h2{font-size:1.5rem;margin:.8rem 0 .2rem}\
.dars-page{border-bottom:2px dashed #bbb;padding-bottom:1rem}.dars-big,.dars-media{display:block;padding:.6rem;border:2px dashed #888;margin:.6rem 0}\
.dars-files{background:#f4f4f0;padding-top:.4rem;padding-bottom:.8rem}.dars-size{color:#444}";

/// The whole file.
pub fn assemble(build: &Build<'_>, title: &str, bodies: &[Vec<PageOut>]) -> String {
    let lang: Lang = build.opts.lang;
    let server = build.opts.server.as_deref().unwrap_or("dars");
    let server_shown = server.trim_start_matches("http://").trim_end_matches('/');
    let mut lesson_css = String::new();
    for (_, css) in build.sheets.values() {
        lesson_css.push_str(css);
        lesson_css.push('\n');
    }
    for css in &build.inline_css {
        lesson_css.push_str(css);
        lesson_css.push('\n');
    }
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="icon" href="data:,";
                style { (PreEscaped(FILE_CSS)) (PreEscaped(ui::PROFILE_CSS)) }
                noscript { style { (PreEscaped(ui::NOSCRIPT_CSS)) } }
                // A `</style` inside lesson CSS would end the element early.
                style { (PreEscaped(lesson_css.replace("</", "<\\/"))) }
            }
            body {
                a .dars-skip href="#dars-main" { (lang.t(Text::SkipToContent)) }
                header .dars-top {
                    p { "dars" }
                    h1 { (title) }
                    p { (lang.fill(Text::SavedFrom, &[&build.opts.today, server_shown])) " " (lang.t(Text::OpensOffline)) }
                }
                (ui::profile_bar(lang))
                nav .dars-toc aria-labelledby="dars-toc-h" {
                    h2 #dars-toc-h { (lang.t(Text::Contents)) }
                    ol {
                        @for (i, lesson) in build.lessons.iter().enumerate() {
                            li {
                                a href={ "#" (lesson.anchor) } { (lesson.row.meta.title) }
                                @if bodies[i].len() > 1 {
                                    ol {
                                        @for (p, page) in bodies[i].iter().enumerate() {
                                            li { a href={ "#" (lesson.page_anchor(p)) } { (page.title) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main #dars-main {
                    @if build.too_big {
                        p .dars-big { (lang.fill(Text::TooBigNote, &[&human_size(PICTURE_MAX)])) }
                    }
                    @if build.over_budget {
                        p .dars-big { (lang.fill(Text::BudgetNote, &[&human_size(INLINE_BUDGET)])) }
                    }
                    @for (i, lesson) in build.lessons.iter().enumerate() {
                        @let meta = &lesson.row.meta;
                        @let lesson_lang = Lang::from_tag(&meta.language).unwrap_or(lang);
                        article .dars-lesson #(lesson.anchor) lang=(meta.language) aria-labelledby={ (lesson.anchor) "-h" } {
                            div .dars-lesson-head {
                                h2 #{ (lesson.anchor) "-h" } { (meta.title) }
                                p { (grade_label(lesson_lang, meta.grade)) " · " (meta.subject) }
                                @if !meta.summary.is_empty() { p { (meta.summary) } }
                                div lang=(lang.code()) { (ui::done_button(lang, &meta.id)) }
                                @if lesson.had_scripts { p .dars-big lang=(lang.code()) { (lang.t(Text::ScriptsDropped)) } }
                            }
                            @for (p, page) in bodies[i].iter().enumerate() {
                                @let classes = {
                                    let mut c = vec!["dars-page".to_owned()];
                                    c.extend(page.sheets.iter().cloned());
                                    c.extend(page.class.iter().cloned());
                                    c.join(" ")
                                };
                                section .(classes) #(lesson.page_anchor(p)) lang=[page.lang.as_deref()] dir=[page.dir.as_deref()] aria-label=(page.title) {
                                    (PreEscaped(&page.body))
                                }
                            }
                            @let files: Vec<_> = build.separate.iter().filter(|s| s.lesson == meta.id).collect();
                            @if !files.is_empty() {
                                aside .dars-files #{ (lesson.anchor) "--files" } lang=(lang.code()) aria-label=(lang.t(Text::Separate)) {
                                    h3 { (lang.t(Text::Separate)) }
                                    p { (lang.t(Text::SeparateNote)) }
                                    ul {
                                        @for file in files {
                                            li {
                                                @match &file.url {
                                                    Some(url) => a href=(url) { (file.path) },
                                                    None => span { (file.path) },
                                                }
                                                " " span .dars-size { "(" (human_size(file.size)) ")" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                script { (PreEscaped(ui::APP_JS.replace("</", "<\\/"))) }
            }
        }
    };
    markup.into_string()
}
