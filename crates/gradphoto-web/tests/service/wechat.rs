//! The student's path inside WeChat against the fake WeChat servers (`gradphoto-wechat-fake`, which speak the
//! documented protocols and sign, verify and encrypt with the same code as the client): sign-in through web
//! authorisation and the binding to one WeChat user, the shared server token, template messages for every event
//! with retries and dead letters, and WeChat Pay from the order to the refund, with every failure mode the fakes
//! can produce.

use std::time::{Duration, Instant};

use crate::common::wechat::*;
use crate::common::*;
use gradphoto_store::{StudentId, now_ms};
use gradphoto_wechat::MerchantKey;
use gradphoto_wechat::pay::JsapiParams;
use gradphoto_wechat_fake::{Api, FakeWechat, PayBehaviour};
use serde_json::Value;

/// Answers through the checking client and raw ones (WeChat's side of the redirects) alike.
trait Headers {
    fn headers(&self) -> &reqwest::header::HeaderMap;
}

impl Headers for reqwest::Response {
    fn headers(&self) -> &reqwest::header::HeaderMap {
        self.headers()
    }
}

impl Headers for Answer {
    fn headers(&self) -> &reqwest::header::HeaderMap {
        self.headers()
    }
}

fn location(r: &impl Headers) -> String {
    r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Opens the school's sign-in page as the menu link does and follows WeChat's authorisation back to the service;
/// returns where the service then sends the browser.
async fn authorise(c: &Client, fake: &FakeWechat, school: &str) -> String {
    let r = c.get_page(&format!("/s/{school}/login")).await;
    assert_eq!(r.status(), 303, "inside WeChat the sign-in page authorises first");
    let to = location(&r);
    assert!(to.starts_with(&format!("{}/connect/oauth2/authorize?appid=", fake.base)), "{to}");
    assert!(to.contains("&response_type=code&scope=snsapi_base&state=") && to.ends_with("#wechat_redirect"), "{to}");
    follow_authorize(c, &to).await
}

/// What WeChat does with the authorize URL, then the service's callback.
async fn follow_authorize(c: &Client, url: &str) -> String {
    let r = c.http.get(url.split('#').next().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 302, "the authorize page redirects back");
    let back = location(&r);
    assert!(back.starts_with(&format!("{}/wechat/oauth?code=", c.base)), "{back}");
    let r = c.http.get(&back).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    location(&r)
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn first_password(serial: u32) -> String {
    let id = id_number(serial);
    id[id.len() - 6..].to_string()
}

/// A student of the roster signed in inside WeChat as `user` (bound on the way).
async fn wechat_student(wx: &Wx, code: &str, user: &str, serial: u32) -> Client {
    let mut c = Client::with_agent(&wx.server.base, &wechat_ua(user));
    let to = authorise(&c, &wx.fake, code).await;
    assert_eq!(to, format!("/s/{code}/login"), "a WeChat user not yet bound signs in with the password");
    let (status, body) = c.login(&to, &format!("S{serial:05}"), &first_password(serial)).await;
    assert_eq!(status, 200, "{body}");
    c
}

async fn student_id(wx: &Wx, school: gradphoto_store::SchoolId, serial: u32) -> StudentId {
    wx.server.state.db.student_by_no(school, &format!("S{serial:05}")).await.unwrap().unwrap().id
}

async fn audit_actions(wx: &Wx, school: gradphoto_store::SchoolId) -> Vec<String> {
    wx.server.state.db.audit_log(Some(school), 200).await.unwrap().into_iter().map(|a| a.action).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_binds_one_wechat_user_and_signs_it_in_again() {
    let (wx, school, admin) = start("wxa", "0").await;
    let a = wechat_student(&wx, "wxa", "1001", 1).await;
    assert_eq!(a.json("/me").await["types"][0]["status"], "none");
    assert!(audit_actions(&wx, school).await.contains(&"binding.wechat".to_string()));

    // A second WeChat user with the student's own password is refused, saying who can release the binding.
    let mut b = Client::with_agent(&wx.server.base, &wechat_ua("2002"));
    assert_eq!(authorise(&b, &wx.fake, "wxa").await, "/s/wxa/login");
    let (status, body) = b.login("/s/wxa/login", "S00001", &first_password(1)).await;
    assert_eq!(status, 400, "{body}");
    let zh = body["error"]["message"]["zh"].as_str().unwrap();
    assert!(zh.contains("已绑定另一个微信号") && zh.contains("wxa 大学") && zh.contains("管理员"), "{zh}");
    assert!(body["error"]["message"]["en"].as_str().unwrap().contains("release"), "{body}");
    // And one WeChat user cannot take a second student's account either.
    let mut a2 = Client::with_agent(&wx.server.base, &wechat_ua("1001"));
    assert_eq!(authorise(&a2, &wx.fake, "wxa").await, "/me/password", "user 1001 is bound: signed in at once");
    let mut other = Client::with_agent(&wx.server.base, &wechat_ua("3003"));
    authorise(&other, &wx.fake, "wxa").await;
    assert_eq!(other.login("/s/wxa/login", "S00002", &first_password(2)).await.0, 200, "a new user binds");
    let mut steal = Client::with_agent(&wx.server.base, &wechat_ua("3003"));
    assert_eq!(authorise(&steal, &wx.fake, "wxa").await, "/me/password", "3003 signs in as S00002");
    // The same WeChat user, bound, with S00003's password: refused (one WeChat user binds one student).
    steal.csrf.clear();
    let (status, body) = steal.login("/s/wxa/login", "S00003", &first_password(3)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]["zh"].as_str().unwrap().contains("此微信号已绑定其他学生"), "{body}");
    let _ = (&mut a2, &mut other);

    // The admin releases the WeChat binding (audited); then the second user can bind.
    let s1 = student_id(&wx, school, 1).await;
    let r = admin.post(&format!("/admin/schools/{school}/students/{s1}/unbind?channel=wechat"), &[]).await;
    assert_eq!(r.status(), 200);
    let log = wx.server.state.db.audit_log(Some(school), 50).await.unwrap();
    let release = log.iter().find(|a| a.action == "binding.release").expect("the release is audited");
    assert!(release.actor.starts_with("staff:") && release.detail.contains("channel:wechat released:1"), "{release:?}");
    let mut b2 = Client::with_agent(&wx.server.base, &wechat_ua("2002"));
    assert_eq!(authorise(&b2, &wx.fake, "wxa").await, "/s/wxa/login");
    assert_eq!(b2.login("/s/wxa/login", "S00001", &first_password(1)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_or_expired_code_restarts_authorisation_once_never_a_loop() {
    let (wx, _school, _admin) = start("wxb", "0").await;
    // 40163 once: the service authorises again with a fresh state, and the second code works.
    wx.fake.fail_next(Api::OauthExchange, 40163, 1);
    let c = Client::with_agent(&wx.server.base, &wechat_ua("1001"));
    let r = c.get_page("/s/wxb/login").await;
    let to = location(&r);
    let r = c.http.get(to.split('#').next().unwrap()).send().await.unwrap();
    let back = location(&r);
    let r = c.http.get(&back).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 303);
    let again = location(&r);
    assert!(again.starts_with(&format!("{}/connect/oauth2/authorize?", wx.fake.base)), "restarted: {again}");
    assert_eq!(follow_authorize(&c, &again).await, "/s/wxb/login");
    assert_eq!(wx.fake.exchange_calls(), 2);

    // 40029 twice: one restart, then an error page — not a third authorisation.
    wx.fake.fail_next(Api::OauthExchange, 40029, 2);
    let c = Client::with_agent(&wx.server.base, &wechat_ua("2002"));
    let to = location(&c.get_page("/s/wxb/login").await);
    let back = location(&c.http.get(to.split('#').next().unwrap()).send().await.unwrap());
    let again = location(&c.http.get(&back).header("accept", "text/html").send().await.unwrap());
    let back2 = location(&c.http.get(again.split('#').next().unwrap()).send().await.unwrap());
    let r = c.http.get(&back2).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "wechat.oauth", "{v}");
    assert_eq!(wx.fake.exchange_calls(), 4);

    // A state is single use, and only in the browser that started it.
    let c = Client::with_agent(&wx.server.base, &wechat_ua("3003"));
    let to = location(&c.get_page("/s/wxb/login").await);
    let back = location(&c.http.get(to.split('#').next().unwrap()).send().await.unwrap());
    let stranger = Client::with_agent(&wx.server.base, &wechat_ua("3003"));
    let r = stranger.http.get(&back).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 400, "another browser's callback");
    let r = c.http.get(&back).header("accept", "text/html").send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/s/wxb/login".to_string()));
    let r = c.http.get(&back).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 400, "the same state again");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "wechat.state");

    // A snapshot-mode user (a page opened from a shared moment, not following) has no real identity: no binding.
    wx.fake.snapshot_user("5005");
    let c = Client::with_agent(&wx.server.base, &wechat_ua("5005"));
    let to = location(&c.get_page("/s/wxb/login").await);
    let back = location(&c.http.get(to.split('#').next().unwrap()).send().await.unwrap());
    let r = c.http.get(&back).header("accept", "application/json").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "wechat.snapshot", "{v}");
    assert!(c.cookie("gp_wx").is_none(), "no openid kept for a snapshot user");

    // A user who declines gets a clear page, not a loop.
    wx.fake.refuse_authorization("4004");
    let c = Client::with_agent(&wx.server.base, &wechat_ua("4004"));
    let to = location(&c.get_page("/s/wxb/login").await);
    let back = location(&c.http.get(to.split('#').next().unwrap()).send().await.unwrap());
    assert!(!back.contains("code="), "{back}");
    let r = c.http.get(&back).header("accept", "application/json").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "wechat.declined", "{v}");
}

async fn upload_and_submit(c: &Client) -> (i64, Value) {
    let me = c.json("/me").await;
    let t = me["types"][0]["id"].as_i64().unwrap();
    let (_, original) = &approvable_originals()[0];
    let r = c.upload(&format!("/me/photos/{t}"), "photo", "IMG_0001.JPG", original.clone()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let photo = v["photo"].as_i64().unwrap().to_string();
    let r = c.post(&format!("/me/photos/{t}/submit"), &[("photo", photo.as_str())]).await;
    assert_eq!(r.status(), 200);
    (t, r.json().await.unwrap())
}

fn messages_to(fake: &FakeWechat, openid: &str, template: &str) -> usize {
    fake.messages().iter().filter(|m| m.touser == openid && m.template_id == template).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_pushed_once_with_token_refresh_retries_and_dead_letters() {
    let (wx, school, admin) = start("wxc", "0").await;
    let openid = wx.fake.openid_for_mmwebid("1001");
    let a = wechat_student(&wx, "wxc", "1001", 1).await;

    // Submitted: one template message, the outbox id as client_msg_id, the fields fitted to their types.
    let (_, v) = upload_and_submit(&a).await;
    let submission = v["submission"].as_i64().unwrap();
    until("the submitted message", async || messages_to(&wx.fake, &openid, "T-SUB") == 1).await;
    let m = wx.fake.messages().into_iter().find(|m| m.template_id == "T-SUB").unwrap();
    assert_eq!(m.data["character_string2"], "S00001");
    assert_eq!(m.data["phrase3"], "待审核");
    assert!(m.client_msg_id.as_deref().unwrap_or("").starts_with("gp-outbox-"), "{m:?}");
    assert!(m.url.as_deref().unwrap_or("").ends_with("/me"));

    // The server token expires: one force refresh, and the rejection still arrives once, reasons in words.
    wx.fake.expire_token();
    let mut rev = wx.server.client();
    assert_eq!(rev.login("/staff/login", "wxc-rev", "reviewer-password").await.0, 200);
    let item = rev.json(&format!("/review/{submission}")).await;
    let photo = item["item"]["submission"]["photo_id"].as_i64().unwrap().to_string();
    let r = rev
        .post(
            &format!("/review/{submission}/reject"),
            &[("photo", photo.as_str()), ("reason", "background.color"), ("reason", "geometry.hair_top")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    until("the rejected message", async || messages_to(&wx.fake, &openid, "T-NO") == 1).await;
    let m = wx.fake.messages().into_iter().find(|m| m.template_id == "T-NO").unwrap();
    assert_eq!(m.data["phrase3"], "未通过");
    let reasons = &m.data["thing4"];
    assert!(reasons.chars().count() <= 20 && reasons.starts_with("背景"), "{reasons}");
    assert_eq!(wx.fake.token_calls().forced, 1, "one force refresh after 42001");

    // The shared token is renewed before it lapses: one with 30 s left is replaced (normal mode), one with an
    // hour left is used as it is.
    let wxc = wx.server.state.wechat.clone().unwrap();
    let db = &wx.server.state.db;
    let normal = wx.fake.token_calls().normal;
    db.save_wechat_token(&wxc.config.appid, "about-to-lapse", now_ms() + 30_000).await.unwrap();
    let fresh = gradphoto_web::wechat::server_token(&wx.server.state, &wxc).await.unwrap();
    assert_ne!(fresh, "about-to-lapse");
    assert_eq!(wx.fake.token_calls().normal, normal + 1);
    db.save_wechat_token(&wxc.config.appid, &fresh, now_ms() + 3_600_000).await.unwrap();
    assert_eq!(gradphoto_web::wechat::server_token(&wx.server.state, &wxc).await.unwrap(), fresh);
    assert_eq!(wx.fake.token_calls().normal, normal + 1, "a token with an hour left is not fetched again");

    // The student unfollows (43004): no retry can help — a dead letter at once, shown to the admin, resent.
    let (_, v) = upload_and_submit(&a).await;
    let submission = v["submission"].as_i64().unwrap();
    wx.fake.fail_next(Api::TemplateSend, 43004, 1);
    let before = messages_to(&wx.fake, &openid, "T-SUB");
    // (the resubmission reuses the submission row: a second "submitted" notice)
    let st = student_id(&wx, school, 1).await;
    until("a dead letter", async || {
        wx.server.state.db.dead_letters(school, 10).await.unwrap().iter().any(|d| d.student_id == Some(st))
    })
    .await;
    let page: Value = admin.json(&format!("/admin/schools/{school}")).await;
    let dead = page["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{page}");
    assert!(dead[0]["last_error"].as_str().unwrap().contains("43004"), "{page}");
    let id = dead[0]["id"].as_i64().unwrap();
    // Another school's admin cannot resend it.
    let r = admin.post(&format!("/admin/schools/{}/outbox/{id}/resend", school.0 + 1000), &[]).await;
    assert!(r.status() == 403 || r.status() == 404, "{}", r.status());
    let r = admin.post(&format!("/admin/schools/{school}/outbox/{id}/resend"), &[]).await;
    assert_eq!(r.status(), 200);
    until("the resent message", async || messages_to(&wx.fake, &openid, "T-SUB") == before + 1).await;
    assert!(wx.server.state.db.dead_letters(school, 10).await.unwrap().is_empty());
    assert!(audit_actions(&wx, school).await.contains(&"outbox.resend".to_string()));

    // Approved, then exported to the registry: one message each, with the decision's time.
    let item = rev.json(&format!("/review/{submission}")).await;
    let photo = item["item"]["submission"]["photo_id"].as_i64().unwrap().to_string();
    let r = rev.post(&format!("/review/{submission}/approve"), &[("photo", photo.as_str())]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    until("the approved message", async || messages_to(&wx.fake, &openid, "T-OK") == 1).await;
    let m = wx.fake.messages().into_iter().find(|m| m.template_id == "T-OK").unwrap();
    assert_eq!(m.data["phrase3"], "已通过");
    assert_eq!(m.data["time4"].len(), "2026-12-06 20:30".len(), "{m:?}");
    let r = admin.get(&format!("/admin/schools/{school}/export.zip")).await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    until("the exported message", async || messages_to(&wx.fake, &openid, "T-EXP") == 1).await;
    assert_eq!(wx.fake.messages().into_iter().find(|m| m.template_id == "T-EXP").unwrap().data["phrase3"], "已上报");

    // A rate limit (45009) is retried after the backoff, not dropped: still pending, then delivered once.
    let b = wechat_student(&wx, "wxc", "2002", 2).await;
    let openid_b = wx.fake.openid_for_mmwebid("2002");
    wx.fake.fail_next(Api::TemplateSend, 45009, 1);
    upload_and_submit(&b).await;
    let sb = student_id(&wx, school, 2).await;
    let failed =
        async || db.outbox_of_student(sb).await.unwrap().into_iter().find(|i| i.channel == "wechat" && i.attempts == 1);
    until("the failed attempt", async || failed().await.is_some()).await;
    assert_eq!(messages_to(&wx.fake, &openid_b, "T-SUB"), 0, "rate-limited, not sent");
    assert!(db.dead_letters(school, 10).await.unwrap().iter().all(|d| d.student_id != Some(sb)), "kept for a retry");
    // Make the retry due now instead of in a minute.
    let item = failed().await.unwrap();
    db.outbox_failed(item.id, "due now", Some(now_ms())).await.unwrap();
    wx.server.state.outbox_wake.notify_one();
    until("the retried message", async || messages_to(&wx.fake, &openid_b, "T-SUB") == 1).await;

    // A student who signed in outside WeChat (no openid) is told in-site only.
    let mut plain = wx.server.client();
    assert_eq!(plain.login("/s/wxc/login", "S00003", &first_password(3)).await.0, 200);
    let sent = wx.fake.messages().len();
    upload_and_submit(&plain).await;
    until("the in-site notice", async || {
        plain.json("/me").await["notifications"].as_array().is_some_and(|n| !n.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wx.fake.messages().len(), sent, "nothing pushed to WeChat for a student without an openid");
}

async fn jsapi(c: &Client) -> JsapiParams {
    let r = c.post("/me/pay/wechat", &[]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["amount_fen"], 3000);
    serde_json::from_value(v["jsapi"].clone()).unwrap()
}

async fn paid(c: &Client) -> bool {
    c.json("/me/pay").await["paid"].as_bool().unwrap()
}

/// A notification as WeChat Pay would send it, signed with `key` (the platform's, or another), `age_s` old.
async fn post_notification(wx: &Wx, key: &MerchantKey, event: &str, resource: Value, age_s: i64) -> u16 {
    use gradphoto_wechat::sign::{ApiV3Key, response_message};
    let nonce = gradphoto_wechat::random_alnum(12);
    let ct = ApiV3Key::new(&wx.apiv3).unwrap().encrypt(&nonce, "transaction", resource.to_string().as_bytes()).unwrap();
    let body = serde_json::json!({ "id": format!("EV-{}", gradphoto_wechat::random_alnum(16)),
        "create_time": "2026-12-06T20:00:00+08:00", "resource_type": "encrypt-resource", "event_type": event,
        "summary": "支付成功", "resource": { "original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ct, "associated_data": "transaction", "nonce": nonce } })
    .to_string();
    let ts = gradphoto_wechat::now_s() - age_s;
    let n = gradphoto_wechat::random_alnum(32);
    let sig = key.sign(&response_message(ts, &n, body.as_bytes()));
    let r = reqwest::Client::new()
        .post(format!("{}/wechat/pay/notify", wx.server.base))
        .header("content-type", "application/json")
        .header("wechatpay-serial", &key.serial)
        .header("wechatpay-signature", sig)
        .header("wechatpay-timestamp", ts.to_string())
        .header("wechatpay-nonce", n)
        .body(body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_pay_from_order_to_refund_with_every_failure_mode() {
    let (wx, school, admin) = start("wxp", "30").await;
    let db = &wx.server.state.db;
    let r = admin
        .upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(5, 1).into_bytes())
        .await;
    assert_eq!(r.status(), 200);

    // The student submits unpaid, then pays inside WeChat: the order is made once, reused on a second tap.
    let a = wechat_student(&wx, "wxp", "1001", 1).await;
    let (_, v) = upload_and_submit(&a).await;
    assert_eq!(v["status"], "unpaid");
    let page = a.json("/me/pay").await;
    assert_eq!((page["provider"].as_str(), page["wechat_pay"].as_bool()), (Some("wechat"), Some(true)), "{page}");
    let p = jsapi(&a).await;
    let again = jsapi(&a).await;
    assert_eq!(p.package, again.package, "a second tap reuses the order");
    let prepay = p.package.trim_start_matches("prepay_id=").to_string();
    let s1 = student_id(&wx, school, 1).await;
    let order = db.payments_of_student(s1).await.unwrap();
    assert_eq!(order.len(), 1);
    let no = order[0].out_trade_no.clone().unwrap();
    let fake_order = wx.fake.order(&no).expect("WeChat Pay has the order");
    assert_eq!((fake_order.amount, fake_order.openid.as_str()), (3000, wx.fake.openid_for_mmwebid("1001").as_str()));
    assert_eq!(fake_order.prepay_id, prepay);
    // A paySign the client would refuse (the package changed) fails in WeChat, and nothing is paid.
    let mut forged = p.clone();
    forged.package = "prepay_id=wx-someone-else".into();
    let refused = wx.fake.pay(&forged, PayBehaviour::Normal).await;
    assert!(refused.unwrap_or_else(|e| e).ends_with(":fail"), "WeChat's client refuses a wrong paySign");
    // The real one, with the notification sent four times at once: paid once, the submission joins the queue.
    assert_eq!(wx.fake.pay(&p, PayBehaviour::Duplicate(3)).await.unwrap(), "get_brand_wcpay_request:ok");
    until("the payment", async || paid(&a).await).await;
    until("four notifications answered", async || {
        wx.fake.notify_log().iter().filter(|n| n.out_trade_no == no && n.status.is_some()).count() >= 4
    })
    .await;
    assert!(wx.fake.notify_log().iter().filter(|n| n.out_trade_no == no).all(|n| n.status == Some(204)));
    let paid_rows: Vec<_> = db.payments_of_student(s1).await.unwrap();
    assert_eq!(paid_rows.len(), 1);
    assert_eq!(paid_rows[0].status, gradphoto_store::db::PayStatus::Paid);
    assert_eq!(audit_actions(&wx, school).await.iter().filter(|a| *a == "payment.wechat").count(), 1);
    assert_eq!(a.json("/me").await["types"][0]["status"], "submitted");
    until("the submitted message", async || messages_to(&wx.fake, &wx.fake.openid_for_mmwebid("1001"), "T-SUB") == 1)
        .await;
    assert!(a.post("/me/pay/wechat", &[]).await.status() == 409, "nothing more to pay");

    // Bad signature: refused (401), nothing paid; WeChat Pay says paid, so reconciliation finds it.
    let b = wechat_student(&wx, "wxp", "2002", 2).await;
    let pb = jsapi(&b).await;
    assert_eq!(wx.fake.pay(&pb, PayBehaviour::BadSignature).await.unwrap(), "get_brand_wcpay_request:ok");
    until("the refused notification", async || wx.fake.notify_log().iter().any(|n| n.status == Some(401))).await;
    assert!(!paid(&b).await, "a notification with a bad signature marks nothing paid");
    let r = admin.post(&format!("/admin/schools/{school}/payments/reconcile"), &[]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["reconciled"]["paid"], 1, "{v}");
    assert!(paid(&b).await);

    // A stale copy (signed ten minutes ago) arrives before the genuine one: refused, then paid once.
    let e = wechat_student(&wx, "wxp", "5005", 5).await;
    let pe = jsapi(&e).await;
    assert_eq!(wx.fake.pay(&pe, PayBehaviour::OutOfOrder).await.unwrap(), "get_brand_wcpay_request:ok");
    until("the genuine copy", async || paid(&e).await).await;
    let no_e = db.payments_of_student(student_id(&wx, school, 5).await).await.unwrap()[0].out_trade_no.clone().unwrap();
    let statuses = || -> Vec<Option<u16>> {
        wx.fake.notify_log().iter().filter(|n| n.out_trade_no == no_e).map(|n| n.status).collect()
    };
    // The service commits the payment before it answers, and the fake logs the answer when it arrives: wait for it.
    until("the genuine copy's answer", async || statuses().contains(&Some(204))).await;
    assert!(statuses().contains(&Some(401)), "{:?}", statuses());

    // Lost notification: the page's poll asks WeChat Pay itself.
    let c = wechat_student(&wx, "wxp", "3003", 3).await;
    let pc = jsapi(&c).await;
    assert_eq!(wx.fake.pay(&pc, PayBehaviour::Drop).await.unwrap(), "get_brand_wcpay_request:ok");
    assert!(!paid(&c).await);
    let v = c.json("/me/pay?sync=1").await;
    assert_eq!(v["paid"], true, "{v}");

    // Forged or wrong notifications, signed properly or not: refused, nothing paid.
    let s3_orders = db.payments_of_student(student_id(&wx, school, 3).await).await.unwrap();
    let resource = |no: &str, total: i64| {
        serde_json::json!({ "appid": wx.server.state.wechat.as_ref().unwrap().config.appid, "mchid":
            wx.server.state.wechat.as_ref().unwrap().pay.as_ref().unwrap().mchid, "out_trade_no": no,
            "transaction_id": "4200000000000000000000000001", "trade_type": "JSAPI", "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功", "success_time": "2026-12-06T20:00:00+08:00",
            "payer": { "openid": "o-x" }, "amount": { "total": total, "payer_total": total, "currency": "CNY" } })
    };
    assert_eq!(
        post_notification(&wx, &wx.platform, "TRANSACTION.SUCCESS", resource("GPunknown000001", 3000), 0).await,
        400
    );
    let other = MerchantKey::generate(&wx.platform.serial);
    let no3 = s3_orders[0].out_trade_no.clone().unwrap();
    assert_eq!(post_notification(&wx, &other, "TRANSACTION.SUCCESS", resource(&no3, 3000), 0).await, 401);
    assert_eq!(
        post_notification(&wx, &wx.platform, "TRANSACTION.SUCCESS", resource(&no3, 3000), 600).await,
        401,
        "stale"
    );
    // Already paid and the same notification again (out of order, after the query): accepted, nothing changes.
    assert_eq!(post_notification(&wx, &wx.platform, "TRANSACTION.SUCCESS", resource(&no3, 3000), 0).await, 204);
    assert_eq!(db.payments_of_student(student_id(&wx, school, 3).await).await.unwrap().len(), 1);
    // A wrong amount for an unpaid order: refused, and the order stays unpaid.
    let r = admin
        .upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(4, 1).into_bytes())
        .await;
    assert_eq!(r.status(), 200);
    let d = wechat_student(&wx, "wxp", "4004", 4).await;
    let pd = jsapi(&d).await;
    assert_eq!(wx.fake.pay(&pd, PayBehaviour::WrongAmount(1)).await.unwrap(), "get_brand_wcpay_request:ok");
    until("the refused amount", async || wx.fake.notify_log().iter().any(|n| n.status == Some(400))).await;
    assert!(!paid(&d).await, "a notification with the wrong amount marks nothing paid");
    assert!(audit_actions(&wx, school).await.contains(&"payment.wrong_amount".to_string()));

    // A refund by the admin: WeChat Pay confirms by notification, the fee counts as unpaid again.
    let pay_row = db.payments_of_student(s1).await.unwrap().remove(0);
    let r = admin.post(&format!("/admin/schools/{school}/payments/{}/refund", pay_row.id), &[]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    until("the refund", async || {
        db.payment(pay_row.id).await.unwrap().status == gradphoto_store::db::PayStatus::Refunded
    })
    .await;
    assert!(!paid(&a).await);
    assert!(audit_actions(&wx, school).await.contains(&"payment.refund".to_string()));
    // A refund of an order that is not paid is refused.
    let r = admin.post(&format!("/admin/schools/{school}/payments/{}/refund", pay_row.id), &[]).await;
    assert_eq!(r.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wechat_configured_nothing_changes_and_the_routes_are_described() {
    let server = TestServer::start().await;
    let c = Client::with_agent(&server.base, &wechat_ua("1001"));
    assert_eq!(c.get_page("/").await.status(), 200, "WeChat's browser without [wechat]: the pages as before");
    assert_eq!(c.get("/wechat/oauth?code=x&state=y").await.status(), 404);
    let r = reqwest::Client::new().post(format!("{}/wechat/pay/notify", server.base)).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404, "no WeChat Pay, no notification route");
    let api = c.json("/api/openapi.json").await;
    let paths = api["paths"].as_object().unwrap();
    for p in ["/wechat/oauth", "/wechat/pay/notify", "/me/pay/wechat", "/admin/schools/{school}/payments/reconcile"] {
        assert!(paths.contains_key(p), "{p} is not described");
    }
    let notify = &api["paths"]["/wechat/pay/notify"]["post"];
    assert_eq!(notify["security"][0]["wechatpaySignature"], serde_json::json!([]), "{notify}");
    let names: Vec<&str> = notify["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"Wechatpay-Signature") && !names.contains(&"x-csrf-token"), "{names:?}");
}

/// `gradphoto wechat-fake`'s printed `[wechat]` block is a configuration the service accepts and starts with.
#[test]
fn the_demo_fakes_config_block_starts_the_service() {
    let fake_dir = tempfile::tempdir().unwrap();
    let fc = gradphoto_wechat_fake::load_or_create(fake_dir.path()).unwrap();
    let again = gradphoto_wechat_fake::load_or_create(fake_dir.path()).unwrap();
    assert_eq!((fc.appid.as_str(), fc.mchid.as_str()), (again.appid.as_str(), again.mchid.as_str()), "kept");
    let block =
        gradphoto_wechat_fake::config_block(&fc, fake_dir.path(), "http://127.0.0.1:8090", "http://127.0.0.1:8080");
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("config.toml"), &block).unwrap();
    let config = gradphoto_web::Config::load(data.path()).expect("the printed block parses");
    let w = config.wechat.as_ref().unwrap();
    assert_eq!(w.cashier_url.as_deref(), Some("http://127.0.0.1:8090/__fake/cashier"));
    assert!(w.templates.approved.is_some() && w.templates.rejected.is_some());
    let wx = gradphoto_web::wechat::WeChat::open(w, data.path()).expect("keys and settings load");
    assert!(wx.pay.is_some());
}
