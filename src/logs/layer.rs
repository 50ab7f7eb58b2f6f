//! The tracing layer that turns every event at the file log's level into a record: the level, the target,
//! the message as `msg` and each field by its name (numbers and booleans as JSON numbers and booleans).
//! The activity events (commands started and ended, wave copies, aborts, refusals, faults) carry an
//! `activity` field naming what happened, so a reader can select them.

use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;

use super::record;
use super::sink::Sink;

pub struct FileLayer {
    pub(super) sink: Arc<Sink>,
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let mut fields = Fields(String::with_capacity(160));
        record::push_str_field(&mut fields.0, "level", level_name(metadata.level()));
        record::push_str_field(&mut fields.0, "target", metadata.target());
        event.record(&mut fields);
        self.sink.log(record::now_ms(), &fields.0);
    }
}

fn level_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

struct Fields(String);

impl Fields {
    fn key(field: &Field) -> &str {
        // A field may not take a stamp's name: the record's own would be shadowed for a reader.
        match field.name() {
            "message" => "msg",
            "agent" | "boot" | "seq" | "ts_ms" | "level" | "target" => "field",
            name => name,
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        record::push_str_field(&mut self.0, Self::key(field), &text);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        record::push_str_field(&mut self.0, Self::key(field), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        record::push_number_field(&mut self.0, Self::key(field), value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        record::push_number_field(&mut self.0, Self::key(field), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        record::push_raw_field(&mut self.0, Self::key(field), if value { "true" } else { "false" });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            record::push_raw_field(&mut self.0, Self::key(field), &value.to_string());
        } else {
            record::push_str_field(&mut self.0, Self::key(field), &value.to_string());
        }
    }
}
