//! The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/v1/openapi.json`. It is built from
//! the code, not written by hand: schemas come from the wire types' `ToSchema` derives, query
//! parameters from the handlers' `IntoParams` derives, security and path parameters from the
//! route table (the rows `routes.rs` passes in), and [`operations`] says per route what it takes and
//! answers. The tests below fail when a route of the table has no operation here, or the other
//! way round, so a new route cannot ship undocumented.

mod operations;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::Need;
use keyward_core::api::v1::ErrorBody;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Array, ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required, ResponseBuilder, Schema,
};
use utoipa::{IntoParams, ToSchema};

use crate::needs::RouteDecl;

/// The organization header every organization-scoped operation accepts (SPEC §10b).
pub const ORG_HEADER: &str = "X-Keyward-Organization-Id";
const BEARER: &str = "bearer";

/// Statuses any authenticated operation may answer with the error body: the caller's mistakes
/// (400 invalid, 401 no or bad token, 403 not allowed, 404 absent or hidden, 409 conflict,
/// 413/415 body, 429 throttled) and the server's (500, 503 a dependency down or busy).
const ERROR_STATUSES: [(u16, &str); 10] = [
    (400, "the request or one of its fields is invalid"),
    (401, "no credentials, or unusable ones"),
    (403, "authenticated, but not allowed"),
    (404, "absent, or hidden from the caller"),
    (409, "conflicts with the current state"),
    (413, "the body is larger than the endpoint accepts"),
    (415, "the body is not JSON"),
    (429, "too many attempts; see Retry-After"),
    (500, "internal error; the server log has the details"),
    (
        503,
        "a dependency is unavailable or the server is busy; see Retry-After",
    ),
];

/// The schemas the operations reference, collected as they are named.
#[derive(Default)]
pub(crate) struct Schemas(Vec<(String, RefOr<Schema>)>);

impl Schemas {
    /// A reference to `T`, registering `T` and every schema it names.
    pub(crate) fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name: Cow<'static, str> = T::name();
        self.0.push((name.to_string(), T::schema()));
        T::schemas(&mut self.0);
        RefOr::Ref(Ref::from_schema_name(name))
    }

    /// An array of `T`.
    pub(crate) fn list<T: ToSchema>(&mut self) -> RefOr<Schema> {
        RefOr::T(Schema::Array(Array::new(self.of::<T>())))
    }

    /// A JSON object whose members this document does not spell out.
    pub(crate) fn object(&mut self) -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new().schema_type(Type::Object).build(),
        ))
    }
}

/// One operation: a route of the table, what it takes, and what it answers on success.
pub(crate) struct Op {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub request: Option<RefOr<Schema>>,
    pub status: u16,
    pub response: Option<RefOr<Schema>>,
    pub query: Vec<Parameter>,
}

impl Op {
    fn new(method: Method, path: &'static str, summary: &'static str) -> Self {
        Op {
            method,
            path,
            summary,
            request: None,
            status: 200,
            response: None,
            query: Vec::new(),
        }
    }
    pub(crate) fn get(path: &'static str, summary: &'static str) -> Self {
        Op::new(Method::GET, path, summary)
    }
    pub(crate) fn post(path: &'static str, summary: &'static str) -> Self {
        Op::new(Method::POST, path, summary)
    }
    pub(crate) fn put(path: &'static str, summary: &'static str) -> Self {
        Op::new(Method::PUT, path, summary)
    }
    pub(crate) fn patch(path: &'static str, summary: &'static str) -> Self {
        Op::new(Method::PATCH, path, summary)
    }
    pub(crate) fn delete(path: &'static str, summary: &'static str) -> Self {
        Op::new(Method::DELETE, path, summary)
    }
    /// The JSON request body.
    pub(crate) fn body(mut self, schema: RefOr<Schema>) -> Self {
        self.request = Some(schema);
        self
    }
    /// 200 with this body.
    pub(crate) fn ok(mut self, schema: RefOr<Schema>) -> Self {
        self.status = 200;
        self.response = Some(schema);
        self
    }
    /// 201 with this body.
    pub(crate) fn created(mut self, schema: RefOr<Schema>) -> Self {
        self.status = 201;
        self.response = Some(schema);
        self
    }
    /// 204, no body.
    pub(crate) fn no_content(mut self) -> Self {
        self.status = 204;
        self.response = None;
        self
    }
    /// The query parameters of a handler's `Query<P>`.
    pub(crate) fn query<P: IntoParams>(mut self) -> Self {
        self.query = P::into_params(|| Some(ParameterIn::Query));
        self
    }
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => return None,
    })
}

fn string_schema(min_length: Option<usize>, format_uuid: bool) -> Schema {
    let mut b = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(min_length);
    if format_uuid {
        b = b.format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )));
    }
    Schema::Object(b.build())
}

/// `{name}` segments of a route path, as required path parameters.
fn path_parameters(path: &str) -> Vec<Parameter> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("an id (or, where the resource has one, its name)"))
                .schema(Some(string_schema(Some(1), false)))
                .build()
        })
        .collect()
}

fn org_header() -> Parameter {
    ParameterBuilder::new()
        .name(ORG_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "the organization to act in (its UUID); optional when the caller belongs to one organization only",
        ))
        .schema(Some(string_schema(None, true)))
        .build()
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn operation(op: Op, need: Option<Need>, error: &RefOr<Schema>) -> Operation {
    let tag = op
        .path
        .trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or("api")
        .to_owned();
    let operation_id = format!(
        "{}_{}",
        op.method.as_str().to_lowercase(),
        op.path
            .trim_start_matches("/api/v1/")
            .replace(['/', '-', '.'], "_")
            .replace(['{', '}'], "")
    );
    let public = matches!(need, Some(Need::Public));
    let mut parameters = path_parameters(op.path);
    if matches!(need, Some(Need::Feature(..) | Need::Entity(..))) {
        parameters.push(org_header());
    }
    parameters.extend(op.query);
    let mut b = OperationBuilder::new()
        .summary(Some(op.summary))
        .tag(tag)
        .operation_id(Some(operation_id))
        .parameters(Some(parameters))
        .securities(Some(if public {
            // `{}`: no credentials needed.
            vec![SecurityRequirement::default()]
        } else {
            vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]
        }));
    if let Some(schema) = op.request {
        b = b.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(schema))
                .required(Some(Required::True))
                .build(),
        ));
    }
    let mut success = ResponseBuilder::new().description(match op.status {
        201 => "created",
        204 => "done; no body",
        _ => "success",
    });
    if let Some(schema) = op.response {
        success = success.content("application/json", json_content(schema));
    }
    b = b.response(op.status.to_string(), success.build());
    for (status, description) in ERROR_STATUSES {
        b = b.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(description)
                .content("application/json", json_content(error.clone()))
                .build(),
        );
    }
    b.build()
}

/// The needs of the route table's `/api/v1` routes, by method and path.
fn api_routes(routes: &[RouteDecl]) -> BTreeMap<(String, &'static str), Need> {
    routes
        .iter()
        .filter(|decl| decl.path.starts_with("/api/v1/"))
        .map(|decl| ((decl.method.as_str().to_owned(), decl.path), decl.need))
        .collect()
}

/// Builds the document for the route table's rows `routes`.
pub fn document(routes: &[RouteDecl]) -> OpenApi {
    let mut schemas = Schemas::default();
    let error = schemas.of::<ErrorBody>();
    let ops = operations::operations(&mut schemas);
    let needs = api_routes(routes);
    let mut paths = Paths::new();
    for op in ops {
        let Some(method) = http_method(&op.method) else {
            continue;
        };
        let need = needs
            .get(&(op.method.as_str().to_owned(), op.path))
            .copied();
        let path = op.path;
        paths.add_path_operation(path, vec![method], operation(op, need, &error));
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A personal access token (`kw_pat_…`, from `POST /api/v1/tokens` or KEYWARD_BOOTSTRAP_TOKEN), an automation token (runtime endpoints), or an access token of the configured identity provider",
                ))
                .build(),
        ),
    );
    for (name, schema) in schemas.0 {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Keyward API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The `/api/v1` surface of Keyward (SPEC §10b). Errors answer `{\"error\", \"message\", \"field\"?}`; more members may be added.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// `GET /api/v1/openapi.json` (public): the document of the route table `routes` gives, built
/// once. The table is passed in, not read from `routes.rs`, which mounts this handler.
pub fn serve(routes: impl FnOnce() -> Vec<RouteDecl>) -> Response {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    let json = JSON.get_or_init(|| document(&routes()).to_json().map_err(|e| e.to_string()));
    match json {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.clone(),
        )
            .into_response(),
        Err(e) => {
            crate::error::ApiError::internal(format!("serialising the OpenAPI document: {e}"))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests;
