//! Identity-document numbers and roster files. Check digits are computed here from the published algorithms,
//! independently of the library, so a wrong weight or table on either side makes a test fail.

use gradphoto_core::roster::{
    Encoding, IdError, IdKind, MAX_BYTES, MAX_ROWS, RosterError, decode_text, detect, initial_password, parse, validate,
};

// ---------------------------------------------------------------------------------------------------------------
// Reference check digits, written from the standards' text
// ---------------------------------------------------------------------------------------------------------------

/// GB 11643-1999: Σ aᵢ·Wᵢ with Wᵢ = 2^(17−i) mod 11 (i = 1…17), then "10X98765432"[Σ mod 11].
fn mainland_with_check(first17: &str) -> String {
    assert_eq!(first17.len(), 17);
    let sum: u32 = first17.bytes().enumerate().map(|(i, d)| u32::from(d - b'0') * (1u32 << (17 - i)) % 11).sum();
    let check = "10X98765432".as_bytes()[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

/// Hong Kong: 8 positions (space = 36, A…Z = 10…35, digits as themselves) weighted 9…2; check = 11 − Σ mod 11.
fn hong_kong_with_check(letters: &str, digits: &str) -> String {
    let padded = format!("{letters:>2}{digits}");
    let value = |c: char| match c {
        ' ' => 36,
        'A'..='Z' => c as u32 - 'A' as u32 + 10,
        _ => c.to_digit(10).unwrap(),
    };
    let sum: u32 = padded.chars().zip([9, 8, 7, 6, 5, 4, 3, 2]).map(|(c, w)| value(c) * w).sum();
    let check = match 11 - sum % 11 {
        10 => 'A',
        11 => '0',
        n => char::from_digit(n, 10).unwrap(),
    };
    format!("{letters}{digits}({check})")
}

/// Taiwan: the letter's two-digit code and the 9 digits, weights 1,9,8,7,6,5,4,3,2,1,1; Σ mod 10 = 0.
fn taiwan_sum(id: &str) -> u32 {
    let code = match id.as_bytes()[0] {
        b'I' => 34,
        b'O' => 35,
        b'W' => 32,
        b'X' => 30,
        b'Y' => 31,
        b'Z' => 33,
        c @ b'A'..=b'H' => 10 + u32::from(c - b'A'),
        c @ b'J'..=b'N' => 18 + u32::from(c - b'J'),
        c @ b'P'..=b'V' => 23 + u32::from(c - b'P'),
        _ => unreachable!(),
    };
    let digits: Vec<u32> =
        [code / 10, code % 10].into_iter().chain(id[1..].chars().map(|c| c.to_digit(10).unwrap())).collect();
    digits.iter().zip([1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1]).map(|(d, w)| d * w).sum()
}

fn taiwan_with_check(first9: &str) -> String {
    (0..10).map(|d| format!("{first9}{d}")).find(|id| taiwan_sum(id).is_multiple_of(10)).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Mainland
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn mainland_published_sample_with_x() {
    // The sample in GB 11643-1999 and countless guides: its check character is X.
    let id = validate(IdKind::Mainland, "11010519491231002X").unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
    assert_eq!(mainland_with_check("11010519491231002"), "11010519491231002X");
    // Lowercase x is the same number.
    assert_eq!(validate(IdKind::Mainland, "11010519491231002x").unwrap().as_str(), "11010519491231002X");
}

#[test]
fn mainland_standard_sample_from_1880_is_outside_the_year_range() {
    // GB 11643-1999's other sample has a correct check digit but a birth year before 1900.
    assert_eq!(mainland_with_check("44052418800101001"), "440524188001010014");
    assert_eq!(validate(IdKind::Mainland, "440524188001010014"), Err(IdError::BirthDate { date: "18800101".into() }));
}

#[test]
fn mainland_computed_numbers_for_every_province_prefix() {
    let provinces = [
        11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62,
        63, 64, 65, 71, 81, 82, 83, 91,
    ];
    for (i, p) in provinces.iter().enumerate() {
        let id = mainland_with_check(&format!("{p}01021980{:02}{:02}{:03}", 1 + i % 12, 1 + i % 28, 100 + i));
        let got = validate(IdKind::Mainland, &id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(got.as_str(), id);
        assert_eq!(detect(&id), Some(IdKind::Mainland));
    }
    let mut saw_x = false;
    for seq in 0..40 {
        let id = mainland_with_check(&format!("3201021995061{seq:04}"));
        saw_x |= id.ends_with('X');
        assert!(validate(IdKind::Mainland, &id).is_ok(), "{id}");
    }
    assert!(saw_x, "some of 40 consecutive numbers must end in X");
}

#[test]
fn mainland_wrong_check_character() {
    let good = mainland_with_check("44030419900307123");
    let check = good.chars().last().unwrap();
    for wrong in "0123456789X".chars().filter(|&c| c != check) {
        let bad = format!("{}{wrong}", &good[..17]);
        assert_eq!(
            validate(IdKind::Mainland, &bad),
            Err(IdError::Check { kind: IdKind::Mainland, expected: check, found: wrong }),
            "{bad}"
        );
    }
    // A single swapped digit changes the check.
    assert!(matches!(validate(IdKind::Mainland, "11010519491231003X"), Err(IdError::Check { .. })));
}

#[test]
fn mainland_bad_dates() {
    for (date, ok) in [
        ("20000229", true),  // divisible by 400: leap
        ("19960229", true),  // leap
        ("19000229", false), // divisible by 100: not leap
        ("21000229", false),
        ("19990229", false),
        ("20010230", false), // Feb 30
        ("20010431", false),
        ("20011301", false),
        ("20010001", false),
        ("20010100", false),
        ("18991231", false),
        ("21010101", false),
        ("19000101", true),
        ("21001231", true),
    ] {
        let id = mainland_with_check(&format!("110105{date}123"));
        let got = validate(IdKind::Mainland, &id);
        if ok {
            assert!(got.is_ok(), "{id}: {got:?}");
        } else {
            assert_eq!(got, Err(IdError::BirthDate { date: date.into() }), "{id}");
        }
    }
}

#[test]
fn mainland_bad_region() {
    for prefix in ["00", "10", "16", "20", "24", "38", "47", "55", "60", "66", "72", "80", "84", "90", "92", "99"] {
        let id = mainland_with_check(&format!("{prefix}0105199001011234")[..17]);
        assert_eq!(validate(IdKind::Mainland, &id), Err(IdError::Region { code: prefix.into() }), "{id}");
    }
}

#[test]
fn mainland_old_15_digit_number_is_refused_clearly() {
    let err = validate(IdKind::Mainland, "110105491231002").unwrap_err();
    assert_eq!(err, IdError::OldFifteenDigit);
    assert!(err.to_string().contains("use the 18-digit one"));
    assert!(err.message().zh.contains("18 位"));
    assert_eq!(detect("110105491231002"), Some(IdKind::Mainland));
}

#[test]
fn mainland_format_errors() {
    for bad in
        ["1101051949123100", "11010519491231002XX", "1101051949123100XX", "X10105194912310021", "11O10519491231002X"]
    {
        assert!(
            matches!(validate(IdKind::Mainland, bad), Err(IdError::Format { kind: IdKind::Mainland, .. })),
            "{bad}"
        );
    }
    assert_eq!(validate(IdKind::Mainland, "   "), Err(IdError::Empty));
}

#[test]
fn full_width_and_spaced_input_is_normalised() {
    let id = validate(IdKind::Mainland, " １１０１０５ １９４９１２３１　００２ｘ\u{FEFF}").unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
    let hk = validate(IdKind::HongKong, "Ａ１２３４５６（３）").unwrap();
    assert_eq!(hk.as_str(), "A123456(3)");
    let tw = validate(IdKind::Taiwan, "ａ１２３４５６７８９").unwrap();
    assert_eq!(tw.as_str(), "A123456789");
    assert_eq!(detect("１１０１０５１９４９１２３１００２Ｘ"), Some(IdKind::Mainland));
}

// ---------------------------------------------------------------------------------------------------------------
// Hong Kong, Macau, Taiwan, passports
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn hong_kong_both_bracket_styles() {
    assert_eq!(hong_kong_with_check("A", "123456"), "A123456(3)");
    for raw in ["A123456(3)", "A1234563", "a123456 (3)", " A 123456 3 "] {
        assert_eq!(validate(IdKind::HongKong, raw).unwrap().as_str(), "A123456(3)", "{raw}");
    }
    // A check value of 10 is written A.
    assert_eq!(hong_kong_with_check("G", "123456"), "G123456(A)");
    assert_eq!(validate(IdKind::HongKong, "G123456A").unwrap().as_str(), "G123456(A)");
    // Two-letter numbers and a spread of computed ones, including checks of 0 and A.
    let mut checks = std::collections::BTreeSet::new();
    for (i, letters) in ["A", "C", "K", "Z", "XA", "WX", "RZ"].iter().enumerate() {
        for n in 0..30u32 {
            let id =
                hong_kong_with_check(letters, &format!("{:06}", (123_457 * (i as u32 + 1) + n * 7919) % 1_000_000));
            checks.insert(id.chars().nth_back(1).unwrap());
            assert_eq!(validate(IdKind::HongKong, &id).unwrap().as_str(), id);
            assert_eq!(detect(&id), Some(IdKind::HongKong), "{id}");
            assert_eq!(detect(&id.replace(['(', ')'], "")), Some(IdKind::HongKong), "{id}");
        }
    }
    assert!(checks.contains(&'0') && checks.contains(&'A'), "{checks:?}");
}

#[test]
fn hong_kong_wrong_check_and_bad_forms() {
    assert_eq!(
        validate(IdKind::HongKong, "A123456(4)"),
        Err(IdError::Check { kind: IdKind::HongKong, expected: '3', found: '4' })
    );
    assert!(matches!(validate(IdKind::HongKong, "A1234564"), Err(IdError::Check { expected: '3', .. })));
    for bad in ["A123456(3", "A1234563)", "A12345(3)", "ABC123456(3)", "1234567(3)", "A123456(B)", "A123456()"] {
        assert!(matches!(validate(IdKind::HongKong, bad), Err(IdError::Format { .. })), "{bad}");
    }
}

#[test]
fn macau_format() {
    for (raw, norm) in [("1234567(8)", "1234567(8)"), ("12345678", "1234567(8)"), ("5215299 (8)", "5215299(8)")] {
        assert_eq!(validate(IdKind::Macau, raw).unwrap().as_str(), norm);
    }
    assert_eq!(validate(IdKind::Macau, "7000000（0）").unwrap().as_str(), "7000000(0)");
    for bad in ["2234567(8)", "1234567(X)", "123456(7)", "1234567(89)", "A234567(8)"] {
        assert!(matches!(validate(IdKind::Macau, bad), Err(IdError::Format { kind: IdKind::Macau, .. })), "{bad}");
    }
    assert_eq!(detect("1234567(8)"), Some(IdKind::Macau));
}

#[test]
fn taiwan_valid_and_invalid() {
    // The number in every explanation of the algorithm.
    assert_eq!(taiwan_sum("A123456789") % 10, 0);
    assert_eq!(validate(IdKind::Taiwan, "A123456789").unwrap().as_str(), "A123456789");
    for (i, letter) in ('A'..='Z').enumerate() {
        let id = taiwan_with_check(&format!("{letter}{}{:07}", 1 + i % 2, 1_234_567 + i * 31));
        assert!(validate(IdKind::Taiwan, &id).is_ok(), "{id}");
        assert_eq!(detect(&id), Some(IdKind::Taiwan));
    }
    assert_eq!(
        validate(IdKind::Taiwan, "A123456780"),
        Err(IdError::Check { kind: IdKind::Taiwan, expected: '9', found: '0' })
    );
    // I, O, W… are out of alphabetical order: the wrong table gives a different digit.
    let id_i = taiwan_with_check("I12345678");
    assert!(validate(IdKind::Taiwan, &id_i).is_ok());
    for bad in ["A323456789", "A12345678", "1123456789", "AB23456789"] {
        assert!(matches!(validate(IdKind::Taiwan, bad), Err(IdError::Format { kind: IdKind::Taiwan, .. })), "{bad}");
    }
}

#[test]
fn passport_format() {
    assert_eq!(validate(IdKind::Passport, "e12345678").unwrap().as_str(), "E12345678");
    assert!(validate(IdKind::Passport, "AB123").is_ok());
    assert!(validate(IdKind::Passport, "A1234567890123456789").is_ok());
    for bad in ["AB12", "A12345678901234567890", "AB-12345", "AB12345/", "张三12345"] {
        assert!(
            matches!(validate(IdKind::Passport, bad), Err(IdError::Format { kind: IdKind::Passport, .. })),
            "{bad}"
        );
    }
    assert_eq!(detect("E12345678"), Some(IdKind::Passport));
    // An Indian passport (a letter and 7 digits) whose last digit is not a Hong Kong check stays a passport.
    assert_eq!(detect("A1234564"), Some(IdKind::Passport));
}

#[test]
fn detect_declines_ambiguous_and_unknown_forms() {
    // 8 digits starting 1, 5 or 7: a Macau card without brackets or an all-digit passport.
    assert_eq!(detect("12345678"), None);
    assert_eq!(detect(""), None);
    assert_eq!(detect("A-123"), None);
    assert_eq!(detect("A123456(B)"), None);
    // A 17-digit typo of a mainland number is still taken as mainland, so validation refuses it.
    assert_eq!(detect("11010519491231002"), Some(IdKind::Mainland));
}

#[test]
fn initial_passwords_for_every_kind() {
    fn pw(kind: IdKind, raw: &str) -> String {
        initial_password(&validate(kind, raw).unwrap())
    }
    assert_eq!(pw(IdKind::Mainland, "11010519491231002x"), "31002X");
    let computed = mainland_with_check("44030419900307123");
    assert_eq!(pw(IdKind::Mainland, &computed), computed[12..]);
    assert_eq!(pw(IdKind::HongKong, "A123456(3)"), "123456");
    assert_eq!(pw(IdKind::HongKong, &hong_kong_with_check("XA", "987654")), "987654");
    assert_eq!(pw(IdKind::HongKong, "G123456(A)"), "123456");
    assert_eq!(pw(IdKind::Macau, "1234567(8)"), "234567");
    assert_eq!(pw(IdKind::Macau, "12345678"), "234567");
    assert_eq!(pw(IdKind::Taiwan, "A123456789"), "456789");
    assert_eq!(pw(IdKind::Passport, "E12345678"), "345678");
    assert_eq!(pw(IdKind::Passport, "AB123"), "AB123");
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------------

const ROSTER: &str = "学号,姓名,证件类型,证件号码,学院,学历层次\n\
                      2021001,张三,居民身份证,11010519491231002X,计算机学院,本科\n\
                      2021002,李四,香港身份证,A123456(3),法学院,硕士\n\
                      2021003,王五,,A123456789,医学院,博士\n";

fn utf16(text: &str, little: bool) -> Vec<u8> {
    let mut out = if little { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
    for unit in text.encode_utf16() {
        out.extend(if little { unit.to_le_bytes() } else { unit.to_be_bytes() });
    }
    out
}

#[test]
fn decode_every_supported_encoding() {
    let (text, enc) = decode_text(ROSTER.as_bytes()).unwrap();
    assert_eq!((text.as_str(), enc), (ROSTER, Encoding::Utf8));

    let bom = [b"\xEF\xBB\xBF".as_slice(), ROSTER.as_bytes()].concat();
    assert_eq!(decode_text(&bom).unwrap(), (ROSTER.to_string(), Encoding::Utf8Bom));

    let (gbk, _, unmappable) = encoding_rs::GBK.encode(ROSTER);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&gbk).is_err(), "the GBK bytes must not pass as UTF-8");
    assert_eq!(decode_text(&gbk).unwrap(), (ROSTER.to_string(), Encoding::Gb18030));

    assert_eq!(decode_text(&utf16(ROSTER, true)).unwrap(), (ROSTER.to_string(), Encoding::Utf16Le));
    assert_eq!(decode_text(&utf16(ROSTER, false)).unwrap(), (ROSTER.to_string(), Encoding::Utf16Be));
}

#[test]
fn undecodable_bytes_name_their_offset() {
    // 0xFF starts no sequence in UTF-8 or GB18030.
    let err = decode_text(b"abc,def\n\xFF\xFFxyz").unwrap_err();
    assert_eq!(err, RosterError::Undecodable { encoding: "UTF-8 or GB18030", offset: 8 });
    assert!(err.to_string().contains("offset 8"));
    assert!(err.message().zh.contains("第 8 字节"));
    // Behind a UTF-8 BOM the file is held to UTF-8, and the offset counts the BOM.
    let err = decode_text(b"\xEF\xBB\xBFab\xC3(").unwrap_err();
    assert!(matches!(err, RosterError::Undecodable { offset: 5, .. }), "{err:?}");
    // An unpaired surrogate in UTF-16.
    let mut bytes = utf16("ab", true);
    bytes.extend([0x00, 0xD8, 0x41, 0x00]);
    assert!(matches!(decode_text(&bytes).unwrap_err(), RosterError::Undecodable { offset: 6, .. }));
    // UTF-16 without a BOM is NUL-laden: refused rather than read as garbage.
    let mut no_bom = utf16("a,b", true);
    no_bom.drain(..2);
    assert_eq!(decode_text(&no_bom), Err(RosterError::NulByte { offset: 1 }));
}

// ---------------------------------------------------------------------------------------------------------------
// Rosters
// ---------------------------------------------------------------------------------------------------------------

fn check_basic_roster(bytes: &[u8], encoding: Encoding) {
    let roster = parse(bytes).unwrap();
    assert_eq!(roster.encoding, encoding);
    assert!(roster.errors.is_empty(), "{:?}", roster.errors);
    let got: Vec<_> = roster
        .rows
        .iter()
        .map(|r| (r.line, r.student_no.as_str(), r.name.as_str(), r.id_kind, r.id_number.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, "2021001", "张三", IdKind::Mainland, "11010519491231002X"),
            (3, "2021002", "李四", IdKind::HongKong, "A123456(3)"),
            (4, "2021003", "王五", IdKind::Taiwan, "A123456789"),
        ]
    );
    assert_eq!(roster.rows[0].college.as_deref(), Some("计算机学院"));
    assert_eq!(roster.rows[2].degree_level.as_deref(), Some("博士"));
}

#[test]
fn roster_in_each_encoding() {
    check_basic_roster(ROSTER.as_bytes(), Encoding::Utf8);
    check_basic_roster(&[b"\xEF\xBB\xBF".as_slice(), ROSTER.as_bytes()].concat(), Encoding::Utf8Bom);
    check_basic_roster(&encoding_rs::GBK.encode(ROSTER).0, Encoding::Gb18030);
    check_basic_roster(&utf16(ROSTER, true), Encoding::Utf16Le);
    // Excel's "Unicode text" export: UTF-16LE, tab-separated, CRLF.
    check_basic_roster(&utf16(&ROSTER.replace(',', "\t").replace('\n', "\r\n"), true), Encoding::Utf16Le);
}

#[test]
fn roster_quoted_fields_and_crlf() {
    let csv = "学号,姓名,证件号码,学院\r\n\
               \"2021001\",\"Smith, John\",E12345678,\"计算机科学与技术学院, 软件学院\"\r\n\
               2021002,\"O\"\"Brien\",11010519491231002X,\"医学院\"\r\n";
    let roster = parse(csv.as_bytes()).unwrap();
    assert!(roster.errors.is_empty(), "{:?}", roster.errors);
    assert_eq!(roster.rows.len(), 2);
    assert_eq!(roster.rows[0].name, "Smith, John");
    assert_eq!(roster.rows[0].id_kind, IdKind::Passport);
    assert_eq!(roster.rows[0].college.as_deref(), Some("计算机科学与技术学院, 软件学院"));
    assert_eq!(roster.rows[0].degree_level, None);
    assert_eq!(roster.rows[1].name, "O\"Brien");
    assert_eq!((roster.rows[0].line, roster.rows[1].line), (2, 3));
}

#[test]
fn roster_english_headers_in_any_order_with_extra_columns() {
    let csv = "Degree Level,ID_Number,remarks,Name,College,Student No.,ID Type,phone\n\
               Master,A123456(3),transfer,Chan Tai Man,Law,S001,hong kong,12345\n\
               PhD,E12345678,,Jane Doe,,S002,Passport,\n\
               Bachelor,1234567(8),,Ho Ka Yan,Arts,S003,,\n";
    let roster = parse(csv.as_bytes()).unwrap();
    assert!(roster.errors.is_empty(), "{:?}", roster.errors);
    let r = &roster.rows;
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0].student_no.as_str(), r[0].name.as_str(), r[0].id_kind),
        ("S001", "Chan Tai Man", IdKind::HongKong)
    );
    assert_eq!((r[0].college.as_deref(), r[0].degree_level.as_deref()), (Some("Law"), Some("Master")));
    assert_eq!((r[1].id_kind, r[1].college.as_deref()), (IdKind::Passport, None));
    assert_eq!((r[2].id_kind, r[2].id_number.as_str()), (IdKind::Macau, "1234567(8)"));

    // The same columns under the other Chinese names, shuffled differently.
    let csv = "培养层次,身份证号,姓名,学号\n博士,11010519491231002X,张三,2021001\n";
    let roster = parse(csv.as_bytes()).unwrap();
    assert_eq!(roster.rows[0].degree_level.as_deref(), Some("博士"));
    assert_eq!(roster.rows[0].id_kind, IdKind::Mainland);
}

#[test]
fn bad_rows_reported_with_line_numbers_while_good_rows_are_kept() {
    let good = mainland_with_check("32010219950613001");
    let other = mainland_with_check("32010219950613005");
    let csv = format!(
        "学号,姓名,证件类型,证件号码\n\
         2021001,张三,,11010519491231002X\n\
         \n\
         2021002,李四,,11010519491231002\n\
         ,王五,,{other}\n\
         2021004,\"赵\n六\",,110105491231002\n\
         2021005,孙七,军官证,12345\n\
         2021006,周八,护照,E12345678\n\
         2021007,,,E7654321\n\
         2021008,吴九,,12345678\n\
         2021009,郑十,居民身份证,11010520010230001X\n\
         2021010,钱一,香港身份证,A123456(4)\n\
         2021011,冯二,,\n\
         2021012,陈三,,{good}\n"
    );
    let roster = parse(csv.as_bytes()).unwrap();
    let kept: Vec<_> = roster.rows.iter().map(|r| (r.line, r.student_no.as_str())).collect();
    assert_eq!(kept, [(2, "2021001"), (9, "2021006"), (15, "2021012")]);
    let errors: Vec<_> = roster.errors.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(
        errors,
        [
            (4, "id.format"),
            (5, "row.student_no_empty"),
            (6, "id.old_15_digit"),
            (8, "row.id_type_invalid"),
            (10, "row.name_empty"),
            (11, "row.id_type_unknown"),
            (12, "id.birth_date"),
            (13, "id.check"),
            (14, "id.empty"),
        ]
    );
    assert_eq!(roster.errors[0].raw, "2021002,李四,,11010519491231002");
    assert_eq!(roster.errors[2].raw, "2021004,\"赵\n六\",,110105491231002");
    assert!(roster.errors[7].message.zh.contains("应为 3"), "{:?}", roster.errors[7].message);
    assert!(roster.errors.iter().all(|e| !e.message.zh.is_empty() && !e.message.en.is_empty()));
}

#[test]
fn duplicate_student_number() {
    let csv = "student_no,name,id_number\n\
               2021001,Alice,E12345678\n\
               2021002,Bob,E22345678\n\
               2021001,Carol,E32345678\n\
               ２０２１００２,Dave,E42345678\n";
    let roster = parse(csv.as_bytes()).unwrap();
    assert_eq!(roster.rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["Alice", "Bob"]);
    let errors: Vec<_> = roster.errors.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(errors, [(4, "row.student_no_duplicate"), (5, "row.student_no_duplicate")]);
    assert!(roster.errors[0].message.zh.contains("第 2 行"));
    assert!(roster.errors[1].message.en.contains("line 3"));
}

#[test]
fn missing_required_columns_refuse_the_whole_file() {
    let err = parse("学号,姓名,学院\n2021001,张三,计算机学院\n".as_bytes()).unwrap_err();
    assert_eq!(err, RosterError::MissingColumns { columns: vec!["id_number"] });
    assert!(err.message().zh.contains("证件号码"), "{}", err.message().zh);
    let err = parse(b"foo,bar\n1,2\n").unwrap_err();
    assert_eq!(err, RosterError::MissingColumns { columns: vec!["student_no", "name", "id_number"] });
    let err = parse("学号,姓名,证件号码,身份证号\n".as_bytes()).unwrap_err();
    assert_eq!(err, RosterError::DuplicateColumn { column: "身份证号".into() });
    assert_eq!(parse(b"").unwrap_err(), RosterError::Empty);
    assert_eq!(parse(b"\n\r\n").unwrap_err(), RosterError::Empty);
    let header_only = parse("学号,姓名,证件号码\r\n".as_bytes()).unwrap();
    assert!(header_only.rows.is_empty() && header_only.errors.is_empty());
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    // Bytes that would fail to decode: refused for their size, so the length was checked first.
    let big = vec![0xFF; MAX_BYTES + 1];
    assert_eq!(parse(&big).unwrap_err(), RosterError::TooLarge { size: MAX_BYTES + 1, limit: MAX_BYTES });
}

#[test]
fn too_many_rows_are_refused_before_parsing() {
    // Rows with empty student numbers: had they been parsed, each would be a row error.
    let mut csv = String::from("学号,姓名,证件号码\n");
    csv.push_str(&",x,y\n".repeat(MAX_ROWS + 1));
    assert_eq!(parse(csv.as_bytes()).unwrap_err(), RosterError::TooManyRows { rows: MAX_ROWS + 1, limit: MAX_ROWS });

    // Exactly the limit is read, blank lines not counted.
    let mut csv = String::from("学号,姓名,证件号码\n\n");
    for i in 0..MAX_ROWS {
        csv.push_str(&format!("S{i},n,P{i:07}\n"));
    }
    let roster = parse(csv.as_bytes()).unwrap();
    assert_eq!((roster.rows.len(), roster.errors.len()), (MAX_ROWS, 0));
    assert_eq!(roster.rows.last().unwrap().line, MAX_ROWS + 2);
}

#[test]
fn a_repeated_id_number_is_a_bad_row_naming_the_first_line() {
    let csv = "学号,姓名,证件号码\n2021001,甲,11010519491231002X\n2021002,乙,11010519491231002X\n";
    let r = gradphoto_core::roster::parse(csv.as_bytes()).unwrap();
    assert_eq!(r.rows.len(), 1);
    assert_eq!(r.errors.len(), 1);
    assert_eq!((r.errors[0].line, r.errors[0].code), (3, "row.id_number_duplicate"));
    assert!(r.errors[0].message.zh.contains("第 2 行"));
}
