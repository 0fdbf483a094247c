//! The loss curve as a PNG: training and held-out loss against optimizer steps.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, TrainerError};

/// Draws `train` and `held_out` (step, loss) series to `path`.
pub fn loss_curve(path: &Path, train: &[(usize, f64)], held_out: &[(usize, f64)]) -> Result<()> {
    draw(path, train, held_out).map_err(|e| TrainerError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn draw(
    path: &Path,
    train: &[(usize, f64)],
    held_out: &[(usize, f64)],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = train.iter().chain(held_out);
    let max_step = all.clone().map(|p| p.0).max().unwrap_or(1).max(1);
    let finite = || all.clone().map(|p| p.1).filter(|v| v.is_finite());
    let hi = finite().fold(f64::MIN, f64::max).max(0.1);
    let lo = finite().fold(f64::MAX, f64::min).min(hi - 0.1).max(0.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("rill-train: loss", ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0..max_step, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cross-entropy (nats/token)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(train.iter().copied(), &BLUE))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            held_out.iter().copied(),
            RED.stroke_width(2),
        ))?
        .label("held-out")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
