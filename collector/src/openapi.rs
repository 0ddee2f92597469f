//! The OpenAPI 3.1 description of `/api/v1`, served at `GET /api/v1/openapi.json`.
//!
//! One central table, [`operations`], names each API route with its request and answer types;
//! the schemas come from the shared wire types themselves (`ToSchema`, behind
//! `lifeline-shared`'s `openapi` feature), and who may call a route comes from
//! `http::auth::RULES`. A test checks that the table and the rules list the same routes, so a
//! route cannot be added to one and forgotten in the other.

use std::collections::BTreeMap;

use axum::Json;
use lifeline_shared::findings::Finding;
use lifeline_shared::v1::actions::{
    ActionInfo, ApprovalSetting, CatalogInfo, Decision, NewRun, Published, RunStatus, TrustKey,
    TrustedKeyInfo, WorkProgress,
};
use lifeline_shared::v1::api::{
    EnrollRequest, EnrollResponse, EnrollmentTokenCreated, EnrollmentTokenInfo, ErrorBody, Health,
    MachineDetail, MachineSummary, MachineTicket, NewComment, NewEnrollmentToken, NewTicket,
    NewUser, RenewRequest, TicketCreated, TicketDetail, TicketSummary, TicketUpdate, UserCreated,
    UserSummary, paths,
};
use lifeline_shared::v1::audit::{AuditEntry, ChainReport};
use lifeline_shared::v1::feedback::{self, FeedbackRecorded, NewFeedback};
use lifeline_shared::v1::integrations::{self, Delivery, UserEmail};
use lifeline_shared::v1::sla::EscalateRequest;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
use lifeline_shared::v1::reports;
use lifeline_shared::v1::work::{
    Heartbeat, HeartbeatAck, InspectRequest, WorkBatch, WorkResult, WorkStatus,
};
use utoipa::ToSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, RefOr, Required, ResponseBuilder,
};

use crate::http::auth::{Access, RULES};

/// The schemas an operation refers to, collected as the table is read.
type Schemas = BTreeMap<String, RefOr<Schema>>;

/// A body: how to describe it and register its schemas.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(fn(&mut Schemas) -> RefOr<Schema>),
    /// Prometheus text.
    Text,
    /// A PNG image.
    Png,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Body::None => "None",
            Body::Json(_) => "Json",
            Body::Text => "Text",
            Body::Png => "Png",
        })
    }
}

fn register<T: ToSchema>(schemas: &mut Schemas) {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    schemas.insert(T::name().into_owned(), T::schema());
    schemas.extend(nested);
}

fn one<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    register::<T>(schemas);
    Ref::from_schema_name(T::name()).into()
}

fn list<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    register::<T>(schemas);
    ArrayBuilder::new()
        .items(Ref::from_schema_name(T::name()))
        .into()
}

fn any_object(_: &mut Schemas) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).into()
}

/// The type of a query parameter.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Number,
}

impl Kind {
    fn schema_type(self) -> Type {
        match self {
            Kind::Text => Type::String,
            Kind::Number => Type::Integer,
        }
    }
}

/// One API route: what it takes and what it answers.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    summary: &'static str,
    request: Body,
    response: Body,
    /// Query parameters: name, type, description.
    query: &'static [(&'static str, Kind, &'static str)],
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Body,
    response: Body,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        request,
        response,
        query: &[],
    }
}

const WAIT: &[(&str, Kind, &str)] = &[(
    "wait_secs",
    Kind::Number,
    "wait up to this many seconds (at most 30) for a change",
)];

/// Every route of `/api/v1` (plus `/healthz` and `/metrics`), with its bodies.
pub fn operations() -> Vec<Operation> {
    use Body::{Json as J, None as N, Text};
    vec![
        op(
            "GET",
            paths::HEALTHZ,
            "Health: 200 when the database answers, else 503",
            N,
            J(one::<Health>),
        ),
        op("GET", paths::METRICS, "Prometheus metrics", N, Text),
        op(
            "POST",
            paths::ENROLL,
            "Enroll a machine (certificate signing request)",
            J(one::<EnrollRequest>),
            J(one::<EnrollResponse>),
        ),
        op(
            "POST",
            paths::ENROLLMENT_TOKENS,
            "Create an enrollment token (shown once)",
            J(one::<NewEnrollmentToken>),
            J(one::<EnrollmentTokenCreated>),
        ),
        op(
            "GET",
            paths::ENROLLMENT_TOKENS,
            "List enrollment tokens by prefix: creator, expiry, uses, revocation (never the \
             tokens)",
            N,
            J(list::<EnrollmentTokenInfo>),
        ),
        op(
            "POST",
            paths::ENROLLMENT_TOKEN_REVOKE,
            "Revoke an enrollment token named by its prefix (or id); answers the list",
            N,
            J(list::<EnrollmentTokenInfo>),
        ),
        op(
            "POST",
            paths::AGENT_TICKETS,
            "File a ticket (Idempotency-Key header; body may be zstd)",
            J(one::<NewTicket>),
            J(one::<TicketCreated>),
        ),
        op(
            "GET",
            paths::AGENT_TICKETS,
            "The calling machine's own tickets with the technicians' public replies",
            N,
            J(list::<MachineTicket>),
        ),
        Operation {
            query: &[
                ("since", Kind::Text, "RFC 3339 time: entries at or after it"),
                ("actor", Kind::Text, "entries by this actor only"),
                (
                    "after_seq",
                    Kind::Number,
                    "paging: the last seq of the previous page",
                ),
                (
                    "limit",
                    Kind::Number,
                    "at most this many entries (default 100, max 1000)",
                ),
            ],
            ..op(
                "GET",
                paths::AUDIT,
                "Audit log entries in order (admin)",
                N,
                J(list::<AuditEntry>),
            )
        },
        Operation {
            query: &[(
                "head",
                Kind::Text,
                "a head hash kept earlier: it must still be in the chain",
            )],
            ..op(
                "GET",
                paths::AUDIT_VERIFY,
                "The collector's own verification of the audit hash chain (admin)",
                N,
                J(one::<ChainReport>),
            )
        },
        op(
            "GET",
            paths::TICKET_SCREENSHOT,
            "The screenshot the end user attached to a ticket (PNG, as an attachment)",
            N,
            Body::Png,
        ),
        op(
            "GET",
            paths::AGENT_MACHINE,
            "The calling agent's machine",
            N,
            J(one::<MachineDetail>),
        ),
        op(
            "POST",
            paths::AGENT_RENEW,
            "Renew the agent's client certificate",
            J(one::<RenewRequest>),
            J(one::<EnrollResponse>),
        ),
        Operation {
            query: &[
                ("status", Kind::Text, "new, open, in_progress, ..."),
                ("machine", Kind::Text, "machine id or host name"),
                ("priority", Kind::Text, "low, normal, high, critical"),
                ("tier", Kind::Number, "1 to 3"),
                ("assignee", Kind::Text, "user name; empty for unassigned"),
                ("q", Kind::Text, "number, reference (LL-XXXX-XXXX) or text"),
                ("sort", Kind::Text, "newest, priority, age or due"),
            ],
            ..op(
                "GET",
                paths::TICKETS,
                "List tickets",
                N,
                J(list::<TicketSummary>),
            )
        },
        op(
            "GET",
            "/api/v1/tickets/{n}",
            "A ticket with findings, comments and snapshots",
            N,
            J(one::<TicketDetail>),
        ),
        op(
            "PATCH",
            "/api/v1/tickets/{n}",
            "Change status, priority, tier or assignee",
            J(one::<TicketUpdate>),
            J(one::<TicketDetail>),
        ),
        op(
            "POST",
            "/api/v1/tickets/{n}/comments",
            "Comment on a ticket",
            J(one::<NewComment>),
            J(one::<TicketDetail>),
        ),
        op(
            "GET",
            paths::MACHINES,
            "List machines",
            N,
            J(list::<MachineSummary>),
        ),
        op(
            "GET",
            "/api/v1/machines/{id}",
            "A machine (id or unique host name)",
            N,
            J(one::<MachineDetail>),
        ),
        op(
            "POST",
            "/api/v1/machines/{id}/revoke",
            "Revoke a machine",
            N,
            J(one::<MachineDetail>),
        ),
        op(
            "POST",
            "/api/v1/machines/{id}/approve",
            "Approve a pending machine",
            N,
            J(one::<MachineDetail>),
        ),
        op(
            "POST",
            paths::AGENT_HEARTBEAT,
            "Heartbeat with vitals",
            J(one::<Heartbeat>),
            J(one::<HeartbeatAck>),
        ),
        Operation {
            query: WAIT,
            ..op(
                "GET",
                paths::AGENT_WORK,
                "Long-poll for work",
                N,
                J(one::<WorkBatch>),
            )
        },
        op(
            "POST",
            paths::AGENT_WORK_RESULT,
            "Report how a piece of work ended",
            J(one::<WorkResult>),
            J(any_object),
        ),
        op(
            "POST",
            paths::MACHINE_INSPECT,
            "Queue a live inspection",
            J(one::<InspectRequest>),
            J(one::<WorkStatus>),
        ),
        Operation {
            query: WAIT,
            ..op(
                "GET",
                paths::WORK,
                "Where a piece of work stands",
                N,
                J(one::<WorkStatus>),
            )
        },
        op("GET", paths::USERS, "List users", N, J(list::<UserSummary>)),
        op(
            "POST",
            paths::USERS,
            "Add a user (the token is shown once)",
            J(one::<NewUser>),
            J(one::<UserCreated>),
        ),
        op(
            "POST",
            "/api/v1/users/{name}/revoke",
            "Revoke a user's token",
            N,
            J(list::<UserSummary>),
        ),
        op(
            "GET",
            paths::CATALOG,
            "The published action catalog",
            N,
            J(one::<CatalogInfo>),
        ),
        op(
            "POST",
            paths::CATALOG,
            "Publish a signed catalog (the `FILE.signed` document)",
            J(any_object),
            J(one::<Published>),
        ),
        op(
            "GET",
            paths::CATALOG_KEYS,
            "Keys trusted to sign catalogs",
            N,
            J(list::<TrustedKeyInfo>),
        ),
        op(
            "POST",
            paths::CATALOG_KEYS,
            "Trust a catalog signing key",
            J(one::<TrustKey>),
            J(one::<TrustedKeyInfo>),
        ),
        op(
            "GET",
            paths::ACTIONS,
            "Actions of the published catalog",
            N,
            J(list::<ActionInfo>),
        ),
        op(
            "PUT",
            paths::ACTION_APPROVAL,
            "Whether every run of an action needs an approval",
            J(one::<ApprovalSetting>),
            J(one::<ActionInfo>),
        ),
        op(
            "POST",
            paths::RUNS,
            "Request a run of an action",
            J(one::<NewRun>),
            J(one::<RunStatus>),
        ),
        Operation {
            query: &[
                ("state", Kind::Text, "awaiting_approval"),
                ("machine", Kind::Text, "machine id or host name"),
                ("limit", Kind::Number, "at most 500"),
            ],
            ..op("GET", paths::RUNS, "List runs", N, J(list::<RunStatus>))
        },
        Operation {
            query: WAIT,
            ..op(
                "GET",
                paths::RUN,
                "Where a run stands",
                N,
                J(one::<RunStatus>),
            )
        },
        op(
            "POST",
            paths::RUN_APPROVE,
            "Approve a run request (not your own)",
            J(one::<Decision>),
            J(one::<RunStatus>),
        ),
        op(
            "POST",
            paths::RUN_DENY,
            "Deny a run request (with a reason)",
            J(one::<Decision>),
            J(one::<RunStatus>),
        ),
        op(
            "POST",
            paths::AGENT_WORK_PROGRESS,
            "Report progress on a delivered run",
            J(one::<WorkProgress>),
            J(any_object),
        ),
        op(
            "GET",
            paths::OPENAPI,
            "This description (OpenAPI 3.1)",
            N,
            J(any_object),
        ),
        // Service levels and escalation (issue 9).
        op(
            "POST",
            paths::TICKET_ESCALATE,
            "Escalate a ticket to a higher tier, with a reason",
            J(one::<EscalateRequest>),
            J(one::<TicketDetail>),
        ),
        // Recurring problems, knowledge search and help-desk metrics (issue 9).
        Operation {
            query: &[(
                "limit",
                Kind::Number,
                "at most this many (default 10, max 100)",
            )],
            ..op(
                "GET",
                reports::paths::TICKET_SIMILAR,
                "Earlier tickets with the same fingerprint keys, with their resolution and actions",
                N,
                J(one::<reports::SimilarTickets>),
            )
        },
        Operation {
            query: &[
                (
                    "since",
                    Kind::Text,
                    "window such as 30d, 12h or 90m (default 30d)",
                ),
                (
                    "limit",
                    Kind::Number,
                    "at most this many keys (default 20, max 100)",
                ),
            ],
            ..op(
                "GET",
                reports::paths::REPORTS_RECURRING,
                "Fingerprint keys ranked by tickets and machines (known-error candidates)",
                N,
                J(one::<reports::RecurringReport>),
            )
        },
        Operation {
            query: &[(
                "since",
                Kind::Text,
                "window such as 7d, 12h or 90m (default 7d)",
            )],
            ..op(
                "GET",
                reports::paths::REPORTS_SUMMARY,
                "Help-desk figures: volumes, response and resolution times, SLA, actions",
                N,
                J(one::<reports::Summary>),
            )
        },
        Operation {
            query: &[
                ("q", Kind::Text, "words that must all match (at most 8)"),
                (
                    "limit",
                    Kind::Number,
                    "at most this many hits (default 20, max 100)",
                ),
            ],
            ..op(
                "GET",
                reports::paths::KB,
                "Search resolved tickets with a resolution note",
                N,
                J(one::<reports::KbResults>),
            )
        },
        // Satisfaction, webhooks and e-mail (issue 9).
        op(
            "POST",
            feedback::AGENT_TICKET_FEEDBACK,
            "The end user's answer to \"Did this fix it?\" on one of the machine's resolved \
             tickets (once per resolution; no reopens it)",
            J(one::<NewFeedback>),
            J(one::<FeedbackRecorded>),
        ),
        Operation {
            query: &[
                (
                    "failed",
                    Kind::Text,
                    "true: only deliveries that were given up",
                ),
                (
                    "limit",
                    Kind::Number,
                    "at most this many (default 100, max 1000)",
                ),
            ],
            ..op(
                "GET",
                integrations::DELIVERIES,
                "The delivery log of webhooks and e-mails, newest first (admin)",
                N,
                J(list::<Delivery>),
            )
        },
        op(
            "POST",
            integrations::REDELIVER,
            "Send a delivery again from its first attempt (admin)",
            N,
            J(one::<Delivery>),
        ),
        op(
            "PUT",
            integrations::USER_EMAIL,
            "Set or clear (null) a user's e-mail address for notifications (admin)",
            J(one::<UserEmail>),
            J(list::<UserSummary>),
        ),
    ]
}

fn method(name: &str) -> Option<HttpMethod> {
    Some(match name {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => return None,
    })
}

/// Path parameters are numbers (`{n}`, work and run ids) or names (machines, users).
fn path_param_type(path: &str, name: &str) -> Type {
    let numeric = name == "n"
        || path.contains("/work/")
        || path.contains("/runs/")
        || path.contains("/deliveries/");
    if numeric { Type::Integer } else { Type::String }
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

fn security(access: Option<Access>) -> Option<SecurityRequirement> {
    let scheme = match access? {
        Access::Public => return None,
        Access::Agent => "agentCertificate",
        Access::Enrollment => "enrollmentToken",
        Access::Staff | Access::Admin => "userToken",
        Access::Session | Access::SessionAdmin => "consoleSession",
    };
    Some(SecurityRequirement::new(scheme, Vec::<String>::new()))
}

fn who(access: Option<Access>) -> &'static str {
    match access {
        Some(Access::Public) => "Anyone.",
        Some(Access::Agent) => "An enrolled agent (client certificate).",
        Some(Access::Enrollment) => "A holder of an enrollment token.",
        Some(Access::Staff) => "A technician or an admin.",
        Some(Access::Admin) => "An admin.",
        Some(Access::Session | Access::SessionAdmin) | None => "Nobody through the API.",
    }
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::new();
    let mut paths = Paths::new();
    let error = one::<ErrorBody>(&mut schemas);
    register::<Finding>(&mut schemas);
    for operation in operations() {
        let Some(http_method) = method(operation.method) else {
            continue;
        };
        let access = RULES
            .iter()
            .find(|r| r.method == operation.method && r.path == operation.path)
            .map(|r| r.access);
        let mut builder = OperationBuilder::new()
            .summary(Some(operation.summary))
            .description(Some(who(access)))
            .operation_id(Some(format!(
                "{}_{}",
                operation.method.to_lowercase(),
                operation
                    .path
                    .trim_start_matches('/')
                    .replace(['/', '{', '}', '.', '-'], "_")
            )));
        for name in path_params(operation.path) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(&name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(
                        ObjectBuilder::new().schema_type(path_param_type(operation.path, &name)),
                    )),
            );
        }
        for (name, ty, description) in operation.query {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(ty.schema_type()))),
            );
        }
        match operation.request {
            Body::None => {}
            Body::Json(schema) => {
                builder = builder.request_body(Some(
                    RequestBodyBuilder::new()
                        .required(Some(Required::True))
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(schema(&mut schemas)))
                                .build(),
                        )
                        .build(),
                ));
            }
            Body::Text | Body::Png => {}
        }
        let ok = match operation.response {
            Body::None => ResponseBuilder::new().description("Done"),
            Body::Json(schema) => ResponseBuilder::new().description("Success").content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema(&mut schemas)))
                    .build(),
            ),
            Body::Text => ResponseBuilder::new().description("Success").content(
                "text/plain",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
            Body::Png => ResponseBuilder::new().description("The image").content(
                "image/png",
                ContentBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .content_media_type("image/png"),
                    ))
                    .build(),
            ),
        };
        builder = builder.response("200", ok.build()).response(
            "4XX",
            ResponseBuilder::new()
                .description("Refused: what is wrong, in `error`")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(error.clone())).build(),
                )
                .build(),
        );
        if let Some(requirement) = security(access) {
            builder = builder.security(requirement);
        }
        paths.add_path_operation(operation.path, vec![http_method], builder.build());
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "userToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A technician's or admin's token (llu_...)"))
                    .build(),
            ),
        )
        .security_scheme(
            "enrollmentToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An enrollment token (lle_...)"))
                    .build(),
            ),
        )
        .security_scheme(
            "agentCertificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "The client certificate the collector issued at enrollment".to_owned(),
                ),
                deprecated: None,
                extensions: None,
            },
        );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Lifeline collector API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Tickets, machines, live inspections and remote actions. Errors are \
                     `{\"error\": \"...\"}` with a 4xx or 5xx status.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(doc: &serde_json::Value, method: &str, path: &str) -> bool {
        doc["paths"][path][method.to_lowercase()].is_object()
    }

    #[test]
    fn every_api_rule_is_described_and_nothing_else() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let api_rules: Vec<_> = RULES
            .iter()
            .filter(|r| {
                r.path.starts_with("/api/") || r.path == paths::HEALTHZ || r.path == paths::METRICS
            })
            .collect();
        for rule in &api_rules {
            assert!(
                has(&doc, rule.method, rule.path),
                "{} {} has an access rule but is missing from the OpenAPI description \
                 (add it to openapi::operations)",
                rule.method,
                rule.path
            );
        }
        let mut described = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                described += 1;
                assert!(
                    api_rules
                        .iter()
                        .any(|r| r.path == path && r.method.eq_ignore_ascii_case(method)),
                    "{method} {path} is described but has no access rule"
                );
            }
        }
        assert_eq!(described, api_rules.len());
    }

    #[test]
    fn every_referenced_schema_is_defined() {
        let text = serde_json::to_string(&document()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let defined = doc["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                defined.contains_key(name),
                "schema {name} is referenced, not defined"
            );
        }
        assert!(defined.contains_key("TicketDetail"));
        assert!(defined.contains_key("RunStatus"));
    }
}
