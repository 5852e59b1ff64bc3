//! The cost of a run: vCPU-hours, GiB-hours, bytes staged and the cost at the prices given,
//! per step, in `manifest.json` and `report.html` of a local run, in each Batch job's step
//! manifest, and summed by the QC job's report.

use std::path::Path;

use serde_json::Value;

use crate::support::{Workspace, stderr, testdata};

const SAMPLE: &str = "NA12878";
const PRICES: [&str; 4] = ["--price-vcpu-hour", "0.5", "--price-gib-hour", "0.25"];
const RESOURCES: [&str; 4] = ["--threads", "2", "--memory", "4G"];

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A cost row's figures: (vCPU-hours, GiB-hours, bytes staged in, cost).
fn figures(row: &Value) -> (f64, f64, u64, f64) {
    (
        row["vcpu_hours"].as_f64().unwrap(),
        row["gib_hours"].as_f64().unwrap(),
        row["bytes_staged_in"].as_u64().unwrap(),
        row["cost"].as_f64().unwrap(),
    )
}

/// The seconds covered by the union of the tasks' `[start, start + wall)`.
fn union_seconds(tasks: &[&Value]) -> f64 {
    let mut intervals: Vec<(f64, f64)> = tasks
        .iter()
        .map(|t| {
            let start = t["started_unix_seconds"].as_f64().unwrap();
            (start, start + t["wall_seconds"].as_f64().unwrap())
        })
        .collect();
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut covered = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in intervals {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                covered += to - from;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    covered + current.map_or(0.0, |(from, to)| to - from)
}

/// Asserts that the report's cost table has the row of `step` with `row`'s figures (the
/// bytes cell aside, which the report shows in binary units).
fn assert_row_in(html: &str, step: &str, row: &Value) {
    let (vcpu, gib, _, cost) = figures(row);
    let head = format!(
        "<tr><td>{step}</td><td class=\"num\">{}</td><td class=\"num\">{vcpu:.4}</td>\
         <td class=\"num\">{gib:.4}</td>",
        row["tasks"]
    );
    let tail = format!("<td class=\"num\">${cost:.4}</td>");
    let found = html.match_indices(&head).any(|(at, _)| {
        html[at..]
            .split_once("</tr>")
            .is_some_and(|(cells, _)| cells.ends_with(&tail))
    });
    assert!(found, "no row {head}…{tail} in the report");
}

#[test]
fn a_local_run_holds_its_resources_while_each_step_runs_at_the_prices_given() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20", "chr22", "chrM"]);
    let mut extra = RESOURCES.to_vec();
    extra.extend(PRICES);
    let output = ws.run(&input, "cost", &extra, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let dir = ws.out().join(SAMPLE).join("cost");
    let manifest = json(&dir.join("manifest.json"));
    let cost = &manifest["cost"];
    assert_eq!(
        cost["prices"],
        serde_json::json!({"vcpu_hour": 0.5, "gib_hour": 0.25})
    );
    let tasks = manifest["tasks"].as_array().unwrap();
    let steps: Vec<&str> = cost["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["prepare-reference", "align", "call", "gather", "qc"]
    );
    let (mut vcpu_total, mut gib_total, mut cost_total) = (0.0, 0.0, 0.0);
    for row in cost["steps"].as_array().unwrap() {
        let step = row["step"].as_str().unwrap();
        let of_step: Vec<&Value> = tasks.iter().filter(|t| t["step"] == step).collect();
        assert_eq!(row["tasks"], of_step.len(), "{step}");
        // 2 vCPUs and 4 GiB held while the step's tasks ran (three call shards in parallel
        // counted once).
        let hours = union_seconds(&of_step) / 3600.0;
        let (vcpu, gib, bytes, price) = figures(row);
        assert!(
            close(vcpu, 2.0 * hours),
            "{step}: {vcpu} vCPU-hours for {hours} h"
        );
        assert!(
            close(gib, 4.0 * hours),
            "{step}: {gib} GiB-hours for {hours} h"
        );
        assert!(close(price, 0.5 * vcpu + 0.25 * gib), "{step}: ${price}");
        // Local files are read in place: nothing is staged in.
        assert_eq!(bytes, 0, "{step}");
        vcpu_total += vcpu;
        gib_total += gib;
        cost_total += price;
    }
    let (vcpu, gib, bytes, price) = figures(&cost["total"]);
    assert!(close(vcpu, vcpu_total) && close(gib, gib_total) && close(price, cost_total));
    assert_eq!(bytes, 0);
    let calls = &cost["steps"][2];
    let call_tasks: Vec<&Value> = tasks.iter().filter(|t| t["step"] == "call").collect();
    let summed: f64 = call_tasks
        .iter()
        .map(|t| t["wall_seconds"].as_f64().unwrap())
        .sum();
    assert!(
        calls["vcpu_hours"].as_f64().unwrap() <= 2.0 * summed / 3600.0 + 1e-9,
        "parallel shards are not counted twice"
    );

    // The report, written by the QC task before the run ended, has the same rows for the
    // steps before QC.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<table id=\"cost-table\">"), "no cost table");
    assert!(html.contains("at $0.5 per vCPU-hour and $0.25 per GiB-hour"));
    for (index, step) in ["prepare-reference", "align", "call", "gather"]
        .iter()
        .enumerate()
    {
        assert_row_in(&html, step, &cost["steps"][index]);
    }
}

#[test]
fn batch_jobs_carry_their_cost_and_the_qc_job_sums_them() {
    let ws = Workspace::new();
    let prefix = ws.path().join("jobs");
    let job = |step: &str, extra: &[(&str, &str)]| {
        let mut command = ws.biojob();
        command
            .arg(step)
            .args(RESOURCES)
            .env("SAMPLE_ID", SAMPLE)
            .env("REFERENCE_NAME", "ref")
            .env("SOURCE_DATA_PREFIX", testdata())
            .env("JOB_OUTPUT_PREFIX", &prefix)
            .env("BIOJOB_PRICE_VCPU_HOUR", "0.5")
            .env("BIOJOB_PRICE_GIB_HOUR", "0.25");
        for (key, value) in extra {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{step}: {}", stderr(&output));
    };
    job("align", &[]);
    for contig in ["chr22", "chrM"] {
        job("call", &[("CHROMOSOME", contig)]);
    }
    job("gather", &[("CHROMOSOMES", "chr22,chrM")]);
    let manifest = |name: &str| json(&prefix.join(format!("{SAMPLE}.{name}.manifest.json")));
    let mut rows = Vec::new();
    for name in ["align", "call.0001", "call.0002", "gather"] {
        let manifest = manifest(name);
        let task = &manifest["task"];
        let cost = &manifest["cost"];
        assert_eq!(cost["steps"].as_array().unwrap().len(), 1, "{name}");
        let row = &cost["steps"][0];
        assert_eq!(row["step"], task["step"], "{name}");
        assert_eq!(row["tasks"], 1, "{name}");
        // The job held its 2 vCPUs and 4 GiB for its wall time.
        let hours = task["wall_seconds"].as_f64().unwrap() / 3600.0;
        let (vcpu, gib, bytes, price) = figures(row);
        assert_eq!(manifest["resources"]["threads"], 2);
        assert!(close(vcpu, 2.0 * hours), "{name}");
        assert!(close(gib, 4.0 * hours), "{name}");
        assert!(close(price, 0.5 * vcpu + 0.25 * gib), "{name}");
        assert_eq!(bytes, task["bytes_staged_in"].as_u64().unwrap(), "{name}");
        assert_eq!(figures(&cost["total"]), figures(row), "{name}");
        rows.push(row.clone());
    }
    job("qc", &[("CHROMOSOMES", "chr22,chrM")]);
    let html = std::fs::read_to_string(prefix.join("report.html")).unwrap();
    assert!(html.contains("at $0.5 per vCPU-hour and $0.25 per GiB-hour"));
    // One row per step: the two call jobs summed.
    let sum = |a: &Value, b: &Value| {
        let (va, ga, ba, ca) = figures(a);
        let (vb, gb, bb, cb) = figures(b);
        serde_json::json!({"tasks": 2, "vcpu_hours": va + vb, "gib_hours": ga + gb,
                           "bytes_staged_in": ba + bb, "cost": ca + cb})
    };
    assert_row_in(&html, "align", &rows[0]);
    assert_row_in(&html, "call", &sum(&rows[1], &rows[2]));
    assert_row_in(&html, "gather", &rows[3]);
    assert!(html.contains("<tr><td>qc</td><td class=\"num\">1</td>"));
}

#[test]
fn a_price_that_is_not_a_number_of_dollars_is_a_usage_error() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chrM"]);
    for (flag, value, expected) in [
        (
            "--price-vcpu-hour",
            "-0.1",
            "invalid value '-0.1' for '--price-vcpu-hour <PRICE_VCPU_HOUR>': \"-0.1\" is not a \
             price: give 0 or more dollars",
        ),
        (
            "--price-gib-hour",
            "cheap",
            "invalid value 'cheap' for '--price-gib-hour <PRICE_GIB_HOUR>': \"cheap\" is not a \
             price in dollars: invalid float literal",
        ),
    ] {
        let output = ws.run(&input, "price", &[&format!("{flag}={value}")], &[]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
}
