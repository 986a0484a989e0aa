//! Progress for long work: a bar on the terminal, hidden when output is a
//! file or the caller asks for quiet.

/// A progress bar for `len` units of work, hidden unless `visible`.
pub fn progress_bar(len: u64, visible: bool, what: &str, unit: &str) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let template =
        format!("{{msg:>10}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}
