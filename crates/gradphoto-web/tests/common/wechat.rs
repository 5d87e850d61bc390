//! A service configured for WeChat against a fresh fake (`gradphoto-wechat-fake`): the API tests and the
//! browser walk share it.

use std::collections::BTreeMap;
use std::time::Duration;

use gradphoto_store::db::Role;
use gradphoto_web::config::{Secret, TemplateConfig, Templates, WechatConfig, WechatPayConfig};
use gradphoto_wechat::MerchantKey;
use gradphoto_wechat_fake::{FakeConfig, FakeWechat};

use super::*;

/// WeChat's in-app browser on Android; `MMWEBID` tells the fake which WeChat user is browsing.
pub fn wechat_ua(user: &str) -> String {
    format!(
        "Mozilla/5.0 (Linux; Android 14; V2307A Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) \
         Version/4.0 Chrome/130.0.6723.103 Mobile Safari/537.36 XWEB/1300289 MMWEBSDK/20241202 MMWEBID/{user} \
         MicroMessenger/8.0.56.2800(0x28003837) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
    )
}

fn template(id: &str, keys: &[(&str, &str)]) -> Option<TemplateConfig> {
    Some(TemplateConfig {
        id: id.into(),
        keys: keys.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    })
}

pub struct Wx {
    pub server: TestServer,
    pub fake: FakeWechat,
    /// The fake's own signing key, to forge notifications the service must refuse (or accept when well made).
    pub platform: MerchantKey,
    pub apiv3: String,
    _keys: tempfile::TempDir,
}

/// A service configured for WeChat (and WeChat Pay) against a fresh fake, with a super-admin `root`.
pub async fn server() -> Wx {
    let (mut fc, merchant) = FakeConfig::generate();
    fc.template_ids = vec!["T-SUB".into(), "T-OK".into(), "T-NO".into(), "T-EXP".into()];
    // A notification refused is tried again soon (WeChat's schedule starts at 15 s).
    fc.notify_schedule = vec![Duration::from_millis(200); 4];
    let platform = fc.platform_key.clone();
    let apiv3 = fc.apiv3_key.clone();
    let fake = FakeWechat::start(fc.clone()).await;
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("apiclient_key.pem"), merchant.private_pem().unwrap()).unwrap();
    std::fs::write(keys.path().join("pub_key.pem"), fake.platform_public_pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = super::config();
    config.wechat = Some(WechatConfig {
        appid: fc.appid.clone(),
        secret: Secret(fc.secret.clone()),
        base_url: base,
        api_base: fake.base.clone(),
        open_base: fake.base.clone(),
        cashier_url: None,
        templates: Templates {
            submitted: template(
                "T-SUB",
                &[("thing1", "school"), ("character_string2", "student_no"), ("phrase3", "status")],
            ),
            approved: template("T-OK", &[("thing1", "school"), ("phrase3", "status"), ("time4", "time")]),
            rejected: template("T-NO", &[("thing1", "school"), ("phrase3", "status"), ("thing4", "reasons")]),
            exported: template("T-EXP", &[("thing1", "school"), ("phrase3", "status")]),
        },
        max_attempts: 3,
        pay: Some(WechatPayConfig {
            mchid: fc.mchid.clone(),
            merchant_serial: fc.merchant_serial.clone(),
            merchant_key_file: keys.path().join("apiclient_key.pem"),
            apiv3_key: Secret(fc.apiv3_key.clone()),
            public_key_id: fake.platform_serial(),
            public_key_file: keys.path().join("pub_key.pem"),
            pay_base: fake.base.clone(),
        }),
    });
    let server = TestServer::start_at(listener, config).await;
    server.staff("root", Role::SuperAdmin, None).await;
    Wx { server, fake, platform, apiv3, _keys: keys }
}

/// [`server`] with a school `code` at `fee` yuan, its roster of three students, and a reviewer `<code>-rev`.
/// Returns the admin's client.
pub async fn start(code: &str, fee: &str) -> (Wx, gradphoto_store::SchoolId, Client) {
    let wx = server().await;
    let server = &wx.server;
    let mut root = server.client();
    assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
    let school = school(server, &root, code, fee).await;
    let mut admin = server.client();
    assert_eq!(admin.login("/staff/login", &format!("{code}-admin"), &format!("{code}-admin-password")).await.0, 200);
    let r = admin
        .upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 3).into_bytes())
        .await;
    assert_eq!(r.status(), 200);
    let r = admin
        .post(
            &format!("/admin/schools/{school}/staff"),
            &[("username", &format!("{code}-rev")), ("password", "reviewer-password"), ("role", "reviewer")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    (wx, school, admin)
}
