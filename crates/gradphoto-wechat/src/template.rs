//! Template messages (`/cgi-bin/message/template/send`) under the rules in force since 2023-05-04: no `first` or
//! `remark`, no colours or emoji, every value at most 20 characters without newlines, and keys typed by the
//! template library — `thing` (≤ 20), `character_string` (≤ 32, no Chinese), `time`, `amount`, `phrase` (≤ 5
//! Chinese characters), `const`. A key's type is its name without the trailing digits (`thing3` is a `thing`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::WechatError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Value {
    pub value: String,
}

/// The body of a send. `client_msg_id` makes a retry within 10 minutes a no-op for the same openid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateMessage {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub data: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Thing,
    CharacterString,
    Time,
    Amount,
    Phrase,
    Const,
    /// A key of a template made before 2023 (`keyword1`): the 20-character rule still holds.
    Other,
}

impl KeyKind {
    pub fn of(key: &str) -> KeyKind {
        match key.trim_end_matches(|c: char| c.is_ascii_digit()) {
            "thing" => KeyKind::Thing,
            "character_string" => KeyKind::CharacterString,
            "time" => KeyKind::Time,
            "amount" => KeyKind::Amount,
            "phrase" => KeyKind::Phrase,
            "const" => KeyKind::Const,
            _ => KeyKind::Other,
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

/// Whether `value` is acceptable for `key`; the reason when not. `first` and `remark` are refused outright.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    if key == "first" || key == "remark" {
        return Err("first and remark were removed in 2023".into());
    }
    let n = value.chars().count();
    if n == 0 {
        return Err("empty".into());
    }
    if value.contains(['\n', '\r']) {
        return Err("a newline".into());
    }
    match KeyKind::of(key) {
        KeyKind::Thing | KeyKind::Other | KeyKind::Const if n > 20 => Err(format!("{n} characters, more than 20")),
        KeyKind::CharacterString if n > 32 => Err(format!("{n} characters, more than 32")),
        KeyKind::CharacterString if value.chars().any(is_cjk) => Err("Chinese in a character_string".into()),
        KeyKind::Phrase if n > 5 || !value.chars().all(is_cjk) => {
            Err("a phrase is at most 5 Chinese characters".into())
        }
        KeyKind::Time | KeyKind::Amount if n > 20 => Err(format!("{n} characters, more than 20")),
        _ => Ok(()),
    }
}

/// Shortens a value to fit its key (a `thing` to 19 characters and an ellipsis), so that a long reason list
/// still sends; the full text is on the page the message links to.
pub fn fit(key: &str, value: &str) -> String {
    let value: String = value.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    let max = match KeyKind::of(key) {
        KeyKind::CharacterString => 32,
        KeyKind::Phrase => 5,
        _ => 20,
    };
    if value.chars().count() <= max {
        return value;
    }
    let mut s: String = value.chars().take(max - 1).collect();
    s.push('…');
    s
}

impl TemplateMessage {
    /// Every value checked against its key's rule.
    pub fn validate(&self) -> Result<(), WechatError> {
        for (k, v) in &self.data {
            check(k, &v.value).map_err(|why| WechatError::Template { key: k.clone(), why })?;
        }
        Ok(())
    }
}

/// The send's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResult {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub msgid: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_by_their_type() {
        assert!(check("thing1", "学历证书照片审核通过").is_ok());
        assert!(check("thing1", &"照".repeat(21)).is_err());
        assert!(check("thing1", &"照".repeat(20)).is_ok());
        assert!(check("character_string2", "S2026-0001").is_ok());
        assert!(check("character_string2", "学号").is_err());
        assert!(check("phrase3", "已通过").is_ok());
        assert!(check("phrase3", "approved").is_err());
        assert!(check("phrase3", "审核已经通过").is_err());
        assert!(check("time4", "2026-12-06 20:30").is_ok());
        assert!(check("first", "x").is_err() && check("remark", "x").is_err());
        assert!(check("thing1", "a\nb").is_err() && check("thing1", "").is_err());
        assert_eq!(fit("thing1", &"背".repeat(30)).chars().count(), 20);
        assert!(check("thing1", &fit("thing1", &"背".repeat(30))).is_ok());
        assert_eq!(fit("thing1", "短"), "短");
    }
}
