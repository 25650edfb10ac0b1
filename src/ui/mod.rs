//! What the phone pages and the saved offline files share: the languages, the one translation
//! table, the profile script and sizes written for people.

mod i18n;

use maud::{Markup, html};

pub use i18n::{Lang, Text, Words, grade_label, lesson_count};

/// The profiles script ("whose turn is it?", saved lessons, done marks), ES5 so old Chrome
/// reads it. Served at [`script_path`] and inlined into saved files. Keeps everything in
/// `localStorage`; it never sends anything anywhere.
pub const APP_JS: &str = include_str!("app.js");

/// The versioned path the pages load the script from (cached for a year: a new script is a
/// new path).
pub fn script_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| format!("/static/app-{}.js", &blake3::hash(APP_JS.as_bytes()).to_hex()[..12]))
}

/// A size for people: `512 B`, `34 KB`, `2.4 MB` (decimal units, as phones show them).
pub fn human_size(bytes: u64) -> String {
    const KB: f64 = 1000.0;
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} B")
    } else if b < KB * KB {
        format!("{:.0} KB", (b / KB).max(1.0))
    } else if b < KB * KB * KB {
        format!("{:.1} MB", b / (KB * KB))
    } else {
        format!("{:.1} GB", b / (KB * KB * KB))
    }
}

/// "Whose turn is it?": made to work by [`APP_JS`]; hidden without it (by [`NOSCRIPT_CSS`],
/// so the page does not shift when the script starts). There is no
/// form, so a name typed here cannot be submitted to any server, even with the script broken.
pub fn profile_bar(lang: Lang) -> Markup {
    html! {
        section #who .who aria-labelledby="who-h" {
            p #who-h .who-title { (lang.t(Text::WhoseTurn)) }
            div #who-list {}
            label for="who-input" { (lang.t(Text::NameLabel)) }
            div .who-add {
                input #who-input type="text" maxlength="24" autocomplete="off" autocapitalize="words";
                button #who-add type="button" { (lang.t(Text::AddName)) }
            }
            p .fine { (lang.t(Text::NameStaysHere)) }
        }
    }
}

/// The "done" toggle of a lesson, for the current profile (shown by the script).
pub fn done_button(lang: Lang, lesson: &str) -> Markup {
    html! {
        button .done type="button" aria-pressed="false" data-done=(lesson)
            data-on=(lang.t(Text::Done)) data-off=(lang.t(Text::MarkDone)) { (lang.t(Text::MarkDone)) }
    }
}

/// Hides what needs the script when scripts are off (put inside `<noscript>` in the head).
pub const NOSCRIPT_CSS: &str = ".who,button.done{display:none}";

/// Styles of the profile bar and the done button, shared by pages and saved files.
pub const PROFILE_CSS: &str = ".who{margin:1rem 0;padding:.5rem .8rem;border:2px solid #0a6b3d;border-radius:.5rem}\
.who-title{font-weight:700;font-size:1.1rem;margin:.3rem 0}.who label{display:block;margin-top:.4rem}\
.who-add{display:flex;gap:.5rem}.who-add input{flex:1;min-width:0;min-height:48px;font-size:1rem;padding:0 .5rem;border:2px solid #555;border-radius:.4rem}\
.who button,button.done{min-height:48px;min-width:48px;font-size:1rem;padding:0 1rem;border-radius:.4rem;border:2px solid #0a6b3d;background:#fff;color:#0a4d2c;margin:.2rem .3rem .2rem 0;cursor:pointer}\
.who button[aria-pressed=true],button.done[aria-pressed=true]{background:#0a6b3d;color:#fff}\
.fine{font-size:.9rem;color:#333}[hidden]{display:none!important}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_phone_shows_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(34_400), "34 KB");
        assert_eq!(human_size(2_400_000), "2.4 MB");
    }

    #[test]
    fn the_script_path_changes_with_the_script() {
        assert!(script_path().starts_with("/static/app-"));
        assert!(script_path().ends_with(".js"));
    }
}
