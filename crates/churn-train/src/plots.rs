//! Small SVG charts for the HTML model card: ROC curve, calibration curve, lift chart and
//! importance bars. Plain SVG text, so the card is one file with nothing to fetch.

use std::fmt::Write;

use crate::metrics::reliability;
use crate::train::Driver;

const SIZE: f64 = 300.0;
const MARGIN: f64 = 40.0;

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A square chart with axes from 0 to `x_max` and 0 to `y_max`.
struct Chart {
    svg: String,
    x_max: f64,
    y_max: f64,
}

impl Chart {
    fn new(title: &str, x_label: &str, y_label: &str, x_max: f64, y_max: f64) -> Chart {
        let full = SIZE + 2.0 * MARGIN;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{full}\" height=\"{full}\" \
             viewBox=\"0 0 {full} {full}\" font-size=\"11\" role=\"img\" aria-label=\"{title}\">\
             <text x=\"{mid}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">{title}</text>\
             <rect x=\"{MARGIN}\" y=\"{MARGIN}\" width=\"{SIZE}\" height=\"{SIZE}\" fill=\"none\" \
             stroke=\"#999\"/>\
             <text x=\"{mid}\" y=\"{x_label_y}\" text-anchor=\"middle\">{x_label}</text>\
             <text x=\"12\" y=\"{mid}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {mid})\">\
             {y_label}</text>",
            mid = full / 2.0,
            x_label_y = full - 8.0,
            title = escape(title),
            x_label = escape(x_label),
            y_label = escape(y_label),
        );
        for step in 0..=4 {
            let fraction = f64::from(step) / 4.0;
            let x = MARGIN + fraction * SIZE;
            let y = MARGIN + SIZE - fraction * SIZE;
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                MARGIN + SIZE + 14.0,
                tick(fraction * x_max),
                MARGIN - 4.0,
                y + 4.0,
                tick(fraction * y_max)
            );
        }
        Chart { svg, x_max, y_max }
    }

    fn point(&self, x: f64, y: f64) -> (f64, f64) {
        (
            MARGIN + (x / self.x_max).clamp(0.0, 1.0) * SIZE,
            MARGIN + SIZE - (y / self.y_max).clamp(0.0, 1.0) * SIZE,
        )
    }

    fn line(&mut self, points: &[(f64, f64)], color: &str, dashed: bool) {
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| {
                let (px, py) = self.point(x, y);
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ = write!(
            self.svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{} points=\"{}\"/>",
            if dashed {
                " stroke-dasharray=\"4 4\""
            } else {
                ""
            },
            path.join(" ")
        );
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>");
        self.svg
    }
}

fn tick(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Returns the ROC curve (true vs false positive rate) with the diagonal of a random model.
pub fn roc_curve(labels: &[bool], probabilities: &[f64]) -> String {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    let positives = labels.iter().filter(|&&label| label).count().max(1) as f64;
    let negatives = (labels.len() as f64 - positives).max(1.0);
    let mut points = vec![(0.0, 0.0)];
    let (mut true_positives, mut false_positives) = (0.0, 0.0);
    for (position, &row) in order.iter().enumerate() {
        if labels[row] {
            true_positives += 1.0;
        } else {
            false_positives += 1.0;
        }
        let last_of_tie = order
            .get(position + 1)
            .is_none_or(|&next| probabilities[next] != probabilities[row]);
        if last_of_tie {
            points.push((false_positives / negatives, true_positives / positives));
        }
    }
    let mut chart = Chart::new(
        "ROC curve",
        "false positive rate",
        "true positive rate",
        1.0,
        1.0,
    );
    chart.line(&[(0.0, 0.0), (1.0, 1.0)], "#bbb", true);
    chart.line(&points, "#1f5fa8", false);
    chart.finish()
}

/// Returns the calibration curve: churn rate against mean predicted probability per bin.
pub fn calibration_curve(labels: &[bool], probabilities: &[f64]) -> String {
    let bins = reliability(labels, probabilities, 10);
    let points: Vec<(f64, f64)> = bins.iter().map(|&(p, rate, _)| (p, rate)).collect();
    let mut chart = Chart::new(
        "Calibration",
        "predicted probability",
        "observed churn rate",
        1.0,
        1.0,
    );
    chart.line(&[(0.0, 0.0), (1.0, 1.0)], "#bbb", true);
    chart.line(&points, "#b5501f", false);
    for &(x, y) in &points {
        let (px, py) = chart.point(x, y);
        let _ = write!(
            chart.svg,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"#b5501f\"/>"
        );
    }
    chart.finish()
}

/// Returns the lift chart: churn rate of each risk decile over the average churn rate.
pub fn lift_chart(labels: &[bool], probabilities: &[f64]) -> String {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    let overall = labels.iter().filter(|&&label| label).count() as f64 / labels.len().max(1) as f64;
    let lifts: Vec<f64> = (0..10)
        .map(|decile| {
            let start = order.len() * decile / 10;
            let end = order.len() * (decile + 1) / 10;
            let rows = &order[start..end];
            let churned = rows.iter().filter(|&&row| labels[row]).count() as f64;
            if rows.is_empty() || overall == 0.0 {
                0.0
            } else {
                churned / rows.len() as f64 / overall
            }
        })
        .collect();
    let y_max = lifts.iter().copied().fold(1.0, f64::max).ceil();
    let mut chart = Chart::new(
        "Lift by risk decile",
        "decile (riskiest first)",
        "lift",
        10.0,
        y_max,
    );
    let width = SIZE / 10.0;
    for (decile, &lift) in lifts.iter().enumerate() {
        let (_, top) = chart.point(0.0, lift);
        let _ = write!(
            chart.svg,
            "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#3c8d5a\">\
             <title>decile {}: lift {lift:.2}</title></rect>",
            MARGIN + decile as f64 * width + 2.0,
            width - 4.0,
            MARGIN + SIZE - top,
            decile + 1
        );
    }
    chart.line(&[(0.0, 1.0), (10.0, 1.0)], "#bbb", true);
    chart.finish()
}

/// Returns horizontal bars of the top `shown` drivers' importance.
pub fn importance_bars(drivers: &[Driver], shown: usize) -> String {
    let drivers = &drivers[..drivers.len().min(shown)];
    let largest = drivers
        .iter()
        .map(|driver| driver.importance)
        .fold(f64::MIN_POSITIVE, f64::max);
    let row = 22.0;
    let height = row * drivers.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"620\" height=\"{height}\" \
         font-size=\"12\" role=\"img\" aria-label=\"feature importance\">"
    );
    for (index, driver) in drivers.iter().enumerate() {
        let y = 5.0 + row * index as f64;
        let width = 380.0 * driver.importance / largest;
        let _ = write!(
            svg,
            "<text x=\"170\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"176\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"#1f5fa8\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.3}</text>",
            y + 15.0,
            escape(&driver.feature),
            row - 6.0,
            180.0 + width,
            y + 15.0,
            driver.importance
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_curve_of_a_perfect_ranking_goes_through_the_top_left_corner() {
        let svg = roc_curve(&[true, true, false, false], &[0.9, 0.8, 0.2, 0.1]);
        // (0, 0) → (0, 0.5) → (0, 1) → (0.5, 1) → (1, 1) in pixels.
        assert!(svg.contains("points=\"40.0,340.0 40.0,190.0 40.0,40.0 190.0,40.0 340.0,40.0\""));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
        let driver = Driver {
            feature: "<script>".into(),
            importance: 1.0,
            direction: String::new(),
        };
        assert!(importance_bars(&[driver], 5).contains("&lt;script&gt;"));
    }
}
