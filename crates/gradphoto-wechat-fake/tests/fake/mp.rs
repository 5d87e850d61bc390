//! The official-account side of the fake, driven by the real client (`MpClient`) and, where the client refuses
//! to send something bad, by raw HTTP.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use gradphoto_wechat::oauth::{SCOPE_BASE, authorize_url};
use gradphoto_wechat::template::{TemplateMessage, Value as TValue};
use gradphoto_wechat::{ApiError, WechatError};
use gradphoto_wechat_fake::{Api, FakeWechat, TokenCalls};
use serde_json::{Value, json};

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

fn code_of(e: WechatError) -> ApiError {
    match e {
        WechatError::Api(a) => a,
        other => panic!("expected an official-account error, got {other:?}"),
    }
}

async fn new_code(fake: &FakeWechat, mmwebid: &str) -> String {
    let c = fake.config();
    let url = authorize_url(&fake.base, &c.appid, "https://svc.example/cb", SCOPE_BASE, "s");
    let loc = fake.visit_authorize(&url, mmwebid).await.unwrap();
    query_of(&loc).remove("code").expect("a code")
}

#[tokio::test]
async fn authorize_then_exchange_gives_the_users_openid_once() {
    let (cfg, _) = crate::common::config();
    let fake = FakeWechat::start(cfg.clone()).await;
    let url = authorize_url(&fake.base, &cfg.appid, "https://svc.example/wechat/cb?next=%2Fme", SCOPE_BASE, "St4te");
    let loc = fake.visit_authorize(&url, "20260612").await.unwrap();
    assert!(loc.starts_with("https://svc.example/wechat/cb?next=%2Fme&code="), "{loc}");
    let q = query_of(&loc);
    assert_eq!((q["next"].as_str(), q["state"].as_str()), ("/me", "St4te"));

    let mp = fake.mp_client();
    let t = mp.oauth_exchange(&q["code"]).await.unwrap();
    assert_eq!(t.openid, fake.openid_for_mmwebid("20260612"));
    assert!(t.openid.starts_with('o') && t.openid.len() == 28);
    assert_eq!((t.scope.as_str(), t.expires_in, t.is_snapshotuser), ("snsapi_base", 7200, None));
    assert_ne!(fake.openid_for_mmwebid("20260613"), t.openid, "another user, another openid");

    let again = code_of(mp.oauth_exchange(&q["code"]).await.unwrap_err());
    assert_eq!(again.errcode, 40163);
    assert!(again.errmsg.starts_with("code been used, rid: "), "{}", again.errmsg);
    assert_eq!(code_of(mp.oauth_exchange("nosuchcode").await.unwrap_err()).errcode, 40029);

    // A code older than five minutes is invalid.
    let old = new_code(&fake, "20260612").await;
    fake.advance_clock(Duration::from_secs(301));
    assert_eq!(code_of(mp.oauth_exchange(&old).await.unwrap_err()).errcode, 40029);

    // Wrong credentials.
    let code = new_code(&fake, "1").await;
    let bad_secret = gradphoto_wechat::MpClient::new(&fake.base, &cfg.appid, "0123456789abcdef0123456789abcdef");
    assert_eq!(code_of(bad_secret.oauth_exchange(&code).await.unwrap_err()).errcode, 40125);
    let bad_appid = gradphoto_wechat::MpClient::new(&fake.base, "wx0000000000000000", &cfg.secret);
    assert_eq!(code_of(bad_appid.oauth_exchange(&code).await.unwrap_err()).errcode, 40013);
    // Refused attempts do not use the code up.
    mp.oauth_exchange(&code).await.unwrap();

    fake.fail_next(Api::OauthExchange, -1, 1);
    let code = new_code(&fake, "1").await;
    assert_eq!(code_of(mp.oauth_exchange(&code).await.unwrap_err()).errcode, -1);
    mp.oauth_exchange(&code).await.unwrap();
    assert_eq!(fake.exchange_calls(), 9);
}

#[tokio::test]
async fn a_refusing_user_comes_back_without_a_code() {
    let (cfg, _) = crate::common::config();
    let fake = FakeWechat::start(cfg.clone()).await;
    fake.refuse_authorization("777");
    let url = authorize_url(&fake.base, &cfg.appid, "https://svc.example/cb", SCOPE_BASE, "abc");
    let loc = fake.visit_authorize(&url, "777").await.unwrap();
    assert_eq!(loc, "https://svc.example/cb?state=abc");
    // Others still get codes; refusing by openid works too.
    assert!(query_of(&fake.visit_authorize(&url, "778").await.unwrap()).contains_key("code"));
    fake.refuse_authorization(&fake.openid_for_mmwebid("778"));
    assert!(!query_of(&fake.visit_authorize(&url, "778").await.unwrap()).contains_key("code"));
}

#[tokio::test]
async fn authorize_checks_its_parameters_and_falls_back_to_a_cookie() {
    let (cfg, _) = crate::common::config();
    let fake = FakeWechat::start(cfg.clone()).await;
    let http = crate::common::http();

    let bad = authorize_url(&fake.base, "wx0000000000000000", "https://svc.example/cb", SCOPE_BASE, "s");
    let r = http.get(&bad).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("10003"));
    let bad_scope = authorize_url(&fake.base, &cfg.appid, "https://svc.example/cb", "snsapi_login", "s");
    assert_eq!(http.get(&bad_scope).send().await.unwrap().status().as_u16(), 400);
    let no_type =
        format!("{}/connect/oauth2/authorize?appid={}&redirect_uri=https%3A%2F%2Fx.example", fake.base, cfg.appid);
    assert_eq!(http.get(format!("{no_type}&scope=snsapi_base")).send().await.unwrap().status().as_u16(), 400);

    // An ordinary browser: the fake names it with a cookie, and knows it again by the cookie.
    let url = authorize_url(&fake.base, &cfg.appid, "https://svc.example/cb", SCOPE_BASE, "s");
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("fakewx_uid="));
    let code1 = query_of(r.headers()["location"].to_str().unwrap())["code"].clone();
    let r = http.get(&url).header("cookie", &cookie).send().await.unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    let code2 = query_of(r.headers()["location"].to_str().unwrap())["code"].clone();
    let mp = fake.mp_client();
    assert_eq!(mp.oauth_exchange(&code1).await.unwrap().openid, mp.oauth_exchange(&code2).await.unwrap().openid);
}

fn message(touser: &str, client_msg_id: Option<&str>) -> TemplateMessage {
    let mut data = BTreeMap::new();
    data.insert("thing1".to_string(), TValue { value: "学历证书照片审核通过".into() });
    data.insert("time2".to_string(), TValue { value: "2026-06-12 10:30".into() });
    TemplateMessage {
        touser: touser.into(),
        template_id: "TPL_REVIEWED".into(),
        url: Some("https://svc.example/me".into()),
        data,
        client_msg_id: client_msg_id.map(str::to_string),
    }
}

#[tokio::test]
async fn the_stable_token_is_stable_until_forced_and_forcing_is_limited() {
    let (cfg, _) = crate::common::config();
    let fake = FakeWechat::start(cfg).await;
    let mp = fake.mp_client();
    let user = fake.openid_for_mmwebid("42");

    let a = mp.stable_token(false).await.unwrap();
    let b = mp.stable_token(false).await.unwrap();
    assert_eq!(a.access_token, b.access_token);
    assert!((7190..=7200).contains(&b.expires_in));
    mp.send_template(&a.access_token, &message(&user, None)).await.unwrap();

    let forced = mp.stable_token(true).await.unwrap();
    assert_ne!(forced.access_token, a.access_token);
    let old = code_of(mp.send_template(&a.access_token, &message(&user, None)).await.unwrap_err());
    assert!(old.errcode == 40001 && old.is_token_error());
    mp.send_template(&forced.access_token, &message(&user, None)).await.unwrap();
    assert_eq!(code_of(mp.stable_token(true).await.unwrap_err()).errcode, 45011);
    fake.advance_clock(Duration::from_secs(31));
    let forced2 = mp.stable_token(true).await.unwrap();
    assert_eq!(mp.stable_token(false).await.unwrap().access_token, forced2.access_token);

    fake.expire_token();
    assert_eq!(
        code_of(mp.send_template(&forced2.access_token, &message(&user, None)).await.unwrap_err()).errcode,
        42001
    );
    let fresh = mp.stable_token(false).await.unwrap();
    assert_ne!(fresh.access_token, forced2.access_token);
    mp.send_template(&fresh.access_token, &message(&user, None)).await.unwrap();

    // Five minutes before expiry the normal mode hands out a new token; the old one works until it expires.
    fake.advance_clock(Duration::from_secs(7200 - 299));
    let renewed = mp.stable_token(false).await.unwrap();
    assert_ne!(renewed.access_token, fresh.access_token);
    mp.send_template(&fresh.access_token, &message(&user, None)).await.unwrap();
    fake.advance_clock(Duration::from_secs(300));
    assert_eq!(code_of(mp.send_template(&fresh.access_token, &message(&user, None)).await.unwrap_err()).errcode, 42001);
    mp.send_template(&renewed.access_token, &message(&user, None)).await.unwrap();

    fake.fail_next(Api::StableToken, 45009, 1);
    assert_eq!(code_of(mp.stable_token(false).await.unwrap_err()).errcode, 45009);
    assert_eq!(mp.stable_token(false).await.unwrap().access_token, renewed.access_token);
    assert_eq!(fake.token_calls(), TokenCalls { normal: 7, forced: 3 });

    let wrong = gradphoto_wechat::MpClient::new(&fake.base, &fake.config().appid, "0123456789abcdef0123456789abcdef");
    assert_eq!(code_of(wrong.stable_token(false).await.unwrap_err()).errcode, 40125);
}

#[tokio::test]
async fn at_most_twenty_forced_refreshes_a_day() {
    let (cfg, _) = crate::common::config();
    let fake = FakeWechat::start(cfg).await;
    let mp = fake.mp_client();
    // Start just after a Beijing midnight, so the 20 tries (10 minutes of fake time) share one day.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let day_ms = 86_400_000;
    fake.advance_clock(Duration::from_millis(day_ms - (now_ms + 8 * 3_600_000) % day_ms + 60_000));
    for _ in 0..20 {
        mp.stable_token(true).await.unwrap();
        fake.advance_clock(Duration::from_secs(31));
    }
    assert_eq!(code_of(mp.stable_token(true).await.unwrap_err()).errcode, 45009);
    fake.advance_clock(Duration::from_secs(86_400));
    mp.stable_token(true).await.unwrap();
}

async fn raw_send(fake: &FakeWechat, token: &str, body: Value) -> Value {
    crate::common::http()
        .post(format!("{}/cgi-bin/message/template/send", fake.base))
        .query(&[("access_token", token)])
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn template_sends_are_checked_and_deduplicated() {
    let (mut cfg, _) = crate::common::config();
    cfg.template_ids = vec!["TPL_REVIEWED".into()];
    let fake = FakeWechat::start(cfg).await;
    let mp = fake.mp_client();
    let token = mp.stable_token(false).await.unwrap().access_token;
    let user = fake.openid_for_mmwebid("5");

    let first = mp.send_template(&token, &message(&user, Some("review-1"))).await.unwrap();
    assert_eq!((first.errcode, first.errmsg.as_str()), (0, "ok"));
    let again = mp.send_template(&token, &message(&user, Some("review-1"))).await.unwrap();
    assert_eq!(again.msgid, first.msgid);
    let other = mp.send_template(&token, &message(&user, Some("review-2"))).await.unwrap();
    assert_ne!(other.msgid, first.msgid);
    let sent = fake.messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].touser, user);
    assert_eq!(sent[0].data["thing1"], "学历证书照片审核通过");
    assert_eq!((sent[0].client_msg_id.as_deref(), Some(sent[0].msgid)), (Some("review-1"), first.msgid));
    assert_eq!(sent[0].url.as_deref(), Some("https://svc.example/me"));
    // After ten minutes the same id is a new message.
    fake.advance_clock(Duration::from_secs(601));
    let later = mp.send_template(&token, &message(&user, Some("review-1"))).await.unwrap();
    assert_ne!(later.msgid, first.msgid);
    assert_eq!(fake.messages().len(), 3);

    // What the client would refuse to send, the fake refuses too.
    let mut body = serde_json::to_value(message(&user, None)).unwrap();
    body["data"]["thing1"] = json!({"value": "照".repeat(21)});
    let r = raw_send(&fake, &token, body.clone()).await;
    assert_eq!(r["errcode"], 47003);
    assert!(r["errmsg"].as_str().unwrap().starts_with("argument invalid! data.thing1.value invalid"), "{r}");
    body["data"]["thing1"] = json!({"value": "通过"});
    body["data"]["first"] = json!({"value": "您好"});
    let r = raw_send(&fake, &token, body).await;
    assert!(r["errmsg"].as_str().unwrap().starts_with("argument invalid! data.first.value invalid"), "{r}");
    assert_eq!(raw_send(&fake, &token, json!("not a message")).await["errcode"], 47001);
    assert_eq!(
        raw_send(&fake, "nosuchtoken", serde_json::to_value(message(&user, None)).unwrap()).await["errcode"],
        40001
    );

    let stranger =
        code_of(mp.send_template(&token, &message("oNeverIssuedByThisAccount00000", None)).await.unwrap_err());
    assert_eq!(stranger.errcode, 40003);
    let mut unknown = message(&user, None);
    unknown.template_id = "TPL_OTHER".into();
    assert_eq!(code_of(mp.send_template(&token, &unknown).await.unwrap_err()).errcode, 40037);

    fake.fail_next(Api::TemplateSend, 45009, 2);
    for _ in 0..2 {
        let e = code_of(mp.send_template(&token, &message(&user, None)).await.unwrap_err());
        assert!(e.errcode == 45009 && e.is_rate_limit());
    }
    mp.send_template(&token, &message(&user, None)).await.unwrap();
    assert_eq!(fake.messages().len(), 4);
}
