//! Plots drawn on the server as SVG, for the usage pages: one bar per day,
//! the largest value and the first and last day written beside them. The
//! SVG is inline in the page and styled by the console's stylesheet (no
//! inline style or script, so the strict CSP holds); each plot carries a
//! text label, and the numbers it shows are also written out on the page.

use std::fmt::Write;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// One bar per value (`None`: nothing recorded that day, no bar), under
/// `label` for screen readers; `words` writes a value as people read it.
pub fn bars(
    label: &str,
    days: &[String],
    values: &[Option<i64>],
    words: impl Fn(i64) -> String,
) -> String {
    let most = values.iter().flatten().copied().max().unwrap_or(0).max(1);
    let count = values.len().max(1) as f64;
    let slot = (WIDTH - LEFT) / count;
    let bar = (slot * 0.8).max(0.5);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(label)
    );
    let _ = write!(svg, "<title>{}</title>", escape(label));
    let floor = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{floor}" x2="{WIDTH}" y2="{floor}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{floor}"/>"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{floor}" text-anchor="end">0</text>"#,
        LEFT - 6.0,
        TOP + 10.0,
        escape(&words(most)),
        LEFT - 6.0,
    );
    for (i, value) in values.iter().enumerate() {
        let Some(value) = value else { continue };
        let height = (*value as f64 / most as f64) * (floor - TOP);
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let day = days.get(i).map(String::as_str).unwrap_or_default();
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.2}" y="{:.2}" width="{bar:.2}" height="{height:.2}"><title>{}: {}</title></rect>"#,
            floor - height,
            escape(day),
            escape(&words(*value)),
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="{HEIGHT}" text-anchor="start">{}</text><text x="{WIDTH}" y="{HEIGHT}" text-anchor="end">{}</text>"#,
            escape(first),
            escape(last),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_recorded_day_is_a_bar_scaled_to_the_largest() {
        let days: Vec<String> = ["2026-11-29", "2026-11-30", "2026-12-01"]
            .iter()
            .map(|d| d.to_string())
            .collect();
        let svg = super::bars("Stored <bytes>", &days, &[Some(50), None, Some(100)], |v| {
            format!("{v} B")
        });
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("aria-label=\"Stored &lt;bytes&gt;\""));
        assert!(
            svg.contains(">100 B</text>"),
            "the largest value is written: {svg}"
        );
        assert!(svg.contains("<title>2026-12-01: 100 B</title>"));
        // The largest bar fills the height between the top and the floor.
        assert!(svg.contains(r#"y="8.00" width"#), "{svg}");
    }
}
