//! Plots as SVG, drawn with plotters. An [`Svg`] is written to a file for the
//! book, and shows itself inline in an evcxr notebook.

use plotters::prelude::*;

use crate::arch::Architecture;
use crate::budget::{self, GIB, Precision, Workload};
use crate::error::{Error, Result};

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
        crate::fsx::write_atomic(path.as_ref(), self.0.as_bytes())
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
    let y_max = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(device as f64 / GIB as f64, f64::max)
        * 1.08;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
        let plot_err = |e: &dyn std::fmt::Display| Error::invalid("plot", e.to_string());
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let x_range = (contexts[0] as f64..arch.max_context as f64).log_scale();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: memory vs. context", arch.name),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range, 0f64..y_max)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("context length (tokens, log scale)")
            .y_desc("GiB")
            .x_label_formatter(&|x| format!("{}", x.round() as u64))
            .draw()
            .map_err(|e| plot_err(&e))?;
        for (i, (p, points)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(&e))?
                .label(p.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        let budget_gib = device as f64 / GIB as f64;
        chart
            .draw_series(LineSeries::new(
                vec![
                    (contexts[0] as f64, budget_gib),
                    (arch.max_context as f64, budget_gib),
                ],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| plot_err(&e))?
            .label(format!("budget {}", budget::human(device)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
    }
    Ok(Svg(svg))
}
