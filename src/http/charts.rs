//! Small charts drawn on the server as inline SVG (no JavaScript, no images to fetch): bars per
//! day, bars per lesson, and a sparkline. Each carries a `<title>` and an `aria-label`: the
//! caller's title (in the page's language) with the total and the highest figure, written in
//! symbols (Σ, max) that read the same in Azerbaijani, Russian and English; every bar has its
//! own `<title>` with its figure.

use maud::{Markup, html};

use crate::service::usage::{DayUse, LessonUse};

/// Height of the drawing area of a column chart, in SVG units.
const HEIGHT: u32 = 60;
/// Width of one column and the gap after it.
const COLUMN: u32 = 6;
const GAP: u32 = 2;
/// Height of one row of a bar chart.
const ROW: u32 = 14;
/// Width of a bar chart's longest bar; its labels take the left part.
const BAR_WIDTH: u32 = 200;
const LABEL_WIDTH: u32 = 150;

fn scaled(value: u64, max: u64, full: u32) -> u32 {
    if max == 0 {
        return 0;
    }
    let h = (u128::from(value) * u128::from(full)).div_ceil(u128::from(max));
    u32::try_from(h).unwrap_or(full).min(full)
}

/// What a series shows, for the chart's title: `Views: Σ 15 · max 10 (2026-11-03)`.
fn summary(title: &str, points: &[(String, u64)]) -> String {
    let total: u64 = points.iter().map(|p| p.1).sum();
    match points.iter().max_by_key(|p| p.1) {
        Some((label, max)) if *max > 0 => format!("{title}: Σ {total} · max {max} ({label})"),
        _ => format!("{title}: 0"),
    }
}

/// Columns, one per point (a day, say), left to right, with a base line.
pub fn columns(title: &str, points: &[(String, u64)]) -> Markup {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0);
    let n = u32::try_from(points.len()).unwrap_or(u32::MAX).max(1);
    let width = n * (COLUMN + GAP);
    let label = summary(title, points);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(label)
            viewBox=(format!("0 0 {width} {}", HEIGHT + 1)) width=(width * 2) height=((HEIGHT + 1) * 2)
            preserveAspectRatio="none" {
            title { (label) }
            @for (i, (name, value)) in points.iter().enumerate() {
                @let h = scaled(*value, max, HEIGHT);
                @let x = u32::try_from(i).unwrap_or(0) * (COLUMN + GAP);
                rect x=(x) y=(HEIGHT - h) width=(COLUMN) height=(h) fill="#2a6f97" {
                    title { (name) ": " (value) }
                }
            }
            line x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) stroke="#888" stroke-width="1" {}
        }
    }
}

/// Horizontal bars, one per point (a lesson, say), each with its name and figure beside it.
pub fn bars(title: &str, points: &[(String, u64)]) -> Markup {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0);
    let rows = u32::try_from(points.len()).unwrap_or(u32::MAX);
    let width = LABEL_WIDTH + BAR_WIDTH + 40;
    let height = (rows * ROW).max(ROW);
    let label = summary(title, points);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(label)
            viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) font-size="10" {
            title { (label) }
            @if points.is_empty() {
                text x="0" y="10" { "—" }
            }
            @for (i, (name, value)) in points.iter().enumerate() {
                @let y = u32::try_from(i).unwrap_or(0) * ROW;
                @let w = scaled(*value, max, BAR_WIDTH);
                g {
                    title { (name) ": " (value) }
                    text x=(LABEL_WIDTH - 4) y=(y + 10) text-anchor="end" { (short(name)) }
                    rect x=(LABEL_WIDTH) y=(y + 2) width=(w) height=(ROW - 4) fill="#2a6f97" {}
                    text x=(LABEL_WIDTH + w + 4) y=(y + 10) { (value) }
                }
            }
        }
    }
}

/// A line through the values, for a table cell; `title` says what they are.
pub fn sparkline(title: &str, values: &[u64]) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0);
    let n = u32::try_from(values.len()).unwrap_or(u32::MAX);
    let width = (n.saturating_sub(1) * 4).max(4);
    let height = 20;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{},{}",
                u32::try_from(i).unwrap_or(0) * 4,
                height - scaled(*v, max, height)
            )
        })
        .collect();
    let total: u64 = values.iter().sum();
    let label = format!("{title}: Σ {total} · max {max}");
    html! {
        svg.spark xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(label)
            viewBox=(format!("0 -1 {width} {}", height + 2)) width=(width) height=(height + 2) {
            title { (label) }
            polyline points=(points.join(" ")) fill="none" stroke="#2a6f97" stroke-width="1" {}
        }
    }
}

/// Most lessons a per-lesson chart draws (the page's table lists them all).
pub const MOST_BARS: usize = 15;
/// Longest name written beside a bar; the bar's own `<title>` carries the whole name.
const NAME_CHARS: usize = 26;

fn short(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        return name.to_owned();
    }
    let mut text: String = name.chars().take(NAME_CHARS - 1).collect();
    text.push('…');
    text
}

/// Usage figures for a console page: views and offline saves per day as columns, then the
/// most viewed and the most saved lessons as bars (at most [`MOST_BARS`] each, named by
/// `name`, a lesson's title say). The titles are the page's, in its language.
#[derive(Debug, Clone, Copy)]
pub struct UsageTitles<'a> {
    pub views_per_day: &'a str,
    pub saves_per_day: &'a str,
    pub views_per_lesson: &'a str,
    pub saves_per_lesson: &'a str,
}

pub fn usage(
    per_day: &[DayUse],
    totals: &[LessonUse],
    name: impl Fn(&str) -> String,
    titles: &UsageTitles<'_>,
) -> Markup {
    let views_per_day: Vec<(String, u64)> = per_day.iter().map(|d| (d.date.clone(), d.views)).collect();
    let saves_per_day: Vec<(String, u64)> = per_day.iter().map(|d| (d.date.clone(), d.offline_saves)).collect();
    let most = |figure: fn(&LessonUse) -> u64| {
        let mut points: Vec<(u64, &str)> = totals
            .iter()
            .filter(|t| figure(t) > 0)
            .map(|t| (figure(t), t.lesson.as_str()))
            .collect();
        points.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        points
            .into_iter()
            .take(MOST_BARS)
            .map(|(value, lesson)| (name(lesson), value))
            .collect::<Vec<_>>()
    };
    let views = most(|t| t.views);
    let saves = most(|t| t.offline_saves);
    html! {
        figure.usage { (columns(titles.views_per_day, &views_per_day)) figcaption { (day_caption(titles.views_per_day, &views_per_day)) } }
        figure.usage { (columns(titles.saves_per_day, &saves_per_day)) figcaption { (day_caption(titles.saves_per_day, &saves_per_day)) } }
        figure.usage { (bars(titles.views_per_lesson, &views)) figcaption { (titles.views_per_lesson) } }
        figure.usage { (bars(titles.saves_per_lesson, &saves)) figcaption { (titles.saves_per_lesson) } }
    }
}

/// A day chart's caption: its figures in words (the bars have no axis) and the days it spans.
fn day_caption(title: &str, points: &[(String, u64)]) -> Markup {
    html! {
        (summary(title, points))
        @if let (Some(first), Some(last)) = (points.first(), points.last()) {
            br; small { (first.0) " – " (last.0) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[u64]) -> Vec<(String, u64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("2026-11-{:02}", i + 1), *v))
            .collect()
    }

    fn heights(svg: &str) -> Vec<u32> {
        svg.split("<rect ")
            .skip(1)
            .map(|r| {
                let at = r.find("height=\"").expect("height") + 8;
                r[at..].split('"').next().expect("value").parse().expect("number")
            })
            .collect()
    }

    #[test]
    fn columns_scale_to_the_highest_and_name_each_figure() {
        let svg = columns("Views per day", &series(&[0, 5, 10])).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("role=\"img\""), "{svg}");
        assert!(
            svg.contains("<title>Views per day: Σ 15 · max 10 (2026-11-03)</title>"),
            "{svg}"
        );
        assert_eq!(heights(&svg), vec![0, HEIGHT / 2, HEIGHT]);
        assert!(svg.contains("<title>2026-11-02: 5</title>"), "{svg}");
    }

    #[test]
    fn an_empty_or_zero_series_draws_without_dividing_by_zero() {
        let svg = columns("Views", &series(&[0, 0])).into_string();
        assert_eq!(heights(&svg), vec![0, 0]);
        assert!(svg.contains("<title>Views: 0</title>"), "{svg}");
        let svg = bars("Lessons", &[]).into_string();
        assert!(svg.contains("<title>Lessons: 0</title>"), "{svg}");
        let svg = sparkline("Views", &[]).into_string();
        assert!(svg.contains("points=\"\""), "{svg}");
    }

    #[test]
    fn bars_carry_names_and_escape_them() {
        let points = vec![("<script>".to_owned(), 4), ("water-cycle".to_owned(), 2)];
        let svg = bars("Views per lesson", &points).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains(">water-cycle</text>"), "{svg}");
        let widths: Vec<u32> = svg
            .split("<rect ")
            .skip(1)
            .map(|r| {
                let at = r.find("width=\"").expect("width") + 7;
                r[at..].split('"').next().expect("value").parse().expect("number")
            })
            .collect();
        assert_eq!(widths, vec![BAR_WIDTH, BAR_WIDTH / 2]);
    }

    #[test]
    fn usage_draws_days_and_lessons() {
        let per_day = vec![
            DayUse {
                date: "2026-11-30".to_owned(),
                views: 2,
                offline_saves: 0,
            },
            DayUse {
                date: "2026-12-01".to_owned(),
                views: 4,
                offline_saves: 1,
            },
        ];
        let use_of = |lesson: &str, views, offline_saves| LessonUse {
            lesson: lesson.to_owned(),
            views,
            offline_saves,
        };
        let totals = vec![use_of("fractions", 6, 1), use_of("saved-only", 0, 3)];
        let titles = UsageTitles {
            views_per_day: "Baxışlar, gün üzrə",
            saves_per_day: "Oflayn saxlamalar, gün üzrə",
            views_per_lesson: "Baxışlar, dərs üzrə",
            saves_per_lesson: "Oflayn saxlamalar",
        };
        let name = |id: &str| format!("Dərs {id}");
        let html = usage(&per_day, &totals, name, &titles).into_string();
        assert_eq!(html.matches("<svg").count(), 4, "{html}");
        assert!(
            html.contains("<title>Baxışlar, gün üzrə: Σ 6 · max 4 (2026-12-01)</title>"),
            "{html}"
        );
        assert!(
            html.contains("<title>Oflayn saxlamalar, gün üzrə: Σ 1 · max 1 (2026-12-01)</title>"),
            "{html}"
        );
        // Lessons by their names; one never viewed is not a bar of views.
        assert!(html.contains("<title>Dərs fractions: 6</title>"), "{html}");
        assert!(!html.contains("<title>Dərs saved-only: 0</title>"), "{html}");
        assert!(
            html.contains("<title>Oflayn saxlamalar: Σ 4 · max 3 (Dərs saved-only)</title>"),
            "{html}"
        );
    }

    #[test]
    fn per_lesson_charts_keep_the_most_used_and_shorten_long_names() {
        let totals: Vec<LessonUse> = (1..=40)
            .map(|i| LessonUse {
                lesson: format!("lesson-{i:02}"),
                views: i,
                offline_saves: 0,
            })
            .collect();
        let titles = UsageTitles {
            views_per_day: "d",
            saves_per_day: "s",
            views_per_lesson: "Views",
            saves_per_lesson: "Saves",
        };
        let long = |id: &str| format!("{id}: a lesson whose title runs on and on");
        let html = usage(&[], &totals, long, &titles).into_string();
        assert_eq!(html.matches("<rect ").count(), MOST_BARS, "{html}");
        assert!(html.contains("lesson-40: a lesson whose title runs on and on: 40</title>"));
        assert!(!html.contains("lesson-25:"), "only the {MOST_BARS} most viewed");
        assert!(html.contains(">lesson-40: a lesson whose…</text>"), "{html}");
    }

    #[test]
    fn a_sparkline_runs_through_every_value() {
        let svg = sparkline("Views, last 3 days", &[0, 10, 5]).into_string();
        assert!(svg.contains("points=\"0,20 4,0 8,10\""), "{svg}");
        assert!(
            svg.contains("<title>Views, last 3 days: Σ 15 · max 10</title>"),
            "{svg}"
        );
    }
}
