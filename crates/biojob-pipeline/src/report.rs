//! `report.html`: one self-contained page per run (inline CSS and SVG, no script, no network)
//! with the run summary, a per-step timeline with resource use, and the QC figures.

use std::fmt::Write as _;

use crate::manifest::{RunManifest, TaskRecord, TaskStatus};
use crate::steps::QcSummary;

/// Bar charts show at most this many contigs (the longest, kept in reference order); all are
/// in `qc.json`.
pub const REPORT_MAX_CONTIGS: usize = 40;

/// The ids of the figures in the report, in page order; the render test looks for them.
pub const REPORT_FIGURES: [&str; 5] = [
    "fig-depth",
    "fig-breadth",
    "fig-variants",
    "fig-depth-along",
    "fig-timeline",
];

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}\
main{max-width:1040px;margin:0 auto;padding:24px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dae1;padding-bottom:4px}\
.sub{color:#5b6878;margin:0 0 16px}\
table{border-collapse:collapse;background:#fff;width:100%;margin:6px 0}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e4e8ee;vertical-align:top}\
th{font-weight:600;color:#3b4654;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}\
.card{background:#fff;border:1px solid #e1e5eb;border-radius:6px;padding:8px 10px}\
.card b{display:block;font-size:20px}.card span{color:#5b6878;font-size:12px}\
figure{background:#fff;border:1px solid #e1e5eb;border-radius:6px;margin:10px 0;padding:10px}\
figcaption{font-weight:600;margin-bottom:6px}svg{display:block;max-width:100%;height:auto}\
svg text{font:11px system-ui,sans-serif;fill:#3b4654}.note{color:#5b6878;font-size:12px}\
.ok{color:#18794e}.bad{color:#c4320a}code{font-size:12px;word-break:break-all}";

const BLUE: &str = "#3b7dd8";
const TEAL: &str = "#2a9d8f";
const ORANGE: &str = "#e07a2f";
const GREY: &str = "#9aa5b1";

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = value as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

/// A round axis maximum at or above `value`: 1, 2 or 5 times a power of ten.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if value <= step * power {
            return step * power;
        }
    }
    10.0 * power
}

/// Indexes of the contigs the charts show: all when there are few, else the
/// [`REPORT_MAX_CONTIGS`] longest, in reference order.
fn shown_contigs(qc: &QcSummary) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..qc.contigs.len()).collect();
    if indexes.len() > REPORT_MAX_CONTIGS {
        indexes.sort_by_key(|&i| std::cmp::Reverse(qc.contigs[i].length));
        indexes.truncate(REPORT_MAX_CONTIGS);
        indexes.sort_unstable();
    }
    indexes
}

/// One stacked segment of a bar: value, colour, value as shown.
type Segment<'a> = (f64, &'a str, String);

/// A horizontal bar chart: one row per (label, segments), segments stacked.
struct Bars<'a> {
    id: &'a str,
    title: &'a str,
    unit: &'a str,
    rows: Vec<(String, Vec<Segment<'a>>)>,
    legend: Vec<(&'a str, &'a str)>,
    max: Option<f64>,
}

impl Bars<'_> {
    fn render(&self, out: &mut String) {
        let label_width = 120.0;
        let width = 720.0;
        let plot = width - label_width - 70.0;
        let row = 22.0;
        let top = if self.legend.is_empty() { 8.0 } else { 26.0 };
        let height = top + row * self.rows.len() as f64 + 40.0;
        let total = |segments: &[Segment<'_>]| segments.iter().map(|s| s.0).sum::<f64>();
        let max = self.max.unwrap_or_else(|| {
            nice_max(self.rows.iter().map(|(_, s)| total(s)).fold(0.0, f64::max))
        });
        let _ = write!(
            out,
            "<figure id=\"{id}\"><figcaption>{title}</figcaption>\
             <svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
             aria-label=\"{title}\" xmlns=\"http://www.w3.org/2000/svg\">",
            id = self.id,
            title = html_escape(self.title),
        );
        for (i, (color, name)) in self.legend.iter().enumerate() {
            let x = label_width + i as f64 * 110.0;
            let _ = write!(
                out,
                "<rect x=\"{x}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
                 <text x=\"{}\" y=\"15\">{}</text>",
                x + 14.0,
                html_escape(name)
            );
        }
        for tick in 0..=4 {
            let value = max * f64::from(tick) / 4.0;
            let x = label_width + plot * f64::from(tick) / 4.0;
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e4e8ee\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                height - 36.0,
                height - 22.0,
                trim_number(value)
            );
        }
        for (index, (label, segments)) in self.rows.iter().enumerate() {
            let y = top + row * index as f64;
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                label_width - 6.0,
                y + 15.0,
                html_escape(label)
            );
            let mut x = label_width;
            for (value, color, shown) in segments {
                let w = if max > 0.0 { plot * value / max } else { 0.0 };
                let _ = write!(
                    out,
                    "<rect class=\"bar\" data-label=\"{label}\" data-value=\"{shown}\" x=\"{x:.1}\" \
                     y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\">\
                     <title>{label}: {shown} {unit}</title></rect>",
                    y + 4.0,
                    row - 8.0,
                    label = html_escape(label),
                    shown = html_escape(shown),
                    unit = html_escape(self.unit),
                );
                x += w;
            }
            let text: Vec<&str> = segments.iter().map(|s| s.2.as_str()).collect();
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 4.0,
                y + 15.0,
                html_escape(&text.join(" + "))
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></svg></figure>",
            label_width + plot / 2.0,
            height - 4.0,
            html_escape(self.unit)
        );
    }
}

fn trim_number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn depth_along(qc: &QcSummary, shown: &[usize], out: &mut String) {
    let width = 720.0;
    let panel = 64.0;
    let label_width = 120.0;
    let plot = width - label_width - 20.0;
    let height = panel * shown.len() as f64 + 24.0;
    let _ = write!(
        out,
        "<figure id=\"fig-depth-along\"><figcaption>Depth along each contig (mean per bin)</figcaption>\
         <svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"Depth along each contig\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (row, &index) in shown.iter().enumerate() {
        let contig = &qc.contigs[index];
        let top = panel * row as f64 + 6.0;
        let inner = panel - 20.0;
        let max = nice_max(contig.depth_bins.iter().copied().fold(0.0, f64::max));
        let bins = contig.depth_bins.len().max(1) as f64;
        let mut points = String::new();
        for (i, depth) in contig.depth_bins.iter().enumerate() {
            let x = label_width + plot * (i as f64 + 0.5) / bins;
            let y = top + inner - inner * depth / max;
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"note\">max {}×</text>\
             <rect x=\"{label_width}\" y=\"{top:.1}\" width=\"{plot}\" height=\"{inner:.1}\" fill=\"#f6f7f9\"/>\
             <polyline class=\"depth-line\" data-contig=\"{name}\" points=\"{}\" fill=\"none\" \
             stroke=\"{BLUE}\" stroke-width=\"1.2\"/>",
            label_width - 6.0,
            top + inner / 2.0,
            html_escape(&contig.name),
            label_width - 6.0,
            top + inner / 2.0 + 13.0,
            trim_number(max),
            points.trim_end(),
            name = html_escape(&contig.name),
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">position along the contig (bins of {} bases)</text></svg></figure>",
        label_width + plot / 2.0,
        height - 6.0,
        qc.contigs.first().map_or(0, |c| c.depth_bin_bases)
    );
}

fn task_label(task: &TaskRecord) -> String {
    match (&task.contig, task.member()) {
        (Some(contig), _) => format!("{} {contig}", task.step),
        (None, Some(member)) => format!("{} {member}", task.step),
        (None, None) => task.step.to_string(),
    }
}

fn status_text(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Succeeded => "succeeded",
        TaskStatus::Failed => "failed",
        TaskStatus::Skipped => "skipped",
        TaskStatus::Cached => "cached",
        TaskStatus::Running => "running",
    }
}

fn timeline(tasks: &[TaskRecord], out: &mut String) {
    let start = tasks
        .iter()
        .map(|t| t.started_unix_seconds)
        .fold(f64::INFINITY, f64::min);
    let start = if start.is_finite() { start } else { 0.0 };
    let end = tasks
        .iter()
        .map(|t| t.started_unix_seconds + t.wall_seconds)
        .fold(start, f64::max);
    let span = nice_max((end - start).max(0.001));
    let width = 720.0;
    let label_width = 150.0;
    let plot = width - label_width - 20.0;
    let row = 22.0;
    let height = row * tasks.len() as f64 + 40.0;
    let _ = write!(
        out,
        "<figure id=\"fig-timeline\"><figcaption>Timeline: each task from its start, for its wall \
         time (hover for CPU time and peak memory)</figcaption>\
         <svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"Timeline of the run's tasks\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for tick in 0..=4 {
        let x = label_width + plot * f64::from(tick) / 4.0;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e4e8ee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} s</text>",
            height - 30.0,
            height - 16.0,
            trim_number(span * f64::from(tick) / 4.0)
        );
    }
    for (index, task) in tasks.iter().enumerate() {
        let y = row * index as f64;
        let x = label_width + plot * (task.started_unix_seconds - start) / span;
        let w = (plot * task.wall_seconds / span).max(1.0);
        let color = match task.status {
            TaskStatus::Succeeded | TaskStatus::Cached => TEAL,
            TaskStatus::Failed => ORANGE,
            TaskStatus::Skipped | TaskStatus::Running => GREY,
        };
        let label = task_label(task);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"task\" data-task=\"{label}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
             height=\"{:.1}\" fill=\"{color}\"><title>{label}: {} — wall {:.2} s, CPU {:.2} s, \
             peak RSS {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{:.2} s</text>",
            label_width - 6.0,
            y + 15.0,
            html_escape(&label),
            y + 4.0,
            row - 8.0,
            status_text(task.status),
            task.wall_seconds,
            task.cpu_seconds,
            bytes(task.peak_rss_bytes),
            (x + w + 4.0).min(width - 40.0),
            y + 15.0,
            task.wall_seconds,
            label = html_escape(&label),
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{height}\" text-anchor=\"middle\">seconds since the run's first task</text></svg></figure>",
        label_width + plot / 2.0
    );
}

/// Renders `report.html` for a run from its manifest (the tasks so far: the QC step renders
/// the report before the run's end, so `finished_at` and the run's final status are not in
/// it) and its QC summary.
///
/// The page is self-contained: inline CSS and inline SVG figures, no script, no external
/// resource, so it opens offline and from an S3 download alike. Figures, by id
/// ([`REPORT_FIGURES`]): mean depth per contig, breadth per contig, variants per contig (SNV
/// and indel records stacked), depth along each contig, and the task timeline.
pub fn render_report(manifest: &RunManifest, qc: &QcSummary) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let sample = html_escape(&manifest.sample);
    let succeeded = manifest
        .tasks
        .iter()
        .filter(|t| matches!(t.status, TaskStatus::Succeeded | TaskStatus::Cached))
        .count();
    let all_ok = succeeded == manifest.tasks.len();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>biojob report: {sample} ({run})</title><style>{STYLE}</style></head><body><main>\
         <h1>biojob run report: {sample}</h1><p class=\"sub\">run <code>{run}</code>, started \
         {started}; biojob {version}</p>",
        run = html_escape(&manifest.run_id),
        started = html_escape(&manifest.started_at),
        version = html_escape(&manifest.biojob_version),
    );

    // Run summary.
    let wall: f64 = manifest
        .tasks
        .iter()
        .map(|t| t.started_unix_seconds + t.wall_seconds)
        .fold(0.0, f64::max)
        - manifest
            .tasks
            .iter()
            .map(|t| t.started_unix_seconds)
            .fold(f64::INFINITY, f64::min);
    let _ = write!(
        out,
        "<h2>Run summary</h2><table id=\"run-summary\">\
         <tr><th>sample</th><td>{sample}</td></tr>\
         <tr><th>tasks</th><td class=\"{}\">{succeeded} of {} succeeded</td></tr>\
         <tr><th>wall time of the tasks</th><td>{:.1} s</td></tr>\
         <tr><th>read group</th><td><code>{}</code></td></tr>\
         <tr><th>FASTQ</th><td><code>{}</code><br><code>{}</code></td></tr>\
         <tr><th>read pairs</th><td>{}</td></tr>\
         <tr><th>reference</th><td><code>{}</code></td></tr>\
         <tr><th>contigs called</th><td>{}</td></tr>\
         <tr><th>output</th><td><code>{}</code></td></tr>\
         <tr><th>resources</th><td>{} threads, {}</td></tr>\
         <tr><th>tools</th><td>{}</td></tr></table>",
        if all_ok { "ok" } else { "bad" },
        manifest.tasks.len(),
        if wall.is_finite() { wall } else { 0.0 },
        html_escape(&manifest.read_group.replace('\t', " ")),
        html_escape(&manifest.inputs.fastq_1),
        html_escape(&manifest.inputs.fastq_2),
        manifest
            .read_pairs
            .map_or_else(|| "–".to_owned(), thousands),
        html_escape(&manifest.inputs.reference),
        html_escape(&manifest.inputs.contigs.join(", ")),
        html_escape(&manifest.output_prefix),
        manifest.resources.threads,
        bytes(manifest.resources.memory_bytes),
        manifest
            .tools
            .iter()
            .map(|t| format!("{} {}", html_escape(&t.tool), html_escape(&t.version)))
            .collect::<Vec<_>>()
            .join(", "),
    );

    // QC cards.
    let reads = &qc.reads;
    let variants = &qc.variants;
    let cards = [
        (thousands(reads.records), "records in the BAM"),
        (format!("{:.2} %", reads.mapped_percent), "mapped"),
        (
            format!("{:.2} %", reads.properly_paired_percent),
            "properly paired",
        ),
        (thousands(variants.records), "variant records"),
        (thousands(variants.snvs), "SNV records"),
        (thousands(variants.indels), "indel records"),
        (optional(variants.ti_tv, 2), "Ti/Tv"),
        (optional(variants.het_hom_ratio, 2), "het/hom-alt"),
    ];
    out.push_str("<h2>QC</h2><div class=\"cards\" id=\"qc-cards\">");
    for (value, name) in cards {
        let _ = write!(
            out,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            html_escape(&value),
            name
        );
    }
    out.push_str("</div>");

    let shown = shown_contigs(qc);
    if shown.len() < qc.contigs.len() {
        let _ = write!(
            out,
            "<p class=\"note\">Charts show the {} longest of {} contigs; qc.json has them all.</p>",
            shown.len(),
            qc.contigs.len()
        );
    }
    Bars {
        id: "fig-depth",
        title: "Mean depth per contig",
        unit: "× (reads per base)",
        rows: shown
            .iter()
            .map(|&i| {
                let c = &qc.contigs[i];
                (
                    c.name.clone(),
                    vec![(c.mean_depth, BLUE, format!("{:.1}", c.mean_depth))],
                )
            })
            .collect(),
        legend: Vec::new(),
        max: None,
    }
    .render(&mut out);
    Bars {
        id: "fig-breadth",
        title: "Breadth per contig: bases with depth ≥ 1",
        unit: "% of the contig",
        rows: shown
            .iter()
            .map(|&i| {
                let c = &qc.contigs[i];
                let percent = c.breadth * 100.0;
                (
                    c.name.clone(),
                    vec![(percent, TEAL, format!("{percent:.1}"))],
                )
            })
            .collect(),
        legend: Vec::new(),
        max: Some(100.0),
    }
    .render(&mut out);
    Bars {
        id: "fig-variants",
        title: "Variant records per contig",
        unit: "records",
        rows: shown
            .iter()
            .map(|&i| {
                let c = &qc.contigs[i];
                let other = c.variants.saturating_sub(c.snvs + c.indels);
                let mut segments = vec![
                    (c.snvs as f64, BLUE, c.snvs.to_string()),
                    (c.indels as f64, ORANGE, c.indels.to_string()),
                ];
                if other > 0 {
                    segments.push((other as f64, GREY, other.to_string()));
                }
                (c.name.clone(), segments)
            })
            .collect(),
        legend: vec![(BLUE, "SNV"), (ORANGE, "indel"), (GREY, "other")],
        max: None,
    }
    .render(&mut out);
    depth_along(qc, &shown, &mut out);

    // Per-contig table.
    out.push_str(
        "<table id=\"contig-table\"><tr><th>contig</th><th>length</th><th>mean depth</th>\
         <th>breadth</th><th>variants</th><th>SNV</th><th>indel</th></tr>",
    );
    for contig in &qc.contigs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{:.2} %</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            html_escape(&contig.name),
            thousands(contig.length),
            contig.mean_depth,
            contig.breadth * 100.0,
            contig.variants,
            contig.snvs,
            contig.indels
        );
    }
    out.push_str("</table>");

    // Timeline and resources.
    out.push_str("<h2>Steps</h2>");
    timeline(&manifest.tasks, &mut out);
    out.push_str(
        "<table id=\"task-table\"><tr><th>task</th><th>status</th><th>wall</th><th>CPU</th>\
         <th>peak RSS</th><th>commands</th></tr>",
    );
    for task in &manifest.tasks {
        let commands: Vec<String> = task
            .commands
            .iter()
            .map(|c| {
                format!(
                    "{} ({:.2} s, {})",
                    html_escape(&c.label),
                    c.wall_seconds,
                    html_escape(&c.exit)
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td class=\"num\">{:.2} s</td>\
             <td class=\"num\">{:.2} s</td><td class=\"num\">{}</td><td>{}</td></tr>",
            html_escape(&task_label(task)),
            if matches!(task.status, TaskStatus::Succeeded | TaskStatus::Cached) {
                "ok"
            } else {
                "bad"
            },
            status_text(task.status),
            task.wall_seconds,
            task.cpu_seconds,
            bytes(task.peak_rss_bytes),
            commands.join("<br>")
        );
    }
    let _ = write!(
        out,
        "</table><h2>Files</h2><p>MultiQC reads <code>{}</code>, <code>{}</code> and \
         <code>{}</code> in this directory (<code>multiqc .</code>); the native figures above are \
         in <code>qc.json</code>, every command in <code>manifest.json</code>.</p>\
         </main></body></html>",
        html_escape(&qc.files.flagstat),
        html_escape(&qc.files.samtools_stats),
        html_escape(&qc.files.bcftools_stats),
    );
    out.push('\n');
    out
}

/// The cohort's `report.html`: the run's summary, one row per sample (reads, mapped %,
/// duplicate %, mean depth over the called contigs, variant records, Ti/Tv, het/hom-alt), each
/// sample's name linking to its own page (`samples/<sample>/report.html`), and the timeline of
/// the run's tasks. One self-contained page, as [`render_report`]'s.
pub fn render_cohort_report(manifest: &RunManifest, samples: &[QcSummary]) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let run = html_escape(&manifest.run_id);
    let succeeded = manifest
        .tasks
        .iter()
        .filter(|t| matches!(t.status, TaskStatus::Succeeded | TaskStatus::Cached))
        .count();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>biojob cohort report ({run})</title><style>{STYLE}</style></head><body><main>\
         <h1>biojob cohort report</h1><p class=\"sub\">run <code>{run}</code>, started \
         {started}; biojob {version}</p>\
         <h2>Run summary</h2><table id=\"run-summary\">\
         <tr><th>samples</th><td>{count}</td></tr>\
         <tr><th>tasks</th><td class=\"{class}\">{succeeded} of {tasks} succeeded</td></tr>\
         <tr><th>sample sheet</th><td><code>{sheet}</code></td></tr>\
         <tr><th>reference</th><td><code>{reference}</code></td></tr>\
         <tr><th>contigs called</th><td>{contigs}</td></tr>\
         <tr><th>output</th><td><code>{output}</code></td></tr></table>",
        started = html_escape(&manifest.started_at),
        version = html_escape(&manifest.biojob_version),
        count = samples.len(),
        class = if succeeded == manifest.tasks.len() {
            "ok"
        } else {
            "bad"
        },
        tasks = manifest.tasks.len(),
        sheet = html_escape(manifest.inputs.samplesheet.as_deref().unwrap_or_default()),
        reference = html_escape(&manifest.inputs.reference),
        contigs = html_escape(&manifest.inputs.contigs.join(", ")),
        output = html_escape(&manifest.output_prefix),
    );
    out.push_str(
        "<h2>Samples</h2><table id=\"samples\"><tr><th>sample</th><th>records</th>\
         <th>mapped</th><th>duplicates</th><th>mean depth</th><th>variant records</th>\
         <th>Ti/Tv</th><th>het/hom-alt</th></tr>",
    );
    for qc in samples {
        let sample = html_escape(&qc.sample);
        let bases: u64 = qc.contigs.iter().map(|c| c.aligned_bases).sum();
        let length: u64 = qc.contigs.iter().map(|c| c.length).sum();
        let depth = if length == 0 {
            0.0
        } else {
            bases as f64 / length as f64
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"samples/{sample}/report.html\">{sample}</a></td><td>{}</td>\
             <td>{:.2} %</td><td>{:.2} %</td><td>{depth:.1}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            thousands(qc.reads.records),
            qc.reads.mapped_percent,
            qc.reads.duplicates_percent,
            thousands(qc.variants.records),
            optional(qc.variants.ti_tv, 2),
            optional(qc.variants.het_hom_ratio, 2),
        );
    }
    out.push_str("</table><h2>Tasks</h2>");
    timeline(&manifest.tasks, &mut out);
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(thousands(27_726), "27,726");
        assert_eq!(thousands(999), "999");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(nice_max(38.1), 50.0);
        assert_eq!(nice_max(8.0), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(422.0), 500.0);
    }
}
