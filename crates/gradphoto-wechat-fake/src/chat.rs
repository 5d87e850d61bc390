//! `/__fake/chat?openid=…`: the template messages one WeChat user received, drawn as WeChat's service-notice
//! cards, so that a demo or a test's screenshot shows what the student sees in the chat.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::{Shared, util};

#[derive(Deserialize)]
pub(crate) struct ChatQuery {
    #[serde(default)]
    openid: String,
}

pub(crate) async fn page(State(shared): State<Arc<Shared>>, Query(q): Query<ChatQuery>) -> Response {
    let messages: Vec<_> = shared.lock().messages.iter().filter(|m| m.touser == q.openid).cloned().collect();
    let mut cards = String::new();
    for m in messages.iter().rev() {
        let rows: String = m
            .data
            .iter()
            .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", util::html_escape(k), util::html_escape(v)))
            .collect();
        let link =
            m.url.as_deref().map_or(String::new(), |u| format!("<a href=\"{}\">详情 ›</a>", util::html_escape(u)));
        cards.push_str(&format!(
            "<section><h2>模板消息 <small>{}</small></h2><table>{rows}</table>{link}</section>",
            util::html_escape(&m.template_id)
        ));
    }
    if cards.is_empty() {
        cards = "<p class=\"none\">还没有消息</p>".into();
    }
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>服务通知</title>\
         <style>body{{font-family:sans-serif;background:#ededed;margin:0}}header{{background:#f7f7f7;padding:.8rem;\
         text-align:center;font-weight:bold;border-bottom:1px solid #ddd}}section{{background:#fff;margin:.8rem;\
         padding:1rem;border-radius:8px}}h2{{font-size:1rem;margin:0 0 .6rem}}small{{color:#999;font-weight:normal}}\
         table{{width:100%;border-collapse:collapse}}th{{color:#888;font-weight:normal;text-align:left;width:40%;\
         padding:.2rem 0}}td{{padding:.2rem 0}}a{{display:block;border-top:1px solid #eee;margin-top:.6rem;\
         padding-top:.6rem;color:#576b95;text-decoration:none}}.none{{text-align:center;color:#999}}</style></head>\
         <body><header>服务通知 · 模拟微信</header>{cards}</body></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}
