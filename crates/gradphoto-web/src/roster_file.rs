//! Roster uploads: CSV as the core reads it (UTF-8, BOM or GBK), or XLSX turned into the same CSV first, so that
//! both are validated by one parser and report the same line numbers (a sheet's row n is line n).

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx};
use gradphoto_core::Message;
use gradphoto_core::roster::{self, Roster};

/// Unpacked size allowed for an XLSX (its sheets are XML, ~10× the CSV): refuses zip bombs before unpacking.
const MAX_XLSX_UNPACKED: u64 = 512 * 1024 * 1024;

#[derive(Debug)]
pub struct RosterFileError {
    pub code: &'static str,
    pub message: Message,
}

pub fn is_xlsx(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

pub fn parse(bytes: &[u8]) -> Result<Roster, RosterFileError> {
    let csv = if is_xlsx(bytes) { xlsx_to_csv(bytes)? } else { bytes.to_vec() };
    roster::parse(&csv).map_err(|e| RosterFileError { code: e.code(), message: e.message() })
}

fn bad_xlsx(detail: impl std::fmt::Display) -> RosterFileError {
    RosterFileError {
        code: "roster.xlsx",
        message: Message::new(
            format!("无法读取 Excel 文件：{detail}"),
            format!("cannot read the Excel file: {detail}"),
        ),
    }
}

fn xlsx_to_csv(bytes: &[u8]) -> Result<Vec<u8>, RosterFileError> {
    // Sizes from the zip directory first: a bomb is refused without inflating anything.
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad_xlsx)?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(bad_xlsx)?;
        total = total.saturating_add(f.size());
    }
    if total > MAX_XLSX_UNPACKED {
        return Err(bad_xlsx("too large when unpacked"));
    }
    // The declared sizes can lie: count what actually inflates, too.
    for i in 0..archive.len() {
        let f = archive.by_index(i).map_err(bad_xlsx)?;
        let read = std::io::copy(&mut f.take(MAX_XLSX_UNPACKED + 1), &mut std::io::sink()).map_err(bad_xlsx)?;
        if read > MAX_XLSX_UNPACKED {
            return Err(bad_xlsx("too large when unpacked"));
        }
    }
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(bad_xlsx)?;
    let range = book.worksheet_range_at(0).ok_or_else(|| bad_xlsx("no sheet"))?.map_err(bad_xlsx)?;
    let mut out = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    // Rows before the range's start are blank in the sheet; keep them so line numbers match the sheet's rows.
    let (first_row, _) = range.start().unwrap_or((0, 0));
    for _ in 0..first_row {
        out.write_record([""]).map_err(bad_xlsx)?;
    }
    for row in range.rows() {
        let cells: Vec<String> = row.iter().map(cell_text).collect();
        out.write_record(&cells).map_err(bad_xlsx)?;
    }
    out.into_inner().map_err(bad_xlsx)
}

/// A cell as the text a person typed: whole numbers without a decimal point (student numbers are often stored as
/// numbers), everything else as displayed.
fn cell_text(c: &Data) -> String {
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}
