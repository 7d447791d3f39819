//! Deployment tests: what ctfix writes must initialise, validate, plan and apply, and the key
//! policy it wrote must actually let the trail use the key. A fix that satisfies a scanner but
//! fails at `terraform apply` is worse than no fix.
//!
//! One trial per `tests/deploy/cases/<case>/` (a small deployable root module without a
//! provider block, plus `case.json`; see `tests/deploy/README.md`). Each trial:
//! 1. copies the case to a temporary directory and runs the built `ctfix --apply --yes`
//!    (`--unsafe-fixes` when the case says so); the fix must change something, exit 0, and a
//!    second check of the result must find nothing left to do;
//! 2. writes `provider.tf` pointing every AWS provider (default and the case's aliases) at a
//!    moto server on loopback, with fake credentials;
//! 3. runs `terraform init`, `terraform validate` (no errors and no warnings),
//!    `terraform apply`;
//! 4. reads back through the AWS APIs: every trail's `KmsKeyId` is the ARN of a KMS key
//!    the configuration manages, in the trail's region, enabled, customer-managed, rotated;
//!    the key's policy, evaluated with [`ctfix::policy`] for the trail's real ARN and
//!    encryption context, lets `cloudtrail.amazonaws.com` `kms:GenerateDataKey*` and
//!    `kms:DescribeKey`, lets the account administer the key, does not let a trail of
//!    another account use it, and does not by itself let a principal of the account (a role
//!    with no IAM policy for the key) `kms:Decrypt` the logs: readers need IAM;
//! 5. `terraform plan -detailed-exitcode` must report no changes.
//!
//! Tools: `terraform` on `PATH`; the provider mirror (`CTFIX_TF_PLUGIN_MIRROR`, default
//! `/opt/tf-plugins`); moto 5.2.5 or later (`CTFIX_MOTO_SERVER`, else the one `scripts/test`
//! installs, else `moto_server` on `PATH`). The harness writes its own Terraform CLI
//! configuration, so plain `cargo test` works. When a tool is missing every trial reports
//! itself **ignored** with the reason (also printed to stderr) — never passed — unless
//! `CTFIX_REQUIRE_TOOLS=1`, when it fails. Each trial starts its own moto server (so no trial
//! sees another's trails) and stops it when it ends, pass or fail.
//!
//! A case with `"pending": "<reason>"` in `case.json` waits for a ctfix feature: while ctfix
//! leaves its trail unfixed (exits non-zero, or changes nothing) the trial is ignored with that
//! reason; once ctfix fixes it, the trial runs like any other.
//!
//! A failing trial keeps its work directory (module, `logs/<step>.stdout|stderr`) and names it.

// A test harness reports skipped trials on stderr.
#![allow(clippy::print_stderr)]

#[path = "deploy/aws.rs"]
mod aws;
#[path = "deploy/moto.rs"]
mod moto;
#[path = "deploy/process.rs"]
mod process;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctfix::policy::{
    account_can_administer_key, cloudtrail_can_use_key, evaluate_key_policy_alone, Conditions,
    Decision, Principal, Request,
};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::{json, Value};

use crate::moto::MotoServer;
use crate::process::{tail, Finished};

/// The account moto runs everything in.
const ACCOUNT: &str = "123456789012";
/// An account that must not be able to use the key.
const FOREIGN_ACCOUNT: &str = "210987654321";
/// The region of the default provider.
const DEFAULT_REGION: &str = "us-east-1";
/// The AWS services the provider is pointed at moto for.
const SERVICES: [&str; 6] = ["cloudtrail", "iam", "kms", "logs", "s3", "sts"];
/// CloudTrail's `GetTrail` in the JSON protocol.
const GET_TRAIL: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.GetTrail";

/// `case.json`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseConfig {
    /// What the case shows (printed when it fails).
    description: String,
    /// How many `aws_cloudtrail` instances the applied state must hold.
    trails: usize,
    /// Run ctfix with `--unsafe-fixes`.
    #[serde(default)]
    unsafe_fixes: bool,
    /// Aliased `provider "aws"` configurations the case uses.
    #[serde(default)]
    providers: Vec<AliasedProvider>,
    /// The reason to report while ctfix leaves this case's trail unfixed.
    #[serde(default)]
    pending: Option<String>,
    /// The existing key (`aws_kms_key.<k>`) ctfix must wire: every trail's `KmsKeyId` read
    /// back must be that key, or its instance with the trail's own index.
    #[serde(default)]
    key: Option<String>,
    /// Tags every trail's key must carry (a `.ctfix.toml` `[generated-key]` table's).
    #[serde(default)]
    key_tags: BTreeMap<String, String>,
    /// The alias every trail's key must have, `{trail}` standing for the trail's name.
    #[serde(default)]
    key_alias: Option<String>,
}

/// One `provider "aws" { alias = … }`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasedProvider {
    alias: String,
    region: String,
}

/// A case directory and its parsed `case.json`.
struct Case {
    name: String,
    dir: PathBuf,
    config: Result<CaseConfig, String>,
}

/// The external tools, all present.
struct Tools {
    terraform: PathBuf,
    moto_server: PathBuf,
    /// The directory moto gets on its `PYTHONPATH` (see `deploy/moto.rs`).
    moto_support: PathBuf,
    /// The Terraform CLI configuration the harness wrote (providers from the mirror only).
    cli_config: PathBuf,
}

/// What every trial shares.
struct Shared {
    /// The tools, or why some are missing.
    tools: Result<Tools, String>,
    /// `CTFIX_REQUIRE_TOOLS`: a missing tool fails instead of ignoring.
    required: bool,
    /// `(case, reason)` of every trial that ignored itself, for the closing summary.
    ignored: Mutex<Vec<(String, String)>>,
    /// Holds the CLI configuration file.
    _config_dir: tempfile::TempDir,
}

/// Trials run at once unless `--test-threads` says otherwise: more than the cores, because a
/// trial spends much of its time waiting (the provider polls KMS until a new key's policy has
/// propagated).
const DEFAULT_CONCURRENT_TRIALS: usize = 4;

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            .or(Some(DEFAULT_CONCURRENT_TRIALS));
    }
    let config_dir = tempfile::Builder::new()
        .prefix("ctfix-deploy-tfconfig-")
        .tempdir()
        .expect("create a temporary directory");
    let shared = Arc::new(Shared {
        tools: find_tools(config_dir.path()),
        required: support::tools_required(),
        ignored: Mutex::new(Vec::new()),
        _config_dir: config_dir,
    });
    if let Err(reason) = &shared.tools {
        announce_missing_tools(reason, shared.required);
    }

    let trials = load_cases()
        .into_iter()
        .map(|case| {
            let shared = Arc::clone(&shared);
            Trial::ignorable_test(case.name.clone(), move || run_trial(&case, &shared))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);

    let mut ignored =
        std::mem::take(&mut *shared.ignored.lock().unwrap_or_else(|e| e.into_inner()));
    ignored.sort();
    if !ignored.is_empty() {
        eprintln!(
            "\nctfix deploy tests: {} trial(s) IGNORED, not passed:",
            ignored.len()
        );
        for (case, reason) in &ignored {
            eprintln!("  {case}: {reason}");
        }
    }
    conclusion.exit_code()
}

/// Prints, loudly, that the deploy trials cannot run here.
fn announce_missing_tools(reason: &str, required: bool) {
    let rule = "=".repeat(78);
    eprintln!("{rule}");
    if required {
        eprintln!("ctfix deploy tests: CTFIX_REQUIRE_TOOLS is set and a tool is missing, so every");
        eprintln!("deploy trial FAILS: {reason}");
    } else {
        eprintln!("ctfix deploy tests SKIPPED: {reason}");
        eprintln!("Every deploy trial reports itself as ignored, never as passed. scripts/test");
        eprintln!("installs moto and uses the provider mirror; CTFIX_REQUIRE_TOOLS=1 makes a");
        eprintln!("missing tool a failure.");
    }
    eprintln!("{rule}");
}

/// Every case directory, sorted by name.
fn load_cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy/cases");
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .map(|entry| {
            let dir = entry.path();
            let config_path = dir.join("case.json");
            let config = std::fs::read_to_string(&config_path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
                .map_err(|e| format!("{}: {e}", config_path.display()));
            Case {
                name: entry.file_name().to_string_lossy().into_owned(),
                dir,
                config,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Finds terraform, the mirror and moto, and writes the CLI configuration; or says what is
/// missing.
fn find_tools(config_dir: &Path) -> Result<Tools, String> {
    let mut missing = Vec::new();
    let terraform = find_on_path("terraform");
    if terraform.is_none() {
        missing.push("terraform is not on PATH".to_owned());
    }
    let mirror = support::provider_mirror()
        .map_err(|reason| missing.push(reason))
        .ok();
    let moto_server = find_moto(config_dir)
        .map_err(|reason| missing.push(reason))
        .ok();
    match (terraform, mirror, moto_server) {
        (Some(terraform), Some(mirror), Some(moto_server)) => {
            let cli_config = config_dir.join("terraformrc");
            let mirror_path =
                serde_json::to_string(&mirror.to_string_lossy()).map_err(|e| e.to_string())?;
            let text = format!(
                "# Written by tests/deploy.rs: providers come from the local mirror only.\n\
                 disable_checkpoint = true\n\
                 provider_installation {{\n  filesystem_mirror {{\n    path    = {mirror_path}\n    include = [\"registry.terraform.io/hashicorp/*\"]\n  }}\n}}\n"
            );
            std::fs::write(&cli_config, text)
                .map_err(|e| format!("write {}: {e}", cli_config.display()))?;
            Ok(Tools {
                terraform,
                moto_server,
                moto_support: config_dir.to_path_buf(),
                cli_config,
            })
        }
        _ => Err(missing.join("; ")),
    }
}

/// The `moto_server` to use: `CTFIX_MOTO_SERVER` if set (nothing else is tried then), else the
/// first recent enough of the one `scripts/test` installs (under `CTFIX_TOOLS_DIR`, default
/// `~/.cache/ctfix-test-tools`) and the one on `PATH`. Writes moto's support file into
/// `config_dir`.
fn find_moto(config_dir: &Path) -> Result<PathBuf, String> {
    moto::write_support(config_dir)?;
    if let Some(path) = std::env::var_os("CTFIX_MOTO_SERVER") {
        let path = PathBuf::from(path);
        if !is_executable(&path) {
            return Err(format!(
                "CTFIX_MOTO_SERVER={} is not an executable file",
                path.display()
            ));
        }
        return moto::version(&path, config_dir).map(|_| path);
    }
    let tools_dir = std::env::var_os("CTFIX_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/ctfix-test-tools"))
        });
    let candidates: Vec<PathBuf> = tools_dir
        .map(|dir| dir.join("moto/bin/moto_server"))
        .filter(|path| is_executable(path))
        .into_iter()
        .chain(find_on_path("moto_server"))
        .collect();
    if candidates.is_empty() {
        return Err(
            "moto_server is not on PATH and CTFIX_MOTO_SERVER is not set (pip install 'moto[server]')"
                .to_owned(),
        );
    }
    let mut reasons = Vec::new();
    for candidate in candidates {
        match moto::version(&candidate, config_dir) {
            Ok(_) => return Ok(candidate),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(reasons.join("; "))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// One trial: the outcome, with the work directory kept (and named) on failure.
fn run_trial(case: &Case, shared: &Shared) -> Result<Completion, Failed> {
    let config = case.config.as_ref().map_err(Failed::from)?;
    let work = tempfile::Builder::new()
        .prefix(&format!("ctfix-deploy-{}-", case.name))
        .tempdir()
        .map_err(|e| format!("create a work directory: {e}"))?;
    match deploy_case(case, config, shared, work.path()) {
        Ok(Completion::Ignored { reason }) => {
            let reason = reason.unwrap_or_default();
            eprintln!("ctfix deploy: {} IGNORED: {reason}", case.name);
            shared
                .ignored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((case.name.clone(), reason.clone()));
            Ok(Completion::ignored_with(reason))
        }
        Ok(Completion::Completed) => Ok(Completion::Completed),
        Err(Failure {
            message,
            keep_work: true,
        }) => {
            let kept = work.keep();
            Err(format!(
                "{message}\n(case: {}; work directory kept: {})",
                config.description,
                kept.display()
            )
            .into())
        }
        Err(Failure { message, .. }) => Err(message.into()),
    }
}

/// Why a trial failed, and whether its work directory helps to see why.
struct Failure {
    message: String,
    keep_work: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            keep_work: true,
        }
    }
}

/// Step timings, printed after a trial passes.
struct Timings {
    case: String,
    steps: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn time<T>(&mut self, step: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = f();
        self.steps.push((step, start.elapsed()));
        result
    }

    fn report(&self) {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(step, took)| format!("{step} {:.1}s", took.as_secs_f64()))
            .collect();
        eprintln!("ctfix deploy: {}: {}", self.case, steps.join(", "));
    }
}

/// The whole flow for one case in `work`.
fn deploy_case(
    case: &Case,
    config: &CaseConfig,
    shared: &Shared,
    work: &Path,
) -> Result<Completion, Failure> {
    let module = work.join("module");
    let logs = work.join("logs");
    support::copy_tree(&case.dir, &module);
    std::fs::remove_file(module.join("case.json")).map_err(|e| format!("remove case.json: {e}"))?;
    let mut timings = Timings {
        case: case.name.clone(),
        steps: Vec::new(),
    };

    if let Some(unfixed) = timings.time("ctfix", || fix(config, &module, &logs))? {
        return match &config.pending {
            Some(reason) => Ok(Completion::ignored_with(format!("{reason} ({unfixed})"))),
            None => Err(format!("ctfix left the trail unfixed: {unfixed}").into()),
        };
    }

    let tools = match &shared.tools {
        Ok(tools) => tools,
        Err(reason) if shared.required => {
            return Err(Failure {
                message: format!("CTFIX_REQUIRE_TOOLS is set and a tool is missing: {reason}"),
                keep_work: false,
            })
        }
        Err(reason) => return Ok(Completion::ignored_with(format!("tool missing: {reason}"))),
    };
    deploy(config, tools, &module, &logs, &mut timings)?;
    timings.report();
    Ok(Completion::Completed)
}

/// Deploys the fixed module against a fresh moto server and judges the result.
fn deploy(
    config: &CaseConfig,
    tools: &Tools,
    module: &Path,
    logs: &Path,
    timings: &mut Timings,
) -> Result<(), String> {
    let moto = timings.time("moto", || {
        MotoServer::start(&tools.moto_server, &tools.moto_support, logs)
    })?;
    write_providers(module, config, &moto)?;

    let terraform = |step: &str, args: &[&str], timeout_s: u64| {
        run_terraform(
            tools,
            module,
            logs,
            step,
            args,
            Duration::from_secs(timeout_s),
        )
    };
    let init = timings.time("init", || {
        terraform("init", &["init", "-input=false", "-no-color"], 180)
    })?;
    if init.code() != 0 {
        return Err(format!("terraform init failed\n{}", init.describe()));
    }
    let validate = timings.time("validate", || {
        terraform("validate", &["validate", "-json", "-no-color"], 180)
    })?;
    check_validate(&validate, module)?;
    let apply = timings.time("apply", || {
        terraform(
            "apply",
            &["apply", "-auto-approve", "-input=false", "-no-color"],
            600,
        )
    })?;
    if apply.code() != 0 {
        return Err(format!(
            "terraform apply failed\n{}\n--- moto log (last lines) ---\n{}",
            apply.describe(),
            moto.log_tail()
        ));
    }
    let state_path = module.join("terraform.tfstate");
    let state: Value = std::fs::read_to_string(&state_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| format!("read {}: {e}", state_path.display()))?;
    timings.time("read-back", || read_back(config, &state, &moto))?;
    let plan = timings.time("plan", || {
        terraform(
            "plan",
            &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
            300,
        )
    })?;
    match plan.code() {
        0 => Ok(()),
        2 => Err(format!(
            "terraform plan after apply is not empty:\n{}",
            tail(&plan.stdout, 150)
        )),
        _ => Err(format!("terraform plan failed\n{}", plan.describe())),
    }
}

/// Runs ctfix on the module: `Ok(None)` when it fixed it and the fix converges, `Ok(Some(why))`
/// when it left it unfixed.
fn fix(config: &CaseConfig, module: &Path, logs: &Path) -> Result<Option<String>, String> {
    let before = support::snapshot(module);
    let unsafe_fixes: &[&str] = if config.unsafe_fixes {
        &["--unsafe-fixes"]
    } else {
        &[]
    };
    let mut apply = support::ctfix();
    apply
        .args(["--apply", "--yes"])
        .args(unsafe_fixes)
        .arg(module);
    let applied = process::run(apply, logs, "ctfix-apply", Duration::from_secs(120))?;
    if applied.code() != 0 {
        return Ok(Some(format!(
            "ctfix --apply exited {}: {}",
            applied.code(),
            tail(&applied.stdout, 20)
        )));
    }
    if support::snapshot(module) == before {
        return Ok(Some(
            "ctfix --apply exited 0 and changed nothing".to_owned(),
        ));
    }
    let mut check = support::ctfix();
    check.args(unsafe_fixes).arg(module);
    let rechecked = process::run(check, logs, "ctfix-recheck", Duration::from_secs(120))?;
    if rechecked.code() != 0 {
        return Err(format!(
            "ctfix does not converge: checking its own output finds more to do\n{}",
            rechecked.describe()
        ));
    }
    Ok(None)
}

/// Writes `provider.tf`: the default provider and the case's aliases, all talking to moto.
fn write_providers(module: &Path, config: &CaseConfig, moto: &MotoServer) -> Result<(), String> {
    let path = module.join("provider.tf");
    if path.exists() {
        return Err("the case has its own provider.tf; providers belong in case.json".to_owned());
    }
    let endpoint = moto.endpoint();
    let mut text = String::from(
        "# Written by tests/deploy.rs: every provider talks to the moto server on loopback.\n",
    );
    let providers = std::iter::once((None, DEFAULT_REGION)).chain(
        config
            .providers
            .iter()
            .map(|p| (Some(p.alias.as_str()), p.region.as_str())),
    );
    for (alias, region) in providers {
        text.push_str("\nprovider \"aws\" {\n");
        if let Some(alias) = alias {
            text.push_str(&format!("  alias                       = \"{alias}\"\n"));
        }
        text.push_str(&format!(
            "  region                      = \"{region}\"\n\
             \x20 access_key                  = \"testing\"\n\
             \x20 secret_key                  = \"testing\"\n\
             \x20 skip_credentials_validation = true\n\
             \x20 skip_requesting_account_id  = true\n\
             \x20 skip_metadata_api_check     = true\n\
             \x20 s3_use_path_style           = true\n\
             \x20 max_retries                 = 2\n\n\
             \x20 endpoints {{\n"
        ));
        for service in SERVICES {
            text.push_str(&format!("    {service:<10} = \"{endpoint}\"\n"));
        }
        text.push_str("  }\n}\n");
    }
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A terraform command in `module` with the harness's CLI configuration and none of the
/// caller's `TF_*` / `AWS_*` settings.
fn run_terraform(
    tools: &Tools,
    module: &Path,
    logs: &Path,
    step: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Finished, String> {
    let mut command = Command::new(&tools.terraform);
    command.current_dir(module).args(args);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("TF_") || text.starts_with("AWS_") || text == "CHECKPOINT_DISABLE" {
            command.env_remove(&name);
        }
    }
    command
        .env("TF_CLI_CONFIG_FILE", &tools.cli_config)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // The provider builds its whole schema at every start, garbage-collecting as it goes;
        // collecting less often saves about a third of its CPU for ~150 MB more memory.
        .env("GOGC", "400");
    process::run(command, logs, step, timeout)
}

/// `terraform validate -json` must report a valid configuration without warnings.
fn check_validate(validate: &Finished, module: &Path) -> Result<(), String> {
    let report: Value = serde_json::from_str(&validate.stdout).map_err(|e| {
        format!(
            "terraform validate -json printed no JSON ({e})\n{}",
            validate.describe()
        )
    })?;
    let valid = report["valid"].as_bool() == Some(true);
    let warnings = report["warning_count"].as_u64().unwrap_or(0);
    if valid && warnings == 0 && validate.code() == 0 {
        return Ok(());
    }
    let diagnostics: Vec<String> = report["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let range = &d["range"];
            format!(
                "{} {}:{}:{}: {}\n    {}",
                d["severity"].as_str().unwrap_or("?"),
                range["filename"].as_str().unwrap_or("?"),
                range["start"]["line"],
                range["start"]["column"],
                d["summary"].as_str().unwrap_or_default(),
                d["detail"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let files: Vec<String> = support::list_files(module)
        .into_iter()
        .filter(|rel| rel.extension().is_some_and(|ext| ext == "tf"))
        .map(|rel| {
            let text = std::fs::read_to_string(module.join(&rel)).unwrap_or_default();
            format!("--- {} ---\n{text}", rel.display())
        })
        .collect();
    Err(format!(
        "terraform validate: valid={valid}, {warnings} warning(s):\n{}\n{}",
        diagnostics.join("\n"),
        files.join("\n")
    ))
}

/// One managed resource instance of the state.
struct Instance {
    /// Its address, e.g. `aws_cloudtrail.team["payments"]`.
    address: String,
    /// Its resource type.
    kind: String,
    /// Its attributes.
    attributes: Value,
}

/// The managed resource instances of a `terraform.tfstate` (format version 4, read directly:
/// `terraform show -json` would start the provider again, for seconds).
fn managed_instances(state: &Value) -> Result<Vec<Instance>, String> {
    if state["version"] != 4 {
        return Err(format!(
            "terraform.tfstate has format version {}, the harness reads 4",
            state["version"]
        ));
    }
    let mut out = Vec::new();
    for resource in state["resources"].as_array().into_iter().flatten() {
        if resource["mode"] != "managed" {
            continue;
        }
        let kind = resource["type"].as_str().unwrap_or_default();
        let name = resource["name"].as_str().unwrap_or_default();
        let base = match resource["module"].as_str() {
            Some(module) => format!("{module}.{kind}.{name}"),
            None => format!("{kind}.{name}"),
        };
        for instance in resource["instances"].as_array().into_iter().flatten() {
            let address = match &instance["index_key"] {
                Value::Null => base.clone(),
                key => format!("{base}[{key}]"),
            };
            out.push(Instance {
                address,
                kind: kind.to_owned(),
                attributes: instance["attributes"].clone(),
            });
        }
    }
    Ok(out)
}

/// Reads the trails and their keys back from moto and judges them; every problem is listed.
fn read_back(config: &CaseConfig, state: &Value, moto: &MotoServer) -> Result<(), String> {
    let instances = managed_instances(state)?;
    let trails: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.kind == "aws_cloudtrail")
        .collect();
    let managed_keys: BTreeMap<&str, &str> = instances
        .iter()
        .filter(|i| i.kind == "aws_kms_key")
        .filter_map(|key| Some((key.attributes["arn"].as_str()?, key.address.as_str())))
        .collect();
    let mut problems = Vec::new();
    if trails.len() != config.trails {
        problems.push(format!(
            "the state holds {} aws_cloudtrail instance(s), case.json expects {}",
            trails.len(),
            config.trails
        ));
    }
    for trail in trails {
        if let Err(problem) = check_trail(trail, &managed_keys, moto) {
            problems.push(format!("{}: {problem}", trail.address));
        }
        if let Some(expected) = &config.key {
            let wired = trail.attributes["kms_key_id"]
                .as_str()
                .and_then(|arn| managed_keys.get(arn))
                .copied()
                .unwrap_or("no key of the configuration");
            // A key with the trail's own count / for_each: the instance with the same index.
            let trail_index = trail.address.find('[').map(|i| &trail.address[i..]);
            let instance_of = |address: &str| {
                address == expected
                    || address
                        .strip_prefix(expected.as_str())
                        .is_some_and(|index| index.starts_with('[') && Some(index) == trail_index)
            };
            if !instance_of(wired) {
                problems.push(format!(
                    "{}: kms_key_id is {wired}, not the existing key {expected}",
                    trail.address
                ));
            }
        }
        if let Err(problem) = check_key_settings(trail, config, moto) {
            problems.push(format!("{}: {problem}", trail.address));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "read-back found problems:\n- {}",
            problems.join("\n- ")
        ))
    }
}

/// The trail's key carries the case's tags and alias (`key_tags`, `key_alias`).
fn check_key_settings(
    trail: &Instance,
    config: &CaseConfig,
    moto: &MotoServer,
) -> Result<(), String> {
    if config.key_tags.is_empty() && config.key_alias.is_none() {
        return Ok(());
    }
    let key_arn = trail.attributes["kms_key_id"]
        .as_str()
        .ok_or("the state has no kms_key_id for it")?;
    let region = key_arn.split(':').nth(3).unwrap_or_default();
    let kms = |action: &str, body: Value| {
        aws::call(
            moto.port,
            "kms",
            region,
            &format!("TrentService.{action}"),
            &body,
        )
    };
    let mut problems = Vec::new();
    if !config.key_tags.is_empty() {
        let answer = kms("ListResourceTags", json!({ "KeyId": key_arn }))?;
        let tags: BTreeMap<String, String> = answer["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["TagKey"].as_str()?.to_owned(),
                    t["TagValue"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if tags != config.key_tags {
            problems.push(format!(
                "the key's tags are {tags:?}, not {:?}",
                config.key_tags
            ));
        }
    }
    if let Some(pattern) = &config.key_alias {
        let name = trail.attributes["name"].as_str().unwrap_or_default();
        let expected = pattern.replace("{trail}", name);
        let answer = kms("ListAliases", json!({ "KeyId": key_arn }))?;
        let aliases: Vec<&str> = answer["Aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["AliasName"].as_str())
            .collect();
        if aliases != [expected.as_str()] {
            problems.push(format!(
                "the key's aliases are {aliases:?}, not [{expected:?}]"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

/// The checks on one trail instance of the state.
fn check_trail(
    trail: &Instance,
    managed_keys: &BTreeMap<&str, &str>,
    moto: &MotoServer,
) -> Result<(), String> {
    let arn = trail.attributes["arn"]
        .as_str()
        .ok_or("the state has no arn for it")?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, _, region, account, resource] = parts[..] else {
        return Err(format!("unexpected trail ARN {arn}"));
    };
    if account != ACCOUNT {
        return Err(format!("trail {arn} is not in moto's account {ACCOUNT}"));
    }
    let api = aws::call(
        moto.port,
        "cloudtrail",
        region,
        GET_TRAIL,
        &json!({ "Name": arn }),
    )?;
    let found = &api["Trail"];
    if found["TrailARN"] != arn {
        return Err(format!("GetTrail({arn}) answered another trail: {found}"));
    }
    let key_arn = found["KmsKeyId"]
        .as_str()
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            format!(
                "CloudTrail reports no KmsKeyId for {arn}: the trail is not encrypted with a CMK"
            )
        })?;
    let mut problems = Vec::new();
    if trail.attributes["kms_key_id"] != key_arn {
        problems.push(format!(
            "the state's kms_key_id {} differs from CloudTrail's KmsKeyId {key_arn}",
            trail.attributes["kms_key_id"]
        ));
    }
    if !managed_keys.contains_key(key_arn) {
        problems.push(format!(
            "KmsKeyId {key_arn} is not a key this configuration manages (it manages {:?})",
            managed_keys.values().collect::<Vec<_>>()
        ));
    }
    let key_region = key_arn.split(':').nth(3).unwrap_or_default();
    if key_region != region {
        problems.push(format!("the key is in {key_region}, the trail in {region}"));
    }
    let kms = |action: &str, body: Value| {
        aws::call(
            moto.port,
            "kms",
            key_region,
            &format!("TrentService.{action}"),
            &body,
        )
    };
    let metadata = &kms("DescribeKey", json!({ "KeyId": key_arn }))?["KeyMetadata"];
    for (field, expected) in [
        ("Arn", key_arn),
        ("KeyState", "Enabled"),
        ("KeyManager", "CUSTOMER"),
        ("KeySpec", "SYMMETRIC_DEFAULT"),
        ("KeyUsage", "ENCRYPT_DECRYPT"),
    ] {
        if metadata[field] != expected {
            problems.push(format!(
                "DescribeKey: {field} is {}, not {expected}",
                metadata[field]
            ));
        }
    }
    let rotation = kms("GetKeyRotationStatus", json!({ "KeyId": key_arn }))?;
    if rotation["KeyRotationEnabled"] != true {
        problems.push("key rotation is not enabled".to_owned());
    }
    let answer = kms(
        "GetKeyPolicy",
        json!({ "KeyId": key_arn, "PolicyName": "default" }),
    )?;
    let text = answer["Policy"]
        .as_str()
        .ok_or("GetKeyPolicy returned no Policy")?;
    let policy: Value = serde_json::from_str(text)
        .map_err(|e| format!("the key policy is not JSON ({e}): {text}"))?;
    let pretty = serde_json::to_string_pretty(&policy).unwrap_or_default();
    if let Err(missing) = cloudtrail_can_use_key(&policy, arn, ACCOUNT, Conditions::Evaluate) {
        problems.push(format!(
            "the key policy does not allow cloudtrail.amazonaws.com {missing:?} for {arn}:\n{pretty}"
        ));
    }
    if !account_can_administer_key(&policy, partition, ACCOUNT, Conditions::Evaluate) {
        problems.push(format!(
            "the key policy does not let account {ACCOUNT} administer the key:\n{pretty}"
        ));
    }
    let foreign = format!("arn:{partition}:cloudtrail:{region}:{FOREIGN_ACCOUNT}:{resource}");
    if cloudtrail_can_use_key(&policy, &foreign, FOREIGN_ACCOUNT, Conditions::Evaluate).is_ok() {
        problems.push(format!(
            "the key policy lets a trail of another account ({foreign}) use the key:\n{pretty}"
        ));
    }
    // Reading the logs takes an IAM policy: the key policy alone lets no role of the account
    // decrypt them (the account statement only delegates to IAM).
    let reader = format!("arn:{partition}:iam::{ACCOUNT}:role/ctfix-any-reader");
    let context: BTreeMap<String, Vec<String>> = [
        ("aws:PrincipalArn", reader.as_str()),
        ("aws:PrincipalAccount", ACCOUNT),
        ("kms:CallerAccount", ACCOUNT),
        ("kms:EncryptionContext:aws:cloudtrail:arn", arn),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), vec![value.to_owned()]))
    .collect();
    for action in ["kms:Decrypt", "kms:ReEncryptFrom"] {
        let request = Request {
            principal: Principal::Aws {
                arn: &reader,
                account: ACCOUNT,
            },
            action,
            context: &context,
        };
        let decision = evaluate_key_policy_alone(&policy, &request, Conditions::Evaluate);
        if decision == Decision::Allowed {
            problems.push(format!(
                "the key policy by itself lets any role of the account ({reader}) call {action} on the logs:\n{pretty}"
            ));
        }
    }
    // The same questions to the independent evaluator (tests/deploy/evaluate_policy.py).
    let requests = policy_questions(partition, region, arn, &foreign, &reader);
    match independent_decisions(&policy, &requests) {
        Ok(wrong) if wrong.is_empty() => {}
        Ok(wrong) => problems.push(format!(
            "the independent evaluator disagrees with what the key policy must decide: {wrong:?}\n{pretty}"
        )),
        Err(error) => problems.push(error),
    }
    // Broken on purpose: the read-back must catch a policy without kms:DescribeKey for
    // CloudTrail, and one whose aws:SourceArn names another trail.
    let other_trail =
        format!("arn:{partition}:cloudtrail:{region}:{ACCOUNT}:trail/ctfix-some-other-trail");
    for (mutation, broken, question) in [
        (
            "no kms:DescribeKey",
            without_describe_key(&policy),
            "cloudtrail DescribeKey",
        ),
        (
            "a wrong aws:SourceArn",
            with_source_arn(&policy, &other_trail),
            "cloudtrail GenerateDataKey",
        ),
    ] {
        if broken == policy {
            continue; // nothing to break (no aws:SourceArn condition in an extended policy)
        }
        if cloudtrail_can_use_key(&broken, arn, ACCOUNT, Conditions::Evaluate).is_ok() {
            problems.push(format!("ctfix::policy accepts the policy with {mutation}"));
        }
        match independent_decisions(&broken, &requests) {
            Ok(wrong) if wrong.iter().any(|w| w.starts_with(question)) => {}
            Ok(wrong) => problems.push(format!(
                "the independent evaluator accepts the policy with {mutation} ({wrong:?}):\n{}",
                serde_json::to_string_pretty(&broken).unwrap_or_default()
            )),
            Err(error) => problems.push(error),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

/// `(name, request, expected decision)` for the independent evaluator: what the generated or
/// extended key policy must allow and refuse.
fn policy_questions(
    partition: &str,
    region: &str,
    trail: &str,
    foreign: &str,
    reader: &str,
) -> Vec<(String, Value, &'static str)> {
    let key = format!("arn:{partition}:kms:{region}:{ACCOUNT}:key/any");
    let cloudtrail = |trail: &str, account: &str, action: &str| {
        json!({
            "principal": { "service": "cloudtrail.amazonaws.com" },
            "action": action,
            "resource": key,
            "context": {
                "aws:SourceArn": [trail],
                "aws:SourceAccount": [account],
                "kms:EncryptionContext:aws:cloudtrail:arn": [trail],
            },
        })
    };
    let aws = |arn: &str, action: &str| {
        json!({
            "principal": { "arn": arn, "account": ACCOUNT },
            "action": action,
            "resource": key,
            "context": {
                "aws:PrincipalArn": [arn],
                "kms:CallerAccount": [ACCOUNT],
                "kms:EncryptionContext:aws:cloudtrail:arn": [trail],
            },
        })
    };
    let root = format!("arn:{partition}:iam::{ACCOUNT}:root");
    vec![
        (
            "cloudtrail GenerateDataKey".into(),
            cloudtrail(trail, ACCOUNT, "kms:GenerateDataKey"),
            "allow",
        ),
        (
            "cloudtrail DescribeKey".into(),
            cloudtrail(trail, ACCOUNT, "kms:DescribeKey"),
            "allow",
        ),
        (
            "foreign trail GenerateDataKey".into(),
            cloudtrail(foreign, FOREIGN_ACCOUNT, "kms:GenerateDataKey"),
            "deny",
        ),
        (
            "account root PutKeyPolicy".into(),
            aws(&root, "kms:PutKeyPolicy"),
            "allow",
        ),
        (
            "account root ScheduleKeyDeletion".into(),
            aws(&root, "kms:ScheduleKeyDeletion"),
            "allow",
        ),
        (
            "reader role Decrypt".into(),
            aws(reader, "kms:Decrypt"),
            "deny",
        ),
    ]
}

/// Asks `tests/deploy/evaluate_policy.py` (python3) to decide `questions` on `policy`;
/// returns `"<name>: <decision>, expected <decision>"` for each wrong decision.
fn independent_decisions(
    policy: &Value,
    questions: &[(String, Value, &'static str)],
) -> Result<Vec<String>, String> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy/evaluate_policy.py");
    let requests: Vec<Value> = questions
        .iter()
        .map(|(name, request, _)| {
            let mut request = request.clone();
            request["name"] = json!(name);
            request
        })
        .collect();
    let input = json!({ "policy": policy, "requests": requests });
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3 for the independent evaluator: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let answer: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "the independent evaluator printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = answer["error"].as_str() {
        return Err(format!(
            "the independent evaluator cannot judge the policy: {error}"
        ));
    }
    Ok(questions
        .iter()
        .filter_map(|(name, _, expected)| {
            let got = answer["decisions"][name].as_str().unwrap_or("none");
            (got != *expected).then(|| format!("{name}: {got}, expected {expected}"))
        })
        .collect())
}

/// The policy with `kms:DescribeKey` taken out of every statement that allows it to CloudTrail
/// (statements left without an action go).
fn without_describe_key(policy: &Value) -> Value {
    let mut policy = policy.clone();
    if let Some(statements) = policy["Statement"].as_array_mut() {
        for statement in statements.iter_mut() {
            if statement["Principal"]["Service"] != "cloudtrail.amazonaws.com" {
                continue;
            }
            let actions: Vec<Value> = match &statement["Action"] {
                Value::Array(items) => items.clone(),
                single => vec![single.clone()],
            };
            let kept: Vec<Value> = actions
                .into_iter()
                .filter(|a| {
                    let a = a.as_str().unwrap_or_default().to_ascii_lowercase();
                    a != "kms:describekey" && a != "kms:*" && a != "kms:describe*"
                })
                .collect();
            statement["Action"] = Value::Array(kept);
        }
        statements.retain(|s| s["Action"].as_array().is_none_or(|a| !a.is_empty()));
    }
    policy
}

/// The policy with every `aws:SourceArn` condition value replaced by `arn`.
fn with_source_arn(policy: &Value, arn: &str) -> Value {
    fn visit(value: &mut Value, arn: &str) {
        match value {
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    if key.eq_ignore_ascii_case("aws:SourceArn") {
                        *item = json!(arn);
                    } else {
                        visit(item, arn);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| visit(item, arn)),
            _ => {}
        }
    }
    let mut policy = policy.clone();
    visit(&mut policy, arn);
    policy
}
