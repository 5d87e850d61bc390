//! `/__fake/cashier`: the local demo's stand-in for WeChat's payment sheet. The service's page, outside WeChat,
//! sends the student here with the `getBrandWCPayRequest` parameters and a return URL; confirming pays exactly as
//! [`crate::FakeWechat::pay`] does and sends the student back.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gradphoto_wechat::pay::JsapiParams;

use crate::pay::{PAY_CANCEL, PAY_OK};
use crate::{PayBehaviour, Shared, util};

const FIELDS: [&str; 7] = ["appId", "timeStamp", "nonceStr", "package", "signType", "paySign", "return"];

fn html_page(status: StatusCode, title: &str, inner: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>body{{font-family:sans-serif;background:#ededed;margin:0}}main{{max-width:26rem;margin:2rem auto;\
         background:#fff;padding:1.5rem;border-radius:8px;text-align:center}}h1{{font-size:1.4rem}}\
         button{{display:block;width:100%;padding:.8rem;margin:.6rem 0;font-size:1.05rem;border:0;border-radius:6px}}\
         .pay{{background:#07c160;color:#fff}}.note{{color:#888;font-size:.85rem}}</style></head>\
         <body><main>{inner}<p class=\"note\">本页由本地模拟微信服务提供，不会发生真实付款。</p></main></body></html>",
        util::html_escape(title)
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn params_of(p: &HashMap<String, String>) -> JsapiParams {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    JsapiParams {
        app_id: get("appId"),
        time_stamp: get("timeStamp"),
        nonce_str: get("nonceStr"),
        package: get("package"),
        sign_type: get("signType"),
        pay_sign: get("paySign"),
    }
}

/// Only an absolute http(s) URL: the page must not send the student to `javascript:` or elsewhere odd.
fn return_url(p: &HashMap<String, String>) -> Option<url::Url> {
    let u = url::Url::parse(p.get("return")?).ok()?;
    matches!(u.scheme(), "http" | "https").then_some(u)
}

/// `GET /__fake/cashier?appId&timeStamp&nonceStr&package&signType&paySign&return=URL`.
pub(crate) async fn page(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let p = util::params(q.as_deref());
    if return_url(&p).is_none() {
        return html_page(StatusCode::BAD_REQUEST, "参数错误", "<h1>参数错误</h1><p>return 必须是 http(s) 地址</p>");
    }
    let prepay = p.get("package").and_then(|k| k.strip_prefix("prepay_id=")).unwrap_or("");
    let Some((description, total, state)) = s.prepay_order(prepay) else {
        return html_page(StatusCode::BAD_REQUEST, "订单不存在", "<h1>订单不存在或已失效</h1>");
    };
    let hidden: String = FIELDS
        .iter()
        .map(|k| {
            let v = p.get(*k).map(String::as_str).unwrap_or("");
            format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", util::html_escape(v))
        })
        .collect();
    let paid = if state == "NOTPAY" { "" } else { "<p>该订单已不是待支付状态。</p>" };
    let inner = format!(
        "<h1>模拟微信支付 ¥{}</h1><p>{}</p><p>商户号 {}</p>{paid}\
         <form method=\"post\" action=\"/__fake/cashier\">{hidden}\
         <button class=\"pay\" name=\"action\" value=\"pay\">确认支付</button>\
         <button name=\"action\" value=\"cancel\">取消</button></form>",
        util::yuan(total),
        util::html_escape(&description),
        util::html_escape(&s.config.mchid),
    );
    html_page(StatusCode::OK, "模拟微信支付", &inner)
}

/// `POST /__fake/cashier`: pay (or cancel), then 303 to `return`.
pub(crate) async fn submit(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let p = util::form(&body);
    let Some(back) = return_url(&p) else {
        return html_page(StatusCode::BAD_REQUEST, "参数错误", "<h1>参数错误</h1><p>return 必须是 http(s) 地址</p>");
    };
    let err_msg = if p.get("action").map(String::as_str) == Some("cancel") {
        PAY_CANCEL.to_string()
    } else {
        s.pay(&params_of(&p), PayBehaviour::Normal).unwrap_or_else(|m| m)
    };
    if (err_msg == PAY_OK || err_msg == PAY_CANCEL)
        && let Ok(location) = HeaderValue::from_str(back.as_str())
    {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    }
    let inner = format!(
        "<h1>支付失败</h1><p>{}</p><p><a href=\"{}\">返回商户页面</a></p>",
        util::html_escape(&err_msg),
        util::html_escape(back.as_str())
    );
    html_page(StatusCode::BAD_REQUEST, "支付失败", &inner)
}
