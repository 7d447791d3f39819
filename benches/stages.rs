//! In-process benchmarks of ctfix's stages on a generated monorepo (see
//! `examples/gen_monorepo.rs`): discovery, the byte prefilter, parsing one typical file,
//! `check_module` on a module that holds a trail, and a whole `check`.
//!
//! `cargo bench --bench stages` (whole-process timings against `grep` and Checkov are in
//! `scripts/bench`). The tree is generated once into Cargo's target temporary directory.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use ctfix::discover::{discover, ModuleDir};
use ctfix::parse::{parse_source, read_source};
use ctfix::{check, check_module, Settings, Status};

#[allow(dead_code)] // the generator's command-line half is not used here
#[path = "../examples/gen_monorepo.rs"]
mod gen_monorepo;

/// Files in the benchmark tree: big enough to be realistic, small enough to generate in a
/// second.
const FILES: usize = 2_000;

/// The generated tree, made on first use (the generator is deterministic, so an existing
/// tree with the same summary is reused).
fn tree() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ctfix-bench-{FILES}"));
    let mut options = gen_monorepo::Options::new(&out, FILES);
    options.force = true;
    let marker = out.join(".gen-monorepo.txt");
    let want = format!("--files {FILES} --trails {} ", options.trails);
    let reusable = std::fs::read_to_string(&marker).is_ok_and(|summary| summary.contains(&want));
    if !reusable {
        gen_monorepo::generate(&options).expect("generate the benchmark tree");
    }
    out
}

/// The first module whose trail has the given status.
fn module_with(modules: &[ModuleDir], settings: &Settings, status: Status) -> ModuleDir {
    modules
        .iter()
        .filter(|m| m.files.iter().any(|f| f.ends_with("cloudtrail.tf")))
        .find(|m| {
            check_module(m, settings)
                .findings
                .iter()
                .any(|f| f.status == status)
        })
        .cloned()
        .expect("the generated tree has trails of both kinds")
}

fn stages(c: &mut Criterion) {
    let root = tree();
    let settings = Settings {
        paths: vec![root.clone()],
        ..Settings::default()
    };
    let discovery = discover(std::slice::from_ref(&root));
    let files: Vec<&PathBuf> = discovery.modules.iter().flat_map(|m| &m.files).collect();
    let texts: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let total_bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();

    let mut group = c.benchmark_group("tree");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(files.len() as u64));
    group.bench_function("discover", |b| {
        b.iter(|| discover(black_box(std::slice::from_ref(&root))))
    });
    group.throughput(Throughput::Bytes(total_bytes));
    group.bench_function("prefilter_in_memory", |b| {
        let finder = memchr::memmem::Finder::new(b"aws_cloudtrail");
        b.iter(|| {
            texts
                .iter()
                .filter(|t| finder.find(black_box(t)).is_some())
                .count()
        })
    });
    group.bench_function("prefilter_read_and_search", |b| {
        let finder = memchr::memmem::Finder::new(b"aws_cloudtrail");
        b.iter(|| {
            files
                .iter()
                .filter(|p| finder.find(&std::fs::read(p).unwrap()).is_some())
                .count()
        })
    });
    group.bench_function("check", |b| b.iter(|| check(black_box(&settings))));
    group.finish();

    // A typical file: the `main.tf` closest to the average size.
    let average = total_bytes / files.len() as u64;
    let typical = files
        .iter()
        .filter(|p| p.ends_with("main.tf"))
        .min_by_key(|p| std::fs::metadata(p).unwrap().len().abs_diff(average))
        .unwrap();
    let source = read_source(typical).unwrap();
    let mut group = c.benchmark_group("file");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(source.text.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| parse_source(black_box(&source)).unwrap())
    });
    // The same without freeing the syntax tree: the difference is the cost of the drop.
    group.bench_function("parse_excluding_drop", |b| {
        b.iter_with_large_drop(|| parse_source(black_box(&source)).unwrap())
    });
    group.finish();

    let noncompliant = module_with(&discovery.modules, &settings, Status::Noncompliant);
    let compliant = module_with(&discovery.modules, &settings, Status::Compliant);
    let mut group = c.benchmark_group("check_module");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, module) in [("noncompliant", &noncompliant), ("compliant", &compliant)] {
        let bytes: u64 = module
            .files
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| {
            b.iter(|| check_module(black_box(module), &settings))
        });
    }
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
