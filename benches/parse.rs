//! Parse cost of a command body: YAML and JSON, a small and a full body, and the data check of a command.
//! `cargo bench --bench parse`

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tarsier::wire::body::{BodyFormat, CommandBody};

const SMALL_YAML: &[u8] = b"command: sleep/sleep\ndata: {duration: 0s}\n";
const FULL_YAML: &[u8] = b"command: net/http_load\ndata:\n  url: http://127.0.0.1:9000/\n  concurrency: 64\n  duration: 30s\n  headers: {x-test: '1', accept: application/json}\nwave:\n  remains: 3\n  buddies: 10\n  dedupe: true\n  report: true\n";
const SMALL_JSON: &[u8] = br#"{"command": "sleep/sleep", "data": {"duration": "0s"}}"#;

fn bench(c: &mut Criterion) {
    c.bench_function("parse small YAML body", |b| {
        b.iter(|| CommandBody::parse(black_box(SMALL_YAML), BodyFormat::Yaml).map(|_| ()))
    });
    c.bench_function("parse full YAML body", |b| {
        b.iter(|| CommandBody::parse(black_box(FULL_YAML), BodyFormat::Yaml).map(|_| ()))
    });
    c.bench_function("parse small JSON body", |b| {
        b.iter(|| CommandBody::parse(black_box(SMALL_JSON), BodyFormat::Json).map(|_| ()))
    });
    // The baseline: serde_json into an untyped Value, the least any parser of this body must do.
    c.bench_function("baseline: serde_json::Value of the small JSON body", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(SMALL_JSON)).map(|_| ()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
