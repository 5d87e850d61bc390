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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A minimal XLSX as Excel writes it: shared parts, one sheet, cells as inline strings and numbers.
    fn xlsx(rows: &[Vec<&str>]) -> Vec<u8> {
        let mut sheet = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        );
        for (r, row) in rows.iter().enumerate() {
            sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
            for (c, cell) in row.iter().enumerate() {
                let col = (b'A' + c as u8) as char;
                if !cell.is_empty() && cell.len() < 12 && cell.bytes().all(|b| b.is_ascii_digit()) {
                    sheet.push_str(&format!(r#"<c r="{col}{}"><v>{cell}</v></c>"#, r + 1));
                } else {
                    sheet.push_str(&format!(r#"<c r="{col}{}" t="inlineStr"><is><t>{cell}</t></is></c>"#, r + 1));
                }
            }
            sheet.push_str("</row>");
        }
        sheet.push_str("</sheetData></worksheet>");
        let parts = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_string(),
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string(),
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="名单" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_string(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_string(),
            ),
            ("xl/worksheets/sheet1.xml", sheet),
        ];
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, text) in parts {
            zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn xlsx_rosters_read_like_csv_with_sheet_row_numbers() {
        let book = xlsx(&[
            vec!["学号", "姓名", "证件类型", "证件号码", "学院"],
            vec!["2021001", "张三", "居民身份证", "11010519491231002X", "数学学院"],
            vec!["2021002", "李四", "居民身份证", "110105194912310021", "数学学院"],
            vec!["2021003", "王五", "香港身份证", "A123456(3)", "物理学院"],
        ]);
        assert!(is_xlsx(&book));
        let roster = parse(&book).unwrap();
        let numbers: Vec<&str> = roster.rows.iter().map(|r| r.student_no.as_str()).collect();
        // Student numbers stored as numbers come back without a decimal point.
        assert_eq!(numbers, ["2021001", "2021003"]);
        assert_eq!(roster.errors.len(), 1);
        assert_eq!(roster.errors[0].line, 3, "the sheet's row");
        assert!(roster.errors[0].code.starts_with("id."), "{:?}", roster.errors[0]);
    }

    #[test]
    fn a_broken_or_bombed_xlsx_is_a_clear_error() {
        let mut book = xlsx(&[vec!["学号"]]);
        book.truncate(book.len() / 2);
        assert_eq!(parse(&book).unwrap_err().code, "roster.xlsx");
        // 600 MB of zeros compress to under 1 MB: refused from the directory's sizes, nothing inflated.
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflate = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("xl/worksheets/sheet1.xml", deflate).unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..600 {
            zip.write_all(&block).unwrap();
        }
        let bomb = zip.finish().unwrap().into_inner();
        assert!(bomb.len() < 2 << 20, "{}", bomb.len());
        let e = parse(&bomb).unwrap_err();
        assert_eq!(e.code, "roster.xlsx");
        assert!(e.message.en.contains("too large"), "{}", e.message.en);
    }
}
