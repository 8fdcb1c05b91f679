//! One decision: the request's facts as Cedar entities and context, Cedar's answer, and the
//! rules Cedar leaves to us (no match, policies that fail to evaluate, approval).
//!
//! Encoding (the schema documents it for policy authors): the principal is a
//! `Keyward::Principal` whose parents are its IdP groups (`Keyward::Group`); the resource is the
//! `Keyward::Route` named after the route; headers, query and MCP arguments are the tags of one
//! `Keyward::Headers`, `Keyward::Query` and `Keyward::Arguments` entity each (Cedar has no maps,
//! and tags are validated: `getTag` without `hasTag` is a load error).

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId, Request,
    RestrictedExpression,
};
use serde_json::Value;

use super::{ContextReads, Decision, Effect, NoMatch, Policies};
use crate::facts::{BodyFacts, McpFacts, Principal, RequestFacts, normalize_path};

/// The id of the per-request entities that hold tags (one of each per request).
const REQUEST_ENTITY_ID: &str = "request";

/// The schema's entity types and the action, parsed once.
struct Names {
    principal: EntityTypeName,
    group: EntityTypeName,
    route: EntityTypeName,
    headers: EntityTypeName,
    query: EntityTypeName,
    arguments: EntityTypeName,
    call: EntityUid,
}

fn names() -> Option<&'static Names> {
    static NAMES: OnceLock<Option<Names>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            let ty = |name: &str| EntityTypeName::from_str(name).ok();
            Some(Names {
                principal: ty("Keyward::Principal")?,
                group: ty("Keyward::Group")?,
                route: ty("Keyward::Route")?,
                headers: ty("Keyward::Headers")?,
                query: ty("Keyward::Query")?,
                arguments: ty("Keyward::Arguments")?,
                call: EntityUid::from_type_name_and_id(
                    ty("Keyward::Action")?,
                    EntityId::new("call"),
                ),
            })
        })
        .as_ref()
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

/// A JSON body field as Cedar sees it. Strings, booleans and integers keep their type; any
/// other value (a fraction, an array, an object) becomes its JSON text, so a policy comparing
/// it as a number or boolean fails to evaluate (and an erroring policy never allows) instead of
/// the field silently vanishing. `null` is absent.
fn json_field(value: &Value) -> Option<RestrictedExpression> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(string(s)),
        Value::Bool(b) => Some(RestrictedExpression::new_bool(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => string(&n.to_string()),
        }),
        other => Some(string(&other.to_string())),
    }
}

/// An MCP argument as a tag: a string as it is, anything else as compact JSON text.
fn argument_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Why the facts could not be turned into a Cedar request (never expected: every value is
/// built here; the decision is then a deny).
struct BuildError;

fn built<T, E>(result: Result<T, E>) -> Result<T, BuildError> {
    result.map_err(|_| BuildError)
}

fn principal_entities(names: &Names, p: &Principal) -> Result<Vec<Entity>, BuildError> {
    let mut attrs = vec![
        ("kind".to_owned(), string(p.kind.as_str())),
        ("org".to_owned(), string(&p.org)),
        ("subject".to_owned(), string(&p.subject)),
    ];
    for (name, value) in [
        ("email", &p.email),
        ("role", &p.role),
        ("automation", &p.automation),
    ] {
        if let Some(value) = value {
            attrs.push((name.to_owned(), string(value)));
        }
    }
    let groups: HashSet<&str> = p.groups.iter().map(String::as_str).collect();
    let parents: Vec<EntityUid> = groups.iter().map(|g| uid(&names.group, g)).collect();
    let mut entities = Vec::with_capacity(parents.len() + 1);
    entities.push(built(Entity::new_with_tags(
        uid(&names.principal, &p.subject),
        attrs,
        parents.iter().cloned(),
        [],
    ))?);
    entities.extend(
        parents
            .into_iter()
            .map(|g| Entity::new_no_attrs(g, HashSet::new())),
    );
    Ok(entities)
}

fn headers_entity(names: &Names, headers: &[(String, String)]) -> Result<Entity, BuildError> {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        joined
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    built(Entity::new_with_tags(
        uid(&names.headers, REQUEST_ENTITY_ID),
        [],
        [],
        joined
            .into_iter()
            .map(|(k, v)| (k, RestrictedExpression::new_string(v))),
    ))
}

fn query_entity(names: &Names, query: &[(String, String)]) -> Result<Entity, BuildError> {
    let mut values: BTreeMap<&str, Vec<RestrictedExpression>> = BTreeMap::new();
    for (name, value) in query {
        values.entry(name).or_default().push(string(value));
    }
    built(Entity::new_with_tags(
        uid(&names.query, REQUEST_ENTITY_ID),
        [],
        [],
        values
            .into_iter()
            .map(|(k, v)| (k.to_owned(), RestrictedExpression::new_set(v))),
    ))
}

fn body_record(body: Option<&BodyFacts>) -> Result<RestrictedExpression, BuildError> {
    let mut fields = Vec::new();
    if let Some(Value::Object(map)) = body.map(|b| &b.json) {
        for name in ["model", "stream", "max_tokens"] {
            if let Some(value) = map.get(name).and_then(json_field) {
                fields.push((name.to_owned(), value));
            }
        }
    }
    built(RestrictedExpression::new_record(fields))
}

fn mcp_record(
    names: &Names,
    mcp: &McpFacts,
    entities: &mut Vec<Entity>,
) -> Result<RestrictedExpression, BuildError> {
    let arguments = uid(&names.arguments, REQUEST_ENTITY_ID);
    let tags: Vec<(String, RestrictedExpression)> = match &mcp.arguments {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    RestrictedExpression::new_string(argument_text(v)),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    entities.push(built(Entity::new_with_tags(
        arguments.clone(),
        [],
        [],
        tags,
    ))?);
    let mut fields = vec![
        ("method".to_owned(), string(&mcp.method)),
        (
            "arguments".to_owned(),
            RestrictedExpression::new_entity_uid(arguments),
        ),
    ];
    if let Some(tool) = &mcp.tool {
        fields.push(("tool".to_owned(), string(tool)));
    }
    built(RestrictedExpression::new_record(fields))
}

fn cedar_request(
    names: &Names,
    reads: &ContextReads,
    principal: &Principal,
    request: &RequestFacts,
) -> Result<(Request, Entities), BuildError> {
    let mut entities = principal_entities(names, principal)?;
    let route = uid(&names.route, &request.route);
    entities.push(built(Entity::new_with_tags(
        route.clone(),
        [("name".to_owned(), string(&request.route))],
        [],
        [],
    ))?);
    // Only what some policy reads is built: the rest can change no decision (the policies were
    // validated against the schema, so nothing reads an attribute the walk did not see).
    let mut context = Vec::with_capacity(7);
    if reads.reads("method") {
        context.push(("method".to_owned(), string(&request.method)));
    }
    if reads.reads("path") || reads.reads("segments") {
        let path = normalize_path(&request.path);
        if reads.reads("segments") {
            let segments = path.split('/').filter(|s| !s.is_empty()).map(string);
            context.push((
                "segments".to_owned(),
                RestrictedExpression::new_set(segments),
            ));
        }
        context.push(("path".to_owned(), string(&path)));
    }
    if reads.reads("query") {
        entities.push(query_entity(names, &request.query)?);
        context.push((
            "query".to_owned(),
            RestrictedExpression::new_entity_uid(uid(&names.query, REQUEST_ENTITY_ID)),
        ));
    }
    if reads.reads("headers") {
        entities.push(headers_entity(names, &request.headers)?);
        context.push((
            "headers".to_owned(),
            RestrictedExpression::new_entity_uid(uid(&names.headers, REQUEST_ENTITY_ID)),
        ));
    }
    if reads.reads("body") {
        context.push(("body".to_owned(), body_record(request.body.as_ref())?));
    }
    if reads.reads("mcp")
        && let Some(mcp) = request.body.as_ref().and_then(|b| b.mcp.as_ref())
    {
        context.push(("mcp".to_owned(), mcp_record(names, mcp, &mut entities)?));
    }
    let context = built(Context::from_pairs(context))?;
    // No schema here: the policies were validated against it at load, and a body field of an
    // unexpected type must reach the evaluator (where it fails closed) rather than be refused
    // or dropped by request validation.
    let cedar = built(Request::new(
        uid(&names.principal, &principal.subject),
        names.call.clone(),
        route,
        context,
        None,
    ))?;
    let entities = built(Entities::from_entities(entities, None))?;
    Ok((cedar, entities))
}

impl Policies {
    /// Decides one request: forbid beats permit; no matching policy follows `no_match`.
    ///
    /// A policy that fails to evaluate (Cedar skips it) never lets a request through: an
    /// erroring `forbid` denies, with its id among the deciding ones; an erroring `permit`
    /// grants nothing, and when no other permit matched the request is denied with the erroring
    /// permits' ids instead of falling to `no_match` (even `no_match = "allow"`).
    pub fn decide(
        &self,
        principal: &Principal,
        request: &RequestFacts,
        no_match: NoMatch,
    ) -> Decision {
        let deny = |policy_ids: Vec<String>| Decision {
            effect: Effect::Deny,
            policy_ids,
            approval_required: false,
            no_match: false,
        };
        let Some(names) = names() else {
            return deny(Vec::new());
        };
        let Ok((cedar, entities)) = cedar_request(names, &self.inner.reads, principal, request)
        else {
            return deny(Vec::new());
        };
        let response = Authorizer::new().is_authorized(&cedar, &self.inner.set, &entities);
        let diagnostics = response.diagnostics();
        let is_forbid = |id: &PolicyId| {
            self.inner
                .set
                .policy(id)
                .is_some_and(|p| p.effect() == cedar_policy::Effect::Forbid)
        };
        let mut errored_forbids = Vec::new();
        let mut errored_permits = Vec::new();
        for error in diagnostics.errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
            let id = e.policy_id();
            if is_forbid(id) {
                errored_forbids.push(id.clone());
            } else {
                errored_permits.push(id.clone());
            }
        }
        let reasons: Vec<PolicyId> = diagnostics.reason().cloned().collect();
        if !errored_forbids.is_empty() {
            let mut ids: Vec<PolicyId> = reasons.into_iter().filter(is_forbid).collect();
            ids.extend(errored_forbids);
            return deny(self.in_load_order(ids));
        }
        match response.decision() {
            cedar_policy::Decision::Allow => Decision {
                effect: Effect::Allow,
                approval_required: reasons.iter().any(|id| self.inner.approval.contains(id)),
                policy_ids: self.in_load_order(reasons),
                no_match: false,
            },
            cedar_policy::Decision::Deny if !reasons.is_empty() => {
                deny(self.in_load_order(reasons))
            }
            cedar_policy::Decision::Deny if !errored_permits.is_empty() => {
                deny(self.in_load_order(errored_permits))
            }
            cedar_policy::Decision::Deny => Decision {
                effect: match no_match {
                    NoMatch::Deny => Effect::Deny,
                    NoMatch::Allow => Effect::Allow,
                },
                policy_ids: Vec::new(),
                approval_required: false,
                no_match: true,
            },
        }
    }

    /// Ids as strings, in the order the policies were loaded (stable for audit and tests).
    fn in_load_order(&self, ids: Vec<PolicyId>) -> Vec<String> {
        let mut ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
        ids.sort_by_key(|id| {
            self.inner
                .ids
                .iter()
                .position(|known| known == id)
                .unwrap_or(usize::MAX)
        });
        ids.dedup();
        ids
    }
}
