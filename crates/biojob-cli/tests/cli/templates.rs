//! The AWS templates against the CLI (docs/batch-contract.md): every job definition's command is
//! a biojob step, every environment variable the templates set is one biojob reads, the retry
//! rules follow biojob's exit classes, and the example execution input is accepted by
//! `biojob run --dry-run`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use biojob_core::ExitClass;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn biojob() -> Command {
    Command::new(env!("CARGO_BIN_EXE_biojob"))
}

/// A CloudFormation template, short tags (`!Ref`, `!Sub`, `!If`, …) kept as tagged values.
fn load_template(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn templates() -> Vec<(PathBuf, Yaml)> {
    let dir = root().join("templates/cfn");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no templates in {}", dir.display());
    paths
        .into_iter()
        .map(|p| (p.clone(), load_template(&p)))
        .collect()
}

/// `(logical id, properties)` of every resource of type `kind`.
fn resources<'a>(template: &'a Yaml, kind: &str) -> Vec<(String, &'a Yaml)> {
    let Some(Yaml::Mapping(map)) = template.get("Resources") else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, resource)| resource.get("Type").and_then(Yaml::as_str) == Some(kind))
        .map(|(id, resource)| {
            (
                id.as_str().unwrap_or_default().to_owned(),
                resource.get("Properties").unwrap_or(&Yaml::Null),
            )
        })
        .collect()
}

/// Every environment variable name biojob reads: the constants of the pipeline's `env`
/// module, which also lists the execution input's `environment` keys.
fn names_biojob_reads() -> BTreeSet<String> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../biojob-pipeline/src/env.rs"),
    )
    .unwrap();
    let mut names: BTreeSet<String> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|rest| rest.split_once("&str = \""))
        .filter_map(|(_, value)| value.split_once('"'))
        .map(|(value, _)| value.to_owned())
        .collect();
    assert!(
        names.contains("AWS_BATCH_JOB_ID"),
        "env.rs not parsed: {names:?}"
    );
    names.extend(
        biojob_pipeline::env::INPUT_ENVIRONMENT_KEYS
            .iter()
            .map(|k| (*k).to_owned()),
    );
    names
}

fn job_definitions() -> Vec<(String, Yaml)> {
    let mut found = Vec::new();
    for (_, template) in templates() {
        for (id, properties) in resources(&template, "AWS::Batch::JobDefinition") {
            found.push((id, properties.clone()));
        }
    }
    assert!(!found.is_empty(), "no job definitions in templates/cfn");
    found
}

#[test]
fn every_job_command_is_a_biojob_step() {
    let mut steps = BTreeSet::new();
    for (id, properties) in job_definitions() {
        let command: Vec<String> = properties["ContainerProperties"]["Command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id}: no ContainerProperties.Command"))
            .iter()
            .map(|word| {
                word.as_str()
                    .unwrap_or_else(|| panic!("{id}: non-literal command"))
                    .to_owned()
            })
            .collect();
        let output = biojob().args(&command).arg("--help").output().unwrap();
        assert!(
            output.status.success(),
            "{id}: `biojob {} --help` failed: {}",
            command.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            command.len(),
            1,
            "{id}: a job's command is the step alone: {command:?}"
        );
        steps.insert(command[0].clone());
    }
    let expected: BTreeSet<String> = ["align", "call", "gather", "qc"].map(String::from).into();
    assert_eq!(steps, expected, "one job definition per step");
}

/// Every `ContainerOverrides.Command` in the state machine.
fn override_commands(value: &Json, commands: &mut Vec<Vec<String>>) {
    match value {
        Json::Object(map) => {
            if let Some(Json::Array(command)) =
                map.get("ContainerOverrides").and_then(|o| o.get("Command"))
            {
                commands.push(
                    command
                        .iter()
                        .map(|w| w.as_str().unwrap().to_owned())
                        .collect(),
                );
            }
            map.values().for_each(|v| override_commands(v, commands));
        }
        Json::Array(items) => items.iter().for_each(|v| override_commands(v, commands)),
        _ => {}
    }
}

#[test]
fn state_machine_command_overrides_are_biojob_steps() {
    let (definition, asl) = state_machine();
    let mut commands = Vec::new();
    override_commands(&definition, &mut commands);
    commands.sort();
    // Split and merge run with the align job definition (a sample's and a cohort lane's
    // split; a chunk's merge and a cohort sample's), sample-vcf with gather's and the cohort's
    // report with QC's: light jobs sized like those.
    assert_eq!(
        commands,
        [
            vec!["merge".to_owned()],
            vec!["merge".to_owned()],
            vec!["report".to_owned()],
            vec!["sample-vcf".to_owned()],
            vec!["split".to_owned()],
            vec!["split".to_owned()],
        ],
        "{}",
        asl.display()
    );
    for command in &commands {
        let output = biojob().args(command).arg("--help").output().unwrap();
        assert!(
            output.status.success(),
            "`biojob {command:?} --help` failed"
        );
    }
}

#[test]
fn every_job_environment_variable_is_one_biojob_reads() {
    let known = names_biojob_reads();
    for (id, properties) in job_definitions() {
        let environment = properties["ContainerProperties"]["Environment"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for variable in environment {
            let name = variable["Name"].as_str().unwrap_or_default();
            assert!(
                known.contains(name),
                "{id} sets {name}, which biojob does not read"
            );
        }
    }
}

fn state_machine() -> (Json, PathBuf) {
    let mut found = Vec::new();
    for (path, template) in templates() {
        for (id, properties) in resources(&template, "AWS::StepFunctions::StateMachine") {
            let location = properties["DefinitionS3Location"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: DefinitionS3Location is not a local path"));
            let asl = path.parent().unwrap().join(location);
            let text = std::fs::read_to_string(&asl)
                .unwrap_or_else(|e| panic!("{id}: {}: {e}", asl.display()));
            let definition: Json = serde_json::from_str(&text).unwrap();
            // Every ${Name} placeholder has a substitution, and every substitution is used.
            let substitutions: BTreeSet<String> = properties["DefinitionSubstitutions"]
                .as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            let placeholders: BTreeSet<String> = text
                .split("${")
                .skip(1)
                .filter_map(|rest| rest.split_once('}'))
                .map(|(name, _)| name.to_owned())
                .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric()))
                .collect();
            assert_eq!(
                placeholders, substitutions,
                "{id}: placeholders vs DefinitionSubstitutions"
            );
            found.push((definition, asl));
        }
    }
    assert_eq!(found.len(), 1, "one state machine");
    found.remove(0)
}

/// Every `ContainerOverrides.Environment[].Name` in the state machine.
fn override_names(value: &Json, names: &mut BTreeSet<String>) {
    match value {
        Json::Object(map) => {
            if let Some(Json::Array(environment)) = map
                .get("ContainerOverrides")
                .and_then(|o| o.get("Environment"))
            {
                for variable in environment {
                    names.insert(variable["Name"].as_str().unwrap().to_owned());
                }
            }
            map.values().for_each(|v| override_names(v, names));
        }
        Json::Array(items) => items.iter().for_each(|v| override_names(v, names)),
        _ => {}
    }
}

#[test]
fn state_machine_sets_only_variables_biojob_reads() {
    let (definition, asl) = state_machine();
    let mut names = BTreeSet::new();
    override_names(&definition, &mut names);
    let known = names_biojob_reads();
    for name in &names {
        assert!(
            known.contains(name),
            "{} sets {name}, which biojob does not read",
            asl.display()
        );
    }
    for required in [
        "SAMPLE_ID",
        "JOB_OUTPUT_PREFIX",
        "JOB_WORKFLOW_NAME",
        "JOB_WORKFLOW_EXECUTION_ID",
        "CHROMOSOME",
        "CHROMOSOMES",
        "SHARD",
        "BIOJOB_CALL_SHARD_BASES",
        "CHUNK",
        "CHUNKS",
        "BIOJOB_ALIGN_CHUNK_PAIRS",
        "SAMPLESHEET",
        "LANE",
        "LANE_CHUNKS",
        "BIOJOB_MARK_DUPLICATES",
    ] {
        assert!(
            names.contains(required),
            "the state machine never sets {required}"
        );
    }
    let map = &definition["States"]["CallContigs"];
    assert_eq!(map["Type"], "Map");
    assert_eq!(map["ItemsPath"], "$.params.chromosomes");
    // Shards cut by size when the input lists them; both maps bounded by the same parameter.
    let shards = &definition["States"]["CallShards"];
    assert_eq!(shards["Type"], "Map");
    assert_eq!(shards["ItemsPath"], "$.params.shards");
    for map in [map, shards] {
        assert_eq!(map["MaxConcurrencyPath"], "$.maxConcurrency");
        assert_eq!(map["Next"], "Gather");
    }
    let choice = &definition["States"]["CallByShard?"];
    assert_eq!(choice["Choices"][0]["Variable"], "$.params.shards[0]");
    assert_eq!(choice["Choices"][0]["Next"], "CallShards");
    assert_eq!(choice["Default"], "CallContigs");
    assert_eq!(definition["States"]["Align"]["Next"], "CallByShard?");
    // Alignment in chunks when the input lists them: split, one align job per chunk, merge.
    let states = &definition["States"];
    let choice = &states["AlignInChunks?"];
    assert_eq!(choice["Choices"][0]["Variable"], "$.params.chunks[0]");
    assert_eq!(choice["Choices"][0]["Next"], "CountChunks");
    assert_eq!(states["CountChunks"]["Next"], "Split");
    assert_eq!(choice["Default"], "Align");
    assert_eq!(states["Split"]["Next"], "AlignChunks");
    let chunks = &states["AlignChunks"];
    assert_eq!(chunks["Type"], "Map");
    assert_eq!(chunks["ItemsPath"], "$.params.chunks");
    assert_eq!(chunks["MaxConcurrencyPath"], "$.alignMaxConcurrency");
    assert_eq!(
        states["Prepare"]["Parameters"]["alignMaxConcurrency.$"],
        "States.StringToJson($.defaults.alignMaxConcurrency)"
    );
    assert_eq!(chunks["Next"], "Merge");
    assert_eq!(states["Merge"]["Next"], "CallByShard?");
    assert_eq!(
        states["Defaults"]["Result"]["params"]["chunks"],
        serde_json::json!([])
    );
    // Without shards in the input the defaults call by contig, and gather is told shard size 0.
    assert_eq!(
        definition["States"]["Defaults"]["Result"]["params"]["shards"],
        serde_json::json!([])
    );
    assert_eq!(
        definition["States"]["Defaults"]["Result"]["params"]["shardBases"],
        0
    );
}

/// The codes a retry can fix, from biojob's exit classes.
fn retryable_codes() -> BTreeSet<u64> {
    ExitClass::ALL
        .into_iter()
        .filter(|class| class.retryable())
        .map(|class| u64::from(class.code()))
        .collect()
}

#[test]
fn batch_retries_follow_the_exit_classes() {
    for (id, properties) in job_definitions() {
        let strategy = &properties["RetryStrategy"];
        let rules = strategy["EvaluateOnExit"].as_sequence().unwrap();
        assert!(
            rules.len() <= 5,
            "{id}: Batch takes at most 5 EvaluateOnExit conditions"
        );
        assert!(
            rules
                .iter()
                .any(|r| r["OnStatusReason"].as_str() == Some("Host EC2*")
                    && r["Action"].as_str() == Some("RETRY")),
            "{id}: a reclaimed Spot host must be retried"
        );
        // Unmatched exits are retried by Batch, so every EXIT rule must name a class a retry
        // cannot fix, and every such class except SIGINT (never sent by Batch) must be listed.
        let exits: BTreeSet<u64> = rules
            .iter()
            .filter(|r| r["Action"].as_str() == Some("EXIT"))
            .map(|r| r["OnExitCode"].as_str().unwrap().parse().unwrap())
            .collect();
        let final_codes: BTreeSet<u64> = ExitClass::ALL
            .into_iter()
            .filter(|c| !c.retryable() && *c != ExitClass::Ok && *c != ExitClass::Interrupted)
            .map(|c| u64::from(c.code()))
            .collect();
        assert_eq!(
            exits, final_codes,
            "{id}: EXIT rules vs non-retryable exit classes"
        );
        assert!(exits.is_disjoint(&retryable_codes()));
    }
}

/// Every `NumericEquals` on `…Container.ExitCode` in a Choice state.
fn resubmitted_codes(value: &Json, codes: &mut BTreeSet<u64>) {
    match value {
        Json::Object(map) => {
            if map
                .get("Variable")
                .and_then(Json::as_str)
                .is_some_and(|v| v.ends_with("Container.ExitCode"))
                && let Some(code) = map.get("NumericEquals").and_then(Json::as_u64)
            {
                codes.insert(code);
            }
            map.values().for_each(|v| resubmitted_codes(v, codes));
        }
        Json::Array(items) => items.iter().for_each(|v| resubmitted_codes(v, codes)),
        _ => {}
    }
}

/// Every Distributed Map of `states` (nested maps included): `(name, map)`.
fn distributed_maps<'a>(states: &'a Json, found: &mut Vec<(String, &'a Json)>) {
    for (name, state) in states.as_object().into_iter().flatten() {
        if let Some(processor) = state.get("ItemProcessor") {
            if processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED" {
                found.push((name.clone(), state));
            }
            distributed_maps(&processor["States"], found);
        }
    }
}

/// The `!Sub` text of a template value (`!Sub "…"`), else `None`.
fn sub_text(value: &Yaml) -> Option<&str> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str(),
        _ => None,
    }
}

#[test]
fn the_call_shards_run_as_child_executions_the_state_machine_role_may_start_and_stop() {
    let (definition, _) = state_machine();
    let mut maps = Vec::new();
    distributed_maps(&definition["States"], &mut maps);
    let names: Vec<&str> = maps.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["CallShards"]);
    let (_, map) = maps[0];
    // Standard child executions (an Express one cannot wait on a Batch job), each ending in {}:
    // without a ResultWriter the children's outputs come back together, at most 256 KiB.
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["ExecutionType"],
        "STANDARD"
    );
    assert_eq!(map["ResultPath"], Json::Null);
    let children = &map["ItemProcessor"]["States"];
    for (name, state) in children.as_object().unwrap() {
        if state.get("End") == Some(&Json::Bool(true)) {
            assert_eq!(
                state.get("OutputPath"),
                Some(&Json::Null),
                "{name}: output kept"
            );
        }
    }
    let (template, role) = templates()
        .into_iter()
        .find_map(|(_, template)| {
            let role = resources(&template, "AWS::IAM::Role")
                .into_iter()
                .find(|(id, _)| id == "StateMachineRole")
                .map(|(_, role)| role.clone());
            role.map(|role| (template, role))
        })
        .expect("a StateMachineRole");
    let (_, machine) = resources(&template, "AWS::StepFunctions::StateMachine").remove(0);
    let machine_name = sub_text(&machine["StateMachineName"]).expect("!Sub state machine name");
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for policy in role["Policies"].as_sequence().unwrap() {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            let actions: Vec<&str> = match &statement["Action"] {
                Yaml::Sequence(actions) => actions.iter().filter_map(Yaml::as_str).collect(),
                action => action.as_str().into_iter().collect(),
            };
            let Some(resource) = sub_text(&statement["Resource"]) else {
                continue;
            };
            for action in actions {
                granted.insert((action.to_owned(), resource.to_owned()));
            }
        }
    }
    let arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}";
    let machine_arn = format!("{arn}:stateMachine:{machine_name}");
    let children_arn = format!("{arn}:execution:{machine_name}/*");
    for needed in [
        ("states:StartExecution", &machine_arn),
        ("states:DescribeExecution", &children_arn),
        ("states:StopExecution", &children_arn),
        ("states:RedriveExecution", &children_arn),
    ] {
        let needed = (needed.0.to_owned(), needed.1.clone());
        assert!(granted.contains(&needed), "not granted: {needed:?}");
    }
}

#[test]
fn state_machine_resubmits_only_retryable_classes() {
    let (definition, _) = state_machine();
    for step in ["AlignResubmit?", "GatherResubmit?", "QcResubmit?"] {
        let mut codes = BTreeSet::new();
        resubmitted_codes(&definition["States"][step], &mut codes);
        assert_eq!(codes, retryable_codes(), "{step}");
    }
    for map in ["CallContigs", "CallShards"] {
        let mut codes = BTreeSet::new();
        resubmitted_codes(&definition["States"][map], &mut codes);
        assert_eq!(codes, retryable_codes(), "{map}: CallResubmit?");
    }
    // A cohort's lane align jobs (a lane aligned whole, a split lane's chunks), each counted
    // in its Map iteration: the count carries the iteration's whole state (the resubmitted
    // job needs it) and starts at 0.
    let lanes = &definition["States"]["AlignSamples"]["ItemProcessor"]["States"]["AlignLanes"];
    let chunks = &lanes["ItemProcessor"]["States"]["AlignLaneChunks"];
    for (map, task) in [(lanes, "AlignLane"), (chunks, "AlignLaneChunk")] {
        let states = &map["ItemProcessor"]["States"];
        let mut codes = BTreeSet::new();
        resubmitted_codes(&states[format!("{task}Resubmit?").as_str()], &mut codes);
        assert_eq!(codes, retryable_codes(), "{task}Resubmit?");
        let keys = |value: &Json| -> BTreeSet<String> {
            value
                .as_object()
                .unwrap()
                .keys()
                .map(|key| key.trim_end_matches(".$").to_owned())
                .collect()
        };
        let count = &states[format!("{task}Count").as_str()];
        assert_eq!(
            keys(&count["Parameters"]),
            keys(&map["ItemSelector"]),
            "{task}Count"
        );
        assert_eq!(
            count["Parameters"]["resubmits.$"],
            "States.MathAdd($.resubmits, 1)"
        );
        assert_eq!(map["ItemSelector"]["resubmits"], 0, "{task}");
        assert_eq!(
            states[format!("{task}Backoff").as_str()]["Next"],
            task,
            "{task}Backoff"
        );
    }
}

#[test]
fn example_execution_input_is_accepted_by_dry_run() {
    let input = root().join("templates/examples/execution-input.json");
    let output = biojob()
        .args([
            "run",
            "--dry-run",
            "--threads",
            "8",
            "--memory",
            "16G",
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "biojob run --dry-run failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let example: Json = serde_json::from_str(&std::fs::read_to_string(&input).unwrap()).unwrap();
    for contig in example["params"]["chromosomes"].as_array().unwrap() {
        let contig = contig.as_str().unwrap();
        assert!(
            stdout.contains(&format!("[{contig}]")),
            "no shard for {contig}:\n{stdout}"
        );
    }
    for step in ["1. prepare-reference", "2. align", "3. call", "4. gather"] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    assert!(stdout.contains("bwa mem -t 8"), "{stdout}");
}

/// The backticked names in `text`.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_aws_doc_lists_the_stack_parameters_and_outputs() {
    let doc = std::fs::read_to_string(root().join("docs/aws.md")).unwrap();
    let template = load_template(&root().join("templates/cfn/biojob.yaml"));
    let keys = |section: &str| -> BTreeSet<String> {
        template[section]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let table = doc
        .split("Parameters (`templates/cfn/biojob.yaml`):")
        .nth(1)
        .expect("docs/aws.md: the parameter table of the deploy section")
        .split("\n\n")
        .nth(1)
        .unwrap();
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(backticked)
        .collect();
    assert_eq!(
        documented,
        keys("Parameters"),
        "docs/aws.md parameter table vs the template"
    );
    let outputs = doc
        .split("\nOutputs: ")
        .nth(1)
        .expect("docs/aws.md: the outputs line of the deploy section")
        .split("\n\n")
        .next()
        .unwrap();
    assert_eq!(
        backticked(outputs),
        keys("Outputs"),
        "docs/aws.md outputs vs the template"
    );
}

/// `(state name, value of BIOJOB_RESUME's override)` for every state that submits a job.
fn resume_overrides(states: &Json, found: &mut Vec<(String, String)>) {
    variable_overrides(states, "BIOJOB_RESUME", found);
}

/// `(state name, value of the override of `variable`)` for every state that submits a job.
fn variable_overrides(states: &Json, variable_name: &str, found: &mut Vec<(String, String)>) {
    for (name, state) in states.as_object().unwrap() {
        if let Some(environment) =
            state["Parameters"]["ContainerOverrides"]["Environment"].as_array()
        {
            let value = environment
                .iter()
                .find(|variable| variable["Name"] == variable_name)
                .map_or("(not set)".to_owned(), |variable| {
                    variable["Value.$"]
                        .as_str()
                        .unwrap_or("(not a path)")
                        .to_owned()
                });
            found.push((name.clone(), value));
        }
        if let Some(inner) = state.get("ItemProcessor") {
            variable_overrides(&inner["States"], variable_name, found);
        }
    }
}

#[test]
fn state_machine_passes_biojob_aligner_to_every_job_that_aligns() {
    let (definition, _) = state_machine();
    let states = &definition["States"];
    let mut found = Vec::new();
    variable_overrides(states, "BIOJOB_ALIGNER", &mut found);
    let aligning: Vec<&str> = found
        .iter()
        .filter(|(_, value)| value == "$.environment.BIOJOB_ALIGNER")
        .map(|(name, _)| name.as_str())
        .collect();
    let mut aligning = aligning;
    aligning.sort_unstable();
    assert_eq!(
        aligning,
        ["Align", "AlignChunk", "AlignLane", "AlignLaneChunk"]
    );
    assert!(
        found
            .iter()
            .all(|(name, value)| aligning.contains(&name.as_str()) || value == "(not set)"),
        "{found:?}"
    );
    // Unset in the input, it is the stack's Aligner.
    assert_eq!(
        states["Defaults"]["Result"]["environment"]["BIOJOB_ALIGNER"],
        "${Aligner}"
    );
}

#[test]
fn state_machine_passes_biojob_resume_from_the_execution_input_to_every_job_that_resumes() {
    let (definition, _) = state_machine();
    let states = &definition["States"];
    let mut found = Vec::new();
    resume_overrides(states, &mut found);
    found.sort();
    let from_input = "$.environment.BIOJOB_RESUME".to_owned();
    assert_eq!(
        found,
        [
            ("Align".to_owned(), from_input.clone()),
            ("AlignChunk".to_owned(), from_input.clone()),
            ("AlignLane".to_owned(), from_input.clone()),
            ("AlignLaneChunk".to_owned(), from_input.clone()),
            ("Call".to_owned(), from_input.clone()),
            ("Gather".to_owned(), from_input.clone()),
            // Split and merge of chunks always run: they are cheap next to the chunks'
            // alignment. A cohort sample's merge marks duplicates, and resumes.
            ("Merge".to_owned(), "(not set)".to_owned()),
            ("MergeLanes".to_owned(), from_input.clone()),
            // QC and the cohort's report always run: they describe the execution at hand.
            ("Qc".to_owned(), "(not set)".to_owned()),
            ("Report".to_owned(), "(not set)".to_owned()),
            ("SampleQc".to_owned(), "(not set)".to_owned()),
            ("SampleVcf".to_owned(), from_input.clone()),
            ("ShardCall".to_owned(), from_input),
            ("Split".to_owned(), "(not set)".to_owned()),
            // A cohort lane's split always runs too, as a sample's does.
            ("SplitLane".to_owned(), "(not set)".to_owned()),
        ]
    );
    // Unset in the input, it is empty, which biojob reads as unset.
    let defaults = &states["Defaults"]["Result"]["environment"];
    assert_eq!(defaults["BIOJOB_RESUME"], "");
    assert_eq!(defaults["JOB_WORKFLOW_EXECUTION_ID"], "");
    // The run prefix is this execution's, unless the input names an earlier one.
    assert_eq!(states["Prepare"]["Next"], "EarlierExecution?");
    let choice = &states["EarlierExecution?"];
    assert_eq!(choice["Type"], "Choice");
    assert_eq!(
        choice["Choices"],
        serde_json::json!([{
            "Variable": "$.environment.JOB_WORKFLOW_EXECUTION_ID",
            "StringEquals": "",
            "Next": "Cohort?"
        }])
    );
    let earlier = &states[choice["Default"].as_str().unwrap()];
    assert_eq!(earlier["Type"], "Pass");
    assert_eq!(
        earlier["InputPath"],
        "$.environment.JOB_WORKFLOW_EXECUTION_ID"
    );
    assert_eq!(earlier["ResultPath"], "$.execution");
    assert_eq!(earlier["Next"], "Cohort?");
}

#[test]
fn the_input_is_validated_before_anything_reads_it() {
    let (definition, _) = state_machine();
    assert_eq!(definition["StartAt"], "ValidateInput");
    let states = &definition["States"];
    let choice = &states["ValidateInput"];
    assert_eq!(choice["Type"], "Choice");
    assert_eq!(choice["Default"], "Defaults");
    // Each check as `[(path, present)…] -> Next`: one condition, or all of an `And`.
    let checks: Vec<(Vec<(&str, bool)>, &str)> = choice["Choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let conditions = match c["And"].as_array() {
                Some(all) => all.iter().collect(),
                None => vec![c],
            };
            let conditions = conditions
                .into_iter()
                .map(|condition| {
                    (
                        condition["Variable"].as_str().unwrap(),
                        condition["IsPresent"].as_bool().unwrap(),
                    )
                })
                .collect();
            (conditions, c["Next"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        checks,
        [
            (vec![("$.params.environment", false)], "MissingEnvironment"),
            (
                vec![("$.params.chromosomes[0]", false)],
                "MissingChromosomes"
            ),
            // A cohort's input: the sheet with its samples and lanes (biojob plan-cohort
            // prints both), and no SAMPLE_ID (the sheet names the samples).
            (
                vec![
                    ("$.params.samplesheet", true),
                    ("$.params.samples[0]", false)
                ],
                "MissingSamples"
            ),
            (
                vec![
                    ("$.params.samples[0]", true),
                    ("$.params.samplesheet", false)
                ],
                "MissingSampleSheet"
            ),
            (
                vec![
                    ("$.params.samplesheet", true),
                    ("$.params.environment.SAMPLE_ID", true)
                ],
                "SampleIdWithSampleSheet"
            ),
            // A cohort's chunks are its samples' (params.samples): params.chunks would be
            // silently ignored.
            (
                vec![("$.params.samplesheet", true), ("$.params.chunks[0]", true)],
                "ChunksWithSampleSheet"
            ),
        ]
    );
    for fail in [
        "MissingEnvironment",
        "MissingChromosomes",
        "MissingSamples",
        "MissingSampleSheet",
        "SampleIdWithSampleSheet",
        "ChunksWithSampleSheet",
    ] {
        assert_eq!(states[fail]["Type"], "Fail");
        assert_eq!(states[fail]["Error"], "InvalidInput");
    }
}

/// `(state, Next)` of every Catch on `States.TaskFailed`, in every state list (Map iterations'
/// included), with the state list that holds it.
fn task_failed_catches<'a>(states: &'a Json, found: &mut Vec<(String, String, &'a Json)>) {
    for (name, state) in states.as_object().unwrap() {
        for catch in state["Catch"].as_array().into_iter().flatten() {
            if catch["ErrorEquals"] == serde_json::json!(["States.TaskFailed"]) {
                found.push((
                    name.clone(),
                    catch["Next"].as_str().unwrap().to_owned(),
                    states,
                ));
            }
        }
        if let Some(inner) = state.get("ItemProcessor") {
            task_failed_catches(&inner["States"], found);
        }
    }
}

/// `States.TaskFailed` matches every error but `States.Timeout`, so a Batch API error past the
/// Task's Retry (`Batch.ServerException`, throttling) reaches the same Catch as a failed job;
/// only a failed job's cause is its description (JSON). Each such Catch must lead to a Choice
/// that sends only `States.TaskFailed` on to the state parsing the cause.
#[test]
fn only_a_failed_job_s_cause_is_parsed_as_its_description() {
    let (definition, _) = state_machine();
    let mut found = Vec::new();
    task_failed_catches(&definition["States"], &mut found);
    let mut names: Vec<&str> = found.iter().map(|(name, _, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "Align",
            "AlignLane",
            "AlignLaneChunk",
            "Call",
            "Gather",
            "Qc",
            "ShardCall"
        ]
    );
    for (name, next, states) in found {
        let guard = &states[next.as_str()];
        assert_eq!(guard["Type"], "Choice", "{name}: Catch -> {next}");
        let choices = guard["Choices"].as_array().unwrap();
        assert_eq!(choices.len(), 1, "{next}");
        assert_eq!(choices[0]["Variable"], "$.error.Error", "{next}");
        assert_eq!(choices[0]["StringEquals"], "States.TaskFailed", "{next}");
        let classify = &states[choices[0]["Next"].as_str().unwrap()];
        assert_eq!(
            classify["Parameters"]["job.$"], "States.StringToJson($.error.Cause)",
            "{next}"
        );
        let default = &states[guard["Default"].as_str().unwrap()];
        assert_eq!(
            default["Type"], "Fail",
            "{next}: anything else fails as it is"
        );
    }
}

#[test]
fn an_empty_biojob_resume_is_unset_and_a_true_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("templates/examples/execution-input.json");
    let run = |value: &str, dry_run: bool| {
        let mut command = biojob();
        command
            .env("BIOJOB_RESUME", value)
            .args(["run", "--input"])
            .arg(&input)
            .env("BIOJOB_SCRATCH_DIR", dir.path());
        if dry_run {
            command.arg("--dry-run");
        }
        command.output().unwrap()
    };
    // Empty (what the state machine passes by default): resume is off, so no run id is needed
    // (the dry run succeeds).
    assert!(run("", true).status.success());
    // "1" asks for a resume, which `biojob run` refuses without the run to resume (exit 2)
    // before touching anything.
    let output = run("1", false);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--resume (or BIOJOB_RESUME) needs the run to resume"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `(name, value)` of a submitting state's `ContainerOverrides.Environment`.
fn override_environment(state: &Json) -> Vec<(String, String)> {
    state["Parameters"]["ContainerOverrides"]["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| {
            let value = variable
                .get("Value.$")
                .or_else(|| variable.get("Value"))
                .and_then(Json::as_str)
                .unwrap();
            (
                variable["Name"].as_str().unwrap().to_owned(),
                value.to_owned(),
            )
        })
        .collect()
}

#[test]
fn qc_runs_after_gather_with_the_gather_job_s_environment_and_the_chunk_count() {
    let (definition, _) = state_machine();
    let states = &definition["States"];
    assert_eq!(states["Gather"]["Next"], "CohortResults?");
    let results = &states["CohortResults?"];
    assert_eq!(results["Choices"][0]["Variable"], "$.params.samples[0]");
    assert_eq!(results["Choices"][0]["Next"], "SampleResults");
    assert_eq!(results["Default"], "Qc");
    let qc = &states["Qc"];
    assert_eq!(qc["Resource"], "arn:aws:states:::batch:submitJob.sync");
    assert_eq!(qc["Parameters"]["JobDefinition"], "${QcJobDefinition}");
    assert_eq!(qc["Next"], "Succeeded");
    assert!(
        qc["Parameters"]["ContainerOverrides"]
            .get("Command")
            .is_none()
    );
    // The gather job's variables (BIOJOB_RESUME aside: QC always runs), then CHUNKS: the
    // number of chunks when aligning in chunks, else empty, which biojob reads as unset.
    let gather: Vec<(String, String)> = override_environment(&states["Gather"])
        .into_iter()
        .filter(|(name, _)| name != "BIOJOB_RESUME")
        .collect();
    let mut expected = gather;
    expected.push(("CHUNKS".to_owned(), "$.chunking.CHUNKS".to_owned()));
    assert_eq!(override_environment(qc), expected);
    assert_eq!(
        states["Prepare"]["Parameters"]["chunking"],
        serde_json::json!({"CHUNKS": ""})
    );
    let count = &states["CountChunks"];
    assert_eq!(count["ResultPath"], "$.chunking");
    assert_eq!(
        count["Parameters"]["CHUNKS.$"],
        "States.Format('{}', States.ArrayLength($.params.chunks))"
    );
    // Every resubmission counter carries the others along.
    for counter in ["AlignCount", "GatherCount", "QcCount"] {
        let keys: BTreeSet<&str> = states[counter]["Parameters"]
            .as_object()
            .unwrap()
            .keys()
            .map(|key| key.trim_end_matches(".$"))
            .collect();
        assert_eq!(keys, ["align", "gather", "qc"].into(), "{counter}");
    }
    assert_eq!(
        states["Prepare"]["Parameters"]["resubmits"],
        serde_json::json!({"align": 0, "gather": 0, "qc": 0})
    );
}

/// The value of `name` in a submitting state's environment overrides.
fn override_value(state: &Json, name: &str) -> String {
    override_environment(state)
        .into_iter()
        .find(|(variable, _)| variable == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("{name} is not set: {state}"))
}

#[test]
fn a_cohort_maps_over_samples_and_lanes_then_calls_jointly_then_each_sample_and_one_report() {
    let (definition, _) = state_machine();
    let states = &definition["States"];
    // After the run prefix is settled: a cohort when the input lists samples.
    let choice = &states["Cohort?"];
    assert_eq!(choice["Choices"][0]["Variable"], "$.params.samples[0]");
    assert_eq!(choice["Choices"][0]["Next"], "CohortSheet");
    assert_eq!(choice["Default"], "AlignInChunks?");
    let defaults = &states["Defaults"]["Result"];
    assert_eq!(defaults["params"]["samples"], serde_json::json!([]));
    assert_eq!(defaults["environment"]["SAMPLESHEET"], "");
    assert_eq!(defaults["environment"]["BIOJOB_MARK_DUPLICATES"], "");
    // Every job of the cohort reads the sheet; the joint ones name their files `cohort`.
    let sheet = &states["CohortSheet"];
    assert_eq!(sheet["InputPath"], "$.params.samplesheet");
    assert_eq!(sheet["ResultPath"], "$.environment.SAMPLESHEET");
    assert_eq!(sheet["Next"], "CohortStem");
    let stem = &states["CohortStem"];
    assert_eq!(stem["Result"], "cohort");
    assert_eq!(stem["ResultPath"], "$.environment.SAMPLE_ID");
    assert_eq!(stem["Next"], "AlignSamples");
    // A Map over samples, an inner Map over each sample's lanes, then the merge of the
    // sample's chunks: the shape biojob plan-cohort prints (each lane with its chunks,
    // numbered across the sample; the sample with all of them).
    let samples = &states["AlignSamples"];
    assert_eq!(samples["Type"], "Map");
    assert_eq!(samples["ItemsPath"], "$.params.samples");
    assert_eq!(
        samples["ItemSelector"]["sample.$"],
        "$$.Map.Item.Value.sample"
    );
    assert_eq!(
        samples["ItemSelector"]["lanes.$"],
        "$$.Map.Item.Value.lanes"
    );
    assert_eq!(
        samples["ItemSelector"]["chunks.$"],
        "$$.Map.Item.Value.chunks"
    );
    assert_eq!(
        samples["ItemSelector"]["chunkPairs.$"],
        "$.params.chunkPairs"
    );
    assert_eq!(samples["Next"], "CallByShard?");
    let per_sample = &samples["ItemProcessor"]["States"];
    assert_eq!(samples["ItemProcessor"]["StartAt"], "AlignLanes");
    let lanes = &per_sample["AlignLanes"];
    assert_eq!(lanes["Type"], "Map");
    assert_eq!(lanes["ItemsPath"], "$.lanes");
    assert_eq!(lanes["MaxConcurrencyPath"], "$.alignMaxConcurrency");
    assert_eq!(lanes["Next"], "MergeLanes");
    assert_eq!(
        lanes["ItemSelector"]["lane.$"],
        "States.Format('{}', $$.Map.Item.Value.lane)"
    );
    assert_eq!(
        lanes["ItemSelector"]["chunks.$"],
        "$$.Map.Item.Value.chunks"
    );
    assert_eq!(
        lanes["ItemSelector"]["laneChunks.$"],
        "States.JsonToString($$.Map.Item.Value.chunks)"
    );
    // A lane of several chunks is split then aligned chunk by chunk (with params.chunkPairs),
    // a lane of one aligned whole.
    let per_lane = &lanes["ItemProcessor"]["States"];
    assert_eq!(lanes["ItemProcessor"]["StartAt"], "LaneSplit?");
    let choice = &per_lane["LaneSplit?"];
    assert_eq!(choice["Type"], "Choice");
    assert_eq!(
        choice["Choices"],
        serde_json::json!([
            {
                "And": [
                    {"Variable": "$.chunks[1]", "IsPresent": true},
                    {"Variable": "$.chunkPairs", "NumericEquals": 0}
                ],
                "Next": "MissingChunkPairs"
            },
            {"Variable": "$.chunks[1]", "IsPresent": true, "Next": "SplitLane"}
        ])
    );
    assert_eq!(choice["Default"], "AlignLane");
    assert_eq!(per_lane["MissingChunkPairs"]["Type"], "Fail");
    assert_eq!(per_lane["MissingChunkPairs"]["Error"], "InvalidInput");
    let lane = &per_lane["AlignLane"];
    assert_eq!(lane["Parameters"]["JobDefinition"], "${AlignJobDefinition}");
    assert!(lane["Parameters"]["ContainerOverrides"]["Command"].is_null());
    assert_eq!(lane["End"], true);
    let split = &per_lane["SplitLane"];
    assert_eq!(
        split["Parameters"]["JobDefinition"],
        "${AlignJobDefinition}"
    );
    assert_eq!(
        split["Parameters"]["ContainerOverrides"]["Command"],
        serde_json::json!(["split"])
    );
    assert_eq!(
        override_value(split, "BIOJOB_ALIGN_CHUNK_PAIRS"),
        "States.Format('{}', $.chunkPairs)"
    );
    assert_eq!(split["Next"], "AlignLaneChunks");
    let lane_chunks = &per_lane["AlignLaneChunks"];
    assert_eq!(lane_chunks["Type"], "Map");
    assert_eq!(lane_chunks["ItemsPath"], "$.chunks");
    assert_eq!(lane_chunks["MaxConcurrencyPath"], "$.alignMaxConcurrency");
    assert_eq!(lane_chunks["End"], true);
    assert_eq!(
        lane_chunks["ItemSelector"]["chunk.$"],
        "States.Format('{}', $$.Map.Item.Value)"
    );
    let lane_chunk = &lane_chunks["ItemProcessor"]["States"]["AlignLaneChunk"];
    assert_eq!(
        lane_chunk["Parameters"]["JobDefinition"],
        "${AlignJobDefinition}"
    );
    assert!(lane_chunk["Parameters"]["ContainerOverrides"]["Command"].is_null());
    assert_eq!(override_value(lane_chunk, "CHUNK"), "$.chunk");
    for job in [lane, split, lane_chunk] {
        assert_eq!(override_value(job, "SAMPLE_ID"), "$.sample");
        assert_eq!(override_value(job, "LANE"), "$.lane");
        assert_eq!(override_value(job, "LANE_CHUNKS"), "$.laneChunks");
        assert_eq!(
            override_value(job, "SAMPLESHEET"),
            "$.environment.SAMPLESHEET"
        );
    }
    assert!(
        !override_environment(lane)
            .iter()
            .any(|(name, _)| name == "CHUNK"),
        "a lane of one chunk is aligned whole"
    );
    let merge = &per_sample["MergeLanes"];
    assert_eq!(
        merge["Parameters"]["ContainerOverrides"]["Command"],
        serde_json::json!(["merge"])
    );
    assert_eq!(merge["End"], true);
    assert_eq!(
        override_value(merge, "CHUNKS"),
        "States.Format('{}', States.ArrayLength($.chunks))"
    );
    for job in [lane, lane_chunk, merge] {
        assert_eq!(
            override_value(job, "BIOJOB_MARK_DUPLICATES"),
            "$.environment.BIOJOB_MARK_DUPLICATES"
        );
    }
    // The calls and gather are the single sample's states, told the sheet (empty for one
    // sample, which biojob reads as unset).
    let call_maps = [&states["CallContigs"], &states["CallShards"]];
    for (map, task) in call_maps.into_iter().zip(["Call", "ShardCall"]) {
        let call = &map["ItemProcessor"]["States"][task];
        assert_eq!(
            override_value(call, "SAMPLESHEET"),
            "$.environment.SAMPLESHEET"
        );
        assert_eq!(override_value(call, "SAMPLE_ID"), "$.environment.SAMPLE_ID");
    }
    assert_eq!(
        override_value(&states["Gather"], "SAMPLESHEET"),
        "$.environment.SAMPLESHEET"
    );
    // Then per sample its VCF and QC, then the cohort's report.
    let results = &states["SampleResults"];
    assert_eq!(results["Type"], "Map");
    assert_eq!(results["ItemsPath"], "$.params.samples");
    assert_eq!(results["Next"], "Report");
    let per_sample = &results["ItemProcessor"]["States"];
    assert_eq!(results["ItemProcessor"]["StartAt"], "SampleVcf");
    let vcf = &per_sample["SampleVcf"];
    assert_eq!(vcf["Parameters"]["JobDefinition"], "${GatherJobDefinition}");
    assert_eq!(
        vcf["Parameters"]["ContainerOverrides"]["Command"],
        serde_json::json!(["sample-vcf"])
    );
    assert_eq!(vcf["Next"], "SampleQc");
    let qc = &per_sample["SampleQc"];
    assert_eq!(qc["Parameters"]["JobDefinition"], "${QcJobDefinition}");
    assert_eq!(qc["End"], true);
    for job in [vcf, qc] {
        assert_eq!(override_value(job, "SAMPLE_ID"), "$.sample");
        assert_eq!(
            override_value(job, "SAMPLESHEET"),
            "$.environment.SAMPLESHEET"
        );
    }
    let report = &states["Report"];
    assert_eq!(report["Parameters"]["JobDefinition"], "${QcJobDefinition}");
    assert_eq!(
        report["Parameters"]["ContainerOverrides"]["Command"],
        serde_json::json!(["report"])
    );
    assert_eq!(
        override_value(report, "SAMPLE_ID"),
        "$.environment.SAMPLE_ID"
    );
    assert_eq!(report["Next"], "Succeeded");
}
