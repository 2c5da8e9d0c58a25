//! Every extraction and conversion form of the "frictions" list compiles, and does
//! what it says: `Option<..>` for every extractor, `login(user, [])`, `UserId` from integers
//! and UUID-like ids, a stack whose body is only `Default`, the re-exports.

mod common;

use std::convert::Infallible;
use std::fmt;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode, header};
use axum::routing::{get, post};
use common::{Admin, TestApp, req};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use sessionward::{
    DataError, MemoryStore, MemoryStoreBuilder, RequireAuth, RequireFreshAuth, RequireRole,
    RngError, RoleSet, Session, SessionError, SessionLayer, Sessions, SweeperStatus, UserId,
    require_auth,
};
use tower::{ServiceBuilder, ServiceExt as _};

async fn optional_forms(
    session: Option<Session>,
    sessions: Option<Sessions>,
    auth: Option<RequireAuth>,
    admin: Option<RequireRole<Admin>>,
    fresh: Option<RequireFreshAuth>,
    very_fresh: Option<RequireFreshAuth<1>>,
) -> String {
    format!(
        "session={} sessions={} auth={} admin={} fresh={} very_fresh={}",
        session.is_some(),
        sessions.is_some(),
        auth.map(|a| a.user.to_string()).unwrap_or_default(),
        admin.is_some(),
        fresh.is_some(),
        very_fresh.is_some(),
    )
}

struct UuidLike(u128);

impl fmt::Display for UuidLike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// Every sign-in form; the last one stands.
async fn login_forms(session: Session, body: String) -> Result<StatusCode, SessionError> {
    let vec_roles: Vec<String> = vec!["user".into()];
    let str_roles: Vec<&str> = vec!["user"];
    match body.as_str() {
        "none" => session.login("alice", []).await?,
        "i32" => session.login(42_i32, []).await?,
        "i64" => session.login(42_i64, ["user"]).await?,
        "u32" => session.login(42_u32, &vec_roles).await?,
        "u64" => session.login(42_u64, vec_roles).await?,
        "usize" => session.login(42_usize, str_roles).await?,
        "uuid" => {
            let id = UuidLike(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
            session
                .login(UserId::display(&id), RoleSet::empty())
                .await?;
        }
        "uuid-str" => {
            let id: String = "67e55044-10b1-426f-9247-bb680e5fe0c8".to_owned();
            session.login(&id, ["user"]).await?;
        }
        "iter" => {
            let roles = ["a", "b"].iter().map(|r| format!("{r}!"));
            session.login("alice", roles.collect::<RoleSet>()).await?;
        }
        _ => {
            session.login("alice", ["user"]).await?;
            session.set_roles([]).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

fn app() -> (TestApp, Router) {
    let app = TestApp::new();
    let router =
        Router::new()
            .route("/forms", get(optional_forms))
            .route("/login-forms", post(login_forms))
            .route(
                "/me",
                get(|a: RequireAuth| async move {
                    format!("{} [{}]", a.user, a.roles.to_vec().join(","))
                }),
            )
            .layer(app.layer.clone());
    (app, router)
}

async fn text(router: &Router, r: Request<Body>) -> (StatusCode, Option<String>, String) {
    let res = router.clone().oneshot(r).await.expect("infallible");
    let status = res.status();
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.strip_prefix("__Host-id="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn option_of_every_extractor() {
    let (app, router) = app();
    let (_, _, body) = text(&router, req("GET", "/forms", None)).await;
    assert_eq!(
        body,
        "session=true sessions=true auth= admin=false fresh=false very_fresh=false"
    );
    let user = app.login("alice", "user").await;
    let (_, _, body) = text(&router, req("GET", "/forms", Some(&user))).await;
    assert_eq!(
        body,
        "session=true sessions=true auth=alice admin=false fresh=true very_fresh=true"
    );
    let root = app.login("root", "user,admin").await;
    app.advance(2);
    let (_, _, body) = text(&router, req("GET", "/forms", Some(&root))).await;
    assert_eq!(
        body,
        "session=true sessions=true auth=root admin=true fresh=true very_fresh=false"
    );
    // A store failure is never a silent `None`.
    app.store.fail(true);
    let (status, _, _) = text(&router, req("GET", "/forms", Some(&root))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    app.store.fail(false);
    // Without the layer: `None` for Session and Sessions, 500 for the requirements.
    let bare = Router::new()
        .route(
            "/s",
            get(|s: Option<Session>, a: Option<Sessions>| async move {
                format!("{} {}", s.is_some(), a.is_some())
            }),
        )
        .route(
            "/a",
            get(|a: Option<RequireAuth>| async move { a.is_some().to_string() }),
        );
    let (status, _, body) = text(&bare, req("GET", "/s", None)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "false false"));
    let (status, _, _) = text(&bare, req("GET", "/a", None)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn every_sign_in_form() {
    let (_app, router) = app();
    for (form, expected) in [
        ("none", "alice []"),
        ("i32", "42 []"),
        ("i64", "42 [user]"),
        ("u32", "42 [user]"),
        ("u64", "42 [user]"),
        ("usize", "42 [user]"),
        ("uuid", "67e55044-10b1-426f-9247-bb680e5fe0c8 []"),
        ("uuid-str", "67e55044-10b1-426f-9247-bb680e5fe0c8 [user]"),
        ("iter", "alice [a!,b!]"),
        ("set-roles-empty", "alice []"),
    ] {
        let login = Request::post("/login-forms")
            .body(Body::from(form))
            .expect("request");
        let (status, cookie, _) = text(&router, login).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{form}");
        let cookie = cookie.expect("a session cookie");
        let (_, _, me) = text(&router, req("GET", "/me", Some(&cookie))).await;
        assert_eq!(me, expected, "{form}");
    }
}

/// A body type with nothing but `Default` (and `http_body::Body`).
#[derive(Default, Debug)]
struct DefaultOnly(Vec<u8>);

#[tokio::test]
async fn a_stack_whose_body_is_only_default() {
    // A boxed body, as tower-http stacks have them.
    let inner = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(UnsyncBoxBody::<Bytes, Infallible>::default()))
    });
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(MemoryStore::new()))
        .layer(sessionward::CrossOriginGuard::new())
        .layer(require_auth())
        .service(inner);
    let res = svc
        .oneshot(req("GET", "/", None))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));

    // A body type the layers know nothing about: the status and headers say it, the body
    // stays empty, and no Content-Type claims JSON.
    let inner = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(DefaultOnly(b"ok".to_vec())))
    });
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(MemoryStore::new()))
        .layer(require_auth())
        .service(inner);
    let res = svc
        .oneshot(req("GET", "/", None))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.into_body().0.is_empty());
}

#[tokio::test]
async fn the_re_exports_name_their_types() {
    let builder: MemoryStoreBuilder = MemoryStore::builder();
    let store = builder.build();
    let status: SweeperStatus = store.sweeper();
    assert!(format!("{status:?}").contains("Sweeper"), "{status:?}");
    let too_large = DataError::TooLarge { size: 2, limit: 1 };
    assert_eq!(
        SessionError::from(too_large).status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // `RngError` is nameable (it only comes from the operating system's generator).
    let from_rng = |e: RngError| SessionError::from(e).status();
    let _: fn(RngError) -> StatusCode = from_rng;
}
