//! The authorisation matrix: every route of the table × every role × own or other school (and, for students,
//! own or another student's data), and API tokens: of the school and of another, revoked, and without the route's
//! scope. A denied call must answer 401, 403 or 404 and change nothing; an allowed one must not. The table printed at
//! the end goes into the closing note.

use crate::common::*;
use gradphoto_store::db::Role;
use gradphoto_web::routes::{Access, ROUTES, Scope};

struct Actor {
    name: &'static str,
    client: Option<Client>,
    /// What the actor is, for the expectation.
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Anonymous,
    StudentA,
    StudentB,
    ReviewerA,
    ReviewerB,
    AdminA,
    AdminB,
    Super,
    /// An API token of school A (or B) with these scopes, live or revoked.
    Token {
        school_a: bool,
        scopes: &'static [Scope],
        revoked: bool,
    },
}

/// Whether `kind` may call `route` on school A's resources (student A's, for student routes).
fn allowed(route: &gradphoto_web::routes::Route, kind: Kind) -> bool {
    // A token: only the routes of its scopes (by the table's scope column), and there what its school's admin may.
    if let Kind::Token { school_a, scopes, revoked } = kind {
        let admin = if school_a { Kind::AdminA } else { Kind::AdminB };
        return !revoked && route.scope.is_some_and(|s| scopes.contains(&s)) && allowed(route, admin);
    }
    let has_id = route.path.contains('{');
    match route.access {
        Access::Anyone => true,
        Access::Student => match kind {
            Kind::StudentA => true,
            // Their own page without ids; anything naming student A's data is not theirs.
            Kind::StudentB => !has_id,
            _ => false,
        },
        Access::Staff => match kind {
            Kind::ReviewerA | Kind::AdminA | Kind::Super => true,
            // The queue of their own school; never A's submissions.
            Kind::ReviewerB | Kind::AdminB => !has_id,
            _ => false,
        },
        Access::Admin => match kind {
            Kind::AdminA | Kind::Super => true,
            Kind::AdminB => !has_id,
            _ => false,
        },
        Access::SuperAdmin => kind == Kind::Super,
    }
}

/// The actors' tokens: made by their schools' admins through the API, one of them revoked at once.
async fn tokens(server: &TestServer, a: gradphoto_store::SchoolId, b: gradphoto_store::SchoolId) -> Vec<Actor> {
    let all: Vec<&str> = Scope::ALL.iter().map(|s| s.id()).collect();
    let mut admin_a = server.client();
    admin_a.login("/staff/login", "school-a-admin", "school-a-admin-password").await;
    let mut admin_b = server.client();
    admin_b.login("/staff/login", "school-b-admin", "school-b-admin-password").await;
    let (_, token_a) = api_token(&admin_a, a, "token A", &all).await;
    let (_, token_b) = api_token(&admin_b, b, "token B", &all).await;
    let (revoked, revoked_secret) = api_token(&admin_a, a, "revoked A", &all).await;
    let r = admin_a.post(&format!("/admin/schools/{a}/tokens/{revoked}/revoke"), &[]).await;
    assert_eq!(r.status(), 200);
    let (_, export_only) = api_token(&admin_a, a, "export-only A", &["export"]).await;
    let token = |secret: &str| Some(Client::with_token(&server.base, secret));
    vec![
        Actor {
            name: "token A",
            client: token(&token_a),
            kind: Kind::Token { school_a: true, scopes: &Scope::ALL, revoked: false },
        },
        Actor {
            name: "token B",
            client: token(&token_b),
            kind: Kind::Token { school_a: false, scopes: &Scope::ALL, revoked: false },
        },
        Actor {
            name: "revoked token A",
            client: token(&revoked_secret),
            kind: Kind::Token { school_a: true, scopes: &Scope::ALL, revoked: true },
        },
        Actor {
            name: "export-only token A",
            client: token(&export_only),
            kind: Kind::Token { school_a: true, scopes: &[Scope::Export], revoked: false },
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_every_role_own_and_other_school() {
    // WeChat and WeChat Pay on (against the fake), so that their routes are reached, not refused as switched off.
    let wx = crate::common::wechat::server().await;
    // A reference, so the helper closures below copy it.
    let server = &wx.server;
    let mut root = server.client();
    assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
    let a = school(server, &root, "school-a", "0").await;
    let b = school(server, &root, "school-b", "0").await;
    server.staff("reviewer-a", Role::Reviewer, Some(a)).await;
    server.staff("reviewer-b", Role::Reviewer, Some(b)).await;
    for (code, school) in [("school-a", a), ("school-b", b)] {
        let mut admin = server.client();
        admin.login("/staff/login", &format!("{code}-admin"), &format!("{code}-admin-password")).await;
        let first = if school == a { 1 } else { 100 };
        let r = admin
            .upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(first, 3).into_bytes())
            .await;
        assert_eq!(r.status(), 200);
    }
    let student = |serial: u32, code: &'static str| async move {
        let mut c = server.client();
        let id = id_number(serial);
        let (s, body) = c.login(&format!("/s/{code}/login"), &format!("S{serial:05}"), &id[id.len() - 6..]).await;
        assert_eq!(s, 200, "{body}");
        c
    };
    let student_a = student(1, "school-a").await;
    let student_b = student(100, "school-b").await;

    // School A's resources: student A's photo type, photo and submission, and a second student of A for the
    // admin actions that end sessions (unbinding).
    let me = student_a.json("/me").await;
    let type_a = me["types"][0]["id"].as_i64().unwrap();
    let original = approvable_originals()[0].1.clone();
    let r = student_a.upload(&format!("/me/photos/{type_a}"), "photo", "a.jpg", original.clone()).await;
    let photo_a = r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap();
    let r = student_a.post(&format!("/me/photos/{type_a}/submit"), &[("photo", &photo_a.to_string())]).await;
    let submission_a = r.json::<serde_json::Value>().await.unwrap()["submission"].as_i64().unwrap();
    let other_a = server.state.db.student_by_no(a, "S00002").await.unwrap().unwrap().id;
    // Approved, so that the registered file exists to be asked for.
    let mut reviewer = server.client();
    reviewer.login("/staff/login", "reviewer-a", "reviewer-a-password").await;
    let r = reviewer.post(&format!("/review/{submission_a}/approve"), &[("photo", &photo_a.to_string())]).await;
    assert_eq!(r.status(), 200);
    // A payment of student A (offline: refusing to refund it is the handler's own answer, past the checks), and a
    // message of student A's to resend.
    let student_a_id = server.state.db.student_by_no(a, "S00001").await.unwrap().unwrap().id;
    let notice = gradphoto_store::db::Notice { kind: "submitted", title: "t", body: "b", payload: "{}" };
    server.state.db.mark_paid(student_a_id, "offline", "authz", 100, &notice).await.unwrap();
    let payment_a = server.state.db.payments_of_student(student_a_id).await.unwrap()[0].id;
    // (Delivered or not — the worker races this — an admin of A reaches the handler: resent, or 409 for a row that
    // is no dead letter; others get 403/404.)
    let outbox_a = server.state.db.outbox_all_of_student(student_a_id).await.unwrap();
    let outbox_a = outbox_a.first().map(|i| i.id).expect("student A has a notice");
    // The anonymous client holds a pre-session token, so its calls reach the handlers' own checks (without it
    // they stop at the CSRF guard, which proves less).
    let mut anonymous = server.client();
    anonymous.get_page("/staff/login").await;
    anonymous.csrf = anonymous.cookie("gp_pre").unwrap();

    let login = |user: &'static str| async move {
        let mut c = server.client();
        assert_eq!(c.login("/staff/login", user, &format!("{user}-password")).await.0, 200, "{user}");
        c
    };
    // A token of school A for the revoking route to revoke (and not one of the actors' own).
    let mut admin_a = server.client();
    admin_a.login("/staff/login", "school-a-admin", "school-a-admin-password").await;
    let (spare_token, _) = api_token(&admin_a, a, "spare A", &["progress"]).await;
    let mut actors = vec![
        Actor { name: "anonymous", client: Some(anonymous), kind: Kind::Anonymous },
        Actor { name: "student A", client: Some(student_a), kind: Kind::StudentA },
        Actor { name: "student B", client: Some(student_b), kind: Kind::StudentB },
        Actor { name: "reviewer A", client: Some(login("reviewer-a").await), kind: Kind::ReviewerA },
        Actor { name: "reviewer B", client: Some(login("reviewer-b").await), kind: Kind::ReviewerB },
        Actor { name: "admin A", client: Some(login("school-a-admin").await), kind: Kind::AdminA },
        Actor { name: "admin B", client: Some(login("school-b-admin").await), kind: Kind::AdminB },
        Actor { name: "super", client: Some(root), kind: Kind::Super },
    ];
    actors.extend(tokens(server, a, b).await);

    let fill = |path: &str| {
        path.replace("{code}", "school-a")
            .replace("{type}", &type_a.to_string())
            .replace("{photo}", &photo_a.to_string())
            .replace("{submission}", &submission_a.to_string())
            .replace("{school}", &a.to_string())
            .replace("{student}", &other_a.to_string())
            .replace("{file}", "original.jpg")
            .replace("{payment}", &payment_a.to_string())
            .replace("{id}", &outbox_a.to_string())
            .replace("{token}", &spare_token.to_string())
    };
    let mut table = Vec::new();
    let mut checks = 0;
    let mut failures = Vec::new();
    for route in ROUTES {
        // Signing in and out are exercised by every other test; logging out here would end the actors' sessions.
        if route.access == Access::Anyone && route.method == "POST" {
            continue;
        }
        let path = fill(route.path);
        let mut row = vec![format!("{} {}", route.method, route.path)];
        for actor in &actors {
            let c = actor.client.as_ref().unwrap();
            let expected = allowed(route, actor.kind);
            let status = match (route.method, route.body) {
                ("GET", _) => c.get(&path).await.status().as_u16(),
                (_, Some("multipart")) => {
                    let (field, bytes) = if path.ends_with("/roster") {
                        ("roster", roster_csv(1, 3).into_bytes())
                    } else {
                        ("photo", original.clone())
                    };
                    c.upload(&path, field, "f", bytes).await.status().as_u16()
                }
                _ => {
                    let tag = actor.name.replace(' ', "-").to_lowercase();
                    let photo = photo_a.to_string();
                    let form: Vec<(&str, String)> = if path.ends_with("/approve") || path.ends_with("/submit") {
                        vec![("photo", photo)]
                    } else if path.ends_with("/reject") {
                        vec![("photo", photo), ("reason", "background.color".into())]
                    } else if path == "/admin/schools" {
                        vec![
                            ("province", "上海市".into()),
                            ("city", "上海市".into()),
                            ("code", format!("new-{tag}")),
                            ("name", format!("new {tag}")),
                        ]
                    } else if path.ends_with("/staff") {
                        vec![
                            ("username", format!("x-{tag}")),
                            ("password", "password-123".into()),
                            ("role", "reviewer".into()),
                        ]
                    } else if path.ends_with("/tokens") {
                        vec![("name", format!("t-{tag}")), ("scope", "progress".into())]
                    } else if path == "/me/password" {
                        vec![("current", "wrong".into()), ("new", "whatever-123".into())]
                    } else {
                        Vec::new()
                    };
                    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    c.post(&path, &form).await.status().as_u16()
                }
            };
            checks += 1;
            let denied = matches!(status, 401 | 403 | 404);
            if expected == denied {
                failures.push(format!(
                    "{} {} as {}: {status} (expected {})",
                    route.method,
                    path,
                    actor.name,
                    if expected { "allowed" } else { "denied" }
                ));
            }
            row.push(if denied { format!("— {status}") } else { format!("ok {status}") });
        }
        table.push(row);
    }
    let header: Vec<&str> = std::iter::once("route").chain(actors.iter().map(|a| a.name)).collect();
    eprintln!("| {} |", header.join(" | "));
    eprintln!("|{}", "---|".repeat(header.len()));
    for row in &table {
        eprintln!("| {} |", row.join(" | "));
    }
    eprintln!("{checks} checks");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checks >= 200, "{checks}");
}
