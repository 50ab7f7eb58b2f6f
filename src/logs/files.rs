//! The activity log's files: the rotating writer and the listing live in the plugin API
//! (`tarsier_plugin::logfiles`), shared with `logs/emit`, whose files a shipper reads the same way.

pub use tarsier_plugin::logfiles::*;
