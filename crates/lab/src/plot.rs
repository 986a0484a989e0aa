//! Plots as SVG, drawn with plotters. An [`Svg`] is written to a file for the
//! book, and shows itself inline in an evcxr notebook.

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use nindub::budget::{self, GIB, Precision, Workload};
use nindub::error::{Error, Result};
use nindub::model::arch::Architecture;

/// An SVG document.
#[derive(Debug, Clone)]
pub struct Svg(pub String);

impl Svg {
    /// evcxr calls this to display a value: the SVG appears in the notebook.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }

    /// Writes the SVG to `path`.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        nindub::fsx::write_atomic(path.as_ref(), self.0.as_bytes())
    }
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

// ANCHOR: memory_vs_context
/// Total memory (weights + KV cache + activations + runtime) against context
/// length, one line per precision, with the device budget drawn across.
pub fn memory_vs_context(
    arch: &Architecture,
    precisions: &[Precision],
    workload: &Workload,
    device: u64,
) -> Result<Svg> {
    // Contexts from 256 tokens up to the model's maximum, doubling.
    let mut contexts = vec![];
    let mut c = 256;
    while c < arch.max_context {
        contexts.push(c);
        c *= 2;
    }
    contexts.push(arch.max_context);
    let mut series = vec![];
    for &p in precisions {
        let mut points = vec![];
        for &ctx in &contexts {
            let w = Workload {
                context: ctx,
                ..*workload
            };
            let gib = budget::estimate(arch, p, &w)?.total as f64 / GIB as f64;
            points.push((ctx as f64, gib));
        }
        series.push((p, points));
    }
    // ANCHOR_END: memory_vs_context
    LineChart {
        title: format!("{}: memory vs. context", arch.name),
        x_desc: "context length (tokens, log scale)".into(),
        y_desc: "GiB".into(),
        series: series
            .into_iter()
            .map(|(p, points)| (p.name(), points))
            .collect(),
        reference: Some((
            format!("budget {}", budget::human(device)),
            device as f64 / GIB as f64,
        )),
        log_x: true,
        log_y: false,
    }
    .draw()
}

/// A chart of lines: `series` are (label, points); `reference` a labelled
/// horizontal line.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub reference: Option<(String, f64)>,
    pub log_x: bool,
    pub log_y: bool,
}

/// A tick label: integers without decimals, small values in scientific
/// notation (`1e-4`), others with at most three decimals.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if v.abs() < 1e-3 {
        format!("{v:e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn plot_err(e: &dyn std::fmt::Display) -> Error {
    Error::invalid("plot", e.to_string())
}

impl LineChart {
    /// Non-finite points (an SQNR of ∞, a log of 0) are left out.
    pub fn draw(&self) -> Result<Svg> {
        let finite = |&&(x, y): &&(f64, f64)| {
            x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
        };
        let kept: Vec<(String, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|(n, p)| (n.clone(), p.iter().filter(finite).copied().collect()))
            .collect();
        let chart = LineChart {
            series: kept,
            ..self.clone()
        };
        chart.draw_finite()
    }

    fn draw_finite(&self) -> Result<Svg> {
        let points = || self.series.iter().flat_map(|(_, p)| p.iter());
        if points().next().is_none() {
            return Err(Error::invalid("plot", "no points to draw"));
        }
        let (mut x0, mut x1, mut y0, mut y1) = points().fold(
            (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
            |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
        );
        if let Some((_, r)) = &self.reference {
            (y0, y1) = (y0.min(*r), y1.max(*r));
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if self.log_y {
            (y0, y1) = (y0 / 1.2, y1 * 1.2);
        } else {
            y0 = y0.min(0.0);
            y1 = if y1 > y0 {
                y1 + (y1 - y0) * 0.08
            } else {
                y0 + 1.0
            };
        }
        if self.log_x {
            x0 = x0.max(f64::MIN_POSITIVE);
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plot_err(&e))?;
            let corner = self.legend_corner((x0, x1), (y0, y1));
            let lin = |a: f64, b: f64| -> RangedCoordf64 { (a..b).into() };
            let log = |a: f64, b: f64| -> LogCoord<f64> { (a..b).log_scale().into() };
            match (self.log_x, self.log_y) {
                (false, false) => self.draw_on(&root, lin(x0, x1), lin(y0, y1), corner),
                (true, false) => self.draw_on(&root, log(x0, x1), lin(y0, y1), corner),
                (false, true) => self.draw_on(&root, lin(x0, x1), log(y0, y1), corner),
                (true, true) => self.draw_on(&root, log(x0, x1), log(y0, y1), corner),
            }?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        Ok(Svg(svg))
    }

    /// The corner for the legend that hides the least of the lines: the
    /// upper left unless lines pass there (points sampled along every
    /// segment, counted in a box the size of the legend).
    fn legend_corner(&self, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
        let unit = |v: f64, a: f64, b: f64, log: bool| {
            if log {
                (v.ln() - a.ln()) / (b.ln() - a.ln())
            } else {
                (v - a) / (b - a)
            }
        };
        let mut samples = vec![];
        let mut lines: Vec<Vec<(f64, f64)>> = self.series.iter().map(|(_, p)| p.clone()).collect();
        if let Some((_, r)) = &self.reference {
            lines.push(vec![(x0, *r), (x1, *r)]);
        }
        for line in &lines {
            let pts: Vec<(f64, f64)> = line
                .iter()
                .map(|&(x, y)| (unit(x, x0, x1, self.log_x), unit(y, y0, y1, self.log_y)))
                .collect();
            samples.extend(pts.iter().copied());
            for w in pts.windows(2) {
                for k in 1..20 {
                    let t = k as f64 / 20.0;
                    samples.push((
                        w[0].0 + t * (w[1].0 - w[0].0),
                        w[0].1 + t * (w[1].1 - w[0].1),
                    ));
                }
            }
        }
        let (w, h) = (0.45, 0.08 + 0.06 * lines.len() as f64);
        let count = |left: bool, top: bool| {
            samples
                .iter()
                .filter(|(u, v)| {
                    (if left { *u <= w } else { *u >= 1.0 - w })
                        && (if top { *v >= 1.0 - h } else { *v <= h })
                })
                .count()
        };
        [
            (SeriesLabelPosition::UpperLeft, count(true, true)),
            (SeriesLabelPosition::UpperRight, count(false, true)),
            (SeriesLabelPosition::LowerRight, count(false, false)),
            (SeriesLabelPosition::LowerLeft, count(true, false)),
        ]
        .into_iter()
        .min_by_key(|(_, n)| *n)
        .map(|(p, _)| p)
        .unwrap_or(SeriesLabelPosition::UpperLeft)
    }

    fn draw_on<X, Y>(
        &self,
        root: &DrawingArea<SVGBackend, Shift>,
        x: X,
        y: Y,
        corner: SeriesLabelPosition,
    ) -> Result<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let (xr, _) = (x.range(), ());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x, y)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(|e| plot_err(&e))?;
        for (i, (label, points)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        if let Some((label, level)) = &self.reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(xr.start, *level), (xr.end, *level)],
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| plot_err(&e))?
                .label(label)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(&e))?;
        Ok(())
    }
}

/// A grid of labelled cells, shaded by a value in [0, 1]: rows top to
/// bottom, columns left to right (the logit lens is drawn so).
#[derive(Debug, Clone, Default)]
pub struct Heatmap {
    pub title: String,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    /// `cells[r][c]`: (text, shade in [0, 1]).
    pub cells: Vec<Vec<(String, f64)>>,
    /// What the shade means, written under the grid.
    pub legend: String,
}

impl Heatmap {
    pub fn draw(&self) -> Result<Svg> {
        let rows = self.cells.len();
        let cols = self.col_labels.len();
        if rows == 0 || cols == 0 || self.cells.iter().any(|r| r.len() != cols) {
            return Err(Error::invalid(
                "heatmap",
                format!("{rows} rows of cells do not all have the {cols} columns labelled"),
            ));
        }
        let (cw, ch, left, top) = (92i32, 18i32, 70i32, 40i32);
        let width = ((left + cw * cols as i32 + 10) as u32).max(760);
        let height = (top + ch * (rows as i32 + 1) + 36) as u32;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plot_err(&e))?;
            let style = |size: u32| TextStyle::from(("sans-serif", size).into_font()).color(&BLACK);
            let centred = |size| {
                style(size).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ))
            };
            let draw = |e: &dyn std::fmt::Debug| plot_err(&format!("{e:?}"));
            root.draw(&Text::new(self.title.clone(), (10, 8), style(20)))
                .map_err(|e| draw(&e))?;
            for (r, row) in self.cells.iter().enumerate() {
                let y = top + ch * r as i32;
                let label = self.row_labels.get(r).cloned().unwrap_or_default();
                root.draw(&Text::new(label, (8, y + 4), style(15)))
                    .map_err(|e| draw(&e))?;
                for (c, (text, shade)) in row.iter().enumerate() {
                    let x = left + cw * c as i32;
                    let s = shade.clamp(0.0, 1.0);
                    let fill = RGBColor(
                        (255.0 - 224.0 * s) as u8,
                        (255.0 - 136.0 * s) as u8,
                        (255.0 - 75.0 * s) as u8,
                    );
                    root.draw(&Rectangle::new([(x, y), (x + cw, y + ch)], fill.filled()))
                        .map_err(|e| draw(&e))?;
                    let ink = if s > 0.6 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        text.clone(),
                        (x + cw / 2, y + ch / 2),
                        centred(15).color(&ink),
                    ))
                    .map_err(|e| draw(&e))?;
                }
            }
            let y = top + ch * rows as i32;
            for (c, label) in self.col_labels.iter().enumerate() {
                let x = left + cw * c as i32 + cw / 2;
                root.draw(&Text::new(label.clone(), (x, y + ch / 2 + 2), centred(15)))
                    .map_err(|e| draw(&e))?;
            }
            root.draw(&Text::new(self.legend.clone(), (8, y + ch + 12), style(15)))
                .map_err(|e| draw(&e))?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        Ok(Svg(svg))
    }
}

// ANCHOR: lineage
/// One run's lineage as boxes and arrows, left to right: each stage a
/// title and a few lines (commit → data → run → artifact).
pub fn lineage(stages: &[(&str, Vec<String>)]) -> Result<Svg> {
    let (w, h) = (960u32, 172u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| Error::invalid("plot", e.to_string());
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let n = stages.len().max(1) as i32;
        let gap = 34;
        let bw = (w as i32 - gap * (n + 1)) / n;
        let (top, bh) = (40, 112);
        for (i, (title, lines)) in stages.iter().enumerate() {
            let x = gap + i as i32 * (bw + gap);
            let color = PALETTE[i % PALETTE.len()];
            root.draw(&Rectangle::new(
                [(x, top), (x + bw, top + bh)],
                ShapeStyle::from(&color).stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
            root.draw(&Text::new(
                title.to_string(),
                (x + 8, top - 24),
                ("sans-serif", 17).into_font().color(&color),
            ))
            .map_err(|e| fail(&e))?;
            for (j, line) in lines.iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (x + 8, top + 12 + 22 * j as i32),
                    ("monospace", 12).into_font().color(&BLACK),
                ))
                .map_err(|e| fail(&e))?;
            }
            if i + 1 < stages.len() {
                let (ax, ay) = (x + bw + 4, top + bh / 2);
                let bx = ax + gap - 8;
                root.draw(&PathElement::new(
                    vec![(ax, ay), (bx, ay)],
                    BLACK.stroke_width(2),
                ))
                .map_err(|e| fail(&e))?;
                root.draw(&Polygon::new(
                    vec![(bx + 6, ay), (bx - 2, ay - 6), (bx - 2, ay + 6)],
                    BLACK.filled(),
                ))
                .map_err(|e| fail(&e))?;
            }
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Svg(svg))
}
// ANCHOR_END: lineage

// ANCHOR: sequence
/// A sequence diagram: one lifeline per participant, and each message an
/// arrow from one lifeline to another, top to bottom, labelled (a message
/// to oneself is a note beside the lifeline).
pub fn sequence(participants: &[&str], messages: &[(usize, usize, String)]) -> Result<Svg> {
    let (w, row, top) = (960i32, 34i32, 70i32);
    let h = top + row * messages.len() as i32 + 30;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w as u32, h as u32)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| Error::invalid("plot", e.to_string());
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let n = participants.len().max(1) as i32;
        let x = |i: usize| w / (2 * n) + i as i32 * (w / n);
        for (i, name) in participants.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let bw = 8 * name.len() as i32 + 20;
            root.draw(&Rectangle::new(
                [(x(i) - bw / 2, 12), (x(i) + bw / 2, 44)],
                ShapeStyle::from(&color).stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
            root.draw(&Text::new(
                name.to_string(),
                (x(i) - bw / 2 + 10, 20),
                ("sans-serif", 15).into_font().color(&color),
            ))
            .map_err(|e| fail(&e))?;
            root.draw(&PathElement::new(
                vec![(x(i), 44), (x(i), h - 10)],
                ShapeStyle::from(&RGBColor(170, 170, 170)).stroke_width(1),
            ))
            .map_err(|e| fail(&e))?;
        }
        for (k, (from, to, label)) in messages.iter().enumerate() {
            let y = top + row * k as i32;
            let (a, b) = (x(*from), x(*to));
            if from == to {
                // A note beside its lifeline: to the right, or to the left
                // where it would run off the picture (monospace 12 is about
                // 7.3 px a character).
                let width = (label.chars().count() as f64 * 7.3) as i32;
                let tx = if a + 8 + width > w - 4 {
                    (a - 8 - width).max(4)
                } else {
                    a + 8
                };
                root.draw(&Text::new(
                    label.clone(),
                    (tx, y - 6),
                    ("monospace", 12)
                        .into_font()
                        .color(&PALETTE[*from % PALETTE.len()]),
                ))
                .map_err(|e| fail(&e))?;
                continue;
            }
            root.draw(&PathElement::new(
                vec![(a, y), (b, y)],
                BLACK.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
            let dir = if b > a { -1 } else { 1 };
            root.draw(&Polygon::new(
                vec![(b, y), (b + 9 * dir, y - 5), (b + 9 * dir, y + 5)],
                BLACK.filled(),
            ))
            .map_err(|e| fail(&e))?;
            root.draw(&Text::new(
                label.clone(),
                (a.min(b) + 8, y - 16),
                ("monospace", 12).into_font().color(&BLACK),
            ))
            .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Svg(svg))
}
// ANCHOR_END: sequence
