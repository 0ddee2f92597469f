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
use lifeline_shared::v1::actions::REASON_MAX_LEN;
use lifeline_shared::v1::actions::{
    ActionInfo, ApprovalSetting, CatalogInfo, Decision, NewRun, Published, RunStatus, TrustKey,
    TrustedKeyInfo, WorkProgress,
};
use lifeline_shared::v1::api::{
    COMMENT_MAX_LEN, DESCRIPTION_MAX_LEN, EnrollRequest, EnrollResponse, EnrollmentTokenCreated,
    EnrollmentTokenInfo, ErrorBody, Health, MachineDetail, MachineSummary, MachineTicket,
    NewComment, NewEnrollmentToken, NewTicket, NewUser, Priority, RenewRequest, TicketCreated,
    TicketDetail, TicketSort, TicketStatus, TicketSummary, TicketUpdate, UserCreated, UserSummary,
    paths,
};
use lifeline_shared::v1::audit::{AuditEntry, ChainReport};
use lifeline_shared::v1::feedback::{
    self, FEEDBACK_COMMENT_MAX_LEN, FeedbackRecorded, NewFeedback,
};
use lifeline_shared::v1::integrations::{self, Delivery, EMAIL_MAX_LEN, UserEmail};
use lifeline_shared::v1::reports::{KB_QUERY_MAX_WORDS, RESOLUTION_NOTE_MAX_LEN};
use lifeline_shared::v1::sla::{ESCALATION_REASON_MAX_LEN, EscalateRequest};
// Recurring problems, knowledge search and help-desk metrics (issue 9).
use lifeline_shared::v1::reports;
use lifeline_shared::v1::work::{
    Heartbeat, HeartbeatAck, InspectRequest, WorkBatch, WorkResult, WorkStatus,
};
use serde_json::{Value, json};
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
use crate::http::{actions, audit, enroll, tickets, users};

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
    /// The statuses of a success, each with the `response` body.
    statuses: &'static [&'static str],
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
        statuses: &["200"],
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
        Operation {
            statuses: &["200", "503"],
            ..op(
                "GET",
                paths::HEALTHZ,
                "Health: 200 when the database answers, else 503",
                N,
                J(one::<Health>),
            )
        },
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
        Operation {
            statuses: &["202"],
            ..op(
                "POST",
                paths::MACHINE_INSPECT,
                "Queue a live inspection",
                J(one::<InspectRequest>),
                J(one::<WorkStatus>),
            )
        },
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
        Operation {
            statuses: &["200", "201"],
            ..op(
                "POST",
                paths::CATALOG,
                "Publish a signed catalog (the `FILE.signed` document): 201, or 200 when it \
                 was already published",
                J(any_object),
                J(one::<Published>),
            )
        },
        op(
            "GET",
            paths::CATALOG_KEYS,
            "Keys trusted to sign catalogs",
            N,
            J(list::<TrustedKeyInfo>),
        ),
        Operation {
            statuses: &["200", "201"],
            ..op(
                "POST",
                paths::CATALOG_KEYS,
                "Trust a catalog signing key: 201, or 200 when it was already trusted",
                J(one::<TrustKey>),
                J(one::<TrustedKeyInfo>),
            )
        },
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
        Operation {
            statuses: &["201"],
            ..op(
                "POST",
                paths::RUNS,
                "Request a run of an action",
                J(one::<NewRun>),
                J(one::<RunStatus>),
            )
        },
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

fn operation_id(method: &str, path: &str) -> String {
    format!(
        "{}_{}",
        method.to_lowercase(),
        path.trim_start_matches('/')
            .replace(['/', '{', '}', '.', '-'], "_")
    )
}

/// Every number in a path or query is a whole number from 0 to `u64::MAX` unless its limits
/// say otherwise.
fn parameter_schema(ty: Type) -> ObjectBuilder {
    let object = ObjectBuilder::new().schema_type(ty.clone());
    if ty == Type::Integer {
        object.minimum(Some(0u64)).maximum(Some(u64::MAX))
    } else {
        object
    }
}

/// The whole document, with the limits the handlers enforce and the links between answers.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(described()).unwrap_or_default();
    integer_ranges(&mut doc);
    apply_limits(&mut doc);
    body_rules(&mut doc);
    apply_links(&mut doc);
    doc
}

/// The document as the table and the wire types describe it.
fn described() -> OpenApi {
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
            .operation_id(Some(operation_id(operation.method, operation.path)));
        for name in path_params(operation.path) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(&name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(parameter_schema(path_param_type(
                        operation.path,
                        &name,
                    )))),
            );
        }
        for (name, ty, description) in operation.query {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(parameter_schema(ty.schema_type()))),
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
        let ok = ok.build();
        for status in operation.statuses {
            builder = builder.response(*status, ok.clone());
        }
        builder = builder.response(
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
pub async fn serve() -> Json<Value> {
    Json(document())
}

// ---------------------------------------------------------------------------------------------
// Limits: what the handlers refuse, written into the document from the constants they check, so
// that a value the schema allows is accepted and a value it forbids is refused.

/// White space as `str::trim` and `char::is_whitespace` see it, as the inside of a regex class.
/// Patterns below use only `\xHH`, `\uHHHH` and classes, which ECMA 262, Python and the Rust
/// `regex` crate read alike; a test checks each against the Rust rule it stands for.
const WHITESPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (`char::is_control`) but tab and newline.
const CONTROL: &str = r"\x00-\x08\x0b-\x1f\x7f-\x9f";
/// Every control character.
const ANY_CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// Text that is not only white space (what `trim().is_empty()` refuses).
fn not_blank() -> String {
    format!("[^{WHITESPACE}]")
}

/// Text without control characters but tab and newline.
fn no_control() -> String {
    format!("^[^{CONTROL}]*$")
}

/// Not blank, and no control characters but tab and newline.
fn line_text() -> String {
    format!("^[^{CONTROL}]*[^{WHITESPACE}{CONTROL}][^{CONTROL}]*$")
}

/// Not blank, and no control characters at all (host names).
fn printable() -> String {
    format!("^[^{ANY_CONTROL}]*[^{WHITESPACE}{ANY_CONTROL}][^{ANY_CONTROL}]*$")
}

/// `users::check_user_name`.
fn user_name() -> String {
    format!(
        "^[A-Za-z0-9][A-Za-z0-9._-]{{0,{}}}$",
        crate::http::users::NAME_MAX_LEN - 1
    )
}

/// `integrations::check_email`.
fn email() -> String {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!(r"^[!#$%&'*+\-./0-9=?A-Z^_`a-z{{|}}~]{{1,64}}@{label}(?:\.{label})*$")
}

/// `reports::Window`: a whole number of minutes, hours or days from 1m to 366d.
fn window() -> String {
    let days = "(?:[1-9][0-9]?|[12][0-9][0-9]|3[0-5][0-9]|36[0-6])d";
    let hours = "(?:[1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-7][0-9]|878[0-4])h";
    let minutes =
        "(?:[1-9][0-9]{0,4}|[1-4][0-9]{5}|5[01][0-9]{4}|52[0-6][0-9]{3}|5270[0-3][0-9]|527040)m";
    format!("^[{WHITESPACE}]*0*(?:{days}|{hours}|{minutes})[{WHITESPACE}]*$")
}

/// `knowledge::query_words`: one to eight words.
fn kb_words() -> String {
    let (s, w) = (WHITESPACE, KB_QUERY_MAX_WORDS - 1);
    format!("^[{s}]*[^{s}]+(?:[{s}]+[^{s}]+){{0,{w}}}[{s}]*$")
}

/// Limits on properties of request bodies: schema, property, keywords to add.
fn body_limits() -> Vec<(&'static str, &'static str, Value)> {
    let reason = json!({ "maxLength": REASON_MAX_LEN, "pattern": no_control() });
    let email = json!({ "maxLength": EMAIL_MAX_LEN, "pattern": email() });
    vec![
        (
            "EnrollRequest",
            "hostname",
            json!({ "maxLength": enroll::HOSTNAME_MAX_LEN, "pattern": printable() }),
        ),
        (
            "NewTicket",
            "description",
            json!({ "maxLength": DESCRIPTION_MAX_LEN, "pattern": not_blank() }),
        ),
        (
            "NewTicket",
            "os_user",
            json!({ "maxLength": tickets::OS_USER_MAX_LEN }),
        ),
        (
            "NewComment",
            "body",
            json!({ "maxLength": COMMENT_MAX_LEN, "pattern": not_blank() }),
        ),
        (
            "TicketUpdate",
            "resolution_note",
            json!({ "maxLength": RESOLUTION_NOTE_MAX_LEN, "pattern": not_blank() }),
        ),
        (
            "EscalateRequest",
            "reason",
            json!({ "maxLength": ESCALATION_REASON_MAX_LEN, "pattern": line_text() }),
        ),
        (
            "NewUser",
            "name",
            json!({ "maxLength": users::NAME_MAX_LEN, "pattern": user_name() }),
        ),
        ("NewUser", "email", email.clone()),
        ("UserEmail", "email", email),
        (
            "NewEnrollmentToken",
            "expires_in_secs",
            json!({ "minimum": 1, "maximum": enroll::TOKEN_TTL_MAX_SECS }),
        ),
        ("NewEnrollmentToken", "max_uses", json!({ "minimum": 1 })),
        ("NewRun", "reason", reason.clone()),
        ("Decision", "reason", reason),
        (
            "NewFeedback",
            "comment",
            json!({ "maxLength": FEEDBACK_COMMENT_MAX_LEN }),
        ),
    ]
}

/// A closed set of names as a string schema.
fn names<T: std::fmt::Display>(all: &[T]) -> Value {
    json!({ "type": "string", "enum": all.iter().map(ToString::to_string).collect::<Vec<_>>() })
}

/// Limits on query and path parameters: path, parameter, keywords to add to its schema
/// (`required` goes on the parameter itself).
fn parameter_limits() -> Vec<(&'static str, &'static str, Value)> {
    let range = |min: u64, max: u64| json!({ "minimum": min, "maximum": max });
    let wait = range(0, u64::MAX);
    vec![
        (paths::AUDIT, "since", json!({ "format": "date-time" })),
        (
            paths::AUDIT,
            "actor",
            json!({ "minLength": 1, "maxLength": audit::ACTOR_MAX_LEN }),
        ),
        (paths::AUDIT, "after_seq", range(0, u64::MAX)),
        (
            paths::AUDIT,
            "limit",
            range(1, u64::from(lifeline_shared::v1::audit::LIST_LIMIT_MAX)),
        ),
        (
            paths::AUDIT_VERIFY,
            "head",
            json!({ "pattern": "^[0-9a-f]{64}$" }),
        ),
        (paths::TICKETS, "status", names(TicketStatus::ALL)),
        (paths::TICKETS, "priority", names(Priority::ALL)),
        (paths::TICKETS, "sort", names(TicketSort::ALL)),
        (paths::TICKETS, "tier", range(1, 3)),
        (paths::AGENT_WORK, "wait_secs", wait.clone()),
        (paths::WORK, "wait_secs", wait.clone()),
        (paths::RUN, "wait_secs", wait),
        (paths::RUNS, "state", names(&["awaiting_approval"])),
        (
            paths::RUNS,
            "limit",
            range(1, u64::from(actions::LIST_LIMIT_MAX)),
        ),
        (
            reports::paths::TICKET_SIMILAR,
            "limit",
            range(1, u64::from(reports::LIST_LIMIT_MAX)),
        ),
        (
            reports::paths::REPORTS_RECURRING,
            "limit",
            range(1, u64::from(reports::LIST_LIMIT_MAX)),
        ),
        (
            reports::paths::REPORTS_RECURRING,
            "since",
            json!({ "pattern": window() }),
        ),
        (
            reports::paths::REPORTS_SUMMARY,
            "since",
            json!({ "pattern": window() }),
        ),
        (
            reports::paths::KB,
            "limit",
            range(1, u64::from(reports::LIST_LIMIT_MAX)),
        ),
        (
            reports::paths::KB,
            "q",
            json!({ "required": true, "maxLength": reports::KB_QUERY_MAX_LEN, "pattern": kb_words() }),
        ),
        (
            integrations::DELIVERIES,
            "limit",
            range(1, u64::from(integrations::DELIVERIES_LIMIT_MAX)),
        ),
        (
            integrations::DELIVERIES,
            "failed",
            json!({ "type": "boolean" }),
        ),
    ]
}

/// The range of each integer format (`uint32`, which utoipa spells `u-int32`, for a `u32`, ...), written as `minimum` and
/// `maximum` where a schema has none, so that clients and test generators, which do not know
/// the non-standard formats, stay within what the Rust type can hold.
fn integer_ranges(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let range = match object.get("format").and_then(Value::as_str) {
                Some("int8") => Some((json!(i8::MIN), json!(i8::MAX))),
                Some("int16") => Some((json!(i16::MIN), json!(i16::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("uint8" | "u-int8") => Some((json!(0), json!(u8::MAX))),
                Some("uint16" | "u-int16") => Some((json!(0), json!(u16::MAX))),
                Some("uint32" | "u-int32") => Some((json!(0), json!(u32::MAX))),
                Some("uint64" | "u-int64") => Some((json!(0), json!(u64::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range {
                object.entry("minimum").or_insert(min);
                object.entry("maximum").or_insert(max);
            }
            object.values_mut().for_each(integer_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_ranges),
        _ => {}
    }
}

/// Replaces or adds the keys of `extra` in the object `target`.
fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// Writes the limits into `doc`; answers the limits that name nothing in it (a test wants none).
fn apply_limits(doc: &mut Value) -> Vec<String> {
    let mut unused = Vec::new();
    for (schema, property, keywords) in body_limits() {
        match doc.pointer_mut(&format!(
            "/components/schemas/{schema}/properties/{property}"
        )) {
            Some(target) => merge(target, keywords),
            None => unused.push(format!("{schema}.{property}")),
        }
    }
    for (path, name, mut keywords) in parameter_limits() {
        let required = keywords.as_object_mut().and_then(|k| k.remove("required"));
        let mut found = false;
        let Some(item) = doc
            .pointer_mut(&format!(
                "/paths/{}",
                path.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_object_mut)
        else {
            unused.push(format!("{path} {name}"));
            continue;
        };
        for operation in item.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters.iter_mut().filter(|p| p["name"] == name) {
                found = true;
                if let Some(required) = &required {
                    parameter["required"] = required.clone();
                }
                merge(&mut parameter["schema"], keywords.clone());
            }
        }
        if !found {
            unused.push(format!("{path} {name}"));
        }
    }
    unused
}

/// Rules across the fields of one body, and bodies that say more than their wire type.
fn body_rules(doc: &mut Value) {
    // A denial needs a reason: the requester sees it.
    let deny = format!(
        "/paths/{}/post/requestBody/content/application~1json/schema",
        pointer_path(paths::RUN_DENY)
    );
    if let Some(schema) = doc.pointer_mut(&deny) {
        *schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["reason"],
            "properties": {
                "reason": { "type": "string", "maxLength": REASON_MAX_LEN, "pattern": line_text() },
            },
        });
    }
    // `PATCH /api/v1/tickets/{n}`: something to change (a null field changes nothing), and a
    // resolution note given with a status needs that status to be resolved or closed.
    let Some(update) = doc.pointer_mut("/components/schemas/TicketUpdate") else {
        return;
    };
    let fields: Vec<String> = update["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let any_of: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "required": [f], "properties": { f: { "not": { "type": "null" } } } }))
        .collect();
    merge(
        update,
        json!({
            "anyOf": any_of,
            "if": {
                "required": ["resolution_note", "status"],
                "properties": {
                    "resolution_note": { "type": "string" },
                    "status": { "not": { "type": "null" } },
                },
            },
            "then": { "properties": { "status": { "enum": ["resolved", "closed"] } } },
        }),
    );
}

/// Where an answer leads (OpenAPI links, which stateful tests follow): from method, path and
/// status, to method and path, with the parameter and where its value comes from.
const LINKS: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    (
        "GET",
        paths::TICKETS,
        "200",
        "GET",
        "/api/v1/tickets/{n}",
        "n",
        "$response.body#/0/number",
    ),
    (
        "GET",
        paths::TICKETS,
        "200",
        "PATCH",
        "/api/v1/tickets/{n}",
        "n",
        "$response.body#/0/number",
    ),
    (
        "GET",
        paths::TICKETS,
        "200",
        "POST",
        "/api/v1/tickets/{n}/comments",
        "n",
        "$response.body#/0/number",
    ),
    (
        "GET",
        paths::TICKETS,
        "200",
        "POST",
        paths::TICKET_ESCALATE,
        "n",
        "$response.body#/0/number",
    ),
    (
        "GET",
        paths::TICKETS,
        "200",
        "GET",
        paths::TICKET_SCREENSHOT,
        "n",
        "$response.body#/0/number",
    ),
    (
        "GET",
        paths::TICKETS,
        "200",
        "GET",
        reports::paths::TICKET_SIMILAR,
        "n",
        "$response.body#/0/number",
    ),
    (
        "GET",
        paths::MACHINES,
        "200",
        "GET",
        "/api/v1/machines/{id}",
        "id",
        "$response.body#/0/id",
    ),
    (
        "GET",
        paths::MACHINES,
        "200",
        "POST",
        paths::MACHINE_INSPECT,
        "id",
        "$response.body#/0/id",
    ),
    (
        "GET",
        paths::MACHINES,
        "200",
        "POST",
        "/api/v1/machines/{id}/approve",
        "id",
        "$response.body#/0/id",
    ),
    (
        "POST",
        paths::MACHINE_INSPECT,
        "202",
        "GET",
        paths::WORK,
        "id",
        "$response.body#/id",
    ),
    (
        "POST",
        paths::USERS,
        "200",
        "POST",
        "/api/v1/users/{name}/revoke",
        "name",
        "$response.body#/name",
    ),
    (
        "POST",
        paths::USERS,
        "200",
        "PUT",
        integrations::USER_EMAIL,
        "name",
        "$response.body#/name",
    ),
    (
        "POST",
        paths::RUNS,
        "201",
        "GET",
        paths::RUN,
        "id",
        "$response.body#/id",
    ),
    (
        "POST",
        paths::RUNS,
        "201",
        "POST",
        paths::RUN_APPROVE,
        "id",
        "$response.body#/id",
    ),
    (
        "POST",
        paths::RUNS,
        "201",
        "POST",
        paths::RUN_DENY,
        "id",
        "$response.body#/id",
    ),
    (
        "GET",
        paths::RUNS,
        "200",
        "GET",
        paths::RUN,
        "id",
        "$response.body#/0/id",
    ),
    (
        "GET",
        paths::ACTIONS,
        "200",
        "PUT",
        paths::ACTION_APPROVAL,
        "id",
        "$response.body#/0/id",
    ),
    (
        "GET",
        integrations::DELIVERIES,
        "200",
        "POST",
        integrations::REDELIVER,
        "id",
        "$response.body#/0/id",
    ),
];

fn pointer_path(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

/// Writes [`LINKS`] into `doc`; answers the links that name nothing in it (a test wants none).
fn apply_links(doc: &mut Value) -> Vec<String> {
    let mut unused = Vec::new();
    for &(method, path, status, to_method, to_path, parameter, from) in LINKS {
        let pointer = format!(
            "/paths/{}/{}/responses/{status}",
            pointer_path(path),
            method.to_lowercase()
        );
        let target_exists = doc
            .pointer(&format!(
                "/paths/{}/{}",
                pointer_path(to_path),
                to_method.to_lowercase()
            ))
            .is_some();
        match doc.pointer_mut(&pointer) {
            Some(response) if target_exists => {
                let name = format!("{to_method} {to_path}");
                response["links"][name] = json!({
                    "operationId": operation_id(to_method, to_path),
                    "parameters": { parameter: from },
                });
            }
            _ => unused.push(format!("{method} {path} {status} -> {to_method} {to_path}")),
        }
    }
    unused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(doc: &serde_json::Value, method: &str, path: &str) -> bool {
        doc["paths"][path][method.to_lowercase()].is_object()
    }

    #[test]
    fn every_api_rule_is_described_and_nothing_else() {
        let doc = document();
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
    fn every_limit_and_link_names_something_in_the_document() {
        let mut doc = serde_json::to_value(described()).unwrap();
        assert_eq!(apply_limits(&mut doc), Vec::<String>::new());
        assert_eq!(apply_links(&mut doc), Vec::<String>::new());
        let doc = document();
        let name = &doc["components"]["schemas"]["NewUser"]["properties"]["name"];
        assert_eq!(name["maxLength"], users::NAME_MAX_LEN);
        let max_uses =
            &doc["components"]["schemas"]["NewEnrollmentToken"]["properties"]["max_uses"];
        assert_eq!(max_uses["maximum"], u32::MAX);
    }

    /// Matches `pattern` as JSON Schema does: a search, not a whole-string match.
    fn matches(pattern: &str, text: &str) -> bool {
        thread_local! {
            static COMPILED: std::cell::RefCell<BTreeMap<String, regex::Regex>> =
                const { std::cell::RefCell::new(BTreeMap::new()) };
        }
        COMPILED.with_borrow_mut(|compiled| {
            compiled
                .entry(pattern.to_owned())
                .or_insert_with(|| regex::Regex::new(pattern).unwrap())
                .is_match(text)
        })
    }

    fn samples() -> Vec<String> {
        let mut out: Vec<String> = (0u32..0x3100)
            .chain([0xfeff, 0x1_f600])
            .filter_map(char::from_u32)
            .flat_map(|c| {
                [
                    c.to_string(),
                    format!("a{c}b"),
                    format!("{c}a"),
                    format!("a{c}"),
                ]
            })
            .collect();
        out.extend(
            [
                "",
                " ",
                "a b",
                " \r\n",
                "x\r\n",
                "\u{85}",
                "ok text",
                "tab\there",
            ]
            .map(String::from),
        );
        out
    }

    #[test]
    fn text_patterns_agree_with_the_checks_they_describe() {
        for text in samples() {
            let blank = text.trim().is_empty();
            let control = |except_tab_newline: bool| {
                text.chars()
                    .any(|c| c.is_control() && !(except_tab_newline && (c == '\t' || c == '\n')))
            };
            assert_eq!(matches(&not_blank(), &text), !blank, "not_blank {text:?}");
            assert_eq!(
                matches(&no_control(), &text),
                !control(true),
                "no_control {text:?}"
            );
            assert_eq!(
                matches(&line_text(), &text),
                !blank && !control(true),
                "line_text {text:?}"
            );
            assert_eq!(
                matches(&printable(), &text),
                !blank && !control(false),
                "printable {text:?}"
            );
            assert_eq!(
                matches(&user_name(), &text),
                users::check_user_name(&text).is_ok(),
                "user_name {text:?}"
            );
            assert_eq!(
                matches(&email(), &text),
                integrations::check_email(&text).is_ok(),
                "email {text:?}"
            );
        }
    }

    #[test]
    fn structured_patterns_agree_with_the_parsers() {
        let long = "a".repeat(64);
        let emails = [
            "a@b".to_owned(),
            "first.last+tag@mail.example.org".to_owned(),
            format!("{long}@x.org"),
            format!("{long}a@x.org"),
            "a@-b.org".to_owned(),
            "a@b-.org".to_owned(),
            "a@b..org".to_owned(),
            "a@b.".to_owned(),
            "a(b)@c".to_owned(),
            "@b".to_owned(),
            "a@".to_owned(),
            format!("a@{}", "b".repeat(63)),
            format!("a@{}", "b".repeat(64)),
        ];
        for email in &emails {
            assert_eq!(
                matches(&self::email(), email),
                integrations::check_email(email).is_ok(),
                "{email:?}"
            );
        }
        for unit in ["m", "h", "d", "s", ""] {
            for amount in [
                "0",
                "1",
                "9",
                "10",
                "99",
                "100",
                "365",
                "366",
                "367",
                "999",
                "8784",
                "8785",
                "9999",
                "527040",
                "527041",
                "999999",
                "4294967296",
                "007",
                "0366",
                "",
            ] {
                for text in [
                    format!("{amount}{unit}"),
                    format!(" {amount}{unit}\t"),
                    format!("-{amount}{unit}"),
                ] {
                    assert_eq!(
                        matches(&window(), &text),
                        text.parse::<lifeline_shared::v1::reports::Window>().is_ok(),
                        "window {text:?}"
                    );
                }
            }
        }
        for q in [
            "",
            " ",
            "disk",
            " disk full ",
            "a b c d e f g h",
            "a b c d e f g h i",
            "a a a a a a a a a",
            "x\u{3000}y",
        ] {
            assert_eq!(
                matches(&kb_words(), q),
                crate::knowledge::query_words(q).is_ok(),
                "kb {q:?}"
            );
        }
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
