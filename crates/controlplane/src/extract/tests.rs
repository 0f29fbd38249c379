use axum::http::HeaderValue;
use pp_model::{NewRoute, RoutePatch};

use super::*;

fn bad_request_field(err: ApiError) -> (Option<String>, String) {
    match err {
        ApiError::BadRequest { field, message } => (field, message),
        other => panic!("expected bad_request, got {other:?}"),
    }
}

#[test]
fn json_errors_name_the_field_path() {
    let cases = [
        (
            r#"{"owner_type":"app_instance","owner_id":"a","route_mode":"subdomain","upstream":{"targets":["h:1"]},"bogus":1}"#,
            Some("bogus"),
            "unknown field `bogus`",
        ),
        (
            r#"{"owner_type":"app_instance","owner_id":"a","route_mode":"subdomain","upstream":{"targets":["h:1"],"weight":2}}"#,
            Some("upstream.weight"),
            "unknown field `weight`",
        ),
        (
            r#"{"owner_type":"app_instance","owner_id":"a","route_mode":"subdomain","upstream":{"targets":[7]}}"#,
            Some("upstream.targets[0]"),
            "invalid type",
        ),
        (
            r#"{"owner_type":"app_instance","owner_id":"a","route_mode":"subdomain"}"#,
            Some("upstream"),
            "missing field `upstream`",
        ),
        (
            r#"{"owner_type":"app_instance","owner_id":"a","route_mode":"subdomain","upstream":{}}"#,
            Some("upstream.targets"),
            "missing field `targets`",
        ),
        (
            r#"{"owner_type":"robot","owner_id":"a"}"#,
            Some("owner_type"),
            "unknown variant `robot`",
        ),
        (r#"{"owner_id":"#, None, "malformed JSON"),
        ("", None, "malformed JSON"),
    ];
    for (body, want_field, want_in_message) in cases {
        let err = parse_json::<NewRoute>(body.as_bytes()).expect_err(body);
        let (field, message) = bad_request_field(err);
        assert_eq!(field.as_deref(), want_field, "{body}");
        assert!(
            message.contains(want_in_message),
            "{body}: {message:?} lacks {want_in_message:?}"
        );
        if let Some(f) = want_field {
            assert!(message.starts_with(f), "{message:?} should start with {f}");
        }
    }
}

#[test]
fn trailing_bytes_after_the_value_are_malformed_json() {
    let (field, message) =
        bad_request_field(parse_json::<RoutePatch>(b"{} {}").expect_err("trailing"));
    assert_eq!(field, None);
    assert!(message.starts_with("malformed JSON"), "{message}");
}

#[test]
fn valid_json_decodes() {
    let patch: RoutePatch = parse_json(br#"{"status":"disabled"}"#).expect("valid patch");
    assert_eq!(patch.status, Some(pp_model::RouteStatus::Disabled));
}

#[test]
fn only_application_json_is_json() {
    let cases = [
        (Some("application/json"), true),
        (Some("application/json; charset=utf-8"), true),
        (Some("Application/JSON"), true),
        (Some("text/plain"), false),
        (Some("application/jsonx"), false),
        (Some("application/x-www-form-urlencoded"), false),
        (None, false),
    ];
    for (ct, want) in cases {
        let mut headers = HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        assert_eq!(is_json(&headers), want, "{ct:?}");
    }
}

#[test]
fn parse_bool_names_the_field() {
    assert!(matches!(parse_bool("include_deleted", "true"), Ok(true)));
    assert!(matches!(parse_bool("include_deleted", "false"), Ok(false)));
    let (field, _) = bad_request_field(parse_bool("include_deleted", "yes").expect_err("yes"));
    assert_eq!(field.as_deref(), Some("include_deleted"));
}
