//! `gridsync export`: every record of every building document, streamed.
//!
//! Documents are loaded one at a time straight from the store and dropped after their rows
//! are written, so memory stays flat however many records there are.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{ExportArgs, ExportFormat};
use crate::commands::field::open_replica;

pub fn run(data: &Path, args: ExportArgs) -> Result<()> {
    let replica = open_replica(data)?;
    let sink: Box<dyn Write> = match &args.out {
        Some(file) => Box::new(
            File::create(file).with_context(|| format!("cannot create {}", file.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let sink = BufWriter::new(sink);
    let mut sink = match args.format {
        ExportFormat::Csv => {
            // The header is written up front, so an export with no records is still a CSV file
            // with its columns (csv's automatic header appears only with the first row).
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(sink);
            writer.write_record(gridsync_model::ExportRow::COLUMNS)?;
            RowSink::Csv(Box::new(writer))
        }
        ExportFormat::Json => RowSink::JsonLines(sink),
    };
    let mut rows = 0u64;
    let mut skipped = 0u64;
    let street = replica.street().to_owned();
    let now_ms = gridsync_node::node::unix_ms() as i64;
    for path in replica.store().doc_paths()? {
        // Building documents are `{street}/{grid}/{building}`; the plan and other street-wide
        // documents hold no field records.
        if path.segments().count() != 3 || path.segments().next() != Some(street.as_str()) {
            continue;
        }
        let Some(doc) = replica.store().load_doc(&path)? else {
            continue;
        };
        // Rows say which records' claimed times ran ahead of this node's first sight of them.
        let arrivals = replica.store().first_received(&path)?;
        let sight = gridsync_model::FirstSight::of_document(&doc, arrivals, now_ms);
        for row in gridsync_model::export_rows(&doc, &path, &sight) {
            match row {
                Ok(row) => {
                    rows += 1;
                    sink.write(&row)?;
                }
                Err(bad) => {
                    skipped += 1;
                    tracing::warn!(document = %path, key = %bad.key, problem = %bad.problem, "skipping a malformed record");
                }
            }
        }
    }
    sink.finish()?;
    tracing::info!(rows, skipped, "export finished");
    if let Some(file) = &args.out {
        eprintln!(
            "exported {rows} records to {}{}",
            file.display(),
            if skipped > 0 {
                format!(" ({skipped} malformed skipped)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Where rows go: CSV with a header line, or one JSON object per line.
enum RowSink<W: Write> {
    /// Boxed: the csv writer carries its own buffer and is far larger than a plain sink.
    Csv(Box<csv::Writer<W>>),
    JsonLines(W),
}

impl<W: Write> RowSink<W> {
    fn write(&mut self, row: &gridsync_model::ExportRow) -> Result<()> {
        match self {
            RowSink::Csv(w) => w.serialize(row)?,
            RowSink::JsonLines(w) => {
                serde_json::to_writer(&mut *w, row)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            RowSink::Csv(mut w) => w.flush()?,
            RowSink::JsonLines(mut w) => w.flush()?,
        }
        Ok(())
    }
}
