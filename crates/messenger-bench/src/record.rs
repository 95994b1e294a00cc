//! Results as JSON lines: one record per measurement, appended by each subcommand and read
//! back by `report`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::RecordArgs;

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Which benchmark: `receive`, `send`, `names`, `fanout`, `memory`, ...
    pub bench: String,
    /// What was measured: `messengerd`, `samba`, `client`.
    pub subject: String,
    /// The run inside the benchmark: `N=64`, `hosts=8`.
    pub label: String,
    /// Figures by name (`rate`, `p50_ms`, `rss_kib`, ...).
    pub values: BTreeMap<String, f64>,
}

impl Record {
    /// A record of `bench` labelled as `args` says.
    pub fn new(bench: &str, args: &RecordArgs) -> Self {
        Self {
            bench: bench.to_owned(),
            subject: args.subject.clone(),
            label: args.label.clone(),
            values: BTreeMap::new(),
        }
    }

    /// Sets a figure.
    pub fn set(&mut self, key: &str, value: f64) -> &mut Self {
        self.values.insert(key.to_owned(), value);
        self
    }

    /// A figure, if recorded.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }

    /// Appends the record to `args.record`, if given.
    pub fn save(&self, args: &RecordArgs) -> anyhow::Result<()> {
        let Some(path) = &args.record else {
            return Ok(());
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        file.write_all(&line)?;
        Ok(())
    }
}

/// Every record in `path`.
pub fn load(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}
