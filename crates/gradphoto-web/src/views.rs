//! Server-rendered pages: minijinja templates compiled into the binary, Chinese first with English beneath.

use axum::response::Html;
use minijinja::Environment;
use serde::Serialize;

use crate::error::{AppError, AppResult};

pub struct Views {
    env: Environment<'static>,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "home.html",
    "login.html",
    "password.html",
    "student.html",
    "photo.html",
    "pay.html",
    "queue.html",
    "review.html",
    "admin.html",
    "school.html",
];

impl Views {
    pub fn new() -> Views {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            // Templates are part of the build: a syntax error is a bug caught by every test that renders a page.
            env.add_template(name, text).expect("templates compile");
        }
        env.add_filter("datetime", datetime);
        env.add_filter("yuan", |cents: i64| format!("{}.{:02}", cents / 100, cents % 100));
        Views { env }
    }

    pub fn render(&self, name: &str, ctx: impl Serialize) -> AppResult<Html<String>> {
        let t = self.env.get_template(name).map_err(AppError::internal)?;
        t.render(minijinja::value::Serde(ctx)).map(Html).map_err(AppError::internal)
    }
}

impl Default for Views {
    fn default() -> Self {
        Views::new()
    }
}

/// A page's context: the signed-in frame's fields (`base`) with the page's own added.
pub fn merge(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// A personal picture: never kept by shared caches.
pub fn private_jpeg(bytes: Vec<u8>) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, no-store")], bytes).into_response()
}

/// Unix milliseconds as Beijing time (UTC+8, no daylight saving), `YYYY-MM-DD HH:MM`.
pub fn datetime(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return String::new() };
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let days = secs.div_euclid(86_400);
    let (h, m) = (secs.rem_euclid(86_400) / 3600, secs.rem_euclid(3600) / 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn beijing_time() {
        assert_eq!(super::datetime(Some(0)), "1970-01-01 08:00");
        assert_eq!(super::datetime(Some(1_796_000_000_000)), "2026-11-30 08:53");
        assert_eq!(super::datetime(Some(951_782_400_000)), "2000-02-29 08:00");
        assert_eq!(super::datetime(None), "");
    }

    #[test]
    fn every_template_compiles() {
        let _ = super::Views::new();
    }
}
