//! `netproto bench`: the performance harness (crate `netproto-bench`) with
//! a progress bar, its table, and its JSON.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use crate::Failure;

pub(crate) async fn bench(
    runs: Option<usize>,
    quick: bool,
    json: Option<&Path>,
    only: Vec<String>,
    systems: Vec<String>,
) -> Result<(), Failure> {
    let mut opts = if quick {
        netproto_bench::Options::quick()
    } else {
        netproto_bench::Options::full()
    };
    if let Some(n) = runs {
        opts.runs = n;
    }
    opts.only = only;
    opts.systems = systems;
    opts.peer_exe = std::env::current_exe().ok();
    let bar = progress("bench", "starting", 0);
    let report = netproto_bench::run(&opts, &|step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(step.label);
    })
    .await
    .map_err(|e| Failure::Bench(e.to_string()))?;
    bar.finish_and_clear();
    print!("{}", report.table());
    if let Some(path) = json {
        let text = report
            .to_json()
            .map_err(|e| Failure::Bench(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| Failure::Bench(format!("{}: {e}", path.display())))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// A progress bar in the demo's and the harness's style.
pub(crate) fn progress(prefix: &str, what: &str, len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>5} {msg:<22} [{bar:30}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix.to_owned());
    bar.set_message(what.to_owned());
    bar
}
