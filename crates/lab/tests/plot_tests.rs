//! The plots refuse what they cannot draw, and escape what they label.

use lab::plot::{Heatmap, LineChart};

#[test]
fn plots_refuse_what_they_cannot_draw() {
    assert!(LineChart::default().draw().is_err());
    let bad = Heatmap {
        col_labels: vec!["a".into(), "b".into()],
        cells: vec![vec![("x".into(), 0.5)]],
        ..Default::default()
    };
    assert!(bad.draw().is_err());
    let good = Heatmap {
        title: "t".into(),
        row_labels: vec!["r".into()],
        col_labels: vec!["a & b".into()],
        cells: vec![vec![("<x>".into(), 0.5)]],
        legend: String::new(),
    };
    let svg = good.draw().unwrap().0;
    assert!(svg.contains("&lt;x&gt;") && svg.contains("a &amp; b"));
    let chart = LineChart {
        series: vec![("s".into(), vec![(0.1, 1.0), (10.0, 100.0)])],
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    assert!(chart.draw().unwrap().0.starts_with("<svg"));
    // Infinite values (an exact round trip's SQNR) are left out, not looped on.
    let inf = LineChart {
        series: vec![(
            "s".into(),
            vec![(0.0, 1.0), (1.0, f64::INFINITY), (2.0, 3.0)],
        )],
        ..Default::default()
    };
    assert!(inf.draw().is_ok());
    let only_inf = LineChart {
        series: vec![("s".into(), vec![(0.0, f64::INFINITY)])],
        ..Default::default()
    };
    assert!(only_inf.draw().is_err());
}
