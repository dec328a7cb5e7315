//! kernels.png: grim BCR's speedup over the fastest dense peer vs
//! compression, drawn with plotters.

use super::Report;
use anyhow::Result;
use std::path::Path;

impl Report<'_> {
    /// Speedup of grim BCR (best block per sparsity) over the fastest dense peer vs compression,
    /// one line per shape, one panel per thread count. Returns the legend text for kernels.md.
    pub(in crate::bench) fn plot(&self, path: &Path) -> Result<String> {
        use plotters::prelude::*;
        const COLORS: [RGBColor; 8] = [
            RGBColor(31, 119, 180),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(127, 127, 127),
        ];
        const COLOR_NAMES: [&str; 8] = [
            "blue", "orange", "green", "red", "purple", "brown", "pink", "grey",
        ];
        let text = register_font();
        let compression = |name: &str| name.trim_end_matches('x').parse::<f64>().ok();
        // series[t][layer] = ([(compression, speedup)], the conv model's point at 8x)
        type Line = (String, Vec<(f64, f64)>, Option<(f64, f64)>);
        let mut series: Vec<(usize, Vec<Line>)> = Vec::new();
        let mut y_max: f64 = 1.0;
        for &t in &self.options.threads {
            let mut lines = Vec::new();
            for l in &self.file.layers {
                let mut points = Vec::new();
                for s in &self.file.sparsity {
                    let (Some(x), Some(g), Some(p)) = (
                        compression(&s.name),
                        self.best_bcr(&l.name, &s.name, t),
                        self.fastest_dense_peer(&l.name, t),
                    ) else {
                        continue;
                    };
                    let y = p.median_ms / g.median_ms;
                    y_max = y_max.max(y);
                    points.push((x, y));
                }
                let conv = self
                    .best_block("grim-conv-bcr", &l.name, "8x", t)
                    .zip(self.fastest_dense_peer(&l.name, t))
                    .zip(compression("8x"))
                    .map(|((g, p), x)| (x, p.median_ms / g.median_ms));
                if let Some((_, y)) = conv {
                    y_max = y_max.max(y);
                }
                lines.push((l.name.clone(), points, conv));
            }
            series.push((t, lines));
        }
        let x_max = self
            .file
            .sparsity
            .iter()
            .filter_map(|s| compression(&s.name))
            .fold(1.0, f64::max)
            * 1.1;
        let y_top = (y_max * 1.15).max(6.0);
        let panels = series.len().max(1);
        let root = BitMapBackend::new(path, (720 * panels as u32, 540)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels));
        for ((t, lines), area) in series.iter().zip(areas.iter()) {
            let mut builder = ChartBuilder::on(area);
            builder.margin(20);
            if text {
                builder
                    .caption(
                        format!("grim BCR speedup over the fastest dense peer, {t} thread(s)"),
                        ("sans-serif", 18),
                    )
                    .x_label_area_size(40)
                    .y_label_area_size(50);
            } else {
                builder.x_label_area_size(10).y_label_area_size(10);
            }
            let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_top)?;
            if text {
                chart
                    .configure_mesh()
                    .light_line_style(WHITE)
                    .x_labels(10)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| format!("{y:.0}"))
                    .x_desc("compression (dense elements / nonzeros)")
                    .y_desc("speedup (peer ms / grim ms)")
                    .label_style(("sans-serif", 14))
                    .draw()?;
            } else {
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .disable_y_mesh()
                    .x_labels(0)
                    .y_labels(0)
                    .draw()?;
            }
            // Parity (1x) and the 5x target.
            for (y, color) in [(1.0, BLACK.mix(0.6)), (5.0, RED.mix(0.35))] {
                chart.draw_series(DashedLineSeries::new(
                    vec![(0.0, y), (x_max, y)],
                    6,
                    4,
                    color.stroke_width(1),
                ))?;
            }
            for (i, (name, points, conv)) in lines.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let drawn =
                    chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
                if text {
                    drawn.label(name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                }
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
                chart.draw_series(
                    conv.iter()
                        .map(|&p| Circle::new(p, 7, color.stroke_width(2))),
                )?;
            }
            if text {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()?;
            }
        }
        root.present()?;
        let legend: Vec<String> = self
            .file
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{} = {}", COLOR_NAMES[i % COLOR_NAMES.len()], l.name))
            .collect();
        Ok(format!(
            "x: compression (4x, 8x, 16x); y: fastest dense peer's median / grim BCR's median at its best block for that sparsity; one panel per thread count ({}); dashed: 1x (black) and the 5x target (red); rings at 8x: the conv layers through ONNX Conv (im2col included; the peers stay on the GEMM view). Colours: {}.{}",
            self.options.threads.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
            legend.join(", "),
            if text { "" } else { " (No TTF font was found, so the plot has no text.)" }
        ))
    }
}

/// Registers DejaVu Sans as plotters' "sans-serif" (plotters draws no text
/// without a font); false when no copy is found.
pub(in crate::bench) fn register_font() -> bool {
    use plotters::style::FontStyle;
    let fonts = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ];
    let font = fonts.iter().find_map(|p| std::fs::read(p).ok());
    match font {
        Some(bytes) => plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .is_ok(),
        None => false,
    }
}
