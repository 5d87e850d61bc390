//! Student rosters from a school's admin office: identity-document numbers (which give the student's initial
//! password and name the registered files) and the CSV file that lists them.
//!
//! Pure: callers hand in bytes. Every problem a person must fix is a [`Message`], Simplified Chinese first.

use std::collections::HashMap;
use std::fmt;

use encoding_rs::DecoderResult;
use serde::{Deserialize, Serialize};

use crate::message::Message;

/// Largest roster accepted, in bytes: 50 MiB. A 200 000-row roster with long college names is about 30 MB.
pub const MAX_BYTES: usize = 50 * 1024 * 1024;

/// Most data rows accepted in one roster (the header not counted). The largest universities graduate about
/// 30 000 a year; this leaves room for a whole province's file without letting a runaway export through.
pub const MAX_ROWS: usize = 200_000;

// ---------------------------------------------------------------------------------------------------------------
// Identity-document numbers
// ---------------------------------------------------------------------------------------------------------------

/// The kinds of identity document a graduate can be registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// 18-character resident identity card (GB 11643-1999); also the residence permits for Hong Kong, Macau and
    /// Taiwan residents and the foreigner's permanent residence card, which use the same format.
    Mainland,
    /// Hong Kong identity card, e.g. `A123456(3)`.
    HongKong,
    /// Macau resident identity card, e.g. `1234567(8)`.
    Macau,
    /// Taiwan national identification card, e.g. `A123456789`.
    Taiwan,
    /// A foreign passport.
    Passport,
}

impl IdKind {
    pub const ALL: [IdKind; 5] = [IdKind::Mainland, IdKind::HongKong, IdKind::Macau, IdKind::Taiwan, IdKind::Passport];

    /// The document's name for people.
    pub fn name(self) -> Message {
        let (zh, en) = match self {
            IdKind::Mainland => ("居民身份证", "mainland identity card"),
            IdKind::HongKong => ("香港身份证", "Hong Kong identity card"),
            IdKind::Macau => ("澳门身份证", "Macau identity card"),
            IdKind::Taiwan => ("台湾身份证", "Taiwan identity card"),
            IdKind::Passport => ("护照", "passport"),
        };
        Message::new(zh, en)
    }

    /// The kind named by a roster's id-type cell, in Chinese (simplified or traditional) or English; None when the
    /// label is not one we know. Exact names only: a substring match would take "港澳居民来往内地通行证", a
    /// different document, for a Hong Kong identity card.
    pub fn from_label(label: &str) -> Option<IdKind> {
        let key = label_key(label);
        LABELS.iter().find(|(_, names)| names.split_whitespace().any(|n| n == key)).map(|(kind, _)| *kind)
    }

    /// The expected form, for error messages.
    fn rule(self) -> Message {
        let (zh, en) = match self {
            IdKind::Mainland => {
                ("18 位：17 位数字加 1 位校验码（数字或 X）", "18 characters: 17 digits and a check digit or X")
            }
            IdKind::HongKong => (
                "1–2 个字母、6 位数字和括号中的校验码，如 A123456(3)",
                "1 or 2 letters, 6 digits and a check digit in brackets, like A123456(3)",
            ),
            IdKind::Macau => (
                "以 1、5 或 7 开头的 7 位数字和括号中的校验码，如 1234567(8)",
                "7 digits starting with 1, 5 or 7 and a check digit in brackets, like 1234567(8)",
            ),
            IdKind::Taiwan => (
                "1 个字母、1 位数字（1 或 2）和 8 位数字，如 A123456789",
                "a letter, the digit 1 or 2 and 8 more digits, like A123456789",
            ),
            IdKind::Passport => ("5–20 位字母或数字", "5 to 20 letters or digits"),
        };
        Message::new(zh, en)
    }
}

/// Id-type labels as [`label_key`] leaves them. The residence permits for Hong Kong, Macau and Taiwan residents and
/// the foreigner's permanent residence card carry 18-character numbers of the mainland format.
const LABELS: [(IdKind, &str); 5] = [
    (
        IdKind::Mainland,
        "居民身份证 身份证 中国居民身份证 中华人民共和国居民身份证 大陆居民身份证 内地居民身份证 居民身份證 身份證 \
         港澳台居民居住证 港澳居民居住证 台湾居民居住证 外国人永久居留身份证 外国人永久居留证 永久居留身份证 \
         mainland mainlandid residentidentitycard residentid idcard prcid",
    ),
    (
        IdKind::HongKong,
        "香港身份证 香港居民身份证 香港永久性居民身份证 香港特区身份证 香港身份證 香港永久性居民身份證 \
         hongkong hongkongid hongkongidentitycard hkid hk",
    ),
    (
        IdKind::Macau,
        "澳门身份证 澳门居民身份证 澳门永久性居民身份证 澳门特区身份证 澳門身份證 澳門居民身份證 \
         macau macao macauid macaoid macauidentitycard bir mo",
    ),
    (
        IdKind::Taiwan,
        "台湾身份证 台湾居民身份证 台湾地区身份证 台湾身分证 台灣身分證 臺灣身分證 taiwan taiwanid taiwanidentitycard tw",
    ),
    (IdKind::Passport, "护照 外国护照 護照 passport foreignpassport"),
];

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().en)
    }
}

/// A validated identity-document number in its normal form: ASCII, uppercase, no spaces, Hong Kong and Macau
/// check digits in brackets. Only [`validate`] makes one, so holding one means the number passed its checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdNumber(String);

impl IdNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for IdNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why an identity-document number was refused. `Display` is English; [`IdError::message`] has both languages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the identity-document number is empty")]
    Empty,
    #[error("old 15-digit number: use the 18-digit one")]
    OldFifteenDigit,
    #[error("{found:?} is not a valid {kind} number: expected {}", .kind.rule().en)]
    Format { kind: IdKind, found: String },
    #[error("{code} is not a Chinese province code")]
    Region { code: String },
    #[error("birth date {date} is not a real date between 1900 and 2100")]
    BirthDate { date: String },
    #[error("wrong check character: {found} where the number gives {expected}")]
    Check { kind: IdKind, expected: char, found: char },
}

impl IdError {
    /// The stable code, as it appears in reports, exports and tests.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Empty => "id.empty",
            IdError::OldFifteenDigit => "id.old_15_digit",
            IdError::Format { .. } => "id.format",
            IdError::Region { .. } => "id.region",
            IdError::BirthDate { .. } => "id.birth_date",
            IdError::Check { .. } => "id.check",
        }
    }

    /// What the person who fixes the roster should read.
    pub fn message(&self) -> Message {
        let zh = match self {
            IdError::Empty => "证件号码为空。".to_string(),
            IdError::OldFifteenDigit => "这是旧的 15 位身份证号码，请填写 18 位号码。".to_string(),
            IdError::Format { kind, found } => {
                format!("“{found}”不是有效的{}号码，应为{}。", kind.name().zh, kind.rule().zh)
            }
            IdError::Region { code } => format!("身份证号码前两位 {code} 不是有效的省级行政区代码。"),
            IdError::BirthDate { date } => format!("身份证号码中的出生日期 {date} 不是有效日期。"),
            IdError::Check { kind, expected, found } => {
                format!("{}号码校验码错误：应为 {expected}，实为 {found}，请核对号码。", kind.name().zh)
            }
        };
        Message { zh, en: self.to_string() }
    }
}

/// Checks `raw` as a number of the given kind and returns it in normal form.
pub fn validate(kind: IdKind, raw: &str) -> Result<IdNumber, IdError> {
    let s = normalise(raw);
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let format = || IdError::Format { kind, found: s.clone() };
    let b = s.as_bytes();
    match kind {
        IdKind::Mainland => {
            if b.len() == 15 && b.iter().all(u8::is_ascii_digit) {
                return Err(IdError::OldFifteenDigit);
            }
            if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
                return Err(format());
            }
            let province = &s[..2];
            if !is_province(province) {
                return Err(IdError::Region { code: province.to_string() });
            }
            let date = &s[6..14];
            if !is_birth_date(date) {
                return Err(IdError::BirthDate { date: date.to_string() });
            }
            let expected = mainland_check(&b[..17]);
            if char::from(b[17]) != expected {
                return Err(IdError::Check { kind, expected, found: char::from(b[17]) });
            }
            Ok(IdNumber(s))
        }
        IdKind::HongKong => {
            let (letters, digits, check) = split_hong_kong(&s).ok_or_else(format)?;
            let expected = hong_kong_check(letters, digits);
            if check != expected {
                return Err(IdError::Check { kind, expected, found: check });
            }
            Ok(IdNumber(format!("{letters}{digits}({check})")))
        }
        IdKind::Macau => {
            let (digits, check) = split_macau(&s).ok_or_else(format)?;
            Ok(IdNumber(format!("{digits}({check})")))
        }
        IdKind::Taiwan => {
            if !is_taiwan_format(b) {
                return Err(format());
            }
            if !taiwan_check_ok(b) {
                let expected = taiwan_expected_check(b);
                return Err(IdError::Check { kind, expected, found: char::from(b[9]) });
            }
            Ok(IdNumber(s))
        }
        IdKind::Passport => {
            if !(5..=20).contains(&b.len()) || !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
                return Err(format());
            }
            Ok(IdNumber(s))
        }
    }
}

/// Guesses the kind of document from the number's form; None when the form fits none, or when it fits a Macau
/// card and a passport equally (8 digits without brackets starting 1, 5 or 7), where a guess could give the
/// student the wrong initial password.
///
/// All-digit numbers of 15 to 18 characters are taken as mainland numbers so that a mistyped one is refused by
/// [`validate`] rather than accepted as a passport. Hong Kong numbers without brackets and Indian passports share
/// a form (a letter and 7 digits), so those count as Hong Kong only when the check digit holds.
pub fn detect(raw: &str) -> Option<IdKind> {
    let s = normalise(raw);
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let body_digits = b.len() > 1 && b[..b.len() - 1].iter().all(u8::is_ascii_digit);
    let last = b[b.len() - 1];
    if (15..=18).contains(&b.len()) && body_digits && (last.is_ascii_digit() || last == b'X') {
        return Some(IdKind::Mainland);
    }
    if s.contains('(') || s.contains(')') {
        if split_hong_kong(&s).is_some() {
            return Some(IdKind::HongKong);
        }
        if split_macau(&s).is_some() {
            return Some(IdKind::Macau);
        }
        return None;
    }
    if is_taiwan_format(b) {
        return Some(IdKind::Taiwan);
    }
    if let Some((letters, digits, check)) = split_hong_kong(&s)
        && hong_kong_check(letters, digits) == check
    {
        return Some(IdKind::HongKong);
    }
    if split_macau(&s).is_some() {
        return None;
    }
    validate(IdKind::Passport, &s).ok().map(|_| IdKind::Passport)
}

/// The student's initial password, as the notice sets it: the last 6 characters of the number, an X kept
/// uppercase, not counting a check digit in brackets (so `A123456(3)` gives `123456`). A passport number shorter
/// than 6 characters gives the whole number.
pub fn initial_password(id: &IdNumber) -> String {
    let s = id.as_str();
    // Only Hong Kong and Macau numbers end in a bracket in normal form; drop "(c)".
    let body = if s.ends_with(')') { s.get(..s.len().saturating_sub(3)).unwrap_or(s) } else { s };
    let start = body.len().saturating_sub(6);
    body[start..].to_string()
}

/// Trimmed, full-width forms folded to ASCII, letters uppercased, every space (including U+3000 and the
/// invisible ones Excel leaves) removed.
fn normalise(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '\u{FEFF}' | '\u{200B}'))
        .map(|c| fold_width(c).to_ascii_uppercase())
        .collect()
}

/// U+FF01..U+FF5E are the full-width twins of ASCII `!`..`~`, at a fixed distance.
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

fn is_province(code: &str) -> bool {
    matches!(code.parse::<u8>(), Ok(11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82 | 83 | 91))
}

/// `YYYYMMDD`, a real calendar day with the year in 1900–2100.
fn is_birth_date(date: &str) -> bool {
    let (Ok(year), Ok(month), Ok(day)) =
        (date[..4].parse::<u32>(), date[4..6].parse::<u32>(), date[6..].parse::<u32>())
    else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2100).contains(&year) && (1..=days).contains(&day)
}

/// ISO 7064 MOD 11-2 over the first 17 digits (GB 11643-1999).
fn mainland_check(digits: &[u8]) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    char::from(b"10X98765432"[(sum % 11) as usize])
}

/// Letters, 6 digits and the check character of a Hong Kong number, brackets optional but paired.
fn split_hong_kong(s: &str) -> Option<(&str, &str, char)> {
    let b = s.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if !(1..=2).contains(&letters) {
        return None;
    }
    let rest = &s[letters..];
    let rb = rest.as_bytes();
    let check = match rb.len() {
        7 => rb[6],
        9 if rb[6] == b'(' && rb[8] == b')' => rb[7],
        _ => return None,
    };
    if !rb[..6].iter().all(u8::is_ascii_digit) || !(check.is_ascii_digit() || check == b'A') {
        return None;
    }
    Some((&s[..letters], &rest[..6], char::from(check)))
}

fn hong_kong_check(letters: &str, digits: &str) -> char {
    let letter = |c: u8| u32::from(c - b'A') + 10;
    let lb = letters.as_bytes();
    // A one-letter number is read as if a space (worth 36) stood before the letter.
    let (first, second) = if lb.len() == 1 { (36, letter(lb[0])) } else { (letter(lb[0]), letter(lb[1])) };
    let sum =
        first * 9 + second * 8 + digits.bytes().zip((2..=7).rev()).map(|(d, w)| u32::from(d - b'0') * w).sum::<u32>();
    match 11 - sum % 11 {
        10 => 'A',
        11 => '0',
        n => char::from_digit(n, 10).unwrap_or('?'),
    }
}

/// 7 digits starting 1, 5 or 7 and the check digit, brackets optional but paired.
fn split_macau(s: &str) -> Option<(&str, char)> {
    let b = s.as_bytes();
    let check = match b.len() {
        8 => b[7],
        10 if b[7] == b'(' && b[9] == b')' => b[8],
        _ => return None,
    };
    let ok = matches!(b[0], b'1' | b'5' | b'7') && b[..7].iter().all(u8::is_ascii_digit) && check.is_ascii_digit();
    ok.then(|| (&s[..7], char::from(check)))
}

fn is_taiwan_format(b: &[u8]) -> bool {
    b.len() == 10 && b[0].is_ascii_uppercase() && matches!(b[1], b'1' | b'2') && b[2..].iter().all(u8::is_ascii_digit)
}

/// The two-digit codes of the Taiwan ID's first letter; not alphabetical because letters were added over time.
fn taiwan_letter_code(c: u8) -> u32 {
    const CODES: [u32; 26] =
        [10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24, 25, 26, 27, 28, 29, 32, 30, 31, 33];
    CODES[usize::from(c - b'A')]
}

/// Weighted sum of the letter code and the first 8 digits, without the check digit.
fn taiwan_partial_sum(b: &[u8]) -> u32 {
    let code = taiwan_letter_code(b[0]);
    let head = (code / 10) + (code % 10) * 9;
    head + b[1..9].iter().zip((1..=8).rev()).map(|(d, w)| u32::from(d - b'0') * w).sum::<u32>()
}

fn taiwan_check_ok(b: &[u8]) -> bool {
    (taiwan_partial_sum(b) + u32::from(b[9] - b'0')).is_multiple_of(10)
}

fn taiwan_expected_check(b: &[u8]) -> char {
    char::from_digit((10 - taiwan_partial_sum(b) % 10) % 10, 10).unwrap_or('?')
}

// ---------------------------------------------------------------------------------------------------------------
// Text decoding
// ---------------------------------------------------------------------------------------------------------------

/// The encoding a roster file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    /// GBK or GB18030 (GB18030 is a superset; Excel on Chinese Windows saves CSV as GBK).
    Gb18030,
}

/// Why a roster file as a whole was refused. `Display` is English; [`RosterError::message`] has both languages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("the roster is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the roster has {rows} rows, more than the limit of {limit}")]
    TooManyRows { rows: usize, limit: usize },
    #[error("the roster is not valid {encoding} text: invalid bytes at offset {offset}")]
    Undecodable { encoding: &'static str, offset: usize },
    #[error("the roster has a NUL byte at offset {offset}: UTF-16 saved without a byte-order mark?")]
    NulByte { offset: usize },
    #[error("the roster is empty: a header row is required")]
    Empty,
    #[error("the header row lacks required columns: {}", .columns.join(", "))]
    MissingColumns { columns: Vec<&'static str> },
    #[error("column {column:?} appears twice in the header row")]
    DuplicateColumn { column: String },
    #[error("unreadable CSV at line {line}: {detail}")]
    Csv { line: usize, detail: String },
}

impl RosterError {
    /// The stable code, as it appears in reports, exports and tests.
    pub fn code(&self) -> &'static str {
        match self {
            RosterError::TooLarge { .. } => "roster.too_large",
            RosterError::TooManyRows { .. } => "roster.too_many_rows",
            RosterError::Undecodable { .. } => "roster.undecodable",
            RosterError::NulByte { .. } => "roster.nul_byte",
            RosterError::Empty => "roster.empty",
            RosterError::MissingColumns { .. } => "roster.missing_columns",
            RosterError::DuplicateColumn { .. } => "roster.duplicate_column",
            RosterError::Csv { .. } => "roster.csv",
        }
    }

    /// What the person who sent the file should read.
    pub fn message(&self) -> Message {
        let zh = match self {
            RosterError::TooLarge { size, limit } => format!("名单文件 {size} 字节，超过上限 {limit} 字节。"),
            RosterError::TooManyRows { rows, limit } => format!("名单有 {rows} 行，超过上限 {limit} 行，请分批上传。"),
            RosterError::Undecodable { offset, .. } => format!(
                "无法识别文件编码（第 {offset} 字节处无效），请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后重新上传。"
            ),
            RosterError::NulByte { offset } => format!(
                "文件第 {offset} 字节处含有空字节，可能是不带 BOM 的 UTF-16 文件，请另存为“CSV UTF-8（逗号分隔）”。"
            ),
            RosterError::Empty => "名单文件为空，第一行须为表头。".to_string(),
            RosterError::MissingColumns { columns } => {
                let zh: Vec<&str> = columns.iter().map(|c| Field::from_key(c).map_or(*c, |f| f.zh())).collect();
                format!("表头缺少必需的列：{}。", zh.join("、"))
            }
            RosterError::DuplicateColumn { column } => format!("表头中“{column}”列重复出现。"),
            RosterError::Csv { line, .. } => format!("第 {line} 行无法按 CSV 读取。"),
        };
        Message { zh, en: self.to_string() }
    }
}

/// Decodes roster bytes to text: a byte-order mark decides first; then valid UTF-8 is UTF-8; then GB18030 (and so
/// GBK) if it decodes without errors. UTF-8 goes first because GBK text is almost never valid UTF-8 all the way
/// through, while UTF-8 text can pass as GB18030. A UTF-8 file with a corrupt byte can therefore come back as
/// GB18030 mojibake; the returned [`Encoding`] lets a caller show which reading was taken.
pub fn decode_text(bytes: &[u8]) -> Result<(String, Encoding), RosterError> {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let kind = if enc == encoding_rs::UTF_8 {
            Encoding::Utf8Bom
        } else if enc == encoding_rs::UTF_16LE {
            Encoding::Utf16Le
        } else {
            Encoding::Utf16Be
        };
        let text = decode_strict(enc, &bytes[bom..])
            .map_err(|at| RosterError::Undecodable { encoding: enc.name(), offset: bom + at })?;
        return Ok((text, kind));
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(RosterError::NulByte { offset });
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_string(), Encoding::Utf8));
    }
    decode_strict(encoding_rs::GB18030, bytes)
        .map(|text| (text, Encoding::Gb18030))
        .map_err(|offset| RosterError::Undecodable { encoding: "UTF-8 or GB18030", offset })
}

/// Decodes without replacement characters; the error is the byte offset of the first malformed sequence.
fn decode_strict(enc: &'static encoding_rs::Encoding, body: &[u8]) -> Result<String, usize> {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut out = String::new();
    let mut read = 0;
    loop {
        let need = decoder.max_utf8_buffer_length_without_replacement(body.len() - read).unwrap_or(body.len());
        out.reserve(need);
        let (result, n) = decoder.decode_to_string_without_replacement(&body[read..], &mut out, true);
        read += n;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(bad, after) => return Err(read - usize::from(after) - usize::from(bad)),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rosters
// ---------------------------------------------------------------------------------------------------------------

/// A parsed roster: the rows that passed, the problems of those that did not, and how the file was encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Roster {
    pub rows: Vec<RosterRow>,
    pub errors: Vec<RowError>,
    pub encoding: Encoding,
}

/// One student, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterRow {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    pub student_no: String,
    pub name: String,
    pub id_kind: IdKind,
    pub id_number: IdNumber,
    /// None when the column is absent or the cell blank.
    pub college: Option<String>,
    /// As written (本科, 硕士, 博士 …); None when the column is absent or the cell blank.
    pub degree_level: Option<String>,
}

/// One problem with one row; a row with several problems has several of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    /// Stable code: `row.*` for roster problems, `id.*` for the number's own.
    pub code: &'static str,
    pub message: Message,
    /// The row's text as it stands in the file.
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    StudentNo,
    Name,
    IdType,
    IdNumber,
    College,
    Degree,
}

impl Field {
    const REQUIRED: [Field; 3] = [Field::StudentNo, Field::Name, Field::IdNumber];

    fn from_header(cell: &str) -> Option<Field> {
        Some(match label_key(cell).as_str() {
            "学号" | "studentno" | "studentnumber" | "studentid" => Field::StudentNo,
            "姓名" | "name" | "studentname" | "fullname" => Field::Name,
            "证件类型" | "证件种类" | "idtype" | "documenttype" => Field::IdType,
            "证件号码" | "证件号" | "身份证号" | "身份证号码" | "idnumber" | "idno" | "documentnumber" => {
                Field::IdNumber
            }
            "学院" | "院系" | "college" | "faculty" => Field::College,
            "学历层次" | "培养层次" | "学位层次" | "degree" | "degreelevel" => Field::Degree,
            _ => return None,
        })
    }

    fn key(self) -> &'static str {
        match self {
            Field::StudentNo => "student_no",
            Field::Name => "name",
            Field::IdType => "id_type",
            Field::IdNumber => "id_number",
            Field::College => "college",
            Field::Degree => "degree_level",
        }
    }

    fn from_key(key: &str) -> Option<Field> {
        [Field::StudentNo, Field::Name, Field::IdType, Field::IdNumber, Field::College, Field::Degree]
            .into_iter()
            .find(|f| f.key() == key)
    }

    fn zh(self) -> &'static str {
        match self {
            Field::StudentNo => "学号",
            Field::Name => "姓名",
            Field::IdType => "证件类型",
            Field::IdNumber => "证件号码",
            Field::College => "学院",
            Field::Degree => "学历层次",
        }
    }
}

/// Lowercased, full-width folded, without spaces, underscores, hyphens or dots: "Student No." and "student_no"
/// are one name.
fn label_key(s: &str) -> String {
    s.chars()
        .map(fold_width)
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '.' | '\u{FEFF}' | '\u{200B}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Reads a roster CSV: the header row first, column names in Chinese or English in any order, extra columns
/// ignored. Rows with problems go to `errors` and the rest to `rows`; a file that cannot be read at all, or whose
/// header lacks the student number, name or id number, is an error.
///
/// Limits are checked before any parsing: the byte length before decoding, the count of non-blank lines before
/// reading CSV (a quoted cell with line breaks counts once per line).
pub fn parse(bytes: &[u8]) -> Result<Roster, RosterError> {
    if bytes.len() > MAX_BYTES {
        return Err(RosterError::TooLarge { size: bytes.len(), limit: MAX_BYTES });
    }
    let (text, encoding) = decode_text(bytes)?;
    let lines = text.split(['\n', '\r']).filter(|l| !l.trim().is_empty()).count();
    let data_lines = lines.saturating_sub(1);
    if data_lines > MAX_ROWS {
        return Err(RosterError::TooManyRows { rows: data_lines, limit: MAX_ROWS });
    }

    // Excel's "Unicode text" export is tab-separated; a header with tabs and no commas is read that way.
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let delimiter = if first_line.contains('\t') && !first_line.contains(',') { b'\t' } else { b',' };
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());

    let mut record = csv::StringRecord::new();
    let mut columns: Option<HashMap<Field, usize>> = None;
    let mut roster = Roster { rows: Vec::new(), errors: Vec::new(), encoding };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut lines = LineCounter::default();
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(start, |p| p.byte() as usize);
                return Err(RosterError::Csv { line: lines.line_at(&text, at), detail: e.to_string() });
            }
        }
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        // The csv crate's own line numbers drift with CRLF and blank lines; count from byte offsets instead,
        // starting at the record's first character rather than at the blank lines the reader skipped before it.
        let begin = record.position().map_or(start, |p| p.byte() as usize);
        let end = reader.position().byte() as usize;
        let raw = text.get(begin..end).unwrap_or("");
        let skipped = raw.len() - raw.trim_start_matches(['\r', '\n']).len();
        let line = lines.line_at(&text, begin + skipped);
        let Some(columns) = &columns else {
            columns = Some(header_columns(&record)?);
            continue;
        };
        let raw = raw[skipped..].trim_end_matches(['\r', '\n']).to_string();
        check_row(&record, columns, line, raw, &mut seen, &mut roster);
    }
    if columns.is_none() {
        return Err(RosterError::Empty);
    }
    Ok(roster)
}

/// 1-based line numbers of byte offsets, asked for in increasing order so the text is scanned once.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    /// A line ends at LF, at CRLF, or at a lone CR (old Mac files), as the csv reader ends records.
    fn line_at(&mut self, text: &str, offset: usize) -> usize {
        let b = text.as_bytes();
        let offset = offset.min(b.len());
        if offset > self.offset {
            let breaks = (self.offset..offset)
                .filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')))
                .count();
            self.line += breaks;
            self.offset = offset;
        }
        self.line + 1
    }
}

fn header_columns(record: &csv::StringRecord) -> Result<HashMap<Field, usize>, RosterError> {
    let mut columns = HashMap::new();
    for (i, cell) in record.iter().enumerate() {
        if let Some(field) = Field::from_header(cell)
            && columns.insert(field, i).is_some()
        {
            // Two columns for one field (say 证件号码 and 身份证号) leave no way to tell which is meant.
            return Err(RosterError::DuplicateColumn { column: cell.trim().to_string() });
        }
    }
    let missing: Vec<&'static str> =
        Field::REQUIRED.into_iter().filter(|f| !columns.contains_key(f)).map(Field::key).collect();
    if !missing.is_empty() {
        return Err(RosterError::MissingColumns { columns: missing });
    }
    Ok(columns)
}

fn check_row(
    record: &csv::StringRecord,
    columns: &HashMap<Field, usize>,
    line: usize,
    raw: String,
    seen: &mut HashMap<String, usize>,
    roster: &mut Roster,
) {
    let cell = |f: Field| columns.get(&f).and_then(|&i| record.get(i)).map(str::trim).unwrap_or("");
    let optional = |f: Field| Some(cell(f)).filter(|s| !s.is_empty()).map(str::to_string);
    let mut problems: Vec<(&'static str, Message)> = Vec::new();

    // Full-width digits are folded so that "２０２１００１" and "2021001" count as one student.
    let student_no: String = cell(Field::StudentNo).chars().map(fold_width).collect();
    if student_no.is_empty() {
        problems.push(("row.student_no_empty", Message::new("学号为空。", "the student number is empty")));
    } else if let Some(&first) = seen.get(&student_no) {
        problems.push((
            "row.student_no_duplicate",
            Message::new(
                format!("学号 {student_no} 与第 {first} 行重复。"),
                format!("student number {student_no} repeats the one on line {first}"),
            ),
        ));
    } else {
        // Every first occurrence is remembered, even on a bad row, so a later repeat is still caught.
        seen.insert(student_no.clone(), line);
    }

    let name = cell(Field::Name);
    if name.is_empty() {
        problems.push(("row.name_empty", Message::new("姓名为空。", "the name is empty")));
    }

    let id_raw = cell(Field::IdNumber);
    let type_label = cell(Field::IdType);
    let kind = if type_label.is_empty() {
        detect(id_raw).ok_or_else(|| {
            if normalise(id_raw).is_empty() {
                (IdError::Empty.code(), IdError::Empty.message())
            } else {
                (
                    "row.id_type_unknown",
                    Message::new(
                        format!("无法从号码“{id_raw}”判断证件类型，请填写证件类型。"),
                        format!("cannot tell the document type from {id_raw:?}: fill in the id type"),
                    ),
                )
            }
        })
    } else {
        IdKind::from_label(type_label).ok_or_else(|| {
            (
                "row.id_type_invalid",
                Message::new(
                    format!("不支持的证件类型“{type_label}”，应为居民身份证、香港身份证、澳门身份证、台湾身份证或护照。"),
                    format!(
                        "unsupported id type {type_label:?}: use mainland, Hong Kong, Macau or Taiwan identity card, or passport"
                    ),
                ),
            )
        })
    };
    let id = match kind {
        Ok(kind) => match validate(kind, id_raw) {
            Ok(id) => Some((kind, id)),
            Err(e) => {
                problems.push((e.code(), e.message()));
                None
            }
        },
        Err(problem) => {
            problems.push(problem);
            None
        }
    };

    // Two students with one id number would share one registered file (`<id>.jpg`): the second is a bad row.
    if let Some((_, id_number)) = &id {
        let key = format!("id:{}", id_number.as_str());
        if let Some(&first) = seen.get(&key) {
            problems.push((
                "row.id_number_duplicate",
                Message::new(
                    format!("证件号码与第 {first} 行重复。"),
                    format!("the id number repeats the one on line {first}"),
                ),
            ));
        } else {
            seen.insert(key, line);
        }
    }

    match id {
        Some((id_kind, id_number)) if problems.is_empty() => roster.rows.push(RosterRow {
            line,
            student_no,
            name: name.to_string(),
            id_kind,
            id_number,
            college: optional(Field::College),
            degree_level: optional(Field::Degree),
        }),
        _ => roster.errors.extend(problems.into_iter().map(|(code, message)| RowError {
            line,
            code,
            message,
            raw: raw.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_folds_to_ascii() {
        assert_eq!(normalise(" １１０１０５\u{3000}ｘ（３）"), "110105X(3)");
        assert_eq!(label_key("Student_No."), "studentno");
    }

    #[test]
    fn check_functions_on_published_samples() {
        assert_eq!(mainland_check(b"11010519491231002"), 'X');
        assert_eq!(hong_kong_check("A", "123456"), '3');
        assert!(taiwan_check_ok(b"A123456789"));
        assert_eq!(taiwan_expected_check(b"A123456780"), '9');
    }
}
