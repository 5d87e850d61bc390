//! Urlencoded forms with repeated keys (`reason=a&reason=b`, `scope=roster&scope=export`), which axum's `Form` does
//! not collect.

use gradphoto_core::Message;

use crate::error::{AppError, AppResult};

/// The form's `(key, value)` pairs in order, decoded; a body that is not a well-formed form is a 400.
pub fn pairs(body: &[u8]) -> AppResult<Vec<(String, String)>> {
    let bad = || AppError::BadRequest("form.invalid", Message::new("表单无效", "invalid form"));
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k).ok_or_else(bad)?, percent_decode(v).ok_or_else(bad)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_keys_and_escapes() {
        let p = super::pairs(b"scope=roster&scope=export&name=%E6%95%99%E5%8A%A1+system&csrf=").unwrap();
        let want = [("scope", "roster"), ("scope", "export"), ("name", "教务 system"), ("csrf", "")];
        assert_eq!(p, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(super::pairs(b"name=%E6%9").is_err());
        assert!(super::pairs(b"name=%ZZ").is_err());
    }
}
